//! What `submit` returns: a future of the typed result.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use brine_proto::payload::ErrorKind;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

/// Why a task produced no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// The guest failed (its own error, a panic, a trap, a bad module…). Deterministic
    /// kinds are never retried.
    #[error("task failed: {kind}: {message}")]
    Guest {
        kind: ErrorKind,
        message: String,
        /// The last bytes the guest wrote to stderr.
        stderr_tail: String,
    },
    #[error("task killed: {message}")]
    Killed { message: String },
    /// Mesos ended the task without a Brine outcome (executor died, agent lost, invalid
    /// launch…), after `attempts` tries.
    #[error("task {state} ({reason}) after {attempts} attempt(s): {message}")]
    Lost {
        state: String,
        reason: String,
        message: String,
        attempts: u32,
    },
    /// The cluster was shut down before the task ended.
    #[error("task cancelled: the cluster was shut down")]
    Cancelled,
    /// The scheduler lost its master.
    #[error("connection to the master lost: {0}")]
    Connection(String),
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    #[error("cannot decode the result: {0}")]
    Decode(String),
    /// A terminal status whose data is not what a Brine executor sends.
    #[error("malformed task outcome: {0}")]
    Protocol(String),
}

/// The pending result of one submitted closure: await it.
#[must_use = "a TaskHandle does nothing unless awaited"]
pub struct TaskHandle<R> {
    pub(crate) result: oneshot::Receiver<Result<Vec<u8>, TaskError>>,
    pub(crate) _result: PhantomData<fn() -> R>,
}

impl<R> TaskHandle<R> {
    pub(crate) fn new(result: oneshot::Receiver<Result<Vec<u8>, TaskError>>) -> Self {
        Self {
            result,
            _result: PhantomData,
        }
    }

    /// A handle that is already resolved with `error`.
    pub(crate) fn failed(error: TaskError) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(error));
        Self::new(rx)
    }
}

impl<R: DeserializeOwned> Future for TaskHandle<R> {
    type Output = Result<R, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.result).poll(cx).map(|received| {
            let bytes = received.map_err(|_| TaskError::Cancelled)??;
            postcard::from_bytes(&bytes).map_err(|e| TaskError::Decode(e.to_string()))
        })
    }
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle").finish_non_exhaustive()
    }
}
