//! Task modules, named by content hash so executors can cache them.

use std::path::Path;
use std::sync::Arc;

use brine_proto::payload::ModuleHash;

/// A WebAssembly task module. Cheap to clone: the bytes are shared.
#[derive(Clone)]
pub struct Module {
    pub(crate) hash: ModuleHash,
    pub(crate) bytes: Arc<Vec<u8>>,
}

impl Module {
    /// A module from its bytes (a `.wasm` binary), named by their SHA-256.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Module {
        let bytes = bytes.into();
        Module {
            hash: ModuleHash::of(&bytes),
            bytes: Arc::new(bytes),
        }
    }

    /// A module read from a `.wasm` file.
    pub fn from_file(path: impl AsRef<Path>) -> std::io::Result<Module> {
        Ok(Module::from_bytes(std::fs::read(path)?))
    }

    /// The SHA-256 of the bytes: what executors cache the compiled module under.
    pub fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it has no bytes at all (no executor will load it).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("hash", &self.hash)
            .field("len", &self.bytes.len())
            .finish()
    }
}
