//! The one shared wasmtime [`Engine`], and the key that tells whose compiled code a cache
//! file holds.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    Strategy,
};

use super::config::RuntimeConfig;
use super::error::RuntimeError;

/// Bytes of a memory slot kept resident between tasks (see [`build`]): a Rust task's
/// default memory (17 pages, ~1.1 MiB) and some heap.
const KEEP_RESIDENT_MEMORY_BYTES: usize = 2 << 20;
/// Bytes of a table slot kept resident between tasks.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

/// Builds the engine: cranelift, epoch interruption, and a pooling allocator bounded by
/// `config`.
pub(crate) fn build(config: &RuntimeConfig) -> Result<Engine, RuntimeError> {
    let max_memory = usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        // Tasks are core modules, never components.
        .total_component_instances(0)
        .max_memories_per_module(1)
        .max_memory_size(max_memory)
        .table_elements(config.max_table_elements)
        // Reset a finished task's memory by rewriting only the pages it touched (found
        // with Linux's PAGEMAP_SCAN, 6.7+; `Auto` falls back elsewhere) instead of
        // `madvise`-ing the whole memory away: the next task in the slot then takes no
        // page faults for its first megabytes. Bounded per slot, so an idle pool keeps at
        // most this much resident per used slot.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES);

    let mut wasm = Config::new();
    wasm.strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .epoch_interruption(true)
        // Tasks are Rust-style linear-memory modules: no GC proposals (wasmtime is built
        // without its `gc` feature), so no GC heaps to reserve.
        .gc_support(false)
        .wasm_gc(false)
        // A module compiles on the thread that loads it (wasmtime is built without
        // `parallel-compilation`; see the workspace Cargo.toml).
        .max_wasm_stack(config.max_wasm_stack_bytes)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// A hex digest of everything that decides whether code compiled by one engine runs
/// on another (wasmtime version, target, flags, tunables, features): wasmtime's
/// precompile compatibility hash, fed through SHA-256 so it is stable across processes.
pub(crate) fn compatibility_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher::default();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..16])
}

/// A [`Hasher`] writing into SHA-256, whose digest (unlike `DefaultHasher`'s) is fixed.
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}
