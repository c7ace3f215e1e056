//! The shared read-only dataset: mapped once, read by every task through
//! `brine.dataset_read`, which copies only the requested range into the guest.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

/// A dataset shared by all tasks. Cheap to share: hand out clones of the `Arc`.
pub struct Dataset {
    bytes: Bytes,
    path: Option<PathBuf>,
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Dataset {
    /// Maps the file at `path` read-only.
    ///
    /// The file must not be modified or truncated while mapped (the executor's fetched
    /// copy in its sandbox never is); a truncation would fault the reading process.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Arc<Self>> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let bytes = if file.metadata()?.len() == 0 {
            // Zero-length mappings are not portable; there is nothing to map anyway.
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the mapping is read-only and private to this process. Its contents
            // are only ever read as plain bytes (`&[u8]`, any value valid); the file is the
            // executor's own fetched copy, which nothing writes while it is mapped (the
            // documented contract of this function).
            Bytes::Mapped(unsafe { Mmap::map(&file)? })
        };
        tracing::debug!(path = %path.display(), "dataset mapped");
        Ok(Arc::new(Self {
            bytes,
            path: Some(path.to_owned()),
        }))
    }

    /// A dataset held in memory (for tests and small inline data).
    pub fn from_bytes(bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            bytes: Bytes::Owned(bytes),
            path: None,
        })
    }

    /// The whole dataset.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.as_bytes().len() as u64
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Copies up to `out.len()` bytes starting at `offset` into `out`; returns how many
    /// (0 at or past the end).
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> usize {
        let bytes = self.as_bytes();
        let Some(available) = usize::try_from(offset).ok().and_then(|at| bytes.get(at..)) else {
            return 0;
        };
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        n
    }
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("mapped", &matches!(self.bytes, Bytes::Mapped(_)))
            .finish()
    }
}
