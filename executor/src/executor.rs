//! The executor's event loop: one task owns all state (task table, unacknowledged
//! updates, work queue, link state) and reacts to inputs — agent events, finished
//! tasks, signals, the closure lane — and timers (heartbeat, idle timeout,
//! re-subscription, shutdown deadline, lane reconnection and progress). Nothing slow
//! runs on it: wasm runs on blocking threads ([`crate::pool`]), HTTP calls on two
//! sender tasks (one for UPDATEs, in order; one for heartbeat MESSAGEs, latest first),
//! the event stream on a reader task, the lane on a reader and a writer task
//! ([`crate::lane`]). Leases and lane closures: `closures.rs`.

mod closures;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brine_proto::mesos::v1::executor::{Call, Event, call, event};
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::mesos::v1::{ExecutorId, ExecutorInfo, FrameworkId, TaskInfo, TaskState};
use brine_proto::payload::{
    ErrorKind, ExecutorConfig, LaneUse, Payload, SchedulerMessage, TaskFailure, TaskOutcome,
    TaskSpec,
};
use bytes::Bytes;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::agent::{AgentLink, LinkError};
use crate::backoff::Reconnect;
use crate::env::MesosEnv;
use crate::heartbeat::Heartbeats;
use crate::lane::{LaneEvent, LaneLink};
use crate::leases::{End, Leases};
use crate::pool::{self, Job, Placement, Queued, TaskDone, WorkQueue};
use crate::runtime::{Dataset, Runtime, RuntimeConfig, RuntimeError, monotonic_ns};
use crate::tasks::{Phase, Resources, TaskTable, bench_labels, bench_timestamps, sanitize_task_id};
use crate::updates::{StatusSpec, Unacknowledged};

/// How long to wait before re-sending SUBSCRIBE when the agent answered the first one
/// with an error status (the reference default executor retries every second).
pub const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);

/// Most inputs handled in one pass of the event loop (between two looks at the timers).
const MAX_INPUTS_PER_PASS: usize = 256;

/// The part of the shutdown grace period kept in reserve for exiting: at most 1 s, at
/// most a fifth of the period.
pub fn shutdown_margin(grace: Duration) -> Duration {
    (grace / 5).min(Duration::from_secs(1))
}

/// Why the executor could not run (the process exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// `ExecutorInfo.data` is missing or is not a usable `ExecutorConfig`.
    #[error("bad executor configuration: {0}")]
    Config(String),
    /// The wasm runtime could not be created.
    #[error("cannot create the wasm runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// The agent could not be reached for the first subscription.
    #[error("cannot subscribe to the agent: {0}")]
    AgentUnreachable(String),
}

impl ExecutorError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecutorError::Config(_) | ExecutorError::Runtime(_) => 2,
            ExecutorError::AgentUnreachable(_) => 3,
        }
    }
}

/// How the executor ended normally (exit code 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Why it shut down.
    pub reason: String,
    /// Updates never acknowledged (the agent will settle their tasks).
    pub unacknowledged: usize,
}

enum Input {
    Connected {
        sub: u64,
    },
    Event {
        sub: u64,
        event: Box<Event>,
        /// `monotonic_ns()` right after the event was decoded (benchmark opt-in only).
        decoded_ns: Option<u64>,
    },
    /// The subscription attempt or the stream `sub` ended.
    Disconnected {
        sub: u64,
        reason: String,
        /// The agent answered SUBSCRIBE with an HTTP error (it is there).
        answered: bool,
    },
    TaskDone(TaskDone),
    /// A lane closure (by its local number, see `Leases::start`) ended.
    ClosureDone {
        local: u64,
        done: TaskDone,
    },
    Lane(LaneEvent),
    Terminate(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Subscribing,
    Subscribed,
    /// Waiting to try again.
    Waiting,
    /// No more attempts will be made.
    Lost,
}

/// The shared dataset, opened once; retried while it is missing.
enum DatasetSlot {
    None,
    Ready(Arc<Dataset>),
    Missing(PathBuf),
}

impl DatasetSlot {
    fn open(path: Option<PathBuf>) -> Self {
        let Some(path) = path else {
            return Self::None;
        };
        let mut slot = Self::Missing(path);
        match slot.get() {
            Ok(_) => {}
            Err(message) => tracing::error!("{message}; tasks fail until it appears"),
        }
        slot
    }

    fn get(&mut self) -> Result<Option<Arc<Dataset>>, String> {
        match self {
            Self::None => Ok(None),
            Self::Ready(d) => Ok(Some(Arc::clone(d))),
            Self::Missing(path) => match Dataset::open(&*path) {
                Ok(d) => {
                    tracing::info!(path = %path.display(), bytes = d.len(), "dataset opened");
                    *self = Self::Ready(Arc::clone(&d));
                    Ok(Some(d))
                }
                Err(e) => Err(format!(
                    "dataset {} is not available: {e} (it is fetched into the sandbox \
                     through the ExecutorInfo's CommandInfo URIs)",
                    path.display()
                )),
            },
        }
    }
}

/// What the executor knows once subscribed.
struct Setup {
    config: ExecutorConfig,
    runtime: Arc<Runtime>,
    dataset: DatasetSlot,
}

impl Setup {
    fn new(env: &MesosEnv, info: &ExecutorInfo) -> Result<Self, ExecutorError> {
        let config = parse_config(info)?;
        let cache_dir = config
            .module_cache_dir
            .as_ref()
            .map_or_else(|| env.sandbox.join("module-cache"), PathBuf::from);
        let runtime = Runtime::new(RuntimeConfig::for_executor(&config, Some(cache_dir)))?;
        let dataset = DatasetSlot::open(config.dataset.as_ref().map(|d| env.sandbox.join(&d.path)));
        Ok(Self {
            config,
            runtime: Arc::new(runtime),
            dataset,
        })
    }
}

/// Reads and checks the `ExecutorConfig` in `ExecutorInfo.data`.
pub fn parse_config(info: &ExecutorInfo) -> Result<ExecutorConfig, ExecutorError> {
    let data = info
        .data
        .as_ref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ExecutorError::Config(
                "ExecutorInfo.data is empty; it must hold an ExecutorConfig \
             (brine_proto::payload::ExecutorConfig, postcard with a version byte)"
                    .into(),
            )
        })?;
    let config = ExecutorConfig::decode(data).map_err(|e| {
        ExecutorError::Config(format!("ExecutorInfo.data is not an ExecutorConfig: {e}"))
    })?;
    if config.heartbeat_interval.is_zero() {
        return Err(ExecutorError::Config(
            "ExecutorConfig.heartbeat_interval must be greater than zero".into(),
        ));
    }
    if let Some(dataset) = &config.dataset
        && dataset.path.is_empty()
    {
        return Err(ExecutorError::Config(
            "ExecutorConfig.dataset.path is empty".into(),
        ));
    }
    Ok(config)
}

/// The Mesos reason that best describes a failure kind (`None`: no reason fits).
pub fn reason_for(kind: ErrorKind) -> Option<Reason> {
    match kind {
        ErrorKind::InvalidTaskSpec
        | ErrorKind::ModuleInvalid
        | ErrorKind::AbiMismatch
        | ErrorKind::ExportMissing => Some(Reason::TaskInvalid),
        ErrorKind::MemoryLimit => Some(Reason::ContainerLimitationMemory),
        ErrorKind::DeadlineExceeded => Some(Reason::MaxCompletionTimeReached),
        ErrorKind::ModuleMissing
        | ErrorKind::ArgumentDecode
        | ErrorKind::ResultEncode
        | ErrorKind::GuestError
        | ErrorKind::GuestPanic
        | ErrorKind::Trap
        | ErrorKind::Killed
        | ErrorKind::Internal => None,
    }
}

/// The terminal update for a task's outcome.
pub fn terminal_status(task_id: &str, outcome: Result<Vec<u8>, TaskFailure>) -> StatusSpec {
    match outcome {
        Ok(result) => {
            let mut s = StatusSpec::new(task_id, TaskState::TaskFinished);
            s.data = Some(TaskOutcome::Success { result }.encode());
            s
        }
        Err(failure) => {
            let state = if failure.kind == ErrorKind::Killed {
                TaskState::TaskKilled
            } else {
                TaskState::TaskFailed
            };
            failure_status(task_id, state, failure)
        }
    }
}

/// A task's (or lane closure's) memory limit: whole bytes of its `mem` (MB), a fraction
/// of a byte dropped; none (the runtime's cap) without `mem`.
fn memory_limit(mem_mb: f64) -> Option<u64> {
    (mem_mb > 0.0).then_some((mem_mb * 1024.0 * 1024.0) as u64)
}

/// The runtime's instance slots as a count.
fn instance_count(max_instances: u32) -> usize {
    usize::try_from(max_instances).unwrap_or(usize::MAX)
}

fn failure_status(task_id: &str, state: TaskState, failure: TaskFailure) -> StatusSpec {
    let mut s = StatusSpec::new(task_id, state);
    s.message = Some(failure.to_string());
    s.reason = reason_for(failure.kind);
    s.data = Some(TaskOutcome::Failure(failure).encode());
    s
}

/// Runs the executor until it shuts down.
pub async fn run(env: MesosEnv) -> Result<Ended, ExecutorError> {
    let link = AgentLink::new(
        env.agent_endpoint.clone(),
        env.authentication_token.as_deref(),
    )
    .map_err(|e| ExecutorError::AgentUnreachable(e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel();
    spawn_signal_listener(tx.clone());
    let generation = Arc::new(AtomicU64::new(u64::MAX));
    let (updates_out, updates_rx) = mpsc::unbounded_channel();
    let (messages_out, messages_rx) = mpsc::unbounded_channel();
    tokio::spawn(send_calls(
        link.clone(),
        updates_rx,
        Arc::clone(&generation),
        false,
    ));
    tokio::spawn(send_calls(
        link.clone(),
        messages_rx,
        Arc::clone(&generation),
        true,
    ));
    tracing::info!(
        agent = %env.agent_endpoint,
        framework_id = %env.framework_id,
        executor_id = %env.executor_id,
        sandbox = %env.sandbox.display(),
        checkpoint = env.checkpoint.is_some(),
        "brine-executor {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let lane = LaneLink::new(
        env.framework_id.clone(),
        env.executor_id.clone(),
        tx.clone(),
        Input::Lane,
    );
    let mut executor = Executor {
        env,
        link,
        tx,
        lane,
        leases: Leases::default(),
        next_progress: None,
        updates_out,
        messages_out,
        generation,
        sub: 0,
        link_state: LinkState::Subscribing,
        subscribe_seq: 0,
        connected_once: false,
        reconnect: None,
        retry_at: None,
        setup: None,
        agent_id: None,
        tasks: TaskTable::default(),
        updates: Unacknowledged::new(),
        queue: WorkQueue::default(),
        heartbeats: Heartbeats::new(),
        next_heartbeat: None,
        idle_since: None,
        draining: false,
        shutdown: None,
        running_due: VecDeque::new(),
    };
    executor.start_subscription();
    executor.run(rx).await
}

struct Shutdown {
    reason: String,
    deadline: Instant,
}

struct Executor {
    env: MesosEnv,
    link: AgentLink,
    tx: UnboundedSender<Input>,
    /// The closure lane's connection.
    lane: LaneLink<Input>,
    /// Leases held, lane closures queued and running.
    leases: Leases,
    /// When progress of running lane closures is next looked at (`None`: none runs).
    next_progress: Option<Instant>,
    updates_out: UnboundedSender<(u64, Call)>,
    messages_out: UnboundedSender<(u64, Call)>,
    /// The subscription whose calls may be sent (`u64::MAX`: none).
    generation: Arc<AtomicU64>,
    /// The latest subscription attempt.
    sub: u64,
    link_state: LinkState,
    /// `updates.last_seq()` when the latest SUBSCRIBE was built.
    subscribe_seq: u64,
    connected_once: bool,
    reconnect: Option<Reconnect>,
    retry_at: Option<Instant>,
    setup: Option<Setup>,
    agent_id: Option<String>,
    tasks: TaskTable,
    updates: Unacknowledged,
    queue: WorkQueue,
    heartbeats: Heartbeats,
    next_heartbeat: Option<Instant>,
    idle_since: Option<Instant>,
    draining: bool,
    shutdown: Option<Shutdown>,
    /// Started tasks whose `TASK_RUNNING` waits for `running_update_delay`, in the
    /// order they fall due (one delay for all, so starting order).
    running_due: VecDeque<(Instant, String)>,
}

impl Executor {
    async fn run(&mut self, mut rx: UnboundedReceiver<Input>) -> Result<Ended, ExecutorError> {
        loop {
            let now = Instant::now();
            self.on_timers(now);
            if let Some(ended) = self.finished(now) {
                // The last Done frames (closures killed by SHUTDOWN) go out first,
                // within the exit's margin.
                let margin = shutdown_margin(self.env.shutdown_grace_period);
                self.lane.close(closures::LANE_FLUSH.min(margin / 2)).await;
                return Ok(ended);
            }
            let wake = self.next_wake(now);
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => {
                        self.handle(input)?;
                        // What else is already waiting, in order, before the timers: a
                        // burst (lane closures ending by the thousand a second) takes one
                        // pass, and its Done frames leave in one write.
                        for _ in 1..MAX_INPUTS_PER_PASS {
                            match rx.try_recv() {
                                Ok(input) => self.handle(input)?,
                                Err(_) => break,
                            }
                        }
                    }
                    None => return Err(ExecutorError::AgentUnreachable("event loop closed".into())),
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn handle(&mut self, input: Input) -> Result<(), ExecutorError> {
        match input {
            Input::Connected { sub } if sub == self.sub => self.on_connected(),
            Input::Event {
                sub,
                event,
                decoded_ns,
            } if sub == self.sub => self.on_event(*event, decoded_ns)?,
            Input::Disconnected {
                sub,
                reason,
                answered,
            } if sub == self.sub => self.on_disconnected(reason, answered)?,
            Input::Connected { .. } | Input::Event { .. } | Input::Disconnected { .. } => {
                tracing::debug!("ignoring input from a stale subscription");
            }
            Input::TaskDone(done) => self.on_task_done(done),
            Input::ClosureDone { local, done } => self.on_closure_done(local, done),
            Input::Lane(event) => self.on_lane_event(event),
            Input::Terminate(signal) => self.begin_shutdown(format!("received {signal}")),
        }
        Ok(())
    }

    // ----- the link -----

    fn start_subscription(&mut self) {
        self.sub += 1;
        self.link_state = LinkState::Subscribing;
        self.retry_at = None;
        let call = Call {
            executor_id: ExecutorId {
                value: self.env.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.env.framework_id.clone(),
            },
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                unacknowledged_tasks: self.tasks.unacknowledged(),
                unacknowledged_updates: self.updates.all(),
            }),
            ..Default::default()
        };
        self.subscribe_seq = self.updates.last_seq();
        let subscribe = &call.subscribe;
        tracing::debug!(
            attempt = self.reconnect.as_ref().map_or(1, |r| r.attempts() + 1),
            unacknowledged_tasks = subscribe
                .as_ref()
                .map_or(0, |s| s.unacknowledged_tasks.len()),
            unacknowledged_updates = subscribe
                .as_ref()
                .map_or(0, |s| s.unacknowledged_updates.len()),
            "subscribing"
        );
        tokio::spawn(read_subscription(
            self.link.clone(),
            call,
            self.sub,
            self.tx.clone(),
        ));
    }

    fn on_connected(&mut self) {
        self.link_state = LinkState::Subscribed;
        self.generation.store(self.sub, Ordering::SeqCst);
        if self.connected_once {
            tracing::info!(
                unacknowledged_updates = self.updates.len(),
                unacknowledged_tasks = self.tasks.unacknowledged().len(),
                "re-subscribed to the agent"
            );
        }
        self.connected_once = true;
        self.reconnect = None;
        // Updates recorded while SUBSCRIBE was on its way were not in it.
        for update in self.updates.after(self.subscribe_seq) {
            self.enqueue_update(update);
        }
    }

    fn on_disconnected(&mut self, reason: String, answered: bool) -> Result<(), ExecutorError> {
        let was_subscribed = self.link_state == LinkState::Subscribed;
        self.generation.store(u64::MAX, Ordering::SeqCst);
        self.link_state = LinkState::Waiting;
        let now = Instant::now();
        if !self.connected_once {
            if answered {
                tracing::warn!("SUBSCRIBE refused: {reason}; retrying in {SUBSCRIBE_RETRY:?}");
                self.retry_at = Some(now + SUBSCRIBE_RETRY);
                return Ok(());
            }
            return Err(ExecutorError::AgentUnreachable(reason));
        }
        let Some(recovery) = self.env.checkpoint else {
            tracing::warn!(
                "disconnected from the agent: {reason}; shutting down (the framework does not checkpoint)"
            );
            self.link_state = LinkState::Lost;
            self.begin_shutdown(format!("disconnected from the agent: {reason}"));
            return Ok(());
        };
        if was_subscribed {
            tracing::warn!(
                recovery_timeout = ?recovery.recovery_timeout,
                backoff_max = ?recovery.backoff_max,
                "disconnected from the agent: {reason}; re-subscribing"
            );
            self.reconnect = Some(Reconnect::new(
                now,
                recovery.recovery_timeout,
                recovery.backoff_max,
            ));
            self.start_subscription();
            return Ok(());
        }
        let reconnect = self.reconnect.get_or_insert_with(|| {
            Reconnect::new(now, recovery.recovery_timeout, recovery.backoff_max)
        });
        match reconnect.next_delay(now) {
            Some(delay) => {
                tracing::info!("re-subscription failed: {reason}; next attempt in {delay:?}");
                self.retry_at = Some(now + delay);
            }
            None => self.recovery_timed_out(&reason),
        }
        Ok(())
    }

    fn recovery_timed_out(&mut self, reason: &str) {
        self.link_state = LinkState::Lost;
        self.retry_at = None;
        let timeout = self.env.checkpoint.map(|r| r.recovery_timeout);
        tracing::warn!(
            ?timeout,
            "recovery timeout exceeded ({reason}); shutting down"
        );
        self.begin_shutdown(format!("recovery timeout exceeded: {reason}"));
    }

    fn enqueue_update(&mut self, update: call::Update) {
        let call = self.call(call::Type::Update, |c| c.update = Some(update));
        let _ = self.updates_out.send((self.sub, call));
    }

    fn call(&self, kind: call::Type, fill: impl FnOnce(&mut Call)) -> Call {
        let mut call = Call {
            executor_id: ExecutorId {
                value: self.env.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.env.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        };
        fill(&mut call);
        call
    }

    fn send_status(&mut self, spec: StatusSpec) {
        let (task_id, state) = (spec.task_id.clone(), spec.state);
        let message = spec.message.clone().unwrap_or_default();
        let update = self
            .updates
            .record(spec, &self.env.executor_id, self.agent_id.as_deref());
        if self.link_state == LinkState::Subscribed {
            self.enqueue_update(update);
        }
        // Logged once the update is on its way. A task that simply ran and finished is
        // a debug line: at thousands of tasks a second, two log writes per task were a
        // measurable share of the warm start (bench/README.md); anything else is info.
        match state {
            TaskState::TaskRunning | TaskState::TaskFinished => {
                tracing::debug!(%task_id, state = state.as_str_name(), "status update");
            }
            _ => tracing::info!(%task_id, state = state.as_str_name(), %message, "status update"),
        }
    }

    // ----- events -----

    fn on_event(&mut self, event: Event, decoded_ns: Option<u64>) -> Result<(), ExecutorError> {
        use event::Type;
        let kind = event.r#type();
        tracing::debug!(event = kind.as_str_name(), "event");
        match kind {
            Type::Subscribed => match event.subscribed {
                Some(subscribed) => self.on_subscribed(subscribed)?,
                None => tracing::warn!("SUBSCRIBED event without its body"),
            },
            Type::Launch => match event.launch {
                Some(launch) => self.launch(launch.task, decoded_ns),
                None => tracing::warn!("LAUNCH event without its body"),
            },
            Type::LaunchGroup => match event.launch_group {
                // Each task of the group runs on its own (see the README).
                Some(group) => {
                    for task in group.task_group.tasks {
                        self.launch(task, decoded_ns);
                    }
                }
                None => tracing::warn!("LAUNCH_GROUP event without its body"),
            },
            Type::Kill => match event.kill {
                Some(kill) => self.kill(&kill.task_id.value),
                None => tracing::warn!("KILL event without its body"),
            },
            Type::Acknowledged => match event.acknowledged {
                Some(ack) => self.acknowledged(&ack.task_id.value, &ack.uuid),
                None => tracing::warn!("ACKNOWLEDGED event without its body"),
            },
            Type::Message => match event.message {
                Some(message) => self.on_message(&message.data),
                None => tracing::warn!("MESSAGE event without its body"),
            },
            Type::Shutdown => self.begin_shutdown("SHUTDOWN from the agent".into()),
            Type::Error => tracing::error!(
                message = event.error.as_ref().map_or("", |e| e.message.as_str()),
                "ERROR event from the agent"
            ),
            Type::Heartbeat => {}
            Type::Unknown => tracing::warn!("ignoring an event of unknown type"),
        }
        Ok(())
    }

    fn on_subscribed(&mut self, subscribed: event::Subscribed) -> Result<(), ExecutorError> {
        self.agent_id = subscribed.agent_info.id.map(|id| id.value);
        self.lane
            .set_agent_id(self.agent_id.as_deref().unwrap_or_default());
        if self.setup.is_some() {
            tracing::info!("SUBSCRIBED again");
            return Ok(());
        }
        let info = subscribed.executor_info;
        let setup = Setup::new(&self.env, &info)?;
        let own = Resources::from_mesos(&info.resources);
        self.tasks.set_own(own);
        tracing::info!(
            agent_id = self.agent_id.as_deref().unwrap_or(""),
            hostname = %subscribed.agent_info.hostname,
            container_id = subscribed.container_id.as_ref().map_or("", |c| c.value.as_str()),
            own_cpus = own.cpus,
            own_mem_mb = own.mem_mb,
            heartbeat_interval = ?setup.config.heartbeat_interval,
            idle_timeout = ?setup.config.idle_timeout,
            dataset = ?setup.config.dataset,
            "subscribed"
        );
        self.setup = Some(setup);
        let now = Instant::now();
        self.next_heartbeat = Some(now);
        if self.tasks.active_count() == 0 {
            self.idle_since = Some(now);
        }
        Ok(())
    }

    fn launch(&mut self, task: TaskInfo, decoded_ns: Option<u64>) {
        let id = task.task_id.value.clone();
        if self.tasks.contains(&id) {
            tracing::warn!(task_id = %id, "LAUNCH of a task already known; ignored");
            return;
        }
        let data = task.data.clone();
        self.tasks.insert(task);
        if let Some(entry) = self.tasks.get_mut(&id) {
            entry.launch_decoded_ns = decoded_ns;
        }
        self.idle_since = None;
        if self.shutdown.is_some() {
            let failure = TaskFailure::new(ErrorKind::Killed, "the executor is shutting down");
            self.terminate(&id, failure_status(&id, TaskState::TaskKilled, failure));
            return;
        }
        if self.draining || self.setup.is_none() {
            let why = if self.draining {
                "the executor is draining and accepts no new tasks"
            } else {
                "the executor is not configured yet"
            };
            let failure = TaskFailure::new(ErrorKind::Internal, why);
            self.terminate(&id, failure_status(&id, TaskState::TaskFailed, failure));
            return;
        }
        if self.tasks.get(&id).is_some_and(|t| t.lease) {
            self.launch_lease(&id, data);
            return;
        }
        let spec = match data {
            Some(data) if !data.is_empty() => TaskSpec::decode(&data).map_err(|e| e.to_string()),
            _ => Err("TaskInfo.data is empty; it must hold a TaskSpec".to_owned()),
        };
        match spec {
            Ok(spec) => {
                self.queue.push(Queued { task_id: id, spec });
                self.dispatch();
            }
            Err(why) => {
                let failure = TaskFailure::new(
                    ErrorKind::InvalidTaskSpec,
                    format!("invalid TaskSpec: {why}"),
                );
                self.terminate(&id, failure_status(&id, TaskState::TaskError, failure));
            }
        }
    }

    /// Starts queued tasks while the allocation allows more to run.
    fn dispatch(&mut self) {
        loop {
            let Some(setup) = self.setup.as_mut() else {
                return;
            };
            let max_instances = setup.runtime.config().max_instances;
            // Lane closures take runtime instances too.
            let limit = self
                .tasks
                .concurrency(max_instances)
                .min(instance_count(max_instances).saturating_sub(self.leases.running_count()));
            let Some(queued) = self.queue.next(self.tasks.running_count(), limit) else {
                return;
            };
            let Some(entry) = self.tasks.get(&queued.task_id) else {
                continue;
            };
            let mem_mb = entry.resources.mem_mb;
            let task_id = queued.task_id;
            let job = Job {
                task_id: task_id.clone(),
                deadline: queued.spec.deadline.or(setup.config.default_task_deadline),
                spec: queued.spec,
                runtime: Arc::clone(&setup.runtime),
                memory_limit_bytes: memory_limit(mem_mb),
                kill: entry.kill.clone(),
                progress: entry.progress.clone(),
                output_dir: self
                    .env
                    .sandbox
                    .join("tasks")
                    .join(sanitize_task_id(&task_id)),
                dataset: setup.dataset.get(),
            };
            let delay = setup.config.running_update_delay;
            let now = Instant::now();
            self.tasks.start(&task_id, now);
            pool::spawn(job, self.tx.clone(), Input::TaskDone, Placement::Dispatcher);
            if delay.is_zero() {
                self.send_status(StatusSpec::new(task_id, TaskState::TaskRunning));
            } else {
                self.running_due.push_back((now + delay, task_id));
            }
        }
    }

    fn on_task_done(&mut self, done: TaskDone) {
        match self.tasks.get(&done.task_id) {
            Some(entry) if !entry.is_terminal() => {}
            _ => return,
        }
        tracing::debug!(task_id = %done.task_id, ran_for = ?done.ran_for, "task done");
        let mut status = terminal_status(&done.task_id, done.outcome);
        if bench_timestamps() {
            status.labels = self.tasks.get(&done.task_id).map(bench_labels);
        }
        self.terminate(&done.task_id, status);
    }

    /// Sends a task's terminal update and frees its share of the allocation.
    fn terminate(&mut self, task_id: &str, status: StatusSpec) {
        if !self.tasks.finish(task_id, status.state) {
            return;
        }
        self.send_status(status);
        self.dispatch();
        self.dispatch_closures();
        if self.tasks.active_count() == 0 {
            self.idle_since = Some(Instant::now());
            if self.draining {
                self.begin_shutdown("drained".into());
            }
        }
    }

    fn kill(&mut self, task_id: &str) {
        let Some(entry) = self.tasks.get(task_id) else {
            tracing::warn!(task_id, "KILL of an unknown task; ignored");
            return;
        };
        match entry.phase {
            Phase::Terminal(_) => tracing::debug!(task_id, "KILL of a finished task; ignored"),
            _ if entry.lease => {
                tracing::info!(task_id, "killing a lease");
                self.end_lease(task_id, End::Killed);
            }
            Phase::Running { .. } => {
                tracing::info!(task_id, "killing");
                entry.kill.kill();
            }
            Phase::Queued => {
                self.queue.remove(task_id);
                let failure = TaskFailure::new(ErrorKind::Killed, "killed before it started");
                let mut status = failure_status(task_id, TaskState::TaskKilled, failure);
                status.reason = Some(Reason::TaskKilledDuringLaunch);
                self.terminate(task_id, status);
            }
        }
    }

    fn acknowledged(&mut self, task_id: &str, uuid: &[u8]) {
        match self.updates.acknowledge(uuid) {
            Some(task) => {
                if task != task_id {
                    tracing::warn!(task_id, update_task = %task, "ACKNOWLEDGED names another task than its update");
                }
                let outstanding = self.updates.has_task(&task);
                self.tasks.acknowledge(&task, outstanding);
            }
            None => tracing::warn!(task_id, "ACKNOWLEDGED for an unknown update; ignored"),
        }
    }

    fn on_message(&mut self, data: &[u8]) {
        let message = match SchedulerMessage::decode(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ignoring a framework message that is not a SchedulerMessage: {e}");
                return;
            }
        };
        let Some(setup) = &self.setup else {
            tracing::warn!("ignoring a control message received before configuration");
            return;
        };
        match message {
            SchedulerMessage::Prefetch { module } => {
                let runtime = Arc::clone(&setup.runtime);
                tokio::task::spawn_blocking(move || match runtime.load(&module) {
                    Ok(_) => tracing::info!(hash = %module.hash, "prefetched module"),
                    Err(e) => tracing::warn!(hash = %module.hash, "prefetch failed: {e}"),
                });
            }
            SchedulerMessage::Evict { hash } => {
                let was = setup.runtime.evict(&hash);
                tracing::info!(%hash, in_memory = was, "evicted module");
            }
            SchedulerMessage::Drain => {
                tracing::info!("draining: no new tasks; shutting down once the running ones end");
                self.draining = true;
                if self.tasks.active_count() == 0 {
                    self.begin_shutdown("drained".into());
                }
            }
            SchedulerMessage::Lane(endpoint) => {
                if self.lane.set_endpoint(endpoint) {
                    self.lane_lost();
                }
            }
        }
    }

    // ----- shutdown -----

    fn begin_shutdown(&mut self, reason: String) {
        if self.shutdown.is_some() {
            return;
        }
        let grace = self.env.shutdown_grace_period;
        let deadline = Instant::now() + grace.saturating_sub(shutdown_margin(grace));
        tracing::info!(%reason, ?grace, active_tasks = self.tasks.active_count(), "shutting down");
        self.shutdown = Some(Shutdown { reason, deadline });
        let queued: Vec<String> = self
            .tasks
            .active()
            .filter(|(_, t)| t.phase == Phase::Queued)
            .map(|(id, _)| id.to_owned())
            .collect();
        for id in queued {
            self.queue.remove(&id);
            let failure = TaskFailure::new(ErrorKind::Killed, "the executor is shutting down");
            self.terminate(&id, failure_status(&id, TaskState::TaskKilled, failure));
        }
        for (_, task, _) in self.tasks.running() {
            task.kill.kill();
        }
        self.shutdown_lane();
    }

    fn finished(&self, now: Instant) -> Option<Ended> {
        let shutdown = self.shutdown.as_ref()?;
        let done = self.tasks.active_count() == 0
            && (self.updates.is_empty() || self.link_state == LinkState::Lost);
        if done || now >= shutdown.deadline {
            if !done {
                tracing::warn!(
                    active_tasks = self.tasks.active_count(),
                    unacknowledged = self.updates.len(),
                    "shutdown grace period used up; exiting anyway"
                );
            }
            return Some(Ended {
                reason: shutdown.reason.clone(),
                unacknowledged: self.updates.len(),
            });
        }
        None
    }

    // ----- timers -----

    fn on_timers(&mut self, now: Instant) {
        while let Some((at, _)) = self.running_due.front()
            && *at <= now
        {
            if let Some((_, task_id)) = self.running_due.pop_front()
                && self.tasks.get(&task_id).is_some_and(|t| !t.is_terminal())
            {
                self.send_status(StatusSpec::new(task_id, TaskState::TaskRunning));
            }
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.start_subscription();
        }
        if self.link_state != LinkState::Subscribed
            && self.link_state != LinkState::Lost
            && self.reconnect.as_ref().is_some_and(|r| r.deadline() <= now)
        {
            self.recovery_timed_out("no subscription within the recovery timeout");
        }
        if let (Some(at), Some(setup)) = (self.next_heartbeat, &self.setup)
            && at <= now
        {
            let interval = setup.config.heartbeat_interval;
            self.next_heartbeat = Some(now + interval);
            self.send_heartbeat(now);
        }
        if self.lane.poll(now, self.leases.count() > 0) {
            self.lane_lost();
        }
        self.progress_tick(now);
        if let Some(timeout) = self.idle_timeout()
            && let Some(since) = self.idle_since
            && self.shutdown.is_none()
            && self.tasks.active_count() == 0
            && now.saturating_duration_since(since) >= timeout
        {
            self.begin_shutdown(format!("idle for {timeout:?}"));
        }
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.setup.as_ref()?.config.idle_timeout
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let idle = match (self.idle_timeout(), self.idle_since) {
            (Some(timeout), Some(since)) if self.shutdown.is_none() => since.checked_add(timeout),
            _ => None,
        };
        let reconnect = match self.link_state {
            LinkState::Subscribing | LinkState::Waiting => {
                self.reconnect.as_ref().map(Reconnect::deadline)
            }
            _ => None,
        };
        [
            self.retry_at,
            self.next_heartbeat,
            idle,
            reconnect,
            self.shutdown.as_ref().map(|s| s.deadline),
            self.running_due.front().map(|(at, _)| *at),
            self.lane.next_wake(self.leases.count() > 0),
            self.next_progress,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_secs(3600))
    }

    fn send_heartbeat(&mut self, now: Instant) {
        if self.link_state != LinkState::Subscribed {
            return;
        }
        let Some(setup) = &self.setup else {
            return;
        };
        let lane = LaneUse {
            connected: self.lane.connected(),
            ..self.leases.usage()
        };
        let beat = self
            .heartbeats
            .next(&self.tasks, setup.runtime.cached_modules(), lane, now);
        let data = Bytes::from(beat.encode());
        let call = self.call(call::Type::Message, |c| {
            c.message = Some(call::Message { data });
        });
        let _ = self.messages_out.send((self.sub, call));
    }
}

/// Reads one subscription: SUBSCRIBE, then every event, then why it ended.
async fn read_subscription(link: AgentLink, call: Call, sub: u64, tx: UnboundedSender<Input>) {
    let mut stream = match link.subscribe(&call).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.send(Input::Disconnected {
                sub,
                answered: e.is_status(),
                reason: e.to_string(),
            });
            return;
        }
    };
    if tx.send(Input::Connected { sub }).is_err() {
        return;
    }
    loop {
        let reason = match stream.next().await {
            Ok(Some(event)) => {
                let decoded_ns = bench_timestamps().then(monotonic_ns);
                if tx
                    .send(Input::Event {
                        sub,
                        event: Box::new(event),
                        decoded_ns,
                    })
                    .is_err()
                {
                    return;
                }
                continue;
            }
            // One undecodable record: the framing is intact, carry on (as the
            // reference library does).
            Err(LinkError::Decode(e)) => {
                tracing::error!("cannot decode an event; skipped: {e}");
                continue;
            }
            Ok(None) => "the agent closed the event stream".to_owned(),
            Err(e) => e.to_string(),
        };
        let _ = tx.send(Input::Disconnected {
            sub,
            reason,
            answered: false,
        });
        return;
    }
}

/// Sends queued calls of the current subscription one after another; with
/// `latest_only`, a backlog is collapsed to its newest call (heartbeats supersede).
async fn send_calls(
    link: AgentLink,
    mut rx: UnboundedReceiver<(u64, Call)>,
    generation: Arc<AtomicU64>,
    latest_only: bool,
) {
    let mut sender = link.sender();
    while let Some(mut next) = rx.recv().await {
        if latest_only {
            while let Ok(newer) = rx.try_recv() {
                next = newer;
            }
        }
        let (sub, call) = next;
        if sub != generation.load(Ordering::SeqCst) {
            tracing::debug!("dropping a call of a previous subscription");
            continue;
        }
        if let Err(e) = sender.send(&call).await {
            tracing::warn!("{} call failed: {e}", crate::agent::call_name(&call));
        }
    }
}

fn spawn_signal_listener(tx: UnboundedSender<Input>) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if tx.send(Input::Terminate(name)).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use brine_proto::payload::DatasetRef;

    use super::*;

    #[test]
    fn config_must_be_present_and_valid() {
        let mut info = ExecutorInfo::default();
        let err = parse_config(&info).unwrap_err().to_string();
        assert!(err.contains("ExecutorInfo.data is empty"), "{err}");
        info.data = Some(Bytes::from_static(b"garbage"));
        let err = parse_config(&info).unwrap_err().to_string();
        assert!(err.contains("not an ExecutorConfig"), "{err}");
        let zero = ExecutorConfig {
            heartbeat_interval: Duration::ZERO,
            ..ExecutorConfig::default()
        };
        info.data = Some(zero.encode().into());
        assert!(parse_config(&info).is_err());
        let good = ExecutorConfig {
            dataset: Some(DatasetRef {
                path: "data.txt".into(),
            }),
            ..ExecutorConfig::default()
        };
        info.data = Some(good.encode().into());
        assert_eq!(parse_config(&info).unwrap(), good);
    }

    #[test]
    fn outcomes_map_to_states_reasons_and_data() {
        let ok = terminal_status("t", Ok(b"6".to_vec()));
        assert_eq!(ok.state, TaskState::TaskFinished);
        assert_eq!(
            TaskOutcome::decode(ok.data.as_deref().unwrap_or_default()),
            Ok(TaskOutcome::Success {
                result: b"6".to_vec()
            })
        );
        let mem = terminal_status(
            "t",
            Err(TaskFailure::new(ErrorKind::MemoryLimit, "too big")),
        );
        assert_eq!(mem.state, TaskState::TaskFailed);
        assert_eq!(mem.reason, Some(Reason::ContainerLimitationMemory));
        assert_eq!(mem.message.as_deref(), Some("memory_limit: too big"));
        let killed = terminal_status("t", Err(TaskFailure::new(ErrorKind::Killed, "k")));
        assert_eq!(killed.state, TaskState::TaskKilled);
        assert_eq!(reason_for(ErrorKind::GuestPanic), None);
        assert_eq!(
            reason_for(ErrorKind::DeadlineExceeded),
            Some(Reason::MaxCompletionTimeReached)
        );
    }

    #[test]
    fn margin_is_small() {
        assert_eq!(
            shutdown_margin(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            shutdown_margin(Duration::from_secs(2)),
            Duration::from_millis(400)
        );
        assert_eq!(shutdown_margin(Duration::ZERO), Duration::ZERO);
    }
}
