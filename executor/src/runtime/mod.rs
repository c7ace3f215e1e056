//! The executor's wasmtime runtime: the host side of the Brine guest ABI
//! (`guest-sdk/ABI.md`).
//!
//! One [`Runtime`] holds the shared [`wasmtime::Engine`] (cranelift, pooling allocator,
//! epoch interruption), the linker offering WASI preview 1 and the `brine` imports, a
//! module cache by content hash (in memory, and on disk when a directory is named), and
//! the epoch ticker thread. [`Runtime::load`] turns a [`ModuleRef`] into a
//! [`LoadedModule`] (compiled, ABI-checked, pre-linked); [`Runtime::run`] runs one task
//! of it in a fresh instance on the calling thread. Both are safe to call from many
//! threads at once.
//!
//! Every failure is a [`TaskFailure`] with a precise [`ErrorKind`]; none of them leaves
//! the runtime unusable.
//!
//! ```
//! use brine_executor::runtime::{Runtime, RuntimeConfig, TaskRun};
//! use brine_proto::payload::{Encoding, ErrorKind, ModuleRef};
//!
//! // A task `answer` that ignores its arguments and returns the JSON `42`.
//! let wasm = wat::parse_str(r#"(module
//!     (import "brine" "result" (func $result (param i32 i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 16) "42")
//!     (func (export "__brine_abi_v1"))
//!     (func (export "__brine_alloc") (param i32) (result i32) (i32.const 1024))
//!     (func (export "answer") (param i32 i32 i32) (result i32)
//!         (call $result (i32.const 16) (i32.const 2))
//!         (i32.const 0)))"#).unwrap();
//!
//! let runtime = Runtime::new(RuntimeConfig { max_instances: 4, ..RuntimeConfig::default() })?;
//! let module = runtime.load(&ModuleRef::inline(wasm))?;
//! let result = runtime.run(&module, &TaskRun::new("answer", b"null".to_vec(), Encoding::Json))?;
//! assert_eq!(result, b"42");
//!
//! let missing = runtime.run(&module, &TaskRun::new("nope", vec![], Encoding::Json));
//! assert_eq!(missing.unwrap_err().kind, ErrorKind::ExportMissing);
//! assert_eq!(runtime.stats().compiles, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod abi;
mod cache;
mod config;
mod control;
mod dataset;
mod disk;
mod engine;
mod epoch;
mod error;
mod host;
mod module;
mod output;
mod task;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use brine_proto::payload::{ErrorKind, ModuleHash, ModuleRef, TaskFailure};
use wasmtime::{Engine, Linker, Module};

pub use self::abi::SUPPORTED_VERSIONS;
pub use self::config::{
    DEFAULT_EPOCH_TICK, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_MODULE_BYTES,
    DEFAULT_MAX_MODULE_FUNCTIONS, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_TABLE_ELEMENTS,
    DEFAULT_MAX_WASM_STACK_BYTES, DEFAULT_STDERR_TAIL_BYTES, RuntimeConfig,
};
pub use self::control::{KillSwitch, Progress, monotonic_ns};
pub use self::dataset::{Dataset, DatasetAccess};
pub use self::error::RuntimeError;
pub use self::host::{MAX_IOVS, MAX_MESSAGE_BYTES};
pub use self::module::LoadedModule;
pub use self::output::{MemoryOutput, Output};
pub use self::task::TaskRun;

use self::cache::MemoryCache;
use self::disk::{DiskCache, Lookup};
use self::epoch::Ticker;
use self::error::{describe, failure};
use self::host::HostState;

/// The shared wasmtime runtime of one executor. `Send + Sync`: share it by reference or
/// `Arc` between worker threads.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    memory: Mutex<MemoryCache>,
    disk: Option<DiskCache>,
    counters: Counters,
    config: RuntimeConfig,
    // Dropped last: stops and joins the ticker thread.
    ticker: Ticker,
}

/// Counters of what the runtime did since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Modules compiled from wasm bytes.
    pub compiles: u64,
    /// Loads answered from the in-memory cache.
    pub memory_hits: u64,
    /// Loads answered by deserializing a disk cache file (no compilation).
    pub disk_hits: u64,
    /// Disk cache files found invalid (corrupt, foreign, truncated) and deleted.
    pub disk_rejects: u64,
    /// Disk cache files written.
    pub disk_writes: u64,
    /// Disk cache files deleted to stay within `max_disk_bytes`.
    pub disk_evictions: u64,
    /// Tasks started with [`Runtime::run`].
    pub tasks: u64,
}

#[derive(Default)]
struct Counters {
    compiles: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_rejects: AtomicU64,
    disk_writes: AtomicU64,
    disk_evictions: AtomicU64,
    tasks: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Runtime {
    /// Creates the engine, its instance pool, the linker, the disk cache directory (if
    /// configured) and the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = engine::build(&config)?;
        let linker = host::linker(&engine).map_err(|e| RuntimeError::Linker(describe(&e)))?;
        let disk = match &config.cache_dir {
            Some(dir) => {
                let key = engine::compatibility_key(&engine);
                let disk =
                    DiskCache::open(dir, &key, config.cache.max_disk_bytes).map_err(|source| {
                        RuntimeError::CacheDir {
                            path: dir.clone(),
                            source,
                        }
                    })?;
                Some(disk)
            }
            None => None,
        };
        let ticker =
            Ticker::start(engine.clone(), config.epoch_tick).map_err(RuntimeError::Ticker)?;
        let capacity = usize::try_from(config.cache.max_modules_in_memory).unwrap_or(usize::MAX);
        tracing::info!(
            max_instances = config.max_instances,
            max_memory_bytes = config.max_memory_bytes,
            cache_dir = ?config.cache_dir,
            "wasm runtime ready"
        );
        Ok(Self {
            engine,
            linker,
            memory: Mutex::new(MemoryCache::new(capacity)),
            disk,
            counters: Counters::default(),
            config,
            ticker,
        })
    }

    /// The module `module` names, ready to run: from memory, else from the disk cache,
    /// else compiled from its inline bytes (then cached in both).
    ///
    /// Fails with `module_invalid` when the inline bytes are over the module limits
    /// ([`RuntimeConfig::max_module_bytes`], [`RuntimeConfig::max_module_functions`]),
    /// do not hash to the named hash, are not a valid module, do not fit the instance
    /// pool, or import what the host does not offer; `abi_mismatch` without the
    /// `__brine_abi_v1` marker; `module_missing` for a hash-only reference to a module
    /// cached nowhere here.
    pub fn load(&self, module: &ModuleRef) -> Result<Arc<LoadedModule>, TaskFailure> {
        if let Some(bytes) = &module.bytes {
            module::check_limits(
                bytes,
                self.config.max_module_bytes,
                self.config.max_module_functions,
            )?;
        }
        module
            .verify()
            .map_err(|e| failure(ErrorKind::ModuleInvalid, e.to_string()))?;
        let hash = module.hash;
        if let Some(loaded) = self.memory().get(&hash) {
            bump(&self.counters.memory_hits, 1);
            return Ok(loaded);
        }
        let (compiled, fresh) = match (self.load_from_disk(&hash), &module.bytes) {
            (Some(compiled), _) => (compiled, false),
            (None, Some(bytes)) => (self.compile(&hash, bytes)?, true),
            (None, None) => {
                return Err(failure(
                    ErrorKind::ModuleMissing,
                    format!("module {hash} is not cached here and came without its bytes"),
                ));
            }
        };
        let loaded = Arc::new(LoadedModule::prepare(hash, &compiled, &self.linker)?);
        if fresh {
            self.store_on_disk(&hash, &compiled);
        }
        Ok(self.memory().insert(loaded))
    }

    /// Runs one task of `module` to completion on the calling thread, in a fresh
    /// instance; returns the guest's result bytes.
    pub fn run(&self, module: &LoadedModule, task: &TaskRun) -> Result<Vec<u8>, TaskFailure> {
        bump(&self.counters.tasks, 1);
        let _ticking = self.ticker.activate();
        let span = tracing::debug_span!("task", module = %module.hash(), export = %task.export);
        let _entered = span.enter();
        let outcome = task::run(&self.engine, &self.config, module, task);
        match &outcome {
            Ok(result) => tracing::debug!(result_bytes = result.len(), "task finished"),
            Err(failure) => {
                tracing::debug!(kind = %failure.kind, message = %failure.message, "task failed")
            }
        }
        outcome
    }

    /// Hashes of the modules a hash-only [`ModuleRef`] can be loaded by: those in
    /// memory and those in the disk cache. Sorted.
    pub fn cached_modules(&self) -> Vec<ModuleHash> {
        let mut hashes = self.memory().hashes();
        if let Some(disk) = &self.disk {
            hashes.extend(disk.hashes());
        }
        hashes.sort();
        hashes.dedup();
        hashes
    }

    /// Drops a module from both caches. Tasks already holding it finish normally.
    /// Returns whether it was in memory.
    pub fn evict(&self, hash: &ModuleHash) -> bool {
        if let Some(disk) = &self.disk {
            disk.remove(hash);
        }
        self.memory().remove(hash)
    }

    /// What the runtime has done so far.
    pub fn stats(&self) -> RuntimeStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RuntimeStats {
            compiles: get(&c.compiles),
            memory_hits: get(&c.memory_hits),
            disk_hits: get(&c.disk_hits),
            disk_rejects: get(&c.disk_rejects),
            disk_writes: get(&c.disk_writes),
            disk_evictions: get(&c.disk_evictions),
            tasks: get(&c.tasks),
        }
    }

    /// The configuration the runtime was created with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn memory(&self) -> MutexGuard<'_, MemoryCache> {
        // The cache map stays consistent even if a holder panicked mid-way.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn compile(&self, hash: &ModuleHash, bytes: &[u8]) -> Result<Module, TaskFailure> {
        bump(&self.counters.compiles, 1);
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| failure(ErrorKind::ModuleInvalid, describe(&e)))?;
        tracing::debug!(%hash, "module compiled");
        Ok(module)
    }

    fn load_from_disk(&self, hash: &ModuleHash) -> Option<Module> {
        match self.disk.as_ref()?.load(&self.engine, hash) {
            Lookup::Hit(module) => {
                bump(&self.counters.disk_hits, 1);
                Some(module)
            }
            Lookup::Miss => None,
            Lookup::Rejected => {
                bump(&self.counters.disk_rejects, 1);
                None
            }
        }
    }

    fn store_on_disk(&self, hash: &ModuleHash, module: &Module) {
        if let Some(disk) = &self.disk {
            let (written, evicted) = disk.store(hash, module);
            bump(&self.counters.disk_writes, u64::from(written));
            bump(&self.counters.disk_evictions, evicted);
        }
    }
}

/// Compile-time proof that the runtime and its modules can be shared between threads.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Runtime>();
    shared::<LoadedModule>();
    shared::<TaskRun>();
};
