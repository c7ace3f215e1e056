//! The file underneath the state store: an append-only file of JSON lines that one
//! process at a time holds (an OS lock), synced to disk where the store asks, and read
//! back with a torn last record recovered and any other damage refused.
//!
//! It knows nothing of what the records mean (that is [`super`]'s business), and it
//! uses only std, serde, serde_json, thiserror and tracing: `tests/store.rs` compiles
//! this very file into its own crate to kill real processes in the middle of it.
//!
//! # Reading: what is recovered, what is refused
//!
//! Every record is one line: its JSON and a `\n`, handed to the kernel by a single
//! write. A JSON object ends with its closing brace, so no proper prefix of a record is
//! a record: a cut-short write is always seen.
//!
//! - **A torn last record is dropped** (with a warning naming the file, the byte offset
//!   and the length). It is what a crash in the middle of an append leaves: the bytes
//!   after the last `\n` are a record cut short (the JSON ends early), possibly
//!   followed by NUL bytes, or NULs alone (a block the file system allocated but never
//!   wrote before a machine crash reads back as zeros). Nothing was acted on because of
//!   it: the scheduler acts on a record only after `append` has returned. If those
//!   bytes are a whole record that only lacks its `\n`, the record is kept.
//! - **Anything else is refused** with [`StoreError::Corrupt`], naming the file, the
//!   byte offset and line where the bad line starts, and why: a line that ends with
//!   `\n` but is not a record (whatever broke it, a torn write followed by later
//!   appends, a block lost in the middle, an edit, bit rot, a record of a newer
//!   version), or bytes after the last `\n` that are neither a record nor a record cut
//!   short. Skipping such a line would silently drop the state it held, say a job's
//!   outcome or an executor generation (whose reuse the store exists to prevent), and a
//!   scheduler that starts from wrong state does more harm than one that does not
//!   start. The file is left untouched; the error says how to get going again.
//!
//! Not detected: damage that leaves a line a valid record (a flipped bit inside a task
//! id). The lines carry no checksum; that is the storage's business.
//!
//! # Writing
//!
//! [`Journal::append`] writes a record's line with one write(2) at the end of the file
//! before it returns. A write that fails part-way is cut back off (`ftruncate` to the
//! end of the last whole record), so that later appends never follow a torn line,
//! which would make the file unreadable; if even that fails, nothing more is written.
//!
//! # Syncing
//!
//! [`Durability::Now`]: `fdatasync` before `append` returns. [`Durability::Soon`]:
//! [`Journal::flush`] wakes a background thread that `fdatasync`s everything appended
//! so far while the caller carries on; syncs requested while one runs are served
//! together by the next (group commit). [`Journal`]'s `Drop` syncs what is left.
//! Rewriting the file ([`Claimed::compact`]) syncs the new file before renaming it over
//! the old one, and the directory after, so that a crash leaves one or the other whole.
//!
//! # One holder
//!
//! The file is locked with `flock(LOCK_EX | LOCK_NB)` (std's [`File::try_lock`]) for as
//! long as the [`Journal`] lives; a second claim, from this process or another, fails
//! with [`StoreError::Locked`]. The lock belongs to the open file, so two claims in one
//! process exclude each other too; the kernel drops it when the holder's process dies,
//! however it dies, so a crashed scheduler never leaves a stale lock. A lock found taken
//! is tried again for [`LOCK_GRACE`] before it counts as another scheduler's (a process
//! being spawned holds it briefly after its holder closed it). The lock is advisory: it
//! keeps out other schedulers, not other programs. On NFS, Linux turns `flock` into an
//! NFS byte-range lock, which other clients see too.
//!
//! Rewriting renames a new file over the old one, so a claim checks, once it holds the
//! lock, that the name still points to the file it locked (and starts again if not):
//! the new file is locked before it takes the name, and the old one is only released
//! after.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another scheduler, in this process or another, holds the state file.
    #[error(
        "the state file {path} is in use by another scheduler (which holds its lock); two \
         schedulers cannot share one state file"
    )]
    Locked {
        /// The state file.
        path: PathBuf,
    },
    /// Opening, reading, writing or syncing it failed.
    #[error("cannot use the state file {path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Damage other than a torn last record: the file is refused, and left as it is.
    #[error(
        "the state file {path} is corrupt at byte {offset} (line {line}): {reason}; refusing \
         it rather than dropping what it records (move it aside to start afresh, or cut it \
         to its first {offset} bytes to keep the records before)"
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// Where the bad line starts, from the start of the file.
        offset: u64,
        /// 1-based.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

impl StoreError {
    /// [`StoreError::Corrupt`] for the line at `at` of `path`.
    pub fn corrupt(path: &Path, at: Position, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.to_owned(),
            offset: at.offset,
            line: at.line,
            reason: reason.into(),
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where a line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Bytes from the start of the file.
    pub offset: u64,
    /// 1-based.
    pub line: usize,
}

/// A file's contents cut into lines.
#[derive(Debug, PartialEq)]
pub struct Lines<'a> {
    /// Every line ended by a `\n` (without it).
    pub whole: Vec<(Position, &'a [u8])>,
    /// What follows the last `\n`, if anything does.
    pub tail: Option<(Position, &'a [u8])>,
}

pub fn split(contents: &[u8]) -> Lines<'_> {
    let mut whole = Vec::new();
    let mut start = 0;
    for (i, _) in contents.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        let at = Position {
            offset: start as u64,
            line: whole.len() + 1,
        };
        whole.push((at, &contents[start..i]));
        start = i + 1;
    }
    let tail = (start < contents.len()).then(|| {
        let at = Position {
            offset: start as u64,
            line: whole.len() + 1,
        };
        (at, &contents[start..])
    });
    Lines { whole, tail }
}

/// What the bytes after the last `\n` are.
#[derive(Debug, PartialEq)]
pub enum Tail<R> {
    /// Whitespace: nothing.
    Blank,
    /// A whole record that only lacks its `\n` (maybe followed by NULs).
    Whole(R),
    /// A record cut short, or NULs: what a crash in the middle of an append leaves.
    Torn,
    /// Neither: why not.
    Garbage(String),
}

pub fn tail<R: DeserializeOwned>(bytes: &[u8]) -> Tail<R> {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let text = &bytes[..end];
    if text.iter().all(u8::is_ascii_whitespace) {
        return if end == bytes.len() {
            Tail::Blank
        } else {
            Tail::Torn
        };
    }
    match serde_json::from_slice::<R>(text) {
        Ok(record) => Tail::Whole(record),
        Err(e) if e.is_eof() => Tail::Torn,
        Err(e) => Tail::Garbage(format!(
            "the last line is neither a record nor one cut short: {e}{}",
            nul_hint(text)
        )),
    }
}

fn nul_hint(line: &[u8]) -> &'static str {
    if line.contains(&0) {
        " (it holds NUL bytes: a block the file system lost in a machine crash?)"
    } else {
        ""
    }
}

/// The records in `contents` (the state file `path`), with where each starts: a torn
/// last record is left out (and logged), any other damage is an error. See the module
/// documentation.
pub fn parse<R: DeserializeOwned>(
    path: &Path,
    contents: &[u8],
) -> Result<Vec<(Position, R)>, StoreError> {
    let lines = split(contents);
    let mut records = Vec::with_capacity(lines.whole.len() + 1);
    for (at, line) in lines.whole {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<R>(line) {
            Ok(record) => records.push((at, record)),
            Err(e) => {
                let reason = format!("not a Brine state record: {e}{}", nul_hint(line));
                return Err(StoreError::corrupt(path, at, reason));
            }
        }
    }
    if let Some((at, bytes)) = lines.tail {
        match tail::<R>(bytes) {
            Tail::Blank => {}
            Tail::Whole(record) => records.push((at, record)),
            Tail::Torn => tracing::warn!(
                path = %path.display(),
                offset = at.offset,
                line = at.line,
                bytes = bytes.len(),
                "dropping a torn last record (a crash cut an append short)"
            ),
            Tail::Garbage(reason) => return Err(StoreError::corrupt(path, at, reason)),
        }
    }
    Ok(records)
}

/// A state file this process holds (locked) and has read, not rewritten yet.
#[derive(Debug)]
pub struct Claimed {
    path: PathBuf,
    file: File,
}

/// How many times [`Claimed::open`] locks a file that another holder then replaces or
/// removes before giving up. Each time takes that holder a whole rewrite or removal.
const CLAIM_ATTEMPTS: usize = 16;

impl Claimed {
    /// Locks the state file `path` (creating it, and its directory, if missing) and
    /// reads its records: [`StoreError::Locked`] if another holds it,
    /// [`StoreError::Corrupt`] if it is damaged beyond a torn last record.
    pub fn open<R: DeserializeOwned>(
        path: &Path,
    ) -> Result<(Claimed, Vec<(Position, R)>), StoreError> {
        let io = StoreError::io(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(StoreError::io(path))?;
        }
        for _ in 0..CLAIM_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(StoreError::io(path))?;
            lock(&file, path)?;
            // The holder before us may have renamed a new file over this one, or
            // removed it, between our open and our lock: then what we hold is not the
            // state file any more.
            if !same_file(&file, path).map_err(StoreError::io(path))? {
                continue;
            }
            let mut contents = Vec::new();
            (&file)
                .read_to_end(&mut contents)
                .map_err(StoreError::io(path))?;
            let records = parse(path, &contents)?;
            let claimed = Claimed {
                path: path.to_owned(),
                file,
            };
            return Ok((claimed, records));
        }
        Err(io(std::io::Error::other(
            "the file kept being replaced while we locked it",
        )))
    }

    /// Rewrites the file as `records` and opens it for appending: the new file is
    /// written beside the old one, synced, locked, renamed over it, and the directory
    /// synced. A crash at any point leaves the old file or the new one, whole.
    pub fn compact<R: Serialize>(self, records: &[R]) -> Result<Journal, StoreError> {
        let path = self.path.as_path();
        let mut bytes = Vec::new();
        for record in records {
            line(&mut bytes, record).map_err(StoreError::io(path))?;
        }
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".compacting");
        let tmp = path.with_file_name(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(StoreError::io(path))?;
        // Locked before it takes the state file's name, so that the name never points
        // to an unlocked file.
        lock(&file, path)?;
        (&file).write_all(&bytes).map_err(StoreError::io(path))?;
        file.sync_all().map_err(StoreError::io(path))?;
        std::fs::rename(&tmp, path).map_err(StoreError::io(path))?;
        sync_dir(path);
        // The old file, unlinked: its lock goes with it.
        drop(self.file);
        Journal::start(self.path, file, bytes.len() as u64)
    }
}

/// How long a lock found taken is tried again before it counts as another scheduler's.
/// A process being spawned (between its fork and its exec) holds copies of all its
/// parent's descriptors, and with them the lock of a store the parent has just closed:
/// briefly, but long enough for an open right after a close to find the file locked, in
/// a process that spawns others (executors, with a `local` master) meanwhile.
const LOCK_GRACE: Duration = Duration::from_millis(250);

fn lock(file: &File, path: &Path) -> Result<(), StoreError> {
    let deadline = Instant::now() + LOCK_GRACE;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            // flock has no timed wait: poll.
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(32));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: path.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(path)(e)),
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, _: &Path) -> std::io::Result<bool> {
    Ok(true)
}

/// Syncs the directory holding `path`, which makes a rename or creation in it durable.
/// A failure is logged, not returned: the file itself is whole either way, only a crash
/// may bring back the one it replaced.
fn sync_dir(path: &Path) {
    if !cfg!(unix) {
        return;
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the state file's directory");
    }
}

fn line(out: &mut Vec<u8>, record: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.push(b'\n');
    Ok(())
}

/// When an appended record reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced (`fdatasync`) before [`Journal::append`] returns.
    Now,
    /// Synced by the background thread after the next [`Journal::flush`].
    Soon,
}

/// A state file open for appending. Holds the lock until dropped.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Arc<File>,
    /// The end of the last whole record.
    len: u64,
    /// A write failed and could not be cut back off: nothing more is written, since a
    /// record after a torn one would make the file unreadable.
    broken: bool,
    syncer: Syncer,
}

impl Journal {
    fn start(path: PathBuf, file: File, len: u64) -> Result<Journal, StoreError> {
        let file = Arc::new(file);
        let syncer = Syncer::spawn(&path, file.clone(), len).map_err(StoreError::io(&path))?;
        Ok(Journal {
            path,
            file,
            len,
            broken: false,
            syncer,
        })
    }

    /// Writes `record` at the end of the file: in the kernel when this returns, on disk
    /// as `durability` says. Failures are logged (the scheduler carries on without a
    /// record rather than stopping).
    pub fn append(&mut self, record: &impl Serialize, durability: Durability) {
        if self.broken {
            return;
        }
        let mut bytes = Vec::new();
        if let Err(e) = line(&mut bytes, record) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot encode a state record");
            return;
        }
        if let Err(e) = (&*self.file).write_all(&bytes) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the state file");
            self.cut_back();
            return;
        }
        self.len += bytes.len() as u64;
        if durability == Durability::Now
            && let Err(e) = self.sync()
        {
            tracing::error!(path = %self.path.display(), error = %e, "cannot sync the state file");
        }
    }

    /// Cuts off what a failed write left after the last whole record.
    fn cut_back(&mut self) {
        let cut = self
            .file
            .set_len(self.len)
            .and_then(|()| (&*self.file).seek(SeekFrom::Start(self.len)));
        if let Err(e) = cut {
            tracing::error!(
                path = %self.path.display(),
                error = %e,
                "cannot cut a failed write off the state file: writing no more to it"
            );
            self.broken = true;
        }
    }

    /// Has the background thread sync everything appended so far, without waiting.
    pub fn flush(&mut self) {
        self.syncer.request(self.len);
    }

    /// Syncs everything appended so far before returning.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.syncer.synced(self.len);
        Ok(())
    }

    /// Bytes known to be on disk: appended and synced.
    #[cfg(test)]
    pub fn synced_len(&self) -> u64 {
        self.syncer.lock().synced
    }

    /// Waits until the background thread has served every request so far.
    #[cfg(test)]
    pub fn wait_synced(&self) {
        let mut state = self.syncer.lock();
        while state.requested > state.synced && !state.failed {
            state = self
                .syncer
                .shared
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Deletes the file (still holding its lock, then releasing it), syncing nothing.
    pub fn remove(mut self) {
        self.syncer.stop(false);
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the state file");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.syncer.request(self.len);
        self.syncer.stop(true);
        // Then `file` closes, and with it goes the lock.
    }
}

/// The background thread that syncs the file when asked: one `fdatasync` serves every
/// request made before it started.
#[derive(Debug)]
struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct SyncShared {
    state: Mutex<SyncState>,
    /// Wakes the thread.
    wake: Condvar,
    /// Tells waiters a sync ended.
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Sync the file up to here (bytes).
    requested: u64,
    /// On disk up to here.
    synced: u64,
    /// The last sync failed: no retry before the next request.
    failed: bool,
    stop: bool,
}

impl Syncer {
    fn spawn(path: &Path, file: Arc<File>, synced: u64) -> std::io::Result<Syncer> {
        let shared = Arc::new(SyncShared {
            state: Mutex::new(SyncState {
                requested: synced,
                synced,
                ..SyncState::default()
            }),
            ..SyncShared::default()
        });
        let thread = std::thread::Builder::new()
            .name("brine-state-sync".into())
            .spawn({
                let shared = shared.clone();
                let path = path.to_owned();
                move || sync_when_asked(&file, &path, &shared)
            })?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn request(&self, len: u64) {
        let mut state = self.lock();
        if len > state.requested {
            state.requested = len;
            state.failed = false;
            self.shared.wake.notify_one();
        }
    }

    /// The file was synced up to `len` by someone else.
    fn synced(&self, len: u64) {
        let mut state = self.lock();
        state.synced = state.synced.max(len);
        state.requested = state.requested.max(len);
        self.shared.done.notify_all();
    }

    /// Stops the thread, after a last sync of what was requested if `finish`.
    fn stop(&mut self, finish: bool) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        {
            let mut state = self.lock();
            if !finish {
                state.requested = state.synced;
            }
            state.stop = true;
            self.shared.wake.notify_one();
        }
        let _ = thread.join();
    }
}

fn sync_when_asked(file: &File, path: &Path, shared: &SyncShared) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    let mut state = lock();
    loop {
        if state.requested > state.synced && !state.failed {
            let target = state.requested;
            drop(state);
            let result = file.sync_data();
            state = lock();
            match result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(e) => {
                    // The kernel may have dropped the pages it could not write: what
                    // this sync covered may be lost in a machine crash (not in a
                    // process crash). Retried at the next request.
                    tracing::error!(path = %path.display(), error = %e, "cannot sync the state file");
                    state.failed = true;
                }
            }
            shared.done.notify_all();
        } else if state.stop {
            return;
        } else {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
