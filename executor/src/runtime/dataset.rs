//! The shared read-only dataset: opened once, read by every task through
//! `brine.dataset_read`, which copies only the requested range into the guest.
//!
//! A file-backed dataset is read one of two ways ([`DatasetAccess`]), both straight from
//! the kernel's page cache, where its bytes sit once for every task and process on the
//! machine, charged once to the cgroup that first read them:
//!
//! - [`DatasetAccess::Mmap`] (the default): one read-only shared mapping of the whole
//!   file; a read is a `memcpy` from it, with no system call once a page is mapped.
//! - [`DatasetAccess::Pread`]: a positioned read (`pread`) from the one open file per
//!   guest call.
//!
//! What a machine pays is the same either way: the cgroup's charge (`memory.current`)
//! holds the page cache once, mapped or not (`brine-bench --only dataset` measures it).
//! Only per-process views differ: a mapping's pages show in the executor's `VmRSS`
//! (`RssFile`) and PSS, `pread`'s do not.
//!
//! # Shrinking under a mapping
//!
//! Touching a mapped page past the file's end raises `SIGBUS`, which would end the
//! executor (wasmtime's handler only handles faults in guest code). A file is only mapped
//! when it is the executor's own copy: the caller (the executor's setup) maps only a
//! file inside its sandbox, where the agent's fetcher wrote it once, before the executor
//! started; here the file must also be a regular file with a single link (no other name
//! through which it could be rewritten), and its write permission bits are cleared, so an
//! accidental `>` or `truncate` by its owner fails instead. Anything else is read with
//! `pread`, which returns short reads from a shrunk file. The limit that remains: a
//! process with the rights to truncate the copy anyway (root, or its owner after a
//! `chmod`) ends the executor with `SIGBUS` — rights that can already kill it outright.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use memmap2::Mmap;

/// How a file-backed dataset is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DatasetAccess {
    /// One read-only shared mapping of the whole file, copied from with `memcpy`.
    #[default]
    Mmap,
    /// A positioned read (`pread`) from the open file for each guest read.
    Pread,
}

impl DatasetAccess {
    /// The executor's environment variable that chooses the access (`mmap` or `pread`;
    /// unset: the default).
    pub const ENV: &'static str = "BRINE_DATASET_ACCESS";

    /// Its name, as [`DatasetAccess::ENV`] spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mmap => "mmap",
            Self::Pread => "pread",
        }
    }

    /// The access named by [`DatasetAccess::ENV`]; the default when it is unset or empty.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(Self::ENV) {
            Ok(value) if !value.trim().is_empty() => value.parse(),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", Self::ENV)),
        }
    }
}

impl FromStr for DatasetAccess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "mmap" => Ok(Self::Mmap),
            "pread" => Ok(Self::Pread),
            other => Err(format!(
                "{}={other:?} is neither \"mmap\" nor \"pread\"",
                Self::ENV
            )),
        }
    }
}

impl fmt::Display for DatasetAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dataset shared by all tasks. Cheap to share: hand out clones of the `Arc`.
pub struct Dataset {
    bytes: Bytes,
    path: Option<PathBuf>,
}

enum Bytes {
    /// The file and its length when opened.
    File(File, u64),
    /// The whole file, mapped read-only (never empty: an empty file is not mapped).
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Dataset {
    /// Opens the file at `path` with the default [`DatasetAccess`]; see
    /// [`Dataset::open_with`].
    pub fn open(path: impl AsRef<Path>) -> io::Result<Arc<Self>> {
        Self::open_with(path, DatasetAccess::default())
    }

    /// Opens the file at `path` for reading with `access`.
    ///
    /// Its length is fixed when it is opened. With [`DatasetAccess::Mmap`] the caller
    /// vouches that the file is private to this process (the executor's copy in its
    /// sandbox, written once before it started) and that nothing truncates it while it is
    /// open (see the module's documentation); the file is then mapped only if it is a
    /// regular, non-empty file with a single link (its write permission bits are
    /// cleared), else read with `pread` (logged). With `pread`, reads past a new, shorter
    /// end return fewer bytes. [`Dataset::access`] says which was used.
    pub fn open_with(path: impl AsRef<Path>, access: DatasetAccess) -> io::Result<Arc<Self>> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let len = meta.len();
        let bytes = match access {
            DatasetAccess::Pread => Bytes::File(file, len),
            DatasetAccess::Mmap => match map(&file, &meta) {
                Ok(map) => Bytes::Mapped(map),
                Err(why) => {
                    tracing::info!(path = %path.display(), "dataset not mapped ({why}); read with pread");
                    Bytes::File(file, len)
                }
            },
        };
        let dataset = Self {
            bytes,
            path: Some(path.to_owned()),
        };
        tracing::debug!(path = %path.display(), len, access = ?dataset.access(), "dataset opened");
        Ok(Arc::new(dataset))
    }

    /// A dataset held in memory (for tests and small inline data).
    pub fn from_bytes(bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            bytes: Bytes::Owned(bytes),
            path: None,
        })
    }

    /// How the file is read: `None` for a dataset held in memory.
    pub fn access(&self) -> Option<DatasetAccess> {
        match &self.bytes {
            Bytes::File(..) => Some(DatasetAccess::Pread),
            Bytes::Mapped(_) => Some(DatasetAccess::Mmap),
            Bytes::Owned(_) => None,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match &self.bytes {
            Bytes::File(_, len) => *len,
            Bytes::Mapped(map) => map.len() as u64,
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
            Bytes::Owned(bytes) => copy_from(bytes, offset, out),
            Bytes::Mapped(map) => copy_from(map, offset, out),
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

/// Copies `bytes[offset..]` into `out`, as much as fits; returns how many.
fn copy_from(bytes: &[u8], offset: u64, out: &mut [u8]) -> usize {
    let Some(available) = usize::try_from(offset).ok().and_then(|at| bytes.get(at..)) else {
        return 0;
    };
    let n = available.len().min(out.len());
    out[..n].copy_from_slice(&available[..n]);
    n
}

/// Maps the whole of `file` read-only, if it can be mapped safely; else why not.
fn map(file: &File, meta: &std::fs::Metadata) -> Result<Mmap, String> {
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.nlink() != 1 {
        return Err(format!(
            "{} links: it may be rewritten through another name",
            meta.nlink()
        ));
    }
    if meta.len() == 0 {
        return Err("empty".into());
    }
    if usize::try_from(meta.len()).is_err() {
        return Err("larger than the address space".into());
    }
    let mode = meta.permissions().mode();
    if mode & 0o222 != 0 {
        // Best effort: an owner's accidental write or truncation then fails with EACCES.
        if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode & !0o222)) {
            tracing::debug!(error = %e, "cannot clear the dataset's write permission");
        }
    }
    // SAFETY: the mapping is read-only and lives as long as this `Dataset`. The file is
    // the executor's own copy with a single link, written before the executor started
    // and never written again (the caller's promise, see `open_with`), so no page of it
    // changes or disappears while mapped; see the module's documentation for the limit.
    unsafe { Mmap::map(file) }.map_err(|e| format!("mmap failed: {e}"))
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("access", &self.access())
            .finish()
    }
}
