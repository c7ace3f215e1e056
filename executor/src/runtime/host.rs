//! The host side of the guest ABI: per-task store state, and the linker offering WASI
//! preview 1 plus the `brine` imports.

use std::ops::Range;
use std::sync::Arc;

use wasmtime::{Caller, Engine, Extern, Linker, Memory, ResourceLimiter};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::abi::{BRINE_MODULE, MEMORY};
use super::control::{Progress, Watch};
use super::dataset::Dataset;
use super::error::HostTrap;
use super::output::Capture;

/// Everything a task's store holds.
pub(crate) struct HostState {
    pub(crate) wasi: LazyWasi,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) report: GuestReport,
    pub(crate) progress: Progress,
    pub(crate) dataset: Option<Arc<Dataset>>,
    pub(crate) watch: Watch,
}

/// A task's WASI preview 1 context, built on the guest's first WASI call.
///
/// Building one (boxed streams, clocks, two seeded RNGs, a resource table, the
/// preview 1 descriptor table) is a large share of a warm task's instantiate + call,
/// and many tasks (all the examples but `hello`) never make a WASI call at all.
pub(crate) struct LazyWasi {
    ctx: Option<Box<WasiP1Ctx>>,
    stdout: Capture,
    stderr: Capture,
}

impl LazyWasi {
    pub(crate) fn new(stdout: Capture, stderr: Capture) -> Self {
        Self {
            ctx: None,
            stdout,
            stderr,
        }
    }

    /// The context, built now if this is the first call: stdout, stderr, clocks and
    /// random; no stdin, preopens, environment, arguments or sockets.
    pub(crate) fn get(&mut self) -> &mut WasiP1Ctx {
        self.ctx.get_or_insert_with(|| {
            Box::new(
                WasiCtxBuilder::new()
                    .stdout(self.stdout.clone())
                    .stderr(self.stderr.clone())
                    .allow_tcp(false)
                    .allow_udp(false)
                    .allow_ip_name_lookup(false)
                    .build_p1(),
            )
        })
    }
}

/// What the guest told the host through `brine.result`, `error` and `panic`.
#[derive(Debug, Default)]
pub(crate) struct GuestReport {
    pub(crate) result: Option<Vec<u8>>,
    pub(crate) error: Option<String>,
    pub(crate) panic: Option<String>,
}

/// Caps a task's linear memory, remembering a refused growth so the trap that usually
/// follows is reported as `memory_limit` rather than as a plain trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) limit_bytes: usize,
    pub(crate) max_table_elements: usize,
    /// The size a refused growth asked for.
    pub(crate) refused: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The linker every task is instantiated with: WASI preview 1 and `brine`.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| state.wasi.get())?;
    linker.func_wrap(BRINE_MODULE, "result", result)?;
    linker.func_wrap(BRINE_MODULE, "error", error)?;
    linker.func_wrap(BRINE_MODULE, "panic", panic)?;
    linker.func_wrap(BRINE_MODULE, "progress", progress)?;
    linker.func_wrap(BRINE_MODULE, "dataset_len", dataset_len)?;
    linker.func_wrap(BRINE_MODULE, "dataset_read", dataset_read)?;
    Ok(linker)
}

/// `brine.result(ptr, len)`: the encoded result; the last call wins.
fn result(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let bytes = read_guest(&mut caller, ptr, len)?;
    caller.data_mut().report.result = Some(bytes);
    Ok(())
}

/// `brine.error(ptr, len)`: the message for return codes 1–3; the last call wins.
fn error(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let message = String::from_utf8_lossy(&read_guest(&mut caller, ptr, len)?).into_owned();
    caller.data_mut().report.error = Some(message);
    Ok(())
}

/// `brine.panic(ptr, len)`: the panic message, recorded before the guest aborts.
fn panic(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let message = String::from_utf8_lossy(&read_guest(&mut caller, ptr, len)?).into_owned();
    caller.data_mut().report.panic = Some(message);
    Ok(())
}

/// `brine.progress(fraction)`: clamped to `0.0..=1.0`, NaN ignored.
fn progress(caller: Caller<'_, HostState>, fraction: f64) {
    if !fraction.is_nan() {
        caller.data().progress.set(fraction.clamp(0.0, 1.0));
    }
}

/// `brine.dataset_len()`: 0 without a dataset.
fn dataset_len(caller: Caller<'_, HostState>) -> i64 {
    let len = caller.data().dataset.as_ref().map_or(0, |d| d.len());
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// `brine.dataset_read(offset, ptr, len)`: bytes copied; 0 at or past the end, -1 for a
/// negative offset; traps when the guest range is outside its memory.
fn dataset_read(
    mut caller: Caller<'_, HostState>,
    offset: i64,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i64> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_range(ptr, len, data.len())?;
    let Ok(offset) = u64::try_from(offset) else {
        return Ok(-1);
    };
    let copied = match &state.dataset {
        Some(dataset) => dataset.read_at(offset, &mut data[range]),
        None => 0,
    };
    Ok(i64::try_from(copied).unwrap_or(i64::MAX))
}

/// A copy of the guest bytes at `ptr..ptr + len`.
fn read_guest(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let memory = guest_memory(caller)?;
    let data = memory.data(&caller);
    let range = guest_range(ptr, len, data.len())?;
    Ok(data[range].to_vec())
}

fn guest_memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    match caller.get_export(MEMORY) {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(HostTrap(format!("the guest exports no `{MEMORY}`")).into()),
    }
}

/// Checks a guest pointer range (both `i32`s read as unsigned wasm addresses).
pub(crate) fn guest_range(ptr: i32, len: i32, memory_len: usize) -> Result<Range<usize>, HostTrap> {
    let start = ptr.cast_unsigned() as usize;
    let len = len.cast_unsigned() as usize;
    match start.checked_add(len) {
        Some(end) if end <= memory_len => Ok(start..end),
        _ => Err(HostTrap(format!(
            "out of bounds: guest range {start}+{len} lies outside its {memory_len}-byte memory"
        ))),
    }
}
