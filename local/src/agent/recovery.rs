//! Agent recovery (`--recover=reconnect`, Mesos's `Slave::recover`/`_recover` and
//! `reregisterExecutorTimeout`): the checkpointed frameworks, executors, tasks and
//! status update streams come back; each live executor is watched by its pid (it is no
//! longer the agent's child) and has `executor_reregistration_timeout` to SUBSCRIBE
//! again; one that does not (or whose process is gone) is killed and its tasks end
//! `TASK_LOST` (`TASK_GONE` for PARTITION_AWARE frameworks) with
//! `REASON_EXECUTOR_REREGISTRATION_TIMEOUT`. Pending status updates are forwarded again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use brine_proto::duration;
use brine_proto::mesos::v1::{ExecutorInfo, FrameworkInfo, TaskInfo, TaskState, task_status};

use super::checkpoint::{Recovered, RunKey};
use super::inner::{Inner, partition_aware};
use super::state::{Executor, ExecutorState, Framework, TaskEntry, Termination};
use super::{launcher, sandbox};

/// How often the reaper looks at a recovered executor's pid (Mesos's reaper polls
/// processes that are not its children, at most every second).
const REAP_INTERVAL: Duration = Duration::from_millis(200);

/// One executor as the agent reports it when it re-registers with its master.
#[derive(Debug, Clone)]
pub struct ExecutorReport {
    pub framework: FrameworkInfo,
    pub executor: ExecutorInfo,
    /// Its tasks that are not terminal, with their latest state.
    pub tasks: Vec<(TaskInfo, TaskState)>,
}

impl Inner {
    /// Rebuilds the state from the checkpoint; returns how many executors are awaited.
    pub(super) fn recover(self: &Arc<Self>, recovered: Recovered) -> usize {
        let mut awaited = Vec::new();
        let mut guard = self.lock();
        let st = &mut *guard;
        for framework in recovered.frameworks {
            let Some(fid) = framework.info.id.clone().map(|i| i.value) else {
                continue;
            };
            let mut executors = BTreeMap::new();
            for e in framework.executors {
                let eid = e.info.executor_id.value.clone();
                let run = RunKey {
                    framework: fid.clone(),
                    executor: eid.clone(),
                    container: e.container_id.clone(),
                };
                let mut launched = BTreeMap::new();
                let mut completed = std::collections::VecDeque::new();
                for task in e.tasks {
                    let tid = task.info.task_id.value.clone();
                    let key = (fid.clone(), tid.clone());
                    let state = task
                        .updates
                        .last()
                        .map(|u| u.state())
                        .unwrap_or(TaskState::TaskStaging);
                    if let Some(head) =
                        st.updates
                            .recover(key.clone(), task.updates, task.acknowledged)
                    {
                        tracing::info!(task = %tid, state = ?head.state(), "recovered an unacknowledged status update");
                    }
                    if st.updates.has_stream(&key) {
                        st.runs.insert(key, run.clone());
                    }
                    let entry = TaskEntry {
                        info: task.info,
                        state,
                    };
                    if state.is_terminal() {
                        completed.push_back(entry);
                    } else {
                        launched.insert(tid, entry);
                    }
                }
                if e.completed {
                    continue;
                }
                let alive =
                    !recovered.rebooted && e.pid.is_some_and(|pid| launcher::alive(pid, &eid));
                tracing::info!(framework = %fid, executor = %eid, container = %e.container_id, pid = ?e.pid, alive, "recovering executor");
                let cgroup = if self.cgroups.enabled() && alive {
                    self.cgroups.create(&e.container_id).ok().flatten()
                } else {
                    None
                };
                let sandbox = sandbox::sandbox_path(
                    &self.config.work_dir,
                    &self.agent_id.value,
                    &fid,
                    &eid,
                    &e.container_id,
                );
                executors.insert(
                    eid.clone(),
                    Executor {
                        info: e.info,
                        container_id: e.container_id.clone(),
                        sandbox,
                        pid: e.pid,
                        state: ExecutorState::Registering,
                        conn: None,
                        queued: Vec::new(),
                        launched,
                        completed,
                        ever_sent_task: true,
                        pending_termination: None,
                        cgroup,
                        recovered: true,
                        process_gone: !alive,
                    },
                );
                awaited.push((fid.clone(), eid, e.container_id, e.pid, alive));
            }
            if !executors.is_empty() {
                st.frameworks.insert(
                    fid,
                    Framework {
                        info: framework.info,
                        executors,
                    },
                );
            }
        }
        drop(guard);
        let count = awaited.len();
        for (fid, eid, cid, pid, alive) in awaited {
            if let (Some(pid), true) = (pid, alive) {
                self.spawn_reaper(fid, eid, cid, pid);
            }
        }
        self.spawn_reregistration_timer();
        count
    }

    /// Watches a recovered executor's pid; when it is gone, the executor terminates
    /// (after the reregistration timeout has settled how, if it is still running).
    fn spawn_reaper(self: &Arc<Self>, fid: String, eid: String, cid: String, pid: u32) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REAP_INTERVAL);
            loop {
                ticks.tick().await;
                if weak.strong_count() == 0 {
                    return;
                }
                if !launcher::alive(pid, &eid) {
                    break;
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            tracing::info!(executor = %eid, pid, "recovered executor's process is gone");
            launcher::kill_group(pid);
            let settle_now = inner.with_executor(&fid, &eid, &cid, |e| {
                e.process_gone = true;
                e.state != ExecutorState::Registering
            });
            // Still awaiting re-registration: the timer settles it.
            if settle_now == Some(true) {
                inner.on_exit(&fid, &eid, &cid, None).await;
            }
        });
    }

    /// `reregisterExecutorTimeout`: recovered executors that did not SUBSCRIBE again
    /// within `executor_reregistration_timeout` are killed, their tasks lost.
    fn spawn_reregistration_timer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let timeout = self.config.executor_reregistration_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut gone = Vec::new();
            {
                let mut st = inner.lock();
                for (fid, fw) in st.frameworks.iter_mut() {
                    let state = if partition_aware(&fw.info) {
                        TaskState::TaskGone
                    } else {
                        TaskState::TaskLost
                    };
                    for (eid, exec) in fw.executors.iter_mut() {
                        if !exec.recovered || exec.state != ExecutorState::Registering {
                            continue;
                        }
                        tracing::info!(executor = %eid, "killing un-reregistered executor");
                        exec.state = ExecutorState::Terminating;
                        exec.pending_termination = Some(Termination {
                            state,
                            reason: task_status::Reason::ExecutorReregistrationTimeout,
                            message: format!(
                                "Executor did not reregister within {}",
                                duration::format(timeout)
                            ),
                        });
                        if let Some(pid) = exec.pid
                            && !exec.process_gone
                        {
                            launcher::kill_group(pid);
                        }
                        if let Some(cg) = &exec.cgroup {
                            super::cgroups::kill_all(&cg.cpu);
                        }
                        if exec.process_gone {
                            gone.push((fid.clone(), eid.clone(), exec.container_id.clone()));
                        }
                    }
                }
            }
            for (fid, eid, cid) in gone {
                inner.on_exit(&fid, &eid, &cid, None).await;
            }
        });
    }

    /// What the agent reports when it re-registers: its executors and live tasks.
    pub fn report(&self) -> Vec<ExecutorReport> {
        let st = self.lock();
        st.frameworks
            .values()
            .flat_map(|fw| {
                fw.executors.values().map(|e| ExecutorReport {
                    framework: fw.info.clone(),
                    executor: e.info.clone(),
                    tasks: e
                        .launched
                        .values()
                        .filter(|t| !t.state.is_terminal())
                        .map(|t| (t.info.clone(), t.state))
                        .chain(e.queued.iter().map(|t| (t.clone(), TaskState::TaskStaging)))
                        .collect(),
                })
            })
            .collect()
    }

    /// Forwards the head of every status update stream again (after re-registering
    /// with a master, as `TaskStatusUpdateManager::resume` does).
    pub fn resend_pending(self: &Arc<Self>) {
        let mut st = self.lock();
        for ((fid, _), head) in st.updates.heads() {
            self.forward_head(&mut st, &fid, head);
        }
    }
}
