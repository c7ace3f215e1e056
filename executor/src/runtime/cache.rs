//! The in-memory module cache: loaded modules by content hash, least recently used
//! evicted beyond `CacheLimits::max_modules_in_memory`.

use std::collections::HashMap;
use std::sync::Arc;

use brine_proto::payload::ModuleHash;

use super::module::LoadedModule;

pub(crate) struct MemoryCache {
    capacity: usize,
    /// Bumped on every use; an entry's stamp says when it was last used.
    clock: u64,
    entries: HashMap<ModuleHash, (Arc<LoadedModule>, u64)>,
}

impl MemoryCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, hash: &ModuleHash) -> Option<Arc<LoadedModule>> {
        self.clock += 1;
        let (module, stamp) = self.entries.get_mut(hash)?;
        *stamp = self.clock;
        Some(Arc::clone(module))
    }

    /// Caches `module`, or returns the copy another thread cached first (so all tasks
    /// share one).
    pub(crate) fn insert(&mut self, module: Arc<LoadedModule>) -> Arc<LoadedModule> {
        if let Some(existing) = self.get(&module.hash()) {
            return existing;
        }
        if self.capacity == 0 {
            return module;
        }
        while self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        self.clock += 1;
        self.entries
            .insert(module.hash(), (Arc::clone(&module), self.clock));
        module
    }

    pub(crate) fn remove(&mut self, hash: &ModuleHash) -> bool {
        self.entries.remove(hash).is_some()
    }

    pub(crate) fn hashes(&self) -> Vec<ModuleHash> {
        let mut hashes: Vec<ModuleHash> = self.entries.keys().copied().collect();
        hashes.sort();
        hashes
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, (_, stamp))| *stamp)
            .map(|(hash, _)| *hash);
        if let Some(hash) = oldest {
            self.entries.remove(&hash);
            tracing::debug!(%hash, "module evicted from memory");
        }
    }
}
