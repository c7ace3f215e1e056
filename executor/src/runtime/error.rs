//! Errors of the runtime itself, and the host-side causes of a task's trap.

use std::path::PathBuf;

use brine_proto::payload::{ErrorKind, TaskFailure};

/// Why a [`Runtime`](super::Runtime) could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration (e.g. limits it cannot honour).
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    /// The host functions could not be defined (a bug: names clash).
    #[error("cannot define the host functions: {0}")]
    Linker(String),
    /// The compiled-module cache directory cannot be created.
    #[error("cannot use module cache directory {path}: {source}")]
    CacheDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
}

/// A trap raised by a host function because the guest broke the ABI (e.g. passed a
/// pointer range outside its memory). Reported as `trap` with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostTrap(pub String);

/// `brine.result` was offered more bytes than the runtime's result cap; raised (a trap)
/// before any of them is copied out of guest memory. Reported as `result_encode`.
#[derive(Debug, thiserror::Error)]
#[error(
    "result of {len} bytes is larger than the result cap of {cap} bytes \
     (RuntimeConfig::max_result_bytes)"
)]
pub(crate) struct ResultTooLarge {
    pub len: usize,
    pub cap: usize,
}

/// Why the epoch callback stopped a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Interrupt {
    #[error("task killed")]
    Killed,
    #[error("task deadline exceeded")]
    Deadline,
}

/// Shorthand for a failure without stderr.
pub(crate) fn failure(kind: ErrorKind, message: impl Into<String>) -> TaskFailure {
    TaskFailure::new(kind, message)
}

/// wasmtime's message for an error with its causes, on one line.
pub(crate) fn describe(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}
