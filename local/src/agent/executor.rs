//! The executor state machine, after the Mesos agent's (`src/slave/slave.cpp`):
//! REGISTERING (launched, not subscribed; tasks queue) → RUNNING (subscribed; tasks
//! are sent as LAUNCH) → TERMINATING (SHUTDOWN sent or destroy under way) →
//! TERMINATED (process gone: non-terminal tasks become terminal, `ExecutorTerminated`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::{Call, Event, event};
use brine_proto::mesos::v1::{
    AgentId, AgentInfo, ContainerId, ContainerStatus, ExecutorId, ExecutorInfo, FrameworkId,
    FrameworkInfo, NetworkInfo, Resource, TaskId, TaskInfo, TaskState, TaskStatus, framework_info,
    network_info, resource, task_status,
};
use brine_proto::{duration, recordio};
use bytes::Bytes;
use http::StatusCode;
use tokio::sync::{Notify, mpsc};

use super::cgroups::{CgroupPaths, Cgroups};
use super::config::{AgentConfig, AgentResources};
use super::gc::GarbageCollector;
use super::status_updates::{Received, StatusUpdates, StreamKey};
use super::{AgentError, AgentEvent, ExecutorSnapshot, fetcher, launcher, sandbox};

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
    id: u64,
    tx: mpsc::UnboundedSender<StreamItem>,
    content_type: ContentType,
}

pub(crate) struct TaskEntry {
    info: TaskInfo,
    state: TaskState,
}

/// How a terminated executor's tasks end (Mesos's `ContainerTermination`).
#[derive(Clone)]
struct Termination {
    state: TaskState,
    reason: task_status::Reason,
    message: String,
}

pub(crate) struct Executor {
    info: ExecutorInfo,
    container_id: String,
    sandbox: PathBuf,
    pid: Option<u32>,
    state: ExecutorState,
    conn: Option<Conn>,
    queued: Vec<TaskInfo>,
    launched: BTreeMap<String, TaskEntry>,
    /// Tasks that ended, newest last, at most [`MAX_COMPLETED_TASKS_PER_EXECUTOR`]
    /// (Mesos's `Executor::completedTasks`). Keeping them out of `launched` keeps
    /// every per-update pass over `launched` proportional to the live tasks.
    completed: std::collections::VecDeque<TaskEntry>,
    ever_sent_task: bool,
    pending_termination: Option<Termination>,
    cgroup: Option<CgroupPaths>,
}

/// Mesos's `MAX_COMPLETED_TASKS_PER_EXECUTOR` (`src/slave/constants.hpp`).
const MAX_COMPLETED_TASKS_PER_EXECUTOR: usize = 200;

impl Executor {
    fn allocation(&self) -> AgentResources {
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

    fn has_task(&self, task_id: &str) -> bool {
        self.launched.contains_key(task_id)
            || self.queued.iter().any(|t| t.task_id.value == task_id)
            || self
                .completed
                .iter()
                .any(|t| t.info.task_id.value == task_id)
    }

    /// Sends an event on the SUBSCRIBE stream; dropped with a warning when there is
    /// none (as Mesos does).
    fn send(&self, event: &Event) {
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

    fn snapshot(&self, framework_id: &str) -> ExecutorSnapshot {
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
    info: FrameworkInfo,
    executors: BTreeMap<String, Executor>,
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
    frameworks: BTreeMap<String, Framework>,
    updates: StatusUpdates,
    pub metrics: Metrics,
    completed: VecDeque<ExecutorSnapshot>,
    next_conn: u64,
}

impl State {
    /// The executor `eid` of framework `fid`, for the calls the agent's owner makes by
    /// id; the error names whichever of the two is unknown.
    fn executor_mut(
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

const MAX_COMPLETED_EXECUTORS: usize = 150;

/// What an accepted executor call turns into.
pub(crate) enum Reply {
    Accepted,
    /// The events, their encoding, and a guard the response body holds: it drops when
    /// the connection goes away.
    Stream(
        mpsc::UnboundedReceiver<StreamItem>,
        ContentType,
        tokio::sync::oneshot::Sender<()>,
    ),
}

pub(crate) struct Inner {
    pub config: AgentConfig,
    pub agent_id: AgentId,
    pub info: AgentInfo,
    pub cgroups: Cgroups,
    pub started: Instant,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<AgentEvent>,
    exited: Notify,
    pub gc: Arc<GarbageCollector>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn task_state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::TaskStaging => "staging",
        TaskState::TaskStarting => "starting",
        TaskState::TaskRunning => "running",
        TaskState::TaskKilling => "killing",
        TaskState::TaskFinished => "finished",
        TaskState::TaskFailed => "failed",
        TaskState::TaskKilled => "killed",
        TaskState::TaskError => "error",
        TaskState::TaskLost => "lost",
        TaskState::TaskDropped => "dropped",
        TaskState::TaskUnreachable => "unreachable",
        TaskState::TaskGone => "gone",
        TaskState::TaskGoneByOperator => "gone_by_operator",
        TaskState::TaskUnknown => "unknown",
    }
}

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

fn partition_aware(info: &FrameworkInfo) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type() == framework_info::capability::Type::PartitionAware)
}

impl Inner {
    pub fn new(
        config: AgentConfig,
        agent_id: AgentId,
        info: AgentInfo,
        cgroups: Cgroups,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> Self {
        let gc = Arc::new(GarbageCollector::new(
            config.gc_delay,
            config.gc_disk_headroom,
        ));
        Inner {
            config,
            agent_id,
            info,
            cgroups,
            started: Instant::now(),
            state: Mutex::new(State::default()),
            events,
            exited: Notify::new(),
            gc,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough data; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, event: AgentEvent) {
        if self.events.send(event).is_err() {
            tracing::trace!("agent events receiver is gone");
        }
    }

    fn grace_period(&self, info: &ExecutorInfo) -> Duration {
        info.shutdown_grace_period
            .as_ref()
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.executor_shutdown_grace_period)
    }

    /// Creates a status update generated by the agent (`SOURCE_AGENT`, fresh uuid).
    fn agent_status(
        &self,
        task_id: &TaskId,
        state: TaskState,
        reason: task_status::Reason,
        message: &str,
        executor_id: Option<&ExecutorId>,
    ) -> TaskStatus {
        TaskStatus {
            task_id: task_id.clone(),
            state: state as i32,
            message: Some(message.to_owned()),
            agent_id: Some(self.agent_id.clone()),
            timestamp: Some(now()),
            executor_id: executor_id.cloned(),
            source: Some(task_status::Source::Agent as i32),
            reason: Some(reason as i32),
            uuid: Some(Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes())),
            ..Default::default()
        }
    }

    // ---------------------------------------------------------------- snapshots

    pub fn executors(&self) -> Vec<ExecutorSnapshot> {
        let st = self.lock();
        st.frameworks
            .iter()
            .flat_map(|(fid, fw)| fw.executors.values().map(move |e| e.snapshot(fid)))
            .collect()
    }

    pub fn completed_executors(&self) -> Vec<ExecutorSnapshot> {
        self.lock().completed.iter().cloned().collect()
    }

    pub fn frameworks_json(&self) -> Vec<(FrameworkInfo, Vec<ExecutorSnapshot>)> {
        let st = self.lock();
        st.frameworks
            .iter()
            .map(|(fid, fw)| {
                (
                    fw.info.clone(),
                    fw.executors.values().map(|e| e.snapshot(fid)).collect(),
                )
            })
            .collect()
    }

    pub fn pending_updates(&self) -> usize {
        self.lock().updates.pending_count()
    }

    // ---------------------------------------------------------------- launch

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
            let (work_dir, agent) = (&self.config.work_dir, &self.agent_id.value);
            self.gc
                .unschedule(&sandbox::executor_path(work_dir, agent, &fid.value, &eid));
            self.gc
                .unschedule(&sandbox::framework_path(work_dir, agent, &fid.value));
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

    fn resize(&self, exec: &Executor) {
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

    /// Sandbox, fetch, cgroup, spawn, wait: the life of one executor process.
    async fn run_executor(self: Arc<Self>, fid: String, eid: String, cid: String) {
        let Some((info, sandbox_dir)) =
            self.with_executor(&fid, &eid, &cid, |e| (e.info.clone(), e.sandbox.clone()))
        else {
            return;
        };
        let created = {
            let _no_gc = self.gc.hold().await;
            sandbox::create(&sandbox_dir)
        };
        if let Err(e) = created {
            return self
                .fail_launch(
                    &fid,
                    &eid,
                    &cid,
                    format!("Failed to create sandbox '{}': {e}", sandbox_dir.display()),
                )
                .await;
        }
        let command = info.command.clone().unwrap_or_default();
        match fetcher::fetch_all(&command.uris, &sandbox_dir, &self.config.fetcher_cache_dir).await
        {
            Ok(_) => self.lock().metrics.fetches_succeeded += 1,
            Err(e) => {
                self.lock().metrics.fetches_failed += 1;
                return self.fail_launch(&fid, &eid, &cid, e.to_string()).await;
            }
        }
        let checkpoint = self
            .lock()
            .frameworks
            .get(&fid)
            .map(|f| f.info.checkpoint())
            .unwrap_or(false);
        if self.with_executor(&fid, &eid, &cid, |e| e.state == ExecutorState::Terminating)
            != Some(false)
        {
            // Shut down or timed out while fetching.
            return self.on_exit(&fid, &eid, &cid, None).await;
        }
        let cgroup = match self.cgroups.create(&cid) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                tracing::warn!(container = %cid, error = %e, "cannot create the executor's cgroup; running it unenforced");
                None
            }
        };
        let procs = cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default();
        if let Some(paths) = &cgroup {
            self.with_executor(&fid, &eid, &cid, |e| {
                let a = e.allocation();
                self.cgroups.update(paths, a.cpus, a.mem_mb);
            });
        }
        let environment = self.environment(&info, &sandbox_dir, checkpoint);
        let spawned = launcher::build_command(&command, &sandbox_dir, &environment, &procs)
            .and_then(|mut cmd| cmd.spawn());
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                if let Some(paths) = &cgroup {
                    self.cgroups.destroy(paths).await;
                }
                return self
                    .fail_launch(
                        &fid,
                        &eid,
                        &cid,
                        format!("Failed to spawn the executor: {e}"),
                    )
                    .await;
            }
        };
        let pid = child.id();
        tracing::info!(executor = %eid, container = %cid, pid, sandbox = %sandbox_dir.display(), "executor process started");
        let still_wanted = self.with_executor(&fid, &eid, &cid, |e| {
            e.pid = pid;
            e.cgroup = cgroup.clone();
            e.state != ExecutorState::Terminating
        });
        if still_wanted != Some(true)
            && let Some(pid) = pid
        {
            launcher::kill_group(pid);
        }
        let status = match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                tracing::info!(executor = %eid, container = %cid, %status, "executor exited");
                Some(status.into_raw())
            }
            Err(e) => {
                tracing::error!(executor = %eid, error = %e, "cannot wait for the executor");
                None
            }
        };
        // Like Mesos's launcher destroy: nothing of the container outlives it.
        if let Some(pid) = pid {
            launcher::kill_group(pid);
        }
        if let Some(paths) = &cgroup {
            self.cgroups.destroy(paths).await;
        }
        self.on_exit(&fid, &eid, &cid, status).await;
    }

    fn with_executor<R>(
        &self,
        fid: &str,
        eid: &str,
        cid: &str,
        f: impl FnOnce(&mut Executor) -> R,
    ) -> Option<R> {
        let mut st = self.lock();
        st.frameworks
            .get_mut(fid)
            .and_then(|fw| fw.executors.get_mut(eid))
            .filter(|e| e.container_id == cid)
            .map(f)
    }

    async fn fail_launch(self: &Arc<Self>, fid: &str, eid: &str, cid: &str, reason: String) {
        tracing::error!(executor = %eid, container = %cid, "container failed to start: {reason}");
        self.lock().metrics.container_launch_errors += 1;
        self.with_executor(fid, eid, cid, |e| {
            e.pending_termination = Some(Termination {
                state: TaskState::TaskFailed,
                reason: task_status::Reason::ContainerLaunchFailed,
                message: format!("Failed to launch container: {reason}"),
            });
        });
        self.on_exit(fid, eid, cid, None).await;
    }

    /// The executor's environment, as `executorEnvironment()` and the containerizer
    /// build it: from scratch, never the agent's own.
    fn environment(
        &self,
        info: &ExecutorInfo,
        sandbox: &std::path::Path,
        checkpoint: bool,
    ) -> BTreeMap<String, String> {
        let ip = self.config.listen.ip().to_string();
        let endpoint = format!("{ip}:{}", self.info.port.unwrap_or(0));
        let dir = sandbox.display().to_string();
        let mut env = BTreeMap::new();
        env.insert("LIBPROCESS_IP".to_owned(), ip.clone());
        env.extend(self.config.executor_environment.clone());
        env.insert("LIBPROCESS_PORT".to_owned(), "0".to_owned());
        env.insert(
            "MESOS_FRAMEWORK_ID".to_owned(),
            info.framework_id
                .as_ref()
                .map(|f| f.value.clone())
                .unwrap_or_default(),
        );
        env.insert(
            "MESOS_EXECUTOR_ID".to_owned(),
            info.executor_id.value.clone(),
        );
        env.insert("MESOS_DIRECTORY".to_owned(), dir.clone());
        env.insert("MESOS_SANDBOX".to_owned(), dir);
        env.insert("MESOS_SLAVE_ID".to_owned(), self.agent_id.value.clone());
        env.insert("MESOS_SLAVE_PID".to_owned(), format!("slave(1)@{endpoint}"));
        env.insert("MESOS_AGENT_ENDPOINT".to_owned(), endpoint);
        env.insert(
            "MESOS_CHECKPOINT".to_owned(),
            if checkpoint { "1" } else { "0" }.to_owned(),
        );
        env.insert("MESOS_HTTP_COMMAND_EXECUTOR".to_owned(), "0".to_owned());
        env.insert(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".to_owned(),
            duration::format(self.grace_period(info)),
        );
        if checkpoint {
            env.insert(
                "MESOS_RECOVERY_TIMEOUT".to_owned(),
                duration::format(self.config.recovery_timeout),
            );
            env.insert(
                "MESOS_SUBSCRIPTION_BACKOFF_MAX".to_owned(),
                duration::format(self.config.executor_reregistration_timeout),
            );
        }
        if let Some(environment) = info.command.as_ref().and_then(|c| c.environment.as_ref()) {
            for variable in &environment.variables {
                env.insert(
                    variable.name.clone(),
                    variable.value.clone().unwrap_or_default(),
                );
            }
        }
        env.entry("PATH".to_owned())
            .or_insert_with(|| launcher::CONTAINERIZER_DEFAULT_PATH.to_owned());
        env
    }

    // ---------------------------------------------------------------- termination

    /// The executor is gone: its non-terminal tasks become terminal (TASK_FAILED /
    /// REASON_EXECUTOR_TERMINATED / "Executor terminated" unless a pending termination
    /// says otherwise), and upstream hears `ExecutorTerminated`.
    async fn on_exit(self: &Arc<Self>, fid: &str, eid: &str, cid: &str, status: Option<i32>) {
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
    fn shutdown_locked(self: &Arc<Self>, exec: &mut Executor, fid: &str) {
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

    // ---------------------------------------------------------------- upstream calls

    pub fn kill_task(self: &Arc<Self>, fid: &FrameworkId, task_id: &TaskId) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(fw) = st.frameworks.get_mut(&fid.value) else {
            tracing::warn!(framework = %fid.value, task = %task_id.value, "ignoring kill of a task of an unknown framework");
            return;
        };
        let aware = partition_aware(&fw.info);
        let Some(exec) = fw
            .executors
            .values_mut()
            .find(|e| e.has_task(&task_id.value))
        else {
            let state = if aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            let status = self.agent_status(
                task_id,
                state,
                task_status::Reason::ExecutorTerminated,
                "Cannot find executor",
                None,
            );
            self.process_update(st, &fid.value, status, false);
            return;
        };
        match exec.state {
            ExecutorState::Registering | ExecutorState::Running
                if exec.queued.iter().any(|t| t.task_id == *task_id) =>
            {
                let status = self.agent_status(
                    task_id,
                    TaskState::TaskKilled,
                    task_status::Reason::TaskKilledDuringLaunch,
                    "Killed before delivery to the executor",
                    Some(&exec.info.executor_id),
                );
                let eid = exec.info.executor_id.value.clone();
                self.process_update(st, &fid.value, status, false);
                if let Some(exec) = st
                    .frameworks
                    .get_mut(&fid.value)
                    .and_then(|f| f.executors.get_mut(&eid))
                    && !exec.ever_sent_task
                    && exec.queued.is_empty()
                {
                    self.shutdown_locked(exec, &fid.value);
                }
            }
            ExecutorState::Running => {
                let live = exec
                    .launched
                    .get(&task_id.value)
                    .is_some_and(|t| !t.state.is_terminal());
                if live {
                    exec.send(&Event {
                        r#type: Some(event::Type::Kill as i32),
                        kill: Some(event::Kill {
                            task_id: task_id.clone(),
                            kill_policy: None,
                        }),
                        ..Default::default()
                    });
                }
            }
            _ => {
                tracing::warn!(task = %task_id.value, state = ?exec.state, "ignoring kill: executor is terminating")
            }
        }
    }

    pub fn send_message(
        &self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        data: Bytes,
    ) -> Result<(), AgentError> {
        let mut st = self.lock();
        let exec = st.executor_mut(fid, eid)?;
        if exec.state != ExecutorState::Running {
            tracing::warn!(executor = %eid.value, state = ?exec.state, "dropping framework message: executor is not running");
            return Ok(());
        }
        exec.send(&Event {
            r#type: Some(event::Type::Message as i32),
            message: Some(event::Message { data }),
            ..Default::default()
        });
        Ok(())
    }

    pub fn disconnect(&self, fid: &FrameworkId, eid: &ExecutorId) -> Result<(), AgentError> {
        let mut st = self.lock();
        let exec = st.executor_mut(fid, eid)?;
        let conn = exec
            .conn
            .take()
            .ok_or_else(|| AgentError::NotConnected(eid.value.clone()))?;
        // An error item makes the server abort the connection mid-body, as a network
        // failure would, instead of ending the chunked body cleanly.
        let _ = conn.tx.send(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "disconnected by the agent",
        )));
        tracing::info!(executor = %eid.value, "dropped the executor's SUBSCRIBE connection");
        Ok(())
    }

    pub fn acknowledge(
        self: &Arc<Self>,
        fid: &FrameworkId,
        task_id: &TaskId,
        uuid: &[u8],
    ) -> Result<(), AgentError> {
        let mut st = self.lock();
        let key: StreamKey = (fid.value.clone(), task_id.value.clone());
        let next = st.updates.acknowledge(&key, uuid)?;
        if let Some(next) = next {
            self.forward_head(&mut st, &fid.value, next);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- status updates

    /// Takes a status update (from the executor when `from_executor`, else generated
    /// here) the way `Slave::statusUpdate` does: it updates the task's state and the
    /// executor's cgroup, then the update manager queues it and forwards the head.
    /// Returns the executor that owns the task, if any (to acknowledge to).
    fn process_update(
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
        match st.updates.update(key, status) {
            Received::Duplicate => {
                tracing::warn!(framework = fid, "ignoring duplicate task status update")
            }
            Received::Queued(Some(head)) => self.forward_head(st, fid, head),
            Received::Queued(None) => {}
        }
        owner_id
    }

    /// Sends the head update upstream and arms its re-send timer.
    fn forward_head(self: &Arc<Self>, st: &mut State, fid: &str, head: TaskStatus) {
        let key: StreamKey = (fid.to_owned(), head.task_id.value.clone());
        let uuid = head.uuid.clone().unwrap_or_default();
        self.emit(AgentEvent::StatusUpdate {
            framework_id: FrameworkId {
                value: fid.to_owned(),
            },
            status: head,
        });
        let weak = Arc::downgrade(self);
        let mut interval = self.config.status_update_retry_interval;
        let max = self.config.status_update_retry_interval_max;
        let timer_key = key.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
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
                interval = (interval * 2).min(max);
            }
        });
        st.updates.set_retry(&key, handle);
    }

    // ---------------------------------------------------------------- executor API

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

    pub fn metrics(&self) -> serde_json::Map<String, serde_json::Value> {
        let st = self.lock();
        let mut counts = [0u64; 3];
        let mut used = AgentResources::default();
        let mut live_tasks: BTreeMap<&'static str, u64> = BTreeMap::new();
        for fw in st.frameworks.values() {
            for e in fw.executors.values() {
                match e.state {
                    ExecutorState::Registering => counts[0] += 1,
                    ExecutorState::Running => counts[1] += 1,
                    _ => counts[2] += 1,
                }
                let a = e.allocation();
                used.cpus += a.cpus;
                used.mem_mb += a.mem_mb;
                used.disk_mb += a.disk_mb;
                for t in e.launched.values().filter(|t| !t.state.is_terminal()) {
                    *live_tasks.entry(task_state_name(t.state)).or_default() += 1;
                }
                *live_tasks.entry("staging").or_default() += e.queued.len() as u64;
            }
        }
        let total = self.config.resources;
        let pct = |u: f64, t: f64| if t > 0.0 { u / t } else { 0.0 };
        let m = &st.metrics;
        let mut out = serde_json::Map::new();
        let mut put = |k: &str, v: f64| {
            out.insert(k.to_owned(), serde_json::json!(v));
        };
        put("slave/uptime_secs", self.started.elapsed().as_secs_f64());
        let gc = *self.gc.counts().borrow();
        put("gc/path_removals_succeeded", gc.succeeded as f64);
        put("gc/path_removals_failed", gc.failed as f64);
        put("gc/path_removals_pending", self.gc.pending() as f64);
        put("slave/registered", 1.0);
        put("slave/cpus_total", total.cpus);
        put("slave/cpus_used", used.cpus);
        put("slave/cpus_percent", pct(used.cpus, total.cpus));
        put("slave/mem_total", total.mem_mb);
        put("slave/mem_used", used.mem_mb);
        put("slave/mem_percent", pct(used.mem_mb, total.mem_mb));
        put("slave/disk_total", total.disk_mb);
        put("slave/disk_used", used.disk_mb);
        put("slave/disk_percent", pct(used.disk_mb, total.disk_mb));
        put("slave/executors_registering", counts[0] as f64);
        put("slave/executors_running", counts[1] as f64);
        put("slave/executors_terminating", counts[2] as f64);
        put("slave/executors_terminated", m.executors_terminated as f64);
        put(
            "slave/container_launch_errors",
            m.container_launch_errors as f64,
        );
        put("slave/frameworks_active", st.frameworks.len() as f64);
        put("slave/valid_status_updates", m.valid_status_updates as f64);
        put(
            "slave/invalid_status_updates",
            m.invalid_status_updates as f64,
        );
        put(
            "slave/valid_framework_messages",
            m.valid_framework_messages as f64,
        );
        put(
            "slave/invalid_framework_messages",
            m.invalid_framework_messages as f64,
        );
        for state in ["staging", "starting", "running", "killing"] {
            put(
                &format!("slave/tasks_{state}"),
                live_tasks.get(state).copied().unwrap_or(0) as f64,
            );
        }
        for state in [
            "finished", "failed", "killed", "lost", "error", "gone", "dropped",
        ] {
            put(
                &format!("slave/tasks_{state}"),
                m.tasks.get(state).copied().unwrap_or(0) as f64,
            );
        }
        put(
            "containerizer/fetcher/task_fetches_succeeded",
            m.fetches_succeeded as f64,
        );
        put(
            "containerizer/fetcher/task_fetches_failed",
            m.fetches_failed as f64,
        );
        out
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
