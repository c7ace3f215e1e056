//! Per-task capture of the guest's stdout and stderr (WASI preview 1 fds 1 and 2).
//!
//! Each stream goes to a bounded [`Output`]; stderr's last bytes are also always kept
//! as the tail returned with a failure. Writes never fail towards the guest: bytes past
//! a bound, or that the host could not write, are dropped (and counted), so a chatty
//! or unlucky task is not turned into a failed one by its logging.
//!
//! A guest write costs a buffered write: the host's own `fd_write`
//! ([`super::host`]) copies the bytes straight from guest memory into the capture, a
//! file target collects them in a [`FILE_BUFFER_BYTES`] buffer and reaches the file
//! system once per buffer (and once more when the task ends, [`Capture::finish`]), and
//! the stderr tail is a bounded ring. Nothing here is shared between tasks, so a task
//! writing to a slow disk holds up only itself.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How many bytes the guest may hand over per write through WASI's own stream (WASI's
/// write permit). The host's `fd_write` takes any amount at once.
const WRITE_PERMIT: usize = 1 << 20;

/// Bytes a file target collects before it writes them to the file: the most a task's
/// output costs in memory per stream, besides the stderr tail.
pub(crate) const FILE_BUFFER_BYTES: usize = 64 << 10;

/// Where one of a task's output streams goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Dropped (stderr's tail is still kept for failures).
    #[default]
    Discard,
    /// Kept in memory, up to the buffer's bound; read it through the [`MemoryOutput`].
    Memory(MemoryOutput),
    /// Appended to a file, at most `max_bytes` of it per task. Writes are buffered
    /// (64 KiB) and the file is complete when
    /// [`Runtime::run`](super::Runtime::run) returns. The file (and its missing parent
    /// directories) is created on the task's first write that reaches it, so a task
    /// that writes nothing costs no file system work; if it cannot be created the
    /// output is dropped with a warning, as a failed write is.
    File { path: PathBuf, max_bytes: u64 },
}

/// A bounded in-memory output buffer, shared with the caller (clones share it).
#[derive(Debug, Clone)]
pub struct MemoryOutput(Arc<Mutex<MemoryBuffer>>);

#[derive(Debug)]
struct MemoryBuffer {
    bytes: Vec<u8>,
    max_bytes: usize,
    dropped: u64,
}

impl MemoryOutput {
    /// A buffer keeping the first `max_bytes` bytes written to it.
    pub fn new(max_bytes: usize) -> Self {
        Self(Arc::new(Mutex::new(MemoryBuffer {
            bytes: Vec::new(),
            max_bytes,
            dropped: 0,
        })))
    }

    /// The bytes kept so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// How many bytes were dropped because the buffer was full.
    pub fn dropped_bytes(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, MemoryBuffer> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let room = buffer.max_bytes.saturating_sub(buffer.bytes.len());
        let kept = bytes.len().min(room);
        buffer.bytes.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }
}

/// One task's capture of one stream: its target plus the tail of what was written.
/// Clones share it (the host's `fd_write` and WASI's stream hold one each).
#[derive(Clone)]
pub(crate) struct Capture(Arc<Mutex<CaptureState>>);

struct CaptureState {
    target: Target,
    tail: Tail,
    /// Bytes the guest wrote, kept or not.
    written: u64,
}

enum Target {
    Discard,
    Memory(MemoryOutput),
    File(FileTarget),
}

/// A file target: a buffer, and the file once the first buffer is written out.
struct FileTarget {
    path: PathBuf,
    /// Opened when the first bytes are written out: most tasks write nothing, and
    /// creating a directory and two files costs more than the whole warm start (see
    /// `bench/README.md`).
    file: Option<File>,
    /// Bytes accepted but not yet written; at most [`FILE_BUFFER_BYTES`], allocated on
    /// the first write.
    buffer: Vec<u8>,
    /// Bytes the file may still take (buffered bytes already counted).
    remaining: u64,
    max_bytes: u64,
}

/// The last `limit` bytes written, in a ring that never holds more.
struct Tail {
    bytes: VecDeque<u8>,
    limit: usize,
}

impl Capture {
    /// A capture of `output` for a task, keeping the last `tail_bytes` bytes written.
    /// A file is only created (with its missing parent directories) when the first
    /// bytes are written out to it.
    pub(crate) fn open(output: &Output, tail_bytes: usize) -> Self {
        let target = match output {
            Output::Discard => Target::Discard,
            Output::Memory(buffer) => Target::Memory(buffer.clone()),
            Output::File { path, max_bytes } => Target::File(FileTarget {
                path: path.clone(),
                file: None,
                buffer: Vec::new(),
                remaining: *max_bytes,
                max_bytes: *max_bytes,
            }),
        };
        Self(Arc::new(Mutex::new(CaptureState {
            target,
            tail: Tail {
                bytes: VecDeque::new(),
                limit: tail_bytes,
            },
            written: 0,
        })))
    }

    /// The kept tail as text (lossy UTF-8, starting at a character boundary).
    pub(crate) fn tail(&self) -> String {
        self.lock().tail.text()
    }

    /// Takes the bytes of one guest write, given as pieces (a WASI write's buffers).
    pub(crate) fn write_all<'a>(&self, pieces: impl IntoIterator<Item = &'a [u8]>) {
        let mut state = self.lock();
        for bytes in pieces {
            state.write(bytes);
        }
    }

    /// Writes out what is buffered; called when the task ends, so a file is complete
    /// when the task's outcome is reported. Idempotent.
    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        let written = state.written;
        if let Target::File(file) = &mut state.target {
            let failed = file.flush().is_err();
            let dropped = written.saturating_sub(file.max_bytes);
            if dropped > 0 && !failed {
                tracing::info!(
                    path = %file.path.display(),
                    max_bytes = file.max_bytes,
                    dropped_bytes = dropped,
                    "task output truncated at its bound"
                );
            }
            if failed {
                state.target = Target::Discard;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, CaptureState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CaptureState {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.written = self.written.saturating_add(bytes.len() as u64);
        self.tail.keep(bytes);
        let failed = match &mut self.target {
            Target::Discard => false,
            Target::Memory(buffer) => {
                buffer.write(bytes);
                false
            }
            Target::File(file) => file.write(bytes).is_err(),
        };
        if failed {
            // Logged by the target; drop the rest (and the buffer's memory).
            self.target = Target::Discard;
        }
    }
}

impl FileTarget {
    /// Accepts what fits of `bytes` within the bound, writing out the buffer when it
    /// would overflow.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let kept = usize::try_from(self.remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
        if kept == 0 {
            return Ok(());
        }
        let bytes = &bytes[..kept];
        self.remaining -= kept as u64;
        if self.buffer.len() + bytes.len() > FILE_BUFFER_BYTES {
            self.flush()?;
        }
        if bytes.len() >= FILE_BUFFER_BYTES {
            // Too large to be worth a copy: straight to the file.
            return self.write_out(bytes);
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(FILE_BUFFER_BYTES);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes out the buffer.
    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.write_out(&buffer);
        // Keep the allocation for the next round.
        self.buffer = buffer;
        self.buffer.clear();
        written
    }

    fn write_out(&mut self, bytes: &[u8]) -> io::Result<()> {
        open_once(&mut self.file, &self.path)
            .and_then(|file| file.write_all(bytes))
            .inspect_err(|error| {
                tracing::warn!(path = %self.path.display(), %error, "task output dropped");
            })
    }
}

impl Tail {
    fn keep(&mut self, bytes: &[u8]) {
        if self.limit == 0 {
            return;
        }
        let recent = &bytes[bytes.len().saturating_sub(self.limit)..];
        let excess = (self.bytes.len() + recent.len()).saturating_sub(self.limit);
        self.bytes.drain(..excess);
        self.bytes.extend(recent);
    }

    fn text(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let bytes = [front, back].concat();
        // A cut tail may start inside a multi-byte character: skip its continuation bytes.
        let start = bytes
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

/// The file behind `slot`, created (append mode, parents too) on first use.
fn open_once<'f>(slot: &'f mut Option<File>, path: &Path) -> io::Result<&'f mut File> {
    if let Some(file) = slot {
        return Ok(file);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(slot.insert(OpenOptions::new().create(true).append(true).open(path)?))
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

/// WASI's own view of the streams. The host's `fd_write` takes every write to fds 1
/// and 2 before WASI sees it, so these see writes only if some other preview 1 call
/// ever writes to a stdio stream; they capture them the same way.
impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(CaptureStream(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(CaptureStream(self.clone()))
    }
}

/// The stream handed to WASI: always writable, writes complete synchronously.
struct CaptureStream(Capture);

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write_all([&bytes[..]]);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.write_all([buf]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_bytes_only() {
        let capture = Capture::open(&Output::Discard, 8);
        capture.write_all([&b"0123"[..], b"4567", b"89"]);
        assert_eq!(capture.tail(), "23456789");
        capture.write_all([&b"abcdefghijklmnop"[..]]);
        assert_eq!(capture.tail(), "ijklmnop");
        capture.write_all([&b"q"[..]]);
        assert_eq!(capture.tail(), "jklmnopq");
        assert_eq!(capture.lock().tail.bytes.len(), 8);
    }

    #[test]
    fn a_cut_tail_starts_at_a_character() {
        let capture = Capture::open(&Output::Discard, 4);
        capture.write_all(["aé€".as_bytes()]);
        // "é€" is 5 bytes: the tail's first byte is the end of "é".
        assert_eq!(capture.tail(), "€");
    }

    #[test]
    fn file_output_is_buffered_bounded_and_complete_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("out");
        let max = FILE_BUFFER_BYTES as u64 * 3 + 10;
        let capture = Capture::open(
            &Output::File {
                path: path.clone(),
                max_bytes: max,
            },
            0,
        );
        capture.write_all([&b"x"[..]]);
        assert!(!path.exists(), "the first small write stays in the buffer");
        let big = vec![b'y'; FILE_BUFFER_BYTES * 2];
        capture.write_all([&big[..]]);
        let line = [b'z'; 100];
        for _ in 0..2000 {
            capture.write_all([&line[..]]);
        }
        capture.finish();
        let contents = std::fs::read(&path).unwrap();
        assert_eq!(contents.len() as u64, max);
        assert_eq!(contents[0], b'x');
        assert!(contents[1..=big.len()].iter().all(|&b| b == b'y'));
        assert!(contents[big.len() + 1..].iter().all(|&b| b == b'z'));
    }
}
