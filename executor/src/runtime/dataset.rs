//! The shared read-only dataset: opened once, read by every task through
//! `brine.dataset_read`, which copies only the requested range into the guest.
//!
//! Reads are positioned reads (`pread`) from the one open file, not a memory mapping:
//! the bytes come from the kernel's page cache, held once for every task and process on
//! the machine, straight into guest memory. A mapping would have put every page any
//! task touched into the executor's own resident set (a 1 GiB dataset read once: +1 GiB
//! of `RssFile`, which is what cgroups and `ps` charge the executor), and a truncated
//! file would have faulted the process instead of ending a read early.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A dataset shared by all tasks. Cheap to share: hand out clones of the `Arc`.
pub struct Dataset {
    bytes: Bytes,
    path: Option<PathBuf>,
}

enum Bytes {
    /// The file and its length when opened.
    File(File, u64),
    Owned(Vec<u8>),
}

impl Dataset {
    /// Opens the file at `path` for reading.
    ///
    /// Its length is fixed when it is opened; the file must not be modified while tasks
    /// read it (the executor's fetched copy in its sandbox never is). If it is truncated
    /// anyway, reads past the new end return fewer bytes.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Arc<Self>> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        tracing::debug!(path = %path.display(), len, "dataset opened");
        Ok(Arc::new(Self {
            bytes: Bytes::File(file, len),
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

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match &self.bytes {
            Bytes::File(_, len) => *len,
            Bytes::Owned(bytes) => bytes.len() as u64,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies up to `out.len()` bytes starting at `offset` into `out`; returns how many
    /// (0 at or past the end). A read error ends the copy early (and is logged): to the
    /// guest it looks like the end of the data, never like a host failure.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> usize {
        match &self.bytes {
            Bytes::Owned(bytes) => {
                let Some(available) = usize::try_from(offset).ok().and_then(|at| bytes.get(at..))
                else {
                    return 0;
                };
                let n = available.len().min(out.len());
                out[..n].copy_from_slice(&available[..n]);
                n
            }
            Bytes::File(file, len) => {
                let want = usize::try_from(len.saturating_sub(offset))
                    .map_or(out.len(), |left| left.min(out.len()));
                let mut done = 0;
                while done < want {
                    match file.read_at(&mut out[done..want], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            tracing::warn!(path = ?self.path, offset, error = %e, "dataset read failed");
                            break;
                        }
                    }
                }
                done
            }
        }
    }
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("path", &self.path)
            .field("len", &self.len())
            .finish()
    }
}
