//! The executor side of `POST /api/v1/executor` once `http` has decoded and validated
//! a call: Mesos's framework/executor lookups, SUBSCRIBE (the event stream, SUBSCRIBED,
//! the queued tasks as LAUNCH, re-subscription after a lost connection), UPDATE and
//! MESSAGE, and the count of refused calls.

use std::collections::HashSet;
use std::sync::Arc;

use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::executor::{Call, Event, event};
use brine_proto::mesos::v1::{ContainerId, ExecutorId, TaskId, TaskState, TaskStatus, task_status};
use http::StatusCode;
use tokio::sync::mpsc;

use super::AgentEvent;
use super::checkpoint::RunKey;
use super::inner::{Inner, Reply, partition_aware};
use super::state::{Conn, ExecutorState, State, TaskEntry};

impl Inner {
    /// A validated executor call other than HEARTBEAT, after Mesos's lookups.
    pub(crate) fn executor_call(
        self: &Arc<Self>,
        call: Call,
        accept: ContentType,
    ) -> Result<Reply, (StatusCode, String)> {
        use brine_proto::mesos::v1::executor::call::Type;
        let mut guard = self.lock();
        let st = &mut *guard;
        let fid = call.framework_id.value.clone();
        let eid = call.executor_id.value.clone();
        let kind = call.r#type();
        {
            let fw = st.frameworks.get(&fid).ok_or((
                StatusCode::BAD_REQUEST,
                "Framework cannot be found".to_owned(),
            ))?;
            let exec = fw.executors.get(&eid).ok_or((
                StatusCode::BAD_REQUEST,
                "Executor cannot be found".to_owned(),
            ))?;
            if exec.state == ExecutorState::Registering && kind != Type::Subscribe {
                return Err((
                    StatusCode::FORBIDDEN,
                    "Executor is not subscribed".to_owned(),
                ));
            }
        }
        match kind {
            Type::Subscribe => Ok(self.subscribe(st, &fid, &eid, call, accept)),
            Type::Update => {
                let Some(update) = call.update else {
                    return Ok(Reply::Accepted);
                };
                self.executor_update(st, &fid, update.status);
                Ok(Reply::Accepted)
            }
            Type::Message => {
                st.metrics.valid_framework_messages += 1;
                self.emit(AgentEvent::ExecutorMessage {
                    framework_id: call.framework_id.clone(),
                    executor_id: call.executor_id.clone(),
                    data: call.message.map(|m| m.data).unwrap_or_default(),
                });
                Ok(Reply::Accepted)
            }
            Type::Heartbeat => Ok(Reply::Accepted),
            Type::Unknown => Err((StatusCode::NOT_IMPLEMENTED, String::new())),
        }
    }

    /// An UPDATE from an executor: stamped, queued, forwarded; ACKNOWLEDGED to the
    /// executor at once when the agent knows the task (never for unknown tasks).
    fn executor_update(self: &Arc<Self>, st: &mut State, fid: &str, mut status: TaskStatus) {
        status.agent_id = Some(self.agent_id.clone());
        status.source = Some(task_status::Source::Executor as i32);
        let task_id = status.task_id.clone();
        let uuid = status.uuid.clone().unwrap_or_default();
        let owner = self.process_update(st, fid, status, true);
        let Some(owner) = owner else {
            tracing::warn!(task = %task_id.value, "status update for a task unknown to the agent: forwarded, not acknowledged");
            return;
        };
        if let Some(exec) = st.frameworks.get(fid).and_then(|f| f.executors.get(&owner)) {
            exec.send(&Event {
                r#type: Some(event::Type::Acknowledged as i32),
                acknowledged: Some(event::Acknowledged { task_id, uuid }),
                ..Default::default()
            });
        }
    }

    fn subscribe(
        self: &Arc<Self>,
        st: &mut State,
        fid: &str,
        eid: &str,
        call: Call,
        accept: ContentType,
    ) -> Reply {
        let (tx, rx) = mpsc::unbounded_channel();
        let (guard, gone) = tokio::sync::oneshot::channel();
        st.next_conn += 1;
        let conn = Conn {
            id: st.next_conn,
            tx,
            content_type: accept,
        };
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return Reply::Stream(rx, accept, guard);
        };
        let framework_info = fw.info.clone();
        let aware = partition_aware(&fw.info);
        let Some(exec) = fw.executors.get_mut(eid) else {
            return Reply::Stream(rx, accept, guard);
        };
        tracing::info!(executor = eid, "received SUBSCRIBE from executor");
        if matches!(
            exec.state,
            ExecutorState::Terminating | ExecutorState::Terminated
        ) {
            tracing::warn!(executor = eid, state = ?exec.state, "shutting down executor: it subscribed while terminating");
            exec.conn.take();
            let old = exec.conn.replace(conn);
            exec.send(&Event {
                r#type: Some(event::Type::Shutdown as i32),
                ..Default::default()
            });
            exec.conn = old;
            return Reply::Stream(rx, accept, guard);
        }
        if exec.conn.take().is_some() {
            tracing::warn!(
                executor = eid,
                "closing the executor's previous SUBSCRIBE connection"
            );
        }
        exec.state = ExecutorState::Running;
        exec.conn = Some(conn);
        if framework_info.checkpoint() {
            let run = RunKey {
                framework: fid.to_owned(),
                executor: eid.to_owned(),
                container: exec.container_id.clone(),
            };
            self.checkpointed("http.marker", self.meta.checkpoint_http_marker(&run));
        }
        if exec.recovered {
            tracing::info!(executor = eid, "recovered executor re-subscribed");
        }
        let conn_id = st.next_conn;
        self.watch_connection(fid, eid, conn_id, gone);

        let subscribe = call.subscribe.unwrap_or_default();
        for update in subscribe.unacknowledged_updates {
            self.executor_update(st, fid, update.status);
        }
        let unacked: HashSet<String> = subscribe
            .unacknowledged_tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        let lost: Vec<(TaskId, ExecutorId)> = st
            .frameworks
            .get(fid)
            .and_then(|f| f.executors.get(eid))
            .map(|e| {
                e.launched
                    .values()
                    .filter(|t| {
                        t.state == TaskState::TaskStaging
                            && !unacked.contains(&t.info.task_id.value)
                    })
                    .map(|t| (t.info.task_id.clone(), e.info.executor_id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (task_id, executor_id) in lost {
            let state = if aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            tracing::info!(task = %task_id.value, "task unknown to the re-subscribed executor");
            let status = self.agent_status(
                &task_id,
                state,
                task_status::Reason::AgentRestarted,
                "Task launched during agent restart",
                Some(&executor_id),
            );
            self.process_update(st, fid, status, false);
        }

        let Some(exec) = st
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
        else {
            return Reply::Stream(rx, accept, guard);
        };
        if !exec.ever_sent_task && exec.queued.is_empty() {
            tracing::warn!(
                executor = eid,
                "shutting down executor: it was never sent a task and has none queued"
            );
            self.shutdown_locked(exec, fid);
            return Reply::Stream(rx, accept, guard);
        }
        let mut agent_info = self.info.clone();
        #[allow(deprecated)]
        for r in &mut agent_info.resources {
            r.role = None;
        }
        exec.send(&Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                executor_info: exec.info.clone(),
                framework_info,
                agent_info,
                container_id: Some(ContainerId {
                    value: exec.container_id.clone(),
                    parent: None,
                }),
            }),
            ..Default::default()
        });
        let queued = std::mem::take(&mut exec.queued);
        for task in &queued {
            exec.launched.insert(
                task.task_id.value.clone(),
                TaskEntry {
                    info: task.clone(),
                    state: TaskState::TaskStaging,
                },
            );
        }
        if !queued.is_empty() {
            exec.ever_sent_task = true;
        }
        self.resize(exec);
        for task in queued {
            exec.send(&Event {
                r#type: Some(event::Type::Launch as i32),
                launch: Some(event::Launch { task }),
                ..Default::default()
            });
        }
        Reply::Stream(rx, accept, guard)
    }

    /// Forgets the connection once the executor (or the network) closes it. Mesos does
    /// nothing else: a non-checkpointing executor shuts itself down, a checkpointing one
    /// re-subscribes; events sent meanwhile are dropped.
    fn watch_connection(
        self: &Arc<Self>,
        fid: &str,
        eid: &str,
        conn_id: u64,
        gone: tokio::sync::oneshot::Receiver<()>,
    ) {
        let weak = Arc::downgrade(self);
        let (fid, eid) = (fid.to_owned(), eid.to_owned());
        tokio::spawn(async move {
            let _ = gone.await;
            let Some(inner) = weak.upgrade() else { return };
            let mut st = inner.lock();
            if let Some(exec) = st
                .frameworks
                .get_mut(&fid)
                .and_then(|f| f.executors.get_mut(&eid))
                && exec.conn.as_ref().is_some_and(|c| c.id == conn_id)
            {
                tracing::info!(executor = %eid, "executor's SUBSCRIBE connection closed");
                exec.conn = None;
            }
        });
    }

    /// Counts an executor call that the agent refused (for metrics).
    pub fn count_invalid(&self, kind: Option<brine_proto::mesos::v1::executor::call::Type>) {
        use brine_proto::mesos::v1::executor::call::Type;
        let mut st = self.lock();
        match kind {
            Some(Type::Update) => st.metrics.invalid_status_updates += 1,
            Some(Type::Message) => st.metrics.invalid_framework_messages += 1,
            _ => {}
        }
    }
}
