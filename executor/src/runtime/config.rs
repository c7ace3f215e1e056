//! How a [`Runtime`](super::Runtime) is sized. Every limit the runtime enforces is here.

use std::path::PathBuf;
use std::time::Duration;

use brine_proto::payload::{CacheLimits, ExecutorConfig};

/// Default for [`RuntimeConfig::max_instances`].
pub const DEFAULT_MAX_INSTANCES: u32 = 64;
/// Default for [`RuntimeConfig::max_memory_bytes`]: 1 GiB.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 1 << 30;
/// Default for [`RuntimeConfig::max_table_elements`] (wasmtime's own default).
pub const DEFAULT_MAX_TABLE_ELEMENTS: usize = 20_000;
/// Default for [`RuntimeConfig::max_wasm_stack_bytes`]: 512 KiB (wasmtime's default).
pub const DEFAULT_MAX_WASM_STACK_BYTES: usize = 512 << 10;
/// Default for [`RuntimeConfig::epoch_tick`]: 1 ms.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(1);
/// Default for [`RuntimeConfig::stderr_tail_bytes`]: 4 KiB.
pub const DEFAULT_STDERR_TAIL_BYTES: usize = 4096;
/// Default for [`RuntimeConfig::max_result_bytes`]: 16 MiB. A result travels in one
/// Mesos status update (`TaskStatus.data`, through the agent to the scheduler's event
/// stream, whose records Brine caps at 64 MiB: `recordio::DEFAULT_MAX_RECORD_SIZE`) or
/// in one closure-lane frame (`lane::MAX_FRAME_BYTES`, 64 MiB); 16 MiB fits either
/// with room for the envelope, and for base64 when an API speaks JSON.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 16 << 20;
/// Default for [`RuntimeConfig::max_module_bytes`]: 32 MiB (the example modules are
/// 160–240 KB).
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 32 << 20;
/// Default for [`RuntimeConfig::max_module_functions`]: 100 000 (the example modules
/// define 300–500).
pub const DEFAULT_MAX_MODULE_FUNCTIONS: u32 = 100_000;

/// Sizing of a [`Runtime`](super::Runtime).
///
/// The instance pool is reserved up front from these figures: `max_instances` slots of
/// virtual address space (about 4 GiB each, almost all of it never touched: it lets
/// compiled code skip bounds checks), so they bound what the runtime can ever use.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Most tasks that may run at once (pooling allocator slots: instances, memories,
    /// tables). A task started while all are busy fails with `internal`, so callers size
    /// their worker pools at or below it. Default 64.
    pub max_instances: u32,
    /// Hard cap on one task's linear memory in bytes; a task's own limit is clamped to
    /// it. Default 1 GiB; wasm32 cannot exceed 4 GiB.
    pub max_memory_bytes: u64,
    /// Most elements of a task's function table. Default 20 000.
    pub max_table_elements: usize,
    /// Most bytes of native stack wasm code may use before trapping with a stack
    /// overflow. Default 512 KiB (the calling thread's stack must be larger).
    pub max_wasm_stack_bytes: usize,
    /// Compiled-module cache limits: modules kept in memory (LRU), bytes on disk.
    pub cache: CacheLimits,
    /// Where compiled modules are serialized so a new runtime starts warm; `None`: memory
    /// only. Must be writable by this process only: files there are checksummed, not
    /// authenticated.
    pub cache_dir: Option<PathBuf>,
    /// How often the engine's epoch advances: the granularity of deadlines and kills.
    /// Default 1 ms. The ticker thread sleeps while no task runs.
    pub epoch_tick: Duration,
    /// How many of the last bytes of a task's stderr come back with its failure.
    /// Default 4 KiB.
    pub stderr_tail_bytes: usize,
    /// Most bytes of one task's result (`brine.result`). A larger result fails the task
    /// with `result_encode`, checked before the bytes are copied out of guest memory.
    /// Default 16 MiB.
    pub max_result_bytes: u64,
    /// Largest module (wasm bytes) the runtime compiles; a larger one is
    /// `module_invalid` before any work is spent on it. With
    /// [`max_module_functions`](Self::max_module_functions) (and wasmparser's own
    /// limit of 7 654 321 bytes per function body) this bounds a compilation, which
    /// nothing can interrupt once started: see the README for the figures. Default
    /// 32 MiB.
    pub max_module_bytes: u64,
    /// Most functions a module may define (its function section); more is
    /// `module_invalid`. Compilation costs about the same per function however small
    /// it is, so this bounds a module of many tiny functions. Default 100 000.
    pub max_module_functions: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
            max_wasm_stack_bytes: DEFAULT_MAX_WASM_STACK_BYTES,
            cache: CacheLimits::default(),
            cache_dir: None,
            epoch_tick: DEFAULT_EPOCH_TICK,
            stderr_tail_bytes: DEFAULT_STDERR_TAIL_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            max_module_functions: DEFAULT_MAX_MODULE_FUNCTIONS,
        }
    }
}

impl RuntimeConfig {
    /// The runtime an executor configured by `config` needs, caching compiled modules in
    /// `cache_dir`.
    pub fn for_executor(config: &ExecutorConfig, cache_dir: Option<PathBuf>) -> Self {
        Self {
            cache: config.cache,
            cache_dir,
            stderr_tail_bytes: usize::try_from(config.stderr_tail_bytes).unwrap_or(usize::MAX),
            ..Self::default()
        }
    }
}
