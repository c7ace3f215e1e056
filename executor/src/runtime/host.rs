//! The host side of the guest ABI: per-task store state, and the linker offering WASI
//! preview 1 plus the `brine` imports.

use std::ops::Range;
use std::sync::Arc;

use wasmtime::{Caller, Engine, Extern, Linker, Memory, ResourceLimiter};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::abi::{BRINE_MODULE, MEMORY, WASI_MODULE};
use super::control::{Progress, Watch};
use super::dataset::Dataset;
use super::error::{HostTrap, ResultTooLarge};
use super::output::Capture;

/// Most bytes of a `brine.error` or `brine.panic` message the host copies out of guest
/// memory; the rest is dropped and the message says so. (A message ends up in a Mesos
/// status update and in logs: it must stay small whatever the guest passes.)
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// Most buffers one `fd_write` may pass (POSIX's `IOV_MAX` on Linux); more is `inval`,
/// as `writev` answers. Bounds the host's work per call, which an epoch tick cannot
/// interrupt.
pub const MAX_IOVS: u32 = 1024;

/// WASI preview 1 errno values the host's `fd_write` returns.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;

/// Everything a task's store holds.
pub(crate) struct HostState {
    pub(crate) wasi: LazyWasi,
    /// The task's stdout and stderr (fds 1 and 2), written by the host's `fd_write`.
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) report: GuestReport,
    pub(crate) progress: Progress,
    pub(crate) dataset: Option<Arc<Dataset>>,
    pub(crate) watch: Watch,
    /// Most bytes `brine.result` accepts (`RuntimeConfig::max_result_bytes`).
    pub(crate) max_result_bytes: usize,
    /// The instance's exported memory, noted right after instantiation so host calls
    /// need no lookup by name.
    pub(crate) memory: Option<Memory>,
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

/// Caps a task's linear memory and table, remembering a refused growth so the trap that
/// usually follows is reported for what it is (`memory_limit`, or a trap naming the
/// table limit) rather than as a plain trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) limit_bytes: usize,
    pub(crate) max_table_elements: usize,
    /// The size a refused memory growth asked for.
    pub(crate) refused: Option<usize>,
    /// The element count a refused table growth asked for.
    pub(crate) refused_table: Option<usize>,
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
        if desired > self.max_table_elements {
            self.refused_table = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The linker every task is instantiated with: WASI preview 1 (its `fd_write` the
/// host's own, see [`fd_write`]) and `brine`.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| state.wasi.get())?;
    linker.allow_shadowing(true);
    linker.func_wrap(WASI_MODULE, "fd_write", fd_write)?;
    linker.allow_shadowing(false);
    linker.func_wrap(BRINE_MODULE, "result", result)?;
    linker.func_wrap(BRINE_MODULE, "error", error)?;
    linker.func_wrap(BRINE_MODULE, "panic", panic)?;
    linker.func_wrap(BRINE_MODULE, "progress", progress)?;
    linker.func_wrap(BRINE_MODULE, "dataset_len", dataset_len)?;
    linker.func_wrap(BRINE_MODULE, "dataset_read", dataset_read)?;
    Ok(linker)
}

/// `brine.result(ptr, len)`: the encoded result; the last call wins. A result over
/// the cap stops the task ([`ResultTooLarge`]) before a byte of it is copied.
fn result(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_range(ptr, len, data.len())?;
    if range.len() > state.max_result_bytes {
        return Err(ResultTooLarge {
            len: range.len(),
            cap: state.max_result_bytes,
        }
        .into());
    }
    state.report.result = Some(data[range].to_vec());
    Ok(())
}

/// `brine.error(ptr, len)`: the message for return codes 1–3; the last call wins.
fn error(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let message = read_message(&mut caller, ptr, len)?;
    caller.data_mut().report.error = Some(message);
    Ok(())
}

/// `brine.panic(ptr, len)`: the panic message, recorded before the guest aborts.
fn panic(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let message = read_message(&mut caller, ptr, len)?;
    caller.data_mut().report.panic = Some(message);
    Ok(())
}

/// `wasi_snapshot_preview1.fd_write(fd, iovs, iovs_len, nwritten) -> errno`, in place
/// of WASI's own, so that guest output costs what a buffered write costs: the bytes go
/// from guest memory straight into the task's [`Capture`], without WASI's descriptor
/// table, stream layers, per-write allocations or async runtime (which made a line of
/// output cost tens to hundreds of microseconds), and without building the WASI
/// context at all.
///
/// fd 1 is the task's stdout and fd 2 its stderr, always; every other fd is `badf`
/// (the sandbox opens no files or sockets; stdin is not writable). All the buffers
/// are written, so `nwritten` is their total unless it would pass `u32::MAX` (then
/// the write is short). As WASI requires, a pointer range outside guest memory or a
/// misaligned array traps, and is checked before anything is written; more than
/// [`MAX_IOVS`] buffers is `inval`.
fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> wasmtime::Result<i32> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let count = iovs_len.cast_unsigned();
    if count > MAX_IOVS {
        return Ok(ERRNO_INVAL);
    }
    let array = guest_array(iovs, count, 8, data.len(), "fd_write: the iovec array")?;
    let out = guest_array(nwritten, 1, 4, data.len(), "fd_write: `nwritten`")?;
    // Check every buffer (and sum their lengths) before writing any of them.
    let mut total: u32 = 0;
    let mut taken = 0;
    for iov in data[array.clone()].chunks_exact(8) {
        let (ptr, len) = (le_u32(&iov[..4]), le_u32(&iov[4..]));
        guest_range(ptr.cast_signed(), len.cast_signed(), data.len())?;
        let Some(sum) = total.checked_add(len) else {
            break;
        };
        total = sum;
        taken += 1;
    }
    let capture = match fd {
        1 => &state.stdout,
        2 => &state.stderr,
        _ => return Ok(ERRNO_BADF),
    };
    let pieces = &*data;
    capture.write_all(pieces[array].chunks_exact(8).take(taken).map(|iov| {
        let (ptr, len) = (le_u32(&iov[..4]), le_u32(&iov[4..]));
        // Checked above; `get` keeps even a mistake here from panicking the host.
        guest_range(ptr.cast_signed(), len.cast_signed(), pieces.len())
            .ok()
            .and_then(|range| pieces.get(range))
            .unwrap_or_default()
    }));
    // Last, as WASI does: `nwritten` may overlap what was just read.
    data[out].copy_from_slice(&total.to_le_bytes());
    Ok(ERRNO_SUCCESS)
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

/// The guest's message at `ptr..ptr + len` as text (invalid UTF-8 replaced), at most
/// [`MAX_MESSAGE_BYTES`] of it copied; a longer one says how long it was.
fn read_message(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<String> {
    let memory = guest_memory(caller)?;
    let data = memory.data(&caller);
    let range = guest_range(ptr, len, data.len())?;
    let full = range.len();
    let kept = &data[range.start..range.start + full.min(MAX_MESSAGE_BYTES)];
    let mut message = String::from_utf8_lossy(kept).into_owned();
    if full > MAX_MESSAGE_BYTES {
        message.push_str(&format!(
            "… (message of {full} bytes cut at {MAX_MESSAGE_BYTES})"
        ));
    }
    Ok(message)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

/// Checks a guest array of `count` elements of `size` bytes, which WASI requires to be
/// aligned to 4: traps, naming `what`, when it is out of bounds or misaligned.
fn guest_array(
    ptr: i32,
    count: u32,
    size: u32,
    memory_len: usize,
    what: &str,
) -> Result<Range<usize>, HostTrap> {
    let start = ptr.cast_unsigned();
    if !start.is_multiple_of(4) {
        return Err(HostTrap(format!(
            "{what} at {start} is not aligned to 4 bytes"
        )));
    }
    let bytes = u64::from(count) * u64::from(size);
    let end = u64::from(start) + bytes;
    if end > memory_len as u64 {
        return Err(HostTrap(format!(
            "out of bounds: {what} ({start}+{bytes}) lies outside the guest's \
             {memory_len}-byte memory"
        )));
    }
    Ok(start as usize..end as usize)
}

/// The guest's memory: the one the task noted after instantiation, else (a call from
/// a start function) looked up by name.
fn guest_memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    if let Some(memory) = caller.data().memory {
        return Ok(memory);
    }
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
