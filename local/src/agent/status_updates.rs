//! The task status update manager, after Mesos's `TaskStatusUpdateManager`: one stream
//! per (framework, task); updates are kept in order; only the head of a stream is
//! forwarded upstream, and re-sent until acknowledged; an acknowledgement of the head
//! forwards the next. Duplicates (same uuid) are ignored, but still acknowledged to the
//! executor (the caller does that).

use std::collections::{HashMap, HashSet, VecDeque};

use brine_proto::mesos::v1::TaskStatus;
use bytes::Bytes;
use tokio::task::JoinHandle;

/// Key of a stream: (framework id, task id).
pub type StreamKey = (String, String);

#[derive(Debug, Default)]
pub struct UpdateStream {
    pub pending: VecDeque<TaskStatus>,
    received: HashSet<Bytes>,
    acknowledged: HashSet<Bytes>,
    pub terminated: bool,
    /// The re-send timer of the head update.
    pub retry: Option<JoinHandle<()>>,
}

impl Drop for UpdateStream {
    fn drop(&mut self) {
        if let Some(retry) = self.retry.take() {
            retry.abort();
        }
    }
}

/// What [`StatusUpdates::update`] did.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, returned once per update
pub enum Received {
    /// Seen before (received or acknowledged): ignored.
    Duplicate,
    /// Queued; `Some` when it is the new head and must be forwarded now.
    Queued(Option<TaskStatus>),
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("cannot find the task status update stream for task {task} of framework {framework}")]
    NoStream { framework: String, task: String },
    #[error("unexpected task status update acknowledgement (no update is pending)")]
    NothingPending,
    #[error("duplicate task status update acknowledgement")]
    Duplicate,
    #[error("unexpected task status update acknowledgement: it does not name the pending update")]
    Mismatch,
}

#[derive(Debug, Default)]
pub struct StatusUpdates {
    streams: HashMap<StreamKey, UpdateStream>,
}

impl StatusUpdates {
    /// Takes an update (which has a uuid).
    pub fn update(&mut self, key: StreamKey, status: TaskStatus) -> Received {
        let uuid = status.uuid.clone().unwrap_or_default();
        let stream = self.streams.entry(key).or_default();
        if stream.acknowledged.contains(&uuid) || stream.received.contains(&uuid) {
            return Received::Duplicate;
        }
        stream.received.insert(uuid);
        stream.pending.push_back(status);
        if stream.pending.len() == 1 {
            Received::Queued(stream.pending.front().cloned())
        } else {
            Received::Queued(None)
        }
    }

    /// Acknowledges the head update; returns the next one to forward, if any.
    pub fn acknowledge(
        &mut self,
        key: &StreamKey,
        uuid: &[u8],
    ) -> Result<Option<TaskStatus>, AckError> {
        let stream = self
            .streams
            .get_mut(key)
            .ok_or_else(|| AckError::NoStream {
                framework: key.0.clone(),
                task: key.1.clone(),
            })?;
        if stream.acknowledged.contains(uuid) {
            return Err(AckError::Duplicate);
        }
        let head = stream.pending.front().ok_or(AckError::NothingPending)?;
        if head.uuid.as_deref() != Some(uuid) {
            return Err(AckError::Mismatch);
        }
        let head = stream.pending.pop_front();
        stream.acknowledged.insert(Bytes::copy_from_slice(uuid));
        if let Some(retry) = stream.retry.take() {
            retry.abort();
        }
        if head.as_ref().is_some_and(|h| h.state().is_terminal()) {
            stream.terminated = true;
        }
        if stream.terminated {
            if !stream.pending.is_empty() {
                tracing::warn!(task = %key.1, "acknowledged a terminal status update but updates are still pending");
            }
            self.streams.remove(key);
            return Ok(None);
        }
        Ok(stream.pending.front().cloned())
    }

    /// The head update of a stream, if it still has this uuid.
    pub fn head_with_uuid(&self, key: &StreamKey, uuid: &[u8]) -> Option<&TaskStatus> {
        self.streams
            .get(key)
            .and_then(|s| s.pending.front())
            .filter(|h| h.uuid.as_deref() == Some(uuid))
    }

    pub fn set_retry(&mut self, key: &StreamKey, retry: JoinHandle<()>) {
        match self.streams.get_mut(key) {
            Some(stream) => {
                if let Some(old) = stream.retry.replace(retry) {
                    old.abort();
                }
            }
            None => retry.abort(),
        }
    }

    /// Whether the stream is still open (its terminal update not yet acknowledged).
    pub fn has_stream(&self, key: &StreamKey) -> bool {
        self.streams.contains_key(key)
    }

    /// A stream read back from the checkpoint: every update taken, in order, and the
    /// uuids acknowledged. Returns the head to forward, if any update is pending.
    pub fn recover(
        &mut self,
        key: StreamKey,
        updates: Vec<TaskStatus>,
        acknowledged: HashSet<Bytes>,
    ) -> Option<TaskStatus> {
        let mut stream = UpdateStream::default();
        for status in updates {
            let uuid = status.uuid.clone().unwrap_or_default();
            if !stream.received.insert(uuid.clone()) {
                continue;
            }
            if acknowledged.contains(&uuid) {
                if status.state().is_terminal() {
                    stream.terminated = true;
                }
            } else {
                stream.pending.push_back(status);
            }
        }
        stream.acknowledged = acknowledged;
        if stream.terminated && stream.pending.is_empty() {
            return None;
        }
        let head = stream.pending.front().cloned();
        self.streams.insert(key, stream);
        head
    }

    /// The head update of every stream that has one (to forward again after the
    /// agent re-registered).
    pub fn heads(&self) -> Vec<(StreamKey, TaskStatus)> {
        self.streams
            .iter()
            .filter_map(|(k, s)| s.pending.front().map(|h| (k.clone(), h.clone())))
            .collect()
    }

    /// Number of updates not yet acknowledged, over all streams.
    pub fn pending_count(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }
}
