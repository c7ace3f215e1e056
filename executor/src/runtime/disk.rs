//! The on-disk module cache: serialized compiled modules, so a new runtime over the same
//! directory starts warm.
//!
//! Layout: `<dir>/<engine key>/<module hash>.cwasm`. The engine key is a digest of
//! wasmtime's precompile compatibility hash, so code from another wasmtime build or
//! configuration lands elsewhere and is never offered to this engine (it ages out under
//! the byte bound). Each file is a header plus wasmtime's serialized module:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `BRINECM1` |
//! | 16 | engine key |
//! | 32 | module hash (sha256 of the wasm bytes) |
//! | 32 | sha256 of the payload |
//! | 8 | payload length, little-endian |
//! | … | payload: `Module::serialize` |
//!
//! A file is only deserialized after all of that checks out; one that does not is
//! deleted and the module recompiled. Files are written to a temporary name and renamed,
//! so readers never see half a file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use brine_proto::payload::ModuleHash;
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

const MAGIC: &[u8; 8] = b"BRINECM1";
const EXTENSION: &str = "cwasm";
const HEADER_LEN: usize = 8 + 16 + 32 + 32 + 8;

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Module),
    Miss,
    /// A file was there but failed its checks (logged); it has been deleted.
    Rejected,
}

pub(crate) struct DiskCache {
    root: PathBuf,
    dir: PathBuf,
    key: [u8; 16],
    max_bytes: u64,
}

/// Makes temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DiskCache {
    /// Opens (creating) the cache under `root` for the engine whose key is `key_hex`.
    pub(crate) fn open(root: &Path, key_hex: &str, max_bytes: u64) -> io::Result<Self> {
        let mut key = [0u8; 16];
        hex::decode_to_slice(key_hex, &mut key).map_err(io::Error::other)?;
        let dir = root.join(key_hex);
        fs::create_dir_all(&dir)?;
        Ok(Self {
            root: root.to_owned(),
            dir,
            key,
            max_bytes,
        })
    }

    fn path(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!("{hash}.{EXTENSION}"))
    }

    /// Loads the module with `hash` if a valid file for this engine holds it.
    pub(crate) fn load(&self, engine: &Engine, hash: &ModuleHash) -> Lookup {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return self.reject(&path, format!("unreadable: {e}")),
        };
        let payload = match self.check(hash, &bytes) {
            Ok(payload) => payload,
            Err(reason) => return self.reject(&path, reason),
        };
        // SAFETY: `payload` is byte for byte what `Module::serialize` wrote for this very
        // engine configuration: the file sits in this engine's directory, its header names
        // this engine's key and the module's hash, and the payload's SHA-256 matches the
        // one written with it. The cache directory belongs to this process (documented on
        // `RuntimeConfig::cache_dir`), so the checksum guards against corruption, the
        // directory ownership against tampering.
        match unsafe { Module::deserialize(engine, payload) } {
            Ok(module) => {
                touch(&path);
                Lookup::Hit(module)
            }
            Err(e) => self.reject(&path, format!("wasmtime refused it: {e:#}")),
        }
    }

    /// Checks the header of a cache file; returns its payload.
    fn check<'a>(&self, hash: &ModuleHash, bytes: &'a [u8]) -> Result<&'a [u8], String> {
        let (header, payload) = bytes
            .split_at_checked(HEADER_LEN)
            .ok_or("shorter than its header")?;
        let (magic, rest) = header.split_at(8);
        let (key, rest) = rest.split_at(16);
        let (module_hash, rest) = rest.split_at(32);
        let (digest, len) = rest.split_at(32);
        if magic != MAGIC {
            return Err("not a Brine module cache file".into());
        }
        if key != self.key {
            return Err("written by another engine configuration".into());
        }
        if module_hash != hash.0 {
            return Err("holds another module".into());
        }
        if u64::from_le_bytes(len.try_into().map_err(|_| "bad length")?) != payload.len() as u64 {
            return Err("truncated".into());
        }
        if Sha256::digest(payload).as_slice() != digest {
            return Err("checksum mismatch (corrupted)".into());
        }
        Ok(payload)
    }

    fn reject(&self, path: &Path, reason: String) -> Lookup {
        tracing::warn!(path = %path.display(), %reason, "ignoring module cache file");
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete module cache file");
        }
        Lookup::Rejected
    }

    /// Writes `module` (best effort: a failure is logged, the module still runs), then
    /// evicts the least recently used files beyond the byte bound. Returns whether it was
    /// written, and how many files were evicted.
    pub(crate) fn store(&self, hash: &ModuleHash, module: &Module) -> (bool, u64) {
        let payload = match module.serialize() {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(%hash, error = %format!("{e:#}"), "cannot serialize module");
                return (false, 0);
            }
        };
        if (HEADER_LEN + payload.len()) as u64 > self.max_bytes {
            tracing::debug!(%hash, "compiled module larger than the disk cache; not cached");
            return (false, 0);
        }
        if let Err(e) = self.write(hash, &payload) {
            tracing::warn!(%hash, error = %e, "cannot write module cache file");
            return (false, 0);
        }
        (true, self.evict())
    }

    fn write(&self, hash: &ModuleHash, payload: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(format!(
            ".{hash}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = write_file(&temp, &self.header(hash, payload), payload)
            .and_then(|()| fs::rename(&temp, self.path(hash)));
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn header(&self, hash: &ModuleHash, payload: &[u8]) -> Vec<u8> {
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&self.key);
        header.extend_from_slice(&hash.0);
        header.extend_from_slice(&Sha256::digest(payload));
        header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        header
    }

    /// Deletes the module's file, if any.
    pub(crate) fn remove(&self, hash: &ModuleHash) {
        match fs::remove_file(self.path(hash)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%hash, error = %e, "cannot delete module cache file"),
        }
    }

    /// Deletes the least recently used cache files (of any engine) until the total is
    /// within the bound; returns how many went.
    fn evict(&self) -> u64 {
        let mut files = cache_files(&self.root);
        let mut total: u64 = files.iter().map(|f| f.len).sum();
        files.sort_by_key(|f| f.modified);
        let mut evicted = 0;
        for file in files {
            if total <= self.max_bytes {
                break;
            }
            match fs::remove_file(&file.path) {
                Ok(()) => {
                    total = total.saturating_sub(file.len);
                    evicted += 1;
                    tracing::debug!(path = %file.path.display(), "module cache file evicted");
                }
                Err(e) => tracing::warn!(path = %file.path.display(), error = %e, "cannot evict"),
            }
        }
        evicted
    }
}

fn write_file(path: &Path, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(header)?;
    file.write_all(payload)?;
    // The kernel stamps writes with a coarse clock (milliseconds apart at best); an
    // explicit stamp keeps the eviction order of quickly written files exact.
    file.set_modified(SystemTime::now())?;
    file.sync_all()
}

/// Marks a file as just used (its modification time orders eviction).
fn touch(path: &Path) {
    let result = File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = result {
        tracing::debug!(path = %path.display(), error = %e, "cannot touch module cache file");
    }
}

struct CacheFile {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// Every `*.cwasm` one level below `root` (one directory per engine key).
fn cache_files(root: &Path) -> Vec<CacheFile> {
    let dirs = fs::read_dir(root).into_iter().flatten().flatten();
    dirs.flat_map(|dir| fs::read_dir(dir.path()).into_iter().flatten().flatten())
        .filter(|entry| entry.path().extension().is_some_and(|e| e == EXTENSION))
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            Some(CacheFile {
                path: entry.path(),
                len: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect()
}

impl DiskCache {
    /// Hashes of this engine's cache files.
    pub(crate) fn hashes(&self) -> Vec<ModuleHash> {
        let entries = fs::read_dir(&self.dir).into_iter().flatten().flatten();
        entries
            .filter_map(|entry| {
                let name = entry.file_name();
                let stem = name
                    .to_str()?
                    .strip_suffix(&format!(".{EXTENSION}"))?
                    .to_owned();
                stem.parse().ok()
            })
            .collect()
    }
}
