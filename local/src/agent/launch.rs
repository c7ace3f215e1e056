//! RunTask: a task given to the agent is checked, then queued for an executor that is
//! still registering, sent as LAUNCH to a running one, or starts a new executor (whose
//! container is set up by `container`); an executor that does not subscribe in time
//! is destroyed. Also keeps an executor's cgroup sized to its live tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

use brine_proto::duration;
use brine_proto::mesos::v1::executor::{Event, event};
use brine_proto::mesos::v1::{
    ExecutorInfo, FrameworkInfo, Resource, TaskInfo, TaskState, TaskStatus, resource, task_status,
};

use super::checkpoint::RunKey;
use super::inner::{Inner, now, partition_aware};
use super::state::{Executor, ExecutorState, Framework, TaskEntry, Termination};
use super::{AgentError, AgentEvent, launcher, sandbox};

/// Gives resources `allocation_info` (role of the framework) and drops the deprecated
/// `role`, as the agent shows them to executors.
#[allow(deprecated)]
fn allocate(resources: &mut [Resource], role: &str) {
    for r in resources {
        r.role = None;
        if r.allocation_info.is_none() {
            r.allocation_info = Some(resource::AllocationInfo {
                role: Some(role.to_owned()),
            });
        }
    }
}

impl Inner {
    pub async fn launch(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        mut task: TaskInfo,
    ) -> Result<(), AgentError> {
        let fid = framework
            .id
            .clone()
            .ok_or_else(|| AgentError::InvalidLaunch("FrameworkInfo has no id".to_owned()))?;
        if task.executor.is_none() && task.command.is_some() {
            return Err(AgentError::Unsupported(
                "command tasks (TaskInfo.command) need Mesos's command executor, which this \
                 agent does not have; give the task an ExecutorInfo"
                    .to_owned(),
            ));
        }
        let mut info = task.executor.take().unwrap_or(executor);
        if info.framework_id.is_none() {
            info.framework_id = Some(fid.clone());
        }
        let role = framework
            .roles
            .first()
            .cloned()
            .unwrap_or_else(|| "*".to_owned());
        allocate(&mut info.resources, &role);
        allocate(&mut task.resources, &role);
        task.executor = Some(info.clone());
        task.agent_id = self.agent_id.clone();
        let eid = info.executor_id.value.clone();
        for (what, id) in [
            ("framework id", fid.value.as_str()),
            ("executor id", eid.as_str()),
            ("task id", task.task_id.value.as_str()),
        ] {
            if !sandbox::valid_component(id) {
                return Err(AgentError::InvalidLaunch(format!("invalid {what} '{id}'")));
            }
        }
        if info
            .command
            .as_ref()
            .and_then(|c| c.value.as_ref())
            .is_none()
        {
            return Err(AgentError::InvalidLaunch(
                "ExecutorInfo.command.value is required".to_owned(),
            ));
        }

        let mut guard = self.lock();
        let st = &mut *guard;
        let fw = st
            .frameworks
            .entry(fid.value.clone())
            .or_insert_with(|| Framework {
                info: framework.clone(),
                executors: BTreeMap::new(),
            });
        fw.info = framework;
        if fw.executors.values().any(|e| {
            e.launched
                .get(&task.task_id.value)
                .is_some_and(|t| !t.state.is_terminal())
                || e.queued.iter().any(|t| t.task_id == task.task_id)
        }) {
            return Err(AgentError::InvalidLaunch(format!(
                "task {} is already running on this agent",
                task.task_id.value
            )));
        }

        let Some(exec) = fw.executors.get_mut(&eid) else {
            // A new executor: sandbox, fetch, spawn, in the background.
            let container_id = uuid::Uuid::new_v4().to_string();
            let sandbox = sandbox::sandbox_path(
                &self.config.work_dir,
                &self.agent_id.value,
                &fid.value,
                &eid,
                &container_id,
            );
            tracing::info!(framework = %fid.value, executor = %eid, container = %container_id, task = %task.task_id.value, "launching executor");
            let run = RunKey {
                framework: fid.value.clone(),
                executor: eid.clone(),
                container: container_id.clone(),
            };
            if fw.info.checkpoint() {
                self.checkpointed("framework.info", self.meta.checkpoint_framework(&fw.info));
                self.checkpointed("executor.info", self.meta.checkpoint_executor(&run, &info));
            }
            self.checkpoint_task(&mut st.runs, &fw.info, run, &task);
            let (work_dir, agent) = (&self.config.work_dir, &self.agent_id.value);
            self.gc
                .unschedule(&sandbox::executor_path(work_dir, agent, &fid.value, &eid));
            self.gc
                .unschedule(&sandbox::framework_path(work_dir, agent, &fid.value));
            self.gc
                .unschedule(&self.meta.executor_dir(&fid.value, &eid));
            fw.executors.insert(
                eid.clone(),
                Executor {
                    info,
                    container_id: container_id.clone(),
                    sandbox,
                    pid: None,
                    state: ExecutorState::Registering,
                    conn: None,
                    queued: vec![task],
                    launched: BTreeMap::new(),
                    completed: std::collections::VecDeque::new(),
                    ever_sent_task: false,
                    pending_termination: None,
                    cgroup: None,
                    recovered: false,
                    process_gone: false,
                },
            );
            drop(guard);
            let inner = Arc::clone(self);
            let (f, e, c) = (fid.value.clone(), eid.clone(), container_id.clone());
            tokio::spawn(async move { inner.run_executor(f, e, c).await });
            self.spawn_registration_timer(fid.value, eid, container_id);
            return Ok(());
        };

        if exec.info != info {
            // The master refuses this (TASK_ERROR, REASON_TASK_INVALID) before it
            // reaches an agent; there is no master here, so the agent answers for it,
            // like the master does: SOURCE_MASTER, no uuid (nothing to acknowledge).
            let status = TaskStatus {
                task_id: task.task_id.clone(),
                state: TaskState::TaskError as i32,
                message: Some(
                    "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID"
                        .to_owned(),
                ),
                agent_id: Some(self.agent_id.clone()),
                timestamp: Some(now()),
                source: Some(task_status::Source::Master as i32),
                reason: Some(task_status::Reason::TaskInvalid as i32),
                ..Default::default()
            };
            drop(guard);
            self.emit(AgentEvent::StatusUpdate {
                framework_id: fid,
                status,
            });
            return Ok(());
        }
        if matches!(
            exec.state,
            ExecutorState::Registering | ExecutorState::Running
        ) {
            let run = RunKey {
                framework: fid.value.clone(),
                executor: eid.clone(),
                container: exec.container_id.clone(),
            };
            self.checkpoint_task(&mut st.runs, &fw.info, run, &task);
        }
        match exec.state {
            ExecutorState::Registering => {
                exec.queued.push(task);
                self.resize(exec);
            }
            ExecutorState::Running => {
                exec.launched.insert(
                    task.task_id.value.clone(),
                    TaskEntry {
                        info: task.clone(),
                        state: TaskState::TaskStaging,
                    },
                );
                exec.ever_sent_task = true;
                self.resize(exec);
                exec.send(&Event {
                    r#type: Some(event::Type::Launch as i32),
                    launch: Some(event::Launch { task }),
                    ..Default::default()
                });
            }
            ExecutorState::Terminating | ExecutorState::Terminated => {
                let state = if partition_aware(&fw.info) {
                    TaskState::TaskDropped
                } else {
                    TaskState::TaskLost
                };
                let status = self.agent_status(
                    &task.task_id,
                    state,
                    task_status::Reason::ExecutorTerminated,
                    "Executor terminating",
                    Some(&info.executor_id),
                );
                self.process_update(st, &fid.value, status, false);
            }
        }
        Ok(())
    }

    pub(super) fn resize(&self, exec: &Executor) {
        if let Some(paths) = &exec.cgroup {
            let a = exec.allocation();
            self.cgroups.update(paths, a.cpus, a.mem_mb);
        }
    }

    fn spawn_registration_timer(self: &Arc<Self>, fid: String, eid: String, cid: String) {
        let weak = Arc::downgrade(self);
        let timeout = self.config.executor_registration_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut st = inner.lock();
            let Some(exec) = st
                .frameworks
                .get_mut(&fid)
                .and_then(|f| f.executors.get_mut(&eid))
                .filter(|e| e.container_id == cid)
            else {
                return;
            };
            if exec.state != ExecutorState::Registering {
                return;
            }
            tracing::info!(executor = %eid, "terminating executor because it did not register within {}", duration::format(timeout));
            exec.state = ExecutorState::Terminating;
            exec.pending_termination = Some(Termination {
                state: TaskState::TaskFailed,
                reason: task_status::Reason::ExecutorRegistrationTimeout,
                message: format!(
                    "Executor did not register within {}",
                    duration::format(timeout)
                ),
            });
            if let Some(pid) = exec.pid {
                launcher::kill_group(pid);
            }
            if let Some(cg) = &exec.cgroup {
                super::cgroups::kill_all(&cg.cpu);
            }
        });
    }
}
