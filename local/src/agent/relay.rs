//! Status updates on their way up, as `Slave::statusUpdate` takes them: the task's
//! state and the executor's cgroup follow the update, the update manager queues it per
//! task, and only the head goes upstream, re-sent with backoff until acknowledged.

use std::sync::Arc;

use brine_http::Backoff;
use brine_proto::mesos::v1::{
    ContainerId, ContainerStatus, FrameworkId, NetworkInfo, TaskState, TaskStatus, network_info,
};

use super::AgentEvent;
use super::inner::Inner;
use super::metrics::task_state_name;
use super::state::{MAX_COMPLETED_TASKS_PER_EXECUTOR, State, TaskEntry};
use super::status_updates::{Received, StreamKey};

impl Inner {
    /// Takes a status update (from the executor when `from_executor`, else generated
    /// here) the way `Slave::statusUpdate` does: it updates the task's state and the
    /// executor's cgroup, then the update manager queues it and forwards the head.
    /// Returns the executor that owns the task, if any (to acknowledge to).
    pub(super) fn process_update(
        self: &Arc<Self>,
        st: &mut State,
        fid: &str,
        mut status: TaskStatus,
        from_executor: bool,
    ) -> Option<String> {
        let owner = st.frameworks.get_mut(fid).and_then(|fw| {
            fw.executors
                .values_mut()
                .find(|e| e.has_task(&status.task_id.value))
        });
        let mut owner_id = None;
        if let Some(exec) = owner {
            owner_id = Some(exec.info.executor_id.value.clone());
            if from_executor {
                status.container_status = Some(ContainerStatus {
                    container_id: Some(ContainerId {
                        value: exec.container_id.clone(),
                        parent: None,
                    }),
                    executor_pid: exec.pid,
                    network_infos: vec![NetworkInfo {
                        ip_addresses: vec![network_info::IpAddress {
                            ip_address: Some(self.config.listen.ip().to_string()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                });
            }
            let state = status.state();
            let task_key = status.task_id.value.clone();
            if let Some(pos) = exec.queued.iter().position(|t| t.task_id.value == task_key) {
                let info = exec.queued.remove(pos);
                exec.launched.insert(
                    task_key.clone(),
                    TaskEntry {
                        info,
                        state: TaskState::TaskStaging,
                    },
                );
            }
            if let Some(task) = exec.launched.get_mut(&task_key)
                && !task.state.is_terminal()
            {
                task.state = state;
                if state.is_terminal() {
                    *st.metrics.tasks.entry(task_state_name(state)).or_default() += 1;
                    if let Some(ended) = exec.launched.remove(&task_key) {
                        exec.completed.push_back(ended);
                        if exec.completed.len() > MAX_COMPLETED_TASKS_PER_EXECUTOR {
                            exec.completed.pop_front();
                        }
                    }
                    if let Some(paths) = &exec.cgroup {
                        let a = exec.allocation();
                        self.cgroups.update(paths, a.cpus, a.mem_mb);
                    }
                }
            }
        }
        if from_executor {
            st.metrics.valid_status_updates += 1;
        }
        let key: StreamKey = (fid.to_owned(), status.task_id.value.clone());
        let run = st.runs.get(&key).cloned();
        let checkpoint = run.as_ref().map(|_| status.clone());
        match st.updates.update(key, status) {
            Received::Duplicate => {
                tracing::warn!(framework = fid, "ignoring duplicate task status update")
            }
            received => {
                // Checkpointed before it goes anywhere (`TaskStatusUpdateManager`).
                if let (Some(run), Some(status)) = (run, checkpoint) {
                    self.checkpointed(
                        "task.updates",
                        self.meta.checkpoint_update(&run, &self.agent_id, &status),
                    );
                }
                if let Received::Queued(Some(head)) = received {
                    self.forward_head(st, fid, head);
                }
            }
        }
        owner_id
    }

    /// Sends the head update upstream and arms its re-send timer.
    pub(super) fn forward_head(self: &Arc<Self>, st: &mut State, fid: &str, head: TaskStatus) {
        let key: StreamKey = (fid.to_owned(), head.task_id.value.clone());
        let uuid = head.uuid.clone().unwrap_or_default();
        self.emit(AgentEvent::StatusUpdate {
            framework_id: FrameworkId {
                value: fid.to_owned(),
            },
            status: head,
        });
        let weak = Arc::downgrade(self);
        let mut backoff = Backoff::new(
            self.config.status_update_retry_interval,
            self.config.status_update_retry_interval_max,
        );
        let timer_key = key.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(backoff.next_wait()).await;
                let Some(inner) = weak.upgrade() else { return };
                let st = inner.lock();
                let Some(head) = st.updates.head_with_uuid(&timer_key, &uuid) else {
                    return;
                };
                tracing::info!(task = %timer_key.1, "re-sending unacknowledged status update");
                inner.emit(AgentEvent::StatusUpdate {
                    framework_id: FrameworkId {
                        value: timer_key.0.clone(),
                    },
                    status: head.clone(),
                });
                drop(st);
            }
        });
        st.updates.set_retry(&key, handle);
    }
}
