//! Per-task capture of the guest's stdout and stderr (WASI preview 1 fds 1 and 2).
//!
//! Each stream goes to a bounded [`Output`]; stderr's last bytes are also always kept
//! as the tail returned with a failure. Writes never fail towards the guest: bytes past
//! a bound, or that the host could not write, are dropped (and counted), so a chatty
//! or unlucky task is not turned into a failed one by its logging.

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

/// How many bytes the guest may hand over per write (WASI's write permit).
const WRITE_PERMIT: usize = 1 << 20;

/// Where one of a task's output streams goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Dropped (stderr's tail is still kept for failures).
    #[default]
    Discard,
    /// Kept in memory, up to the buffer's bound; read it through the [`MemoryOutput`].
    Memory(MemoryOutput),
    /// Appended to a file, at most `max_bytes` of it per task. The file (and its
    /// missing parent directories) is created on the task's first write to it, so a
    /// task that writes nothing costs no file system work; if it cannot be created the
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
#[derive(Clone)]
pub(crate) struct Capture(Arc<Mutex<CaptureState>>);

struct CaptureState {
    target: Target,
    tail: VecDeque<u8>,
    tail_bytes: usize,
}

enum Target {
    Discard,
    Memory(MemoryOutput),
    File {
        /// Opened on the first write: most tasks write nothing, and creating a
        /// directory and two files costs more than the whole warm start (see
        /// `bench/README.md`).
        file: Option<File>,
        remaining: u64,
        path: PathBuf,
    },
}

impl Capture {
    /// A capture of `output` for a task, keeping the last `tail_bytes` bytes written.
    /// A file is only created (with its missing parent directories) when the first
    /// byte is written to it.
    pub(crate) fn open(output: &Output, tail_bytes: usize) -> Self {
        let target = match output {
            Output::Discard => Target::Discard,
            Output::Memory(buffer) => Target::Memory(buffer.clone()),
            Output::File { path, max_bytes } => Target::File {
                file: None,
                remaining: *max_bytes,
                path: path.clone(),
            },
        };
        Self(Arc::new(Mutex::new(CaptureState {
            target,
            tail: VecDeque::new(),
            tail_bytes,
        })))
    }

    /// The kept tail as text (lossy UTF-8, starting at a character boundary).
    pub(crate) fn tail(&self) -> String {
        let state = self.lock();
        let bytes: Vec<u8> = state.tail.iter().copied().collect();
        // A cut tail may start inside a multi-byte character: skip its continuation bytes.
        let start = bytes
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    fn lock(&self) -> MutexGuard<'_, CaptureState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.keep_tail(bytes);
        state.write_target(bytes);
    }
}

impl CaptureState {
    fn keep_tail(&mut self, bytes: &[u8]) {
        if self.tail_bytes == 0 {
            return;
        }
        let recent = &bytes[bytes.len().saturating_sub(self.tail_bytes)..];
        self.tail.extend(recent);
        let excess = self.tail.len().saturating_sub(self.tail_bytes);
        self.tail.drain(..excess);
    }

    fn write_target(&mut self, bytes: &[u8]) {
        let failed = match &mut self.target {
            Target::Discard => false,
            Target::Memory(buffer) => {
                buffer.write(bytes);
                false
            }
            Target::File {
                file,
                remaining,
                path,
            } => open_once(file, path)
                .and_then(|file| write_bounded(file, remaining, bytes))
                .inspect_err(|error| {
                    tracing::warn!(path = %path.display(), %error, "task output dropped");
                })
                .is_err(),
        };
        if failed {
            self.target = Target::Discard;
        }
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

/// Writes what fits of `bytes` into `file` within `remaining`.
fn write_bounded(file: &mut File, remaining: &mut u64, bytes: &[u8]) -> io::Result<()> {
    let kept = usize::try_from(*remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
    if kept > 0 {
        file.write_all(&bytes[..kept])?;
        *remaining -= kept as u64;
    }
    Ok(())
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

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
        self.0.write(&bytes);
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
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
