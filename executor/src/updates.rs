//! Status updates the agent has not acknowledged yet.
//!
//! Every UPDATE carries a fresh 16-byte (v4) uuid. It is kept, in the order it was
//! sent, until an ACKNOWLEDGED event names that uuid; after a disconnection all kept
//! updates go back to the agent in SUBSCRIBE's `unacknowledged_updates`.

use std::time::{SystemTime, UNIX_EPOCH};

use brine_proto::mesos::v1::executor::call;
use brine_proto::mesos::v1::task_status::{Reason, Source};
use brine_proto::mesos::v1::{AgentId, ExecutorId, Labels, TaskId, TaskState, TaskStatus};
use bytes::Bytes;

/// Everything a status update says besides who sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSpec {
    pub task_id: String,
    pub state: TaskState,
    pub message: Option<String>,
    pub reason: Option<Reason>,
    pub data: Option<Vec<u8>>,
    /// `TaskStatus.labels` (only the benchmark's timestamps use them).
    pub labels: Option<Labels>,
}

impl StatusSpec {
    pub fn new(task_id: impl Into<String>, state: TaskState) -> Self {
        Self {
            task_id: task_id.into(),
            state,
            message: None,
            reason: None,
            data: None,
            labels: None,
        }
    }
}

/// The unacknowledged updates, oldest first.
#[derive(Debug, Default)]
pub struct Unacknowledged {
    /// (sequence number, uuid, update), in the order recorded.
    updates: Vec<(u64, [u8; 16], call::Update)>,
    seq: u64,
}

impl Unacknowledged {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an update with a fresh uuid, `source: SOURCE_EXECUTOR`, the executor id,
    /// the agent id (when known) and the current time, keeps it, and returns it.
    pub fn record(
        &mut self,
        spec: StatusSpec,
        executor_id: &str,
        agent_id: Option<&str>,
    ) -> call::Update {
        // A v4 uuid from fastrand rather than the OS: it must be unique, not secret, and
        // `getrandom` is a system call on every update.
        let mut random = [0u8; 16];
        fastrand::fill(&mut random);
        let uuid = *uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .as_bytes();
        let status = TaskStatus {
            task_id: TaskId {
                value: spec.task_id,
            },
            state: spec.state as i32,
            data: spec.data.map(Bytes::from),
            message: spec.message,
            agent_id: agent_id.map(|id| AgentId { value: id.into() }),
            timestamp: Some(now_seconds()),
            executor_id: Some(ExecutorId {
                value: executor_id.into(),
            }),
            source: Some(Source::Executor as i32),
            reason: spec.reason.map(|r| r as i32),
            uuid: Some(Bytes::copy_from_slice(&uuid)),
            labels: spec.labels,
            ..Default::default()
        };
        let update = call::Update { status };
        self.seq += 1;
        self.updates.push((self.seq, uuid, update.clone()));
        update
    }

    /// Drops the update with this uuid; returns its task id if it was kept.
    pub fn acknowledge(&mut self, uuid: &[u8]) -> Option<String> {
        let at = self
            .updates
            .iter()
            .position(|(_, u, _)| u.as_slice() == uuid)?;
        let (_, _, update) = self.updates.remove(at);
        Some(update.status.task_id.value)
    }

    /// Whether an update of this task is still kept.
    pub fn has_task(&self, task_id: &str) -> bool {
        self.updates
            .iter()
            .any(|(_, _, u)| u.status.task_id.value == task_id)
    }

    /// The kept updates, oldest first, for SUBSCRIBE.
    pub fn all(&self) -> Vec<call::Update> {
        self.updates.iter().map(|(_, _, u)| u.clone()).collect()
    }

    /// The sequence number of the latest update recorded (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The kept updates recorded after sequence number `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<call::Update> {
        self.updates
            .iter()
            .filter(|(s, _, _)| *s > seq)
            .map(|(_, _, u)| u.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.updates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }
}

/// Seconds since the Unix epoch, as Mesos timestamps are.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_kept_until_acknowledged() {
        let mut kept = Unacknowledged::new();
        let running = kept.record(
            StatusSpec::new("t1", TaskState::TaskRunning),
            "e",
            Some("a"),
        );
        let mut finished = StatusSpec::new("t1", TaskState::TaskFinished);
        finished.data = Some(vec![6]);
        let finished = kept.record(finished, "e", None);
        let other = kept.record(StatusSpec::new("t2", TaskState::TaskRunning), "e", None);

        let s = &running.status;
        assert_eq!(s.source(), Source::Executor);
        assert_eq!(s.executor_id.as_ref().map(|e| e.value.as_str()), Some("e"));
        assert_eq!(s.agent_id.as_ref().map(|e| e.value.as_str()), Some("a"));
        assert!(s.timestamp.is_some_and(|t| t > 1.6e9));
        let uuids: Vec<Bytes> = [&running, &finished, &other]
            .iter()
            .map(|u| u.status.uuid.clone().unwrap_or_default())
            .collect();
        assert!(uuids.iter().all(|u| u.len() == 16));
        assert_ne!(uuids[0], uuids[1]);
        assert_eq!(finished.status.data.as_deref(), Some(&[6u8][..]));

        assert_eq!(
            kept.all(),
            vec![running.clone(), finished.clone(), other.clone()]
        );
        assert_eq!(kept.last_seq(), 3);
        assert_eq!(kept.after(1), vec![finished.clone(), other.clone()]);
        assert_eq!(kept.acknowledge(&uuids[0]), Some("t1".into()));
        assert_eq!(kept.acknowledge(&uuids[0]), None, "only once");
        assert_eq!(kept.acknowledge(b"unknown"), None);
        assert!(kept.has_task("t1"));
        assert_eq!(kept.all(), vec![finished, other]);
        kept.acknowledge(&uuids[1]);
        assert!(!kept.has_task("t1"));
        assert_eq!(kept.len(), 1);
        kept.acknowledge(&uuids[2]);
        assert!(kept.is_empty());
    }
}
