//! One task: a fresh store and instance, the ABI call sequence, and the mapping of
//! everything that can go wrong to a precise [`TaskFailure`].

use std::sync::Arc;
use std::time::Duration;

use brine_proto::payload::{Encoding, ErrorKind, TaskFailure};
use wasmtime::{
    Engine, Extern, Instance, Memory, PoolConcurrencyLimitError, Store, Trap, TypedFunc,
    UpdateDeadline,
};
use wasmtime_wasi::I32Exit;

use super::abi;
use super::config::RuntimeConfig;
use super::control::{KillSwitch, Progress, Watch};
use super::dataset::Dataset;
use super::error::{HostTrap, Interrupt, ResultTooLarge, describe, failure};
use super::host::{GuestReport, HostState, LazyWasi, MemoryLimiter, guest_range};
use super::module::LoadedModule;
use super::output::{Capture, Output};

/// Everything one task needs besides its module.
///
/// ```
/// use brine_executor::runtime::{MemoryOutput, Output, TaskRun};
/// use brine_proto::payload::Encoding;
/// use std::time::Duration;
///
/// let stdout = MemoryOutput::new(64 << 10);
/// let task = TaskRun {
///     deadline: Some(Duration::from_secs(30)),
///     memory_limit_bytes: Some(64 << 20),
///     stdout: Output::Memory(stdout.clone()),
///     ..TaskRun::new("sum", br#""1 2 3""#.to_vec(), Encoding::Json)
/// };
/// assert_eq!(task.export, "sum");
/// ```
#[derive(Debug, Clone)]
pub struct TaskRun {
    /// The task entry to call (an export of the module).
    pub export: String,
    /// Argument bytes, in `encoding`.
    pub args: Vec<u8>,
    pub encoding: Encoding,
    /// Cap on the task's linear memory; `None`, or anything above
    /// [`RuntimeConfig::max_memory_bytes`], means that maximum.
    pub memory_limit_bytes: Option<u64>,
    /// Wall-clock limit, counted from the start of [`Runtime::run`](super::Runtime::run)
    /// (instantiation included); `None`: none.
    pub deadline: Option<Duration>,
    /// Stops the task from another thread.
    pub kill: KillSwitch,
    /// Where the guest's progress reports land.
    pub progress: Progress,
    pub stdout: Output,
    pub stderr: Output,
    /// The dataset `brine.dataset_len`/`dataset_read` see; `None`: an empty one.
    pub dataset: Option<Arc<Dataset>>,
}

impl TaskRun {
    /// A task with no limits beyond the runtime's, output discarded, no dataset.
    pub fn new(export: impl Into<String>, args: Vec<u8>, encoding: Encoding) -> Self {
        Self {
            export: export.into(),
            args,
            encoding,
            memory_limit_bytes: None,
            deadline: None,
            kill: KillSwitch::new(),
            progress: Progress::new(),
            stdout: Output::Discard,
            stderr: Output::Discard,
            dataset: None,
        }
    }
}

/// Runs `task` on `module` to completion on the calling thread.
pub(crate) fn run(
    engine: &Engine,
    config: &RuntimeConfig,
    module: &LoadedModule,
    task: &TaskRun,
) -> Result<Vec<u8>, TaskFailure> {
    if task.kill.is_killed() {
        return Err(failure(ErrorKind::Killed, "task killed before it started"));
    }
    module.check_entry(&task.export)?;
    let stdout = Capture::open(&task.stdout, 0);
    let stderr = Capture::open(&task.stderr, config.stderr_tail_bytes);
    let mut store = new_store(engine, config, task, stdout.clone(), stderr.clone());
    let outcome = execute(&mut store, module, task);
    // The output files are complete before the outcome is reported.
    stdout.finish();
    stderr.finish();
    outcome.map_err(|mut failure| {
        failure.stderr_tail = stderr.tail();
        failure
    })
}

/// A store with the task's limits, WASI context (stdout, stderr, clocks, random and
/// nothing else, built on the guest's first WASI call) and an epoch callback enforcing
/// its kill switch and deadline.
fn new_store(
    engine: &Engine,
    config: &RuntimeConfig,
    task: &TaskRun,
    stdout: Capture,
    stderr: Capture,
) -> Store<HostState> {
    let limit = task
        .memory_limit_bytes
        .map_or(config.max_memory_bytes, |l| l.min(config.max_memory_bytes));
    let state = HostState {
        wasi: LazyWasi::new(stdout.clone(), stderr.clone()),
        stdout,
        stderr,
        limiter: MemoryLimiter {
            limit_bytes: usize::try_from(limit).unwrap_or(usize::MAX),
            max_table_elements: config.max_table_elements,
            refused: None,
            refused_table: None,
        },
        report: GuestReport::default(),
        progress: task.progress.clone(),
        dataset: task.dataset.clone(),
        watch: Watch::new(task.kill.clone(), task.deadline),
        max_result_bytes: usize::try_from(config.max_result_bytes).unwrap_or(usize::MAX),
        memory: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(|mut ctx| match ctx.data_mut().watch.check() {
        Some(reason) => Err(reason.into()),
        None => Ok(UpdateDeadline::Continue(1)),
    });
    store.set_epoch_deadline(1);
    store
}

/// Instantiate, initialize, pass the arguments, call the entry, read its report.
fn execute(
    store: &mut Store<HostState>,
    module: &LoadedModule,
    task: &TaskRun,
) -> Result<Vec<u8>, TaskFailure> {
    let instance = module
        .pre()
        .instantiate(&mut *store)
        .map_err(|e| classify(store.data(), &e))?;
    let memory = instance
        .get_module_export(&mut *store, module.memory())
        .and_then(Extern::into_memory)
        .ok_or_else(|| failure(ErrorKind::ModuleInvalid, "the module exports no memory"))?;
    store.data_mut().memory = Some(memory);
    if let Some(init) = module.initialize() {
        let init: TypedFunc<(), ()> = typed_export(store, &instance, init, abi::INITIALIZE)?;
        init.call(&mut *store, ())
            .map_err(|e| classify(store.data(), &e))?;
    }
    let (ptr, len) = write_args(store, &instance, module, memory, &task.args)?;
    let entry: TypedFunc<(i32, i32, i32), i32> = match module.entry(&task.export) {
        Some(export) => typed_export(store, &instance, export, &task.export)?,
        None => instance
            .get_typed_func(&mut *store, &task.export)
            .map_err(|e| failure(ErrorKind::ExportMissing, describe(&e)))?,
    };
    task.progress.mark_started();
    let code = entry
        .call(&mut *store, (ptr, len, task.encoding.abi_code()))
        .map_err(|e| classify(store.data(), &e))?;
    interpret(code, std::mem::take(&mut store.data_mut().report))
}

/// Copies the argument bytes into space from `__brine_alloc`.
fn write_args(
    store: &mut Store<HostState>,
    instance: &Instance,
    module: &LoadedModule,
    memory: Memory,
    args: &[u8],
) -> Result<(i32, i32), TaskFailure> {
    let len = i32::try_from(args.len()).map_err(|_| {
        failure(
            ErrorKind::ArgumentDecode,
            format!(
                "{} argument bytes are more than a wasm32 guest can take",
                args.len()
            ),
        )
    })?;
    let alloc: TypedFunc<i32, i32> = typed_export(store, instance, module.alloc(), abi::ALLOC)?;
    let ptr = alloc
        .call(&mut *store, len)
        .map_err(|e| classify(store.data(), &e))?;
    let data = memory.data_mut(&mut *store);
    let range = guest_range(ptr, len, data.len()).map_err(|e| {
        failure(
            ErrorKind::Trap,
            format!("`{}` returned a bad pointer: {e}", abi::ALLOC),
        )
    })?;
    data[range].copy_from_slice(args);
    Ok((ptr, len))
}

fn typed_export<P, R>(
    store: &mut Store<HostState>,
    instance: &Instance,
    export: &wasmtime::ModuleExport,
    name: &str,
) -> Result<TypedFunc<P, R>, TaskFailure>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    instance
        .get_module_export(&mut *store, export)
        .and_then(Extern::into_func)
        .ok_or_else(|| failure(ErrorKind::ModuleInvalid, format!("missing export `{name}`")))?
        .typed(&*store)
        .map_err(|e| failure(ErrorKind::ModuleInvalid, describe(&e)))
}

/// The entry's return code and what the guest reported, as ABI.md defines them.
fn interpret(code: i32, report: GuestReport) -> Result<Vec<u8>, TaskFailure> {
    let message = |kind: ErrorKind, error: Option<String>| {
        let text = error.unwrap_or_else(|| format!("no message (return code {code})"));
        Err(failure(kind, text))
    };
    match code {
        abi::RC_OK => report.result.ok_or_else(|| {
            failure(
                ErrorKind::GuestError,
                "no result: the entry returned 0 without calling brine.result",
            )
        }),
        abi::RC_GUEST_ERROR => message(ErrorKind::GuestError, report.error),
        abi::RC_ARGUMENT_DECODE => message(ErrorKind::ArgumentDecode, report.error),
        abi::RC_RESULT_ENCODE => message(ErrorKind::ResultEncode, report.error),
        other => Err(failure(
            ErrorKind::GuestError,
            format!("unknown return code {other}"),
        )),
    }
}

/// Why the guest stopped with `error`: the host's own reasons first (kill, deadline,
/// refused memory growth, a result over the cap, a refused table growth, recorded
/// panic), then what the error itself says.
fn classify(state: &HostState, error: &wasmtime::Error) -> TaskFailure {
    tracing::debug!(error = ?error, "guest stopped");
    if let Some(reason) = state.watch.interrupted {
        return interrupted(reason, state.watch.limit());
    }
    if let Some(desired) = state.limiter.refused {
        return failure(
            ErrorKind::MemoryLimit,
            format!(
                "memory limit of {} bytes reached: growth to {desired} bytes refused ({})",
                state.limiter.limit_bytes,
                trap_message(error)
            ),
        );
    }
    if let Some(too_large) = error.downcast_ref::<ResultTooLarge>() {
        return failure(ErrorKind::ResultEncode, too_large.to_string());
    }
    if let Some(desired) = state.limiter.refused_table {
        return failure(
            ErrorKind::Trap,
            format!(
                "table limit of {} elements reached: growth to {desired} elements refused ({})",
                state.limiter.max_table_elements,
                trap_message(error)
            ),
        );
    }
    if let Some(message) = &state.report.panic {
        return failure(ErrorKind::GuestPanic, message.clone());
    }
    if error.is::<PoolConcurrencyLimitError>() {
        return failure(
            ErrorKind::Internal,
            format!("too many tasks at once: {}", describe(error)),
        );
    }
    failure(ErrorKind::Trap, trap_message(error))
}

fn interrupted(reason: Interrupt, limit: Option<Duration>) -> TaskFailure {
    match (reason, limit) {
        (Interrupt::Killed, _) => failure(ErrorKind::Killed, "task killed"),
        (Interrupt::Deadline, Some(limit)) => failure(
            ErrorKind::DeadlineExceeded,
            format!("task ran past its deadline of {limit:?}"),
        ),
        (Interrupt::Deadline, None) => failure(ErrorKind::DeadlineExceeded, "deadline exceeded"),
    }
}

/// The most specific message an error carries.
fn trap_message(error: &wasmtime::Error) -> String {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return format!("guest exited with code {}", exit.0);
    }
    if let Some(host) = error.downcast_ref::<HostTrap>() {
        return host.0.clone();
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return trap.to_string();
    }
    describe(error)
}
