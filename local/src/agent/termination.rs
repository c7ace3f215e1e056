//! The end of executors: SHUTDOWN then SIGKILL after the grace period (one executor,
//! or all of them when the agent stops), and what follows a process exit (its tasks made
//! terminal, `ExecutorTerminated` upstream, the sandbox scheduled for garbage collection).

use std::sync::Arc;
use std::time::Duration;

use brine_proto::mesos::v1::executor::{Event, event};
use brine_proto::mesos::v1::{ExecutorId, FrameworkId, TaskId, TaskState, task_status};

use super::checkpoint::RunKey;
use super::inner::Inner;
use super::metrics::task_state_name;
use super::state::{Executor, ExecutorState, MAX_COMPLETED_EXECUTORS, TaskEntry, Termination};
use super::{AgentError, AgentEvent, launcher, sandbox};

impl Inner {
    /// The executor is gone: its non-terminal tasks become terminal (TASK_FAILED /
    /// REASON_EXECUTOR_TERMINATED / "Executor terminated" unless a pending termination
    /// says otherwise), and upstream hears `ExecutorTerminated`.
    pub(super) async fn on_exit(
        self: &Arc<Self>,
        fid: &str,
        eid: &str,
        cid: &str,
        status: Option<i32>,
    ) {
        let cgroup = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let Some(fw) = st.frameworks.get_mut(fid) else {
                return;
            };
            if fw.executors.get(eid).is_none_or(|e| e.container_id != cid) {
                return;
            }
            let Some(mut exec) = fw.executors.remove(eid) else {
                return;
            };
            let remove_framework = fw.executors.is_empty();
            exec.state = ExecutorState::Terminated;
            exec.conn = None; // ends the SUBSCRIBE stream
            st.metrics.executors_terminated += 1;
            self.emit(AgentEvent::ExecutorTerminated {
                framework_id: FrameworkId {
                    value: fid.to_owned(),
                },
                executor_id: exec.info.executor_id.clone(),
                status,
            });
            let termination = exec.pending_termination.clone().unwrap_or(Termination {
                state: TaskState::TaskFailed,
                reason: task_status::Reason::ExecutorTerminated,
                message: "Executor terminated".to_owned(),
            });
            let mut dead: Vec<TaskId> = exec
                .launched
                .values()
                .filter(|t| !t.state.is_terminal())
                .map(|t| t.info.task_id.clone())
                .collect();
            for t in std::mem::take(&mut exec.queued) {
                dead.push(t.task_id.clone());
                exec.launched.insert(
                    t.task_id.value.clone(),
                    TaskEntry {
                        info: t,
                        state: TaskState::TaskStaging,
                    },
                );
            }
            for task_id in dead {
                if let Some(t) = exec.launched.get_mut(&task_id.value) {
                    t.state = termination.state;
                }
                *st.metrics
                    .tasks
                    .entry(task_state_name(termination.state))
                    .or_default() += 1;
                let update = self.agent_status(
                    &task_id,
                    termination.state,
                    termination.reason,
                    &termination.message,
                    Some(&exec.info.executor_id),
                );
                self.process_update(st, fid, update, false);
            }
            if self.meta.executor_dir(fid, eid).exists() {
                let run = RunKey {
                    framework: fid.to_owned(),
                    executor: eid.to_owned(),
                    container: cid.to_owned(),
                };
                self.checkpointed("executor.sentinel", self.meta.checkpoint_sentinel(&run));
                self.gc.schedule(&self.meta.executor_dir(fid, eid));
            }
            // Mesos keeps a terminated executor's directories for `gc_delay`.
            let (work_dir, agent) = (&self.config.work_dir, &self.agent_id.value);
            self.gc.schedule(&exec.sandbox);
            self.gc
                .schedule(&sandbox::executor_path(work_dir, agent, fid, eid));
            if remove_framework {
                self.gc
                    .schedule(&sandbox::framework_path(work_dir, agent, fid));
            }
            if remove_framework {
                st.frameworks.remove(fid);
            }
            st.completed.push_back(exec.snapshot(fid));
            while st.completed.len() > MAX_COMPLETED_EXECUTORS {
                st.completed.pop_front();
            }
            exec.cgroup.take()
        };
        if let Some(paths) = cgroup {
            self.cgroups.destroy(&paths).await;
        }
        self.exited.notify_waiters();
    }

    /// `_shutdownExecutor`: SHUTDOWN, then SIGKILL after the grace period.
    pub(super) fn shutdown_locked(self: &Arc<Self>, exec: &mut Executor, fid: &str) {
        if !matches!(
            exec.state,
            ExecutorState::Registering | ExecutorState::Running
        ) {
            tracing::warn!(executor = %exec.info.executor_id.value, state = ?exec.state, "ignoring shutdown of executor");
            return;
        }
        tracing::info!(executor = %exec.info.executor_id.value, "shutting down executor");
        exec.state = ExecutorState::Terminating;
        exec.send(&Event {
            r#type: Some(event::Type::Shutdown as i32),
            ..Default::default()
        });
        let grace = self.grace_period(&exec.info);
        let weak = Arc::downgrade(self);
        let (fid, eid, cid) = (
            fid.to_owned(),
            exec.info.executor_id.value.clone(),
            exec.container_id.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(inner) = weak.upgrade() else { return };
            inner.with_executor(&fid, &eid, &cid, |e| {
                tracing::info!(executor = %eid, "killing executor after its shutdown grace period");
                if let Some(pid) = e.pid {
                    launcher::kill_group(pid);
                }
                if let Some(cg) = &e.cgroup {
                    super::cgroups::kill_all(&cg.cpu);
                }
            });
        });
    }

    pub fn shutdown_executor(
        self: &Arc<Self>,
        fid: &FrameworkId,
        eid: &ExecutorId,
    ) -> Result<(), AgentError> {
        let mut st = self.lock();
        let exec = st.executor_mut(fid, eid)?;
        self.shutdown_locked(exec, &fid.value);
        Ok(())
    }

    /// Shuts every executor down and waits (bounded) until they are gone.
    pub async fn shutdown_all(self: &Arc<Self>) {
        let mut longest = Duration::ZERO;
        {
            let mut st = self.lock();
            for (fid, fw) in st.frameworks.iter_mut() {
                for exec in fw.executors.values_mut() {
                    longest = longest.max(self.grace_period(&exec.info));
                    self.shutdown_locked(exec, fid);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + longest + Duration::from_secs(10);
        loop {
            let notified = self.exited.notified();
            if self.lock().frameworks.is_empty() {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!("executors still alive after their grace periods; killing them");
                self.kill_all_now();
                break;
            }
        }
    }

    /// SIGKILLs every executor and forgets all connections (no waiting).
    pub fn kill_all_now(&self) {
        let mut st = self.lock();
        for fw in st.frameworks.values_mut() {
            for exec in fw.executors.values_mut() {
                if let Some(pid) = exec.pid {
                    launcher::kill_group(pid);
                }
                if let Some(cg) = &exec.cgroup {
                    super::cgroups::kill_all(&cg.cpu);
                }
                exec.conn = None;
            }
        }
    }
}
