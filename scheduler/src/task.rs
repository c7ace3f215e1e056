//! What `submit` returns: a future of the typed result, which also shows the job's
//! state and progress, and kills the task when dropped unfinished.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use brine_proto::payload::{Encoding, ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::job::JobStatus;

/// Asks the scheduler to cancel one job. It must hold no strong reference to the
/// scheduler's loop, which ends when the last `Cluster` goes, whatever handles are
/// left.
pub(crate) type Cancel = Box<dyn FnOnce() + Send + Sync>;

/// Why a task produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "error")]
#[non_exhaustive]
pub enum TaskError {
    /// The guest failed (its own error, a panic, a trap, a bad module…). Deterministic
    /// kinds are never retried.
    #[error("task failed: {kind}: {message}")]
    Guest {
        /// What went wrong, as the executor classified it.
        kind: ErrorKind,
        /// The guest's (or the runtime's) message.
        message: String,
        /// The last bytes the guest wrote to stderr.
        stderr_tail: String,
    },
    /// The task ran past its deadline (`ClusterConfig::task_deadline`).
    #[error("task timed out: {message}")]
    Timeout {
        /// The executor's message.
        message: String,
    },
    /// Something outside the scheduler killed the task.
    #[error("task killed: {message}")]
    Killed {
        /// The executor's or agent's message.
        message: String,
    },
    /// Mesos ended the task without a Brine outcome (executor died, agent lost, invalid
    /// launch…) on every one of `attempts` tries.
    #[error("task {state} ({reason}) after {attempts} attempt(s): {message}")]
    Lost {
        /// The last attempt's Mesos task state (`TASK_LOST`, `TASK_FAILED`…).
        state: String,
        /// Its Mesos reason (`REASON_EXECUTOR_TERMINATED`…).
        reason: String,
        /// Its Mesos message.
        message: String,
        /// Tasks launched for the job.
        attempts: u32,
    },
    /// The handle was cancelled, or the cluster shut down first.
    #[error("task cancelled")]
    Cancelled,
    /// The scheduler lost its master for good (the framework was removed).
    #[error("connection to the master lost: {0}")]
    Connection(String),
    /// The arguments could not be serialized (postcard or JSON).
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    /// The result is not the type the handle expects.
    #[error("cannot decode the result: {0}")]
    Decode(String),
    /// A terminal status whose data is not what a Brine executor sends.
    #[error("malformed task outcome: {0}")]
    Protocol(String),
}

pub(crate) type Reply = oneshot::Sender<Result<Vec<u8>, TaskError>>;

/// The pending result of one submitted closure: await it.
///
/// Dropping a handle before it resolves cancels the job: a pending job is forgotten and
/// a running one is killed. A handle does not keep its [`crate::Cluster`] running:
/// once the cluster is dropped (or shut down), it resolves to [`TaskError::Cancelled`].
#[must_use = "a TaskHandle cancels its task when dropped; await it"]
pub struct TaskHandle<R> {
    result: oneshot::Receiver<Result<Vec<u8>, TaskError>>,
    status: Option<watch::Receiver<JobStatus>>,
    /// Cancels the job; `None` once resolved.
    cancel: Option<Cancel>,
    encoding: Encoding,
    _result: PhantomData<fn() -> R>,
}

impl<R> TaskHandle<R> {
    pub(crate) fn new(
        result: oneshot::Receiver<Result<Vec<u8>, TaskError>>,
        status: watch::Receiver<JobStatus>,
        cancel: Cancel,
        encoding: Encoding,
    ) -> Self {
        Self {
            result,
            status: Some(status),
            cancel: Some(cancel),
            encoding,
            _result: PhantomData,
        }
    }

    /// A handle that is already resolved with `error`.
    pub(crate) fn failed(error: TaskError) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(error));
        Self {
            result: rx,
            status: None,
            cancel: None,
            encoding: Encoding::Postcard,
            _result: PhantomData,
        }
    }

    /// The job's state, attempts, agent and progress now.
    pub fn status(&self) -> JobStatus {
        match &self.status {
            Some(status) => status.borrow().clone(),
            None => JobStatus {
                state: crate::JobState::Failed,
                ..JobStatus::pending()
            },
        }
    }

    /// A receiver that wakes on every change of [`TaskHandle::status`] (progress
    /// included); `None` for a handle that failed before it was submitted.
    pub fn watch(&self) -> Option<watch::Receiver<JobStatus>> {
        self.status.clone()
    }

    /// Cancels the job (kills its task if running). The same as dropping the handle.
    pub fn cancel(self) {}
}

impl<R> Drop for TaskHandle<R> {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

impl<R: DeserializeOwned> Future for TaskHandle<R> {
    type Output = Result<R, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let received = std::task::ready!(Pin::new(&mut self.result).poll(cx));
        // Resolved: nothing left to cancel.
        self.cancel = None;
        let bytes = match received {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Poll::Ready(Err(e)),
            Err(_) => return Poll::Ready(Err(TaskError::Cancelled)),
        };
        Poll::Ready(decode(self.encoding, &bytes))
    }
}

fn decode<R: DeserializeOwned>(encoding: Encoding, bytes: &[u8]) -> Result<R, TaskError> {
    match encoding {
        Encoding::Postcard => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
    .map_err(TaskError::Decode)
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
