//! What the agent knows, under one lock: frameworks, their executors (each a small
//! state machine, after the Mesos agent's in `src/slave/slave.cpp`), their tasks, the
//! status update streams and the metrics counters. Kept apart from the code that
//! changes it so the shape of the agent can be read in one place.
//!
//! REGISTERING (launched, not subscribed; tasks queue) → RUNNING (subscribed; tasks
//! are sent as LAUNCH) → TERMINATING (SHUTDOWN sent or destroy under way) →
//! TERMINATED (process gone: non-terminal tasks become terminal, `ExecutorTerminated`).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::Event;
use brine_proto::mesos::v1::{
    ContainerId, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Resource, TaskId, TaskInfo,
    TaskState, task_status,
};
use brine_proto::recordio;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::cgroups::CgroupPaths;
use super::checkpoint::RunKey;
use super::config::AgentResources;
use super::status_updates::{StatusUpdates, StreamKey};
use super::{AgentError, ExecutorSnapshot};

/// The lifecycle states of an executor, as Mesos names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorState {
    Registering,
    Running,
    Terminating,
    Terminated,
}

/// Items of a SUBSCRIBE response body: a RecordIO record, or an error that makes the
/// server drop the connection without ending the chunked body.
pub(crate) type StreamItem = Result<Bytes, io::Error>;

pub(crate) struct Conn {
    pub(super) id: u64,
    pub(super) tx: mpsc::UnboundedSender<StreamItem>,
    pub(super) content_type: ContentType,
}

pub(crate) struct TaskEntry {
    pub(super) info: TaskInfo,
    pub(super) state: TaskState,
}

/// How a terminated executor's tasks end (Mesos's `ContainerTermination`).
#[derive(Clone)]
pub(super) struct Termination {
    pub(super) state: TaskState,
    pub(super) reason: task_status::Reason,
    pub(super) message: String,
}

pub(crate) struct Executor {
    pub(super) info: ExecutorInfo,
    pub(super) container_id: String,
    pub(super) sandbox: PathBuf,
    pub(super) pid: Option<u32>,
    pub(super) state: ExecutorState,
    pub(super) conn: Option<Conn>,
    pub(super) queued: Vec<TaskInfo>,
    pub(super) launched: BTreeMap<String, TaskEntry>,
    /// Tasks that ended, newest last, at most [`MAX_COMPLETED_TASKS_PER_EXECUTOR`]
    /// (Mesos's `Executor::completedTasks`). Keeping them out of `launched` keeps
    /// every per-update pass over `launched` proportional to the live tasks.
    pub(super) completed: std::collections::VecDeque<TaskEntry>,
    pub(super) ever_sent_task: bool,
    pub(super) pending_termination: Option<Termination>,
    pub(super) cgroup: Option<CgroupPaths>,
    /// Read back from the checkpoint by a restarted agent: not its child, watched by
    /// pid until it re-subscribes or the reregistration timeout ends it.
    pub(super) recovered: bool,
    /// A recovered executor's process is gone (seen by the reaper).
    pub(super) process_gone: bool,
}

/// Mesos's `MAX_COMPLETED_TASKS_PER_EXECUTOR` (`src/slave/constants.hpp`).
pub(super) const MAX_COMPLETED_TASKS_PER_EXECUTOR: usize = 200;

impl Executor {
    pub(super) fn allocation(&self) -> AgentResources {
        let mut total = scalars(&self.info.resources);
        let live = self.queued.iter().map(|t| &t.resources).chain(
            self.launched
                .values()
                .filter(|t| !t.state.is_terminal())
                .map(|t| &t.info.resources),
        );
        for resources in live {
            let r = scalars(resources);
            total.cpus += r.cpus;
            total.mem_mb += r.mem_mb;
            total.disk_mb += r.disk_mb;
        }
        total
    }

    pub(super) fn has_task(&self, task_id: &str) -> bool {
        self.launched.contains_key(task_id)
            || self.queued.iter().any(|t| t.task_id.value == task_id)
            || self
                .completed
                .iter()
                .any(|t| t.info.task_id.value == task_id)
    }

    /// Sends an event on the SUBSCRIBE stream; dropped with a warning when there is
    /// none (as Mesos does).
    pub(super) fn send(&self, event: &Event) {
        let Some(conn) = &self.conn else {
            tracing::warn!(executor = %self.info.executor_id.value, kind = ?event.r#type(), "executor not connected; dropping event");
            return;
        };
        match codec::encode(conn.content_type, event) {
            Ok(payload) => {
                if conn.tx.send(Ok(recordio::encode(&payload))).is_err() {
                    tracing::warn!(executor = %self.info.executor_id.value, "unable to send event to executor: connection closed");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode executor event"),
        }
    }

    pub(super) fn snapshot(&self, framework_id: &str) -> ExecutorSnapshot {
        let mut tasks: Vec<(TaskId, TaskState)> = self
            .completed
            .iter()
            .chain(self.launched.values())
            .map(|t| (t.info.task_id.clone(), t.state))
            .collect();
        tasks.extend(
            self.queued
                .iter()
                .map(|t| (t.task_id.clone(), TaskState::TaskStaging)),
        );
        ExecutorSnapshot {
            framework_id: FrameworkId {
                value: framework_id.to_owned(),
            },
            executor_id: self.info.executor_id.clone(),
            container_id: ContainerId {
                value: self.container_id.clone(),
                parent: None,
            },
            pid: self.pid,
            sandbox: self.sandbox.clone(),
            subscribed: self.conn.is_some(),
            state: self.state,
            allocation: self.allocation(),
            cgroup: self.cgroup.clone(),
            tasks,
        }
    }
}

/// Sums the scalar `cpus`, `mem` and `disk` of some resources.
pub fn scalars(resources: &[Resource]) -> AgentResources {
    let mut out = AgentResources::default();
    for r in resources {
        let v = r.scalar.as_ref().map(|s| s.value).unwrap_or(0.0);
        match r.name.as_str() {
            "cpus" => out.cpus += v,
            "mem" => out.mem_mb += v,
            "disk" => out.disk_mb += v,
            _ => {}
        }
    }
    out
}

pub(crate) struct Framework {
    pub(super) info: FrameworkInfo,
    pub(super) executors: BTreeMap<String, Executor>,
}

#[derive(Default)]
pub(crate) struct Metrics {
    pub executors_terminated: u64,
    pub container_launch_errors: u64,
    pub valid_status_updates: u64,
    pub invalid_status_updates: u64,
    pub valid_framework_messages: u64,
    pub invalid_framework_messages: u64,
    pub tasks: BTreeMap<&'static str, u64>,
    pub fetches_succeeded: u64,
    pub fetches_failed: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub(super) frameworks: BTreeMap<String, Framework>,
    pub(super) updates: StatusUpdates,
    pub metrics: Metrics,
    pub(super) completed: VecDeque<ExecutorSnapshot>,
    pub(super) next_conn: u64,
    /// Where the status update stream of each checkpointed task is recorded (tasks
    /// of frameworks with `checkpoint`), until its terminal update is acknowledged.
    pub(super) runs: std::collections::HashMap<StreamKey, RunKey>,
}

impl State {
    /// The executor `eid` of framework `fid`, for the calls the agent's owner makes by
    /// id; the error names whichever of the two is unknown.
    pub(super) fn executor_mut(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
    ) -> Result<&mut Executor, AgentError> {
        self.frameworks
            .get_mut(&fid.value)
            .ok_or_else(|| AgentError::UnknownFramework(fid.value.clone()))?
            .executors
            .get_mut(&eid.value)
            .ok_or_else(|| AgentError::UnknownExecutor {
                framework: fid.value.clone(),
                executor: eid.value.clone(),
            })
    }
}

pub(super) const MAX_COMPLETED_EXECUTORS: usize = 150;
