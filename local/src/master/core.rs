//! The master's state and its event loop: every call, agent event and timer is handled
//! here, one at a time, in the order it arrived.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::time::{Duration, Instant};

use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::scheduler::{Call, call, event};
use brine_proto::mesos::v1::{
    Address, AgentId, ExecutorId, FrameworkId, MasterInfo, Offer, OfferId, TaskId, TaskState,
    TaskStatus, Url, master_info, offer, resource, task_status,
};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::MasterConfig;
use super::frameworks::{Filter, Framework, Subscription, event};
use super::offers::{AgentOp, AgentSlot, OutstandingOffer};
use super::reconcile;
use super::resources::Resources;
use super::tasks::{Task, master_status, now_secs};
use super::validation::{self, TaskContext};
use crate::agent::AgentEvent;

pub type CallResult = Result<(), (StatusCode, String)>;

/// A live subscription handed to the HTTP layer.
pub struct Subscribed {
    pub stream_id: String,
    pub content_type: ContentType,
    pub rx: mpsc::UnboundedReceiver<Result<Bytes, io::Error>>,
    pub guard: StreamGuard,
}

/// Dropped with the SUBSCRIBE response body: tells the master the connection is gone.
pub struct StreamGuard {
    tx: mpsc::UnboundedSender<Command>,
    framework_id: String,
    stream_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::StreamClosed {
            framework_id: std::mem::take(&mut self.framework_id),
            stream_id: std::mem::take(&mut self.stream_id),
        });
    }
}

pub enum Command {
    Subscribe {
        call: Call,
        content_type: ContentType,
        reply: oneshot::Sender<Subscribed>,
    },
    Call {
        call: Call,
        stream_id: Option<String>,
        reply: oneshot::Sender<CallResult>,
    },
    StreamClosed {
        framework_id: String,
        stream_id: String,
    },
    FailoverExpired {
        framework_id: String,
        generation: u64,
    },
    Agent {
        index: usize,
        event: AgentEvent,
    },
    LaunchFailed {
        framework_id: FrameworkId,
        task_id: TaskId,
        agent_id: AgentId,
        error: String,
    },
    RemoveAgent {
        agent_id: String,
        reply: oneshot::Sender<bool>,
    },
    State(oneshot::Sender<Value>),
    Metrics(oneshot::Sender<serde_json::Map<String, Value>>),
    InvalidCall,
    Stop(oneshot::Sender<()>),
}

pub struct State {
    pub config: MasterConfig,
    pub master_info: MasterInfo,
    pub tx: mpsc::UnboundedSender<Command>,
    pub agents: Vec<AgentSlot>,
    pub frameworks: BTreeMap<String, Framework>,
    pub completed: Vec<Framework>,
    pub offers: HashMap<String, OutstandingOffer>,
    next_framework: u64,
    next_offer: u64,
    round_robin: usize,
    /// Set by what makes Mesos allocate at once (a framework added or re-activated,
    /// REVIVE): the command's handler runs a batch allocation after answering.
    allocate_now: bool,
    started: Instant,
    counters: BTreeMap<String, u64>,
    task_states: BTreeMap<&'static str, u64>,
}

fn status_event(status: TaskStatus) -> brine_proto::mesos::v1::scheduler::Event {
    let mut e = event(event::Type::Update);
    e.update = Some(event::Update { status });
    e
}

impl State {
    pub fn new(
        config: MasterConfig,
        master_info: MasterInfo,
        tx: mpsc::UnboundedSender<Command>,
        agents: Vec<AgentSlot>,
    ) -> State {
        State {
            config,
            master_info,
            tx,
            agents,
            frameworks: BTreeMap::new(),
            completed: Vec::new(),
            offers: HashMap::new(),
            next_framework: 0,
            next_offer: 0,
            round_robin: 0,
            allocate_now: false,
            started: Instant::now(),
            counters: BTreeMap::new(),
            task_states: BTreeMap::new(),
        }
    }

    fn count(&mut self, key: &str) {
        *self.counters.entry(key.to_owned()).or_default() += 1;
    }

    fn count_state(&mut self, state: TaskState) {
        let name = match state {
            TaskState::TaskStaging => "staging",
            TaskState::TaskStarting => "starting",
            TaskState::TaskRunning => "running",
            TaskState::TaskFinished => "finished",
            TaskState::TaskFailed => "failed",
            TaskState::TaskKilled => "killed",
            TaskState::TaskKilling => "killing",
            TaskState::TaskLost => "lost",
            TaskState::TaskError => "error",
            TaskState::TaskDropped => "dropped",
            TaskState::TaskUnreachable => "unreachable",
            TaskState::TaskGone => "gone",
            TaskState::TaskGoneByOperator => "gone_by_operator",
            TaskState::TaskUnknown => "unknown",
        };
        *self.task_states.entry(name).or_default() += 1;
    }

    fn agent_index(&self, agent_id: &str) -> Option<usize> {
        self.agents
            .iter()
            .position(|a| a.active && a.id.value == agent_id)
    }

    /// Answers the caller, then runs the allocation the command asked for, if any (see
    /// [`State::allocate`]): the answer (a new subscriber's stream, a call's `202`)
    /// goes out before the offers.
    fn reply_then_allocate<T>(&mut self, reply: oneshot::Sender<T>, value: T) {
        let _ = reply.send(value);
        if std::mem::take(&mut self.allocate_now) {
            self.allocate();
        }
    }

    /// Handles one command; false to stop the loop.
    pub fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Subscribe {
                call,
                content_type,
                reply,
            } => {
                let subscribed = self.subscribe(call, content_type);
                self.reply_then_allocate(reply, subscribed);
            }
            Command::Call {
                call,
                stream_id,
                reply,
            } => {
                let result = self.call(call, stream_id);
                self.reply_then_allocate(reply, result);
            }
            Command::StreamClosed {
                framework_id,
                stream_id,
            } => self.stream_closed(&framework_id, &stream_id),
            Command::FailoverExpired {
                framework_id,
                generation,
            } => {
                let expired = self
                    .frameworks
                    .get(&framework_id)
                    .is_some_and(|f| f.generation == generation && !f.connected());
                if expired {
                    tracing::info!(framework = %framework_id, "failover timeout expired; removing framework");
                    self.remove_framework(&framework_id);
                }
            }
            Command::Agent { index, event } => self.agent_event(index, event),
            Command::LaunchFailed {
                framework_id,
                task_id,
                agent_id,
                error,
            } => {
                self.launch_failed(&framework_id, &task_id, &agent_id, &error);
            }
            Command::RemoveAgent { agent_id, reply } => {
                let removed = self.remove_agent(&agent_id);
                let _ = reply.send(removed);
            }
            Command::State(reply) => {
                let _ = reply.send(self.state_json());
            }
            Command::Metrics(reply) => {
                let _ = reply.send(self.metrics());
            }
            Command::InvalidCall => self.count("master/invalid_scheduler_calls"),
            Command::Stop(reply) => {
                for framework in self.frameworks.values_mut() {
                    framework.subscription = None;
                }
                let _ = reply.send(());
                return false;
            }
        }
        true
    }

    /// `Master::subscribe` / `_subscribe`: a FrameworkInfo the master refuses gets an
    /// ERROR event on the `200` stream, which then ends (Mesos's `refuseSubscription`);
    /// otherwise the framework is added, re-activated or failed over.
    fn subscribe(&mut self, call: Call, content_type: ContentType) -> Subscribed {
        let (mut info, suppressed_roles) = call
            .subscribe
            .map(|s| (s.framework_info, s.suppressed_roles))
            .unwrap_or_default();
        if info.id.as_ref().is_some_and(|id| id.value.is_empty()) {
            info.id = None;
        }
        let stream_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let subscription = Subscription {
            stream_id: stream_id.clone(),
            content_type,
            tx,
        };
        self.count(if info.id.is_some() {
            "master/messages_reregister_framework"
        } else {
            "master/messages_register_framework"
        });
        if let Err(message) = self.validate_subscription(&info, &suppressed_roles) {
            tracing::info!(framework = %info.name, error = %message, "refusing subscription");
            let mut e = event(event::Type::Error);
            e.error = Some(event::Error { message });
            subscription.send(&e);
            // Dropping the only sender ends the stream (terminating chunk).
            drop(subscription);
            return self.answer(stream_id, content_type, rx, String::new());
        }
        let now = now_secs();
        let framework_id = match info.id.clone() {
            // A known id, or an unknown one taken as is (Mesos recovers the framework,
            // as after a master failover).
            Some(id) => id,
            None => {
                let id = FrameworkId {
                    value: format!("{}-{:04}", self.master_info.id, self.next_framework),
                };
                self.next_framework += 1;
                id
            }
        };
        let key = framework_id.value.clone();
        info.id = Some(framework_id.clone());
        let suppress = self.framework_role_suppressed(&info, &suppressed_roles);
        let existing = self.frameworks.contains_key(&key);
        let framework = self
            .frameworks
            .entry(key.clone())
            .or_insert_with(|| Framework::new(framework_id.clone(), info.clone(), now));
        // Added (new or recovered) or re-activated: `addFramework` / `activateFramework`
        // allocate at once. Failing over a connected framework does neither; the offers
        // it had go back to the pool for the next batch allocation.
        self.allocate_now = !existing || !framework.connected();
        if let Some(old) = framework.subscription.take() {
            // Mesos tells the old connection before closing it.
            let mut e = event(event::Type::Error);
            e.error = Some(event::Error {
                message: "Framework failed over".to_owned(),
            });
            old.send(&e);
            tracing::info!(framework = %key, "framework failed over to a new connection");
        }
        if existing {
            // `preserveImmutableFields`.
            info.user = framework.info.user.clone();
            info.checkpoint = framework.info.checkpoint;
        }
        framework.info = info;
        framework.generation += 1;
        if framework.suppressed && !suppress {
            // `reviveRoles`: un-suppressing a role clears its filters.
            framework.filters.clear();
        }
        framework.suppressed = suppress;
        framework.subscription = Some(subscription);
        let mut subscribed = event(event::Type::Subscribed);
        subscribed.subscribed = Some(event::Subscribed {
            framework_id: framework_id.clone(),
            heartbeat_interval_seconds: Some(self.config.heartbeat_interval.as_secs_f64()),
            master_info: Some(self.master_info.clone()),
        });
        framework.send(&subscribed);
        let heartbeat = event(event::Type::Heartbeat);
        framework.send(&heartbeat);
        if let Some(sub) = &framework.subscription {
            spawn_heartbeats(sub, self.config.heartbeat_interval);
        }
        // Offers made on the previous connection are withdrawn (Mesos discards them).
        self.recover_offers_of(&key);
        tracing::info!(framework = %key, stream = %stream_id, "framework subscribed");
        self.answer(stream_id, content_type, rx, key)
    }

    fn answer(
        &self,
        stream_id: String,
        content_type: ContentType,
        rx: mpsc::UnboundedReceiver<Result<Bytes, io::Error>>,
        framework_id: String,
    ) -> Subscribed {
        Subscribed {
            stream_id: stream_id.clone(),
            content_type,
            rx,
            guard: StreamGuard {
                tx: self.tx.clone(),
                framework_id,
                stream_id,
            },
        }
    }

    /// The checks of `Master::subscribe` and `_subscribe` that can refuse a
    /// subscription, in Mesos's order: `validateFramework` (FrameworkInfo, then a
    /// removed framework's id), the suppressed roles, then for a known framework
    /// `validateUpdate` (after `preserveImmutableFields`, only the principal can differ).
    fn validate_subscription(
        &self,
        info: &brine_proto::mesos::v1::FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<(), String> {
        validation::validate_framework(info)?;
        if let Some(id) = &info.id
            && self.completed.iter().any(|f| f.id == *id)
        {
            return Err("Framework has been removed".to_owned());
        }
        validation::validate_suppressed_roles(info, suppressed_roles)?;
        if let Some(id) = &info.id
            && let Some(framework) = self.frameworks.get(&id.value)
            && framework.info.principal != info.principal
        {
            return Err("Changing framework's principal is not allowed.".to_owned());
        }
        Ok(())
    }

    /// Whether the role the framework is offered in is one of `suppressed_roles`.
    fn framework_role_suppressed(
        &self,
        info: &brine_proto::mesos::v1::FrameworkInfo,
        suppressed_roles: &[String],
    ) -> bool {
        let role = if validation::multi_role(info) {
            info.roles.first().map(String::as_str)
        } else {
            Some(info.role())
        };
        role.is_some_and(|r| suppressed_roles.iter().any(|s| s == r))
    }

    fn stream_closed(&mut self, framework_id: &str, stream_id: &str) {
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if framework
            .subscription
            .as_ref()
            .is_none_or(|s| s.stream_id != stream_id)
        {
            return;
        }
        framework.subscription = None;
        framework.generation += 1;
        // `deactivateFramework` forgets the framework's filters.
        framework.filters.clear();
        let generation = framework.generation;
        let timeout = framework.info.failover_timeout.unwrap_or(0.0);
        tracing::info!(framework = %framework_id, failover_timeout = timeout, "framework disconnected");
        self.recover_offers_of(framework_id);
        if timeout > 0.0 && timeout.is_finite() {
            let tx = self.tx.clone();
            let framework_id = framework_id.to_owned();
            let delay = Duration::from_secs_f64(timeout.min(1e9));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Command::FailoverExpired {
                    framework_id,
                    generation,
                });
            });
        } else {
            self.remove_framework(framework_id);
        }
    }

    /// The checks of `Master::Http::scheduler` that need the framework, then the call.
    fn call(&mut self, call: Call, stream_id: Option<String>) -> CallResult {
        let bad = |m: String| Err((StatusCode::BAD_REQUEST, m));
        let framework_id = call.framework_id.clone().unwrap_or_default().value;
        let Some(framework) = self.frameworks.get(&framework_id) else {
            return bad("Framework cannot be found".to_owned());
        };
        let Some(subscription) = &framework.subscription else {
            return Err((
                StatusCode::FORBIDDEN,
                "Framework is not subscribed".to_owned(),
            ));
        };
        let Some(stream_id) = stream_id else {
            return bad(
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header".to_owned(),
            );
        };
        if stream_id != subscription.stream_id {
            return bad(format!(
                "The stream ID '{stream_id}' included in this request didn't match the stream ID \
                 currently associated with framework ID {framework_id}"
            ));
        }
        let kind = call.r#type();
        self.count(&format!(
            "master/messages_{}",
            kind.as_str_name().to_ascii_lowercase()
        ));
        match kind {
            call::Type::Teardown => {
                tracing::info!(framework = %framework_id, "TEARDOWN");
                self.remove_framework(&framework_id);
            }
            call::Type::Accept => {
                if let Some(accept) = call.accept {
                    self.accept(&framework_id, accept);
                }
            }
            call::Type::Decline => {
                if let Some(decline) = call.decline {
                    self.decline(&framework_id, &decline.offer_ids, decline.filters.as_ref());
                }
            }
            call::Type::Revive => {
                // `reviveOffers`: filters cleared, then a batch allocation at once (for
                // every framework and agent, as Mesos's `generateOffers()`).
                if let Some(f) = self.frameworks.get_mut(&framework_id) {
                    f.suppressed = false;
                    f.filters.clear();
                }
                self.allocate_now = true;
            }
            call::Type::Suppress => {
                if let Some(f) = self.frameworks.get_mut(&framework_id) {
                    f.suppressed = true;
                }
            }
            call::Type::Kill => {
                if let Some(kill) = call.kill {
                    self.kill(&framework_id, kill);
                }
            }
            call::Type::Shutdown => {
                if let Some(shutdown) = call.shutdown
                    && let Some(i) = self.agent_index(&shutdown.agent_id.value)
                {
                    self.agents[i].send(AgentOp::Shutdown {
                        framework_id: FrameworkId {
                            value: framework_id.clone(),
                        },
                        executor_id: shutdown.executor_id,
                    });
                }
            }
            call::Type::Acknowledge => {
                if let Some(ack) = call.acknowledge {
                    self.acknowledge(&framework_id, ack);
                }
            }
            call::Type::Reconcile => {
                if let Some(reconcile) = call.reconcile
                    && let Some(framework) = self.frameworks.get(&framework_id)
                {
                    let answers = reconcile::answers(framework, &reconcile, |id| {
                        self.agents.iter().any(|a| a.active && a.id.value == id)
                    });
                    if let Some(framework) = self.frameworks.get_mut(&framework_id) {
                        for status in answers {
                            framework.send(&status_event(status));
                        }
                    }
                }
            }
            call::Type::Message => {
                if let Some(message) = call.message
                    && let Some(i) = self.agent_index(&message.agent_id.value)
                {
                    self.count("master/valid_framework_to_executor_messages");
                    self.agents[i].send(AgentOp::Message {
                        framework_id: FrameworkId {
                            value: framework_id.clone(),
                        },
                        executor_id: message.executor_id,
                        data: message.data,
                    });
                }
            }
            other => {
                tracing::debug!(call = ?other, "call not implemented by the local master; ignored");
            }
        }
        Ok(())
    }

    fn send_to(&mut self, framework_id: &str, status: TaskStatus) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.send(&status_event(status));
        }
    }

    /// `Master::accept`: offers validated first (an error fails every task with
    /// TASK_LOST / TASK_DROPPED, REASON_INVALID_OFFERS), then each task.
    fn accept(&mut self, framework_id: &str, accept: call::Accept) {
        let mut error: Option<String> = None;
        let mut seen: Vec<&str> = Vec::new();
        let mut agent: Option<usize> = None;
        for id in &accept.offer_ids {
            let e = match self.offers.get(&id.value) {
                None => Some(format!("Offer {} is no longer valid", id.value)),
                Some(_) if seen.contains(&id.value.as_str()) => {
                    Some(format!("Duplicate offer {} in offer list", id.value))
                }
                Some(o) if o.offer.framework_id.value != framework_id => Some(format!(
                    "Offer {} has invalid framework {} while framework {} is expected",
                    id.value, o.offer.framework_id.value, framework_id
                )),
                Some(o) => match agent {
                    Some(a) if a != o.agent => Some(format!(
                        "Aggregated offers must belong to one single agent. Offer {} uses agent {} and offer {} uses agent {}",
                        id.value,
                        o.offer.agent_id.value,
                        accept.offer_ids[0].value,
                        self.agents[a].id.value
                    )),
                    _ => {
                        agent = Some(o.agent);
                        None
                    }
                },
            };
            seen.push(&id.value);
            if error.is_none() {
                error = e;
            }
        }
        // Every valid offer named is used up by this call.
        let mut offered = Resources::default();
        for id in &accept.offer_ids {
            let belongs = self
                .offers
                .get(&id.value)
                .is_some_and(|o| o.offer.framework_id.value == framework_id);
            if belongs && let Some(o) = self.offers.remove(&id.value) {
                self.agents[o.agent].offered = self.agents[o.agent].offered.sub(&o.resources);
                offered = offered.add(&o.resources);
            }
        }
        if let Some(f) = self.frameworks.get_mut(framework_id) {
            f.offers_accepted += accept.offer_ids.len() as u64;
        }
        let partition_aware = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.partition_aware());
        let (Some(agent), None) = (agent, error.clone()) else {
            let message = format!(
                "Task launched with invalid offers: {}",
                error.unwrap_or_else(|| "No offers".to_owned())
            );
            let state = if partition_aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            for task in launch_tasks(&accept.operations) {
                let status = master_status(
                    &task.task_id,
                    state,
                    task_status::Reason::InvalidOffers,
                    message.clone(),
                    Some(task.agent_id.clone()),
                );
                self.count_state(state);
                self.send_to(framework_id, status);
            }
            return;
        };
        let fid = FrameworkId {
            value: framework_id.to_owned(),
        };
        let role = self
            .frameworks
            .get(framework_id)
            .and_then(Framework::role)
            .unwrap_or_else(|| "*".to_owned());
        let mut remaining = offered;
        for operation in accept.operations {
            match operation.r#type() {
                offer::operation::Type::Launch => {
                    let tasks = operation.launch.map(|l| l.task_infos).unwrap_or_default();
                    for task in tasks {
                        remaining = self.launch(&fid, agent, &role, None, vec![task], remaining);
                    }
                }
                offer::operation::Type::LaunchGroup => {
                    if let Some(group) = operation.launch_group {
                        remaining = self.launch(
                            &fid,
                            agent,
                            &role,
                            Some(group.executor),
                            group.task_group.tasks,
                            remaining,
                        );
                    }
                }
                other => {
                    tracing::warn!(operation = ?other, "offer operation not supported by the local master; ignored");
                }
            }
        }
        let refuse = accept
            .filters
            .as_ref()
            .map(|f| f.refuse_seconds())
            .unwrap_or(5.0);
        self.add_filter(framework_id, agent, remaining, refuse);
    }

    /// Validates and launches one task (LAUNCH) or one task group (LAUNCH_GROUP with
    /// `group_executor`); returns what is left of `offered`.
    fn launch(
        &mut self,
        fid: &FrameworkId,
        agent: usize,
        role: &str,
        group_executor: Option<brine_proto::mesos::v1::ExecutorInfo>,
        tasks: Vec<brine_proto::mesos::v1::TaskInfo>,
        offered: Resources,
    ) -> Resources {
        let slot = &self.agents[agent];
        let Some(framework) = self.frameworks.get(&fid.value) else {
            return offered;
        };
        let task_exists = |id: &str| framework.tasks.contains_key(id);
        let running_executor = |id: &str| slot.executor(&fid.value, id).cloned();
        let ctx = TaskContext {
            framework_id: fid,
            agent_id: &slot.id.value,
            task_exists: &task_exists,
            running_executor: &running_executor,
        };
        let offered_proto = offered.to_proto(role);
        let result = match (&group_executor, tasks.first()) {
            (Some(executor), _) => {
                validation::validate_group(executor, &tasks, &ctx, &offered, &offered_proto)
            }
            (None, Some(task)) => validation::validate_task(task, &ctx, &offered, &offered_proto),
            (None, None) => return offered,
        };
        let total = match result {
            Ok(total) => total,
            Err(message) => {
                for task in &tasks {
                    let status = master_status(
                        &task.task_id,
                        TaskState::TaskError,
                        task_status::Reason::TaskInvalid,
                        message.clone(),
                        Some(task.agent_id.clone()),
                    );
                    self.count_state(TaskState::TaskError);
                    self.send_to(&fid.value, status);
                }
                return offered;
            }
        };
        let framework_info = framework.info.clone();
        let allocate = |resources: &mut Vec<brine_proto::mesos::v1::Resource>| {
            for r in resources {
                if r.allocation_info.is_none() {
                    r.allocation_info = Some(resource::AllocationInfo {
                        role: Some(role.to_owned()),
                    });
                }
            }
        };
        for mut task in tasks {
            allocate(&mut task.resources);
            let mut executor = group_executor.clone().or_else(|| task.executor.clone());
            if let Some(executor) = executor.as_mut() {
                executor.framework_id = Some(fid.clone());
                let key = (fid.value.clone(), executor.executor_id.value.clone());
                // Kept as the framework sent it, for the compatibility check.
                let as_sent = executor.clone();
                self.agents[agent]
                    .executors
                    .entry(key)
                    .or_insert_with(|| (as_sent, Resources::from_proto(&executor.resources)));
                allocate(&mut executor.resources);
                if task.executor.is_some() {
                    task.executor = Some(executor.clone());
                }
            }
            let task_resources = Resources::from_proto(&task.resources);
            self.agents[agent].tasks.insert(
                (fid.value.clone(), task.task_id.value.clone()),
                task_resources.clone(),
            );
            if let Some(framework) = self.frameworks.get_mut(&fid.value) {
                framework.tasks.insert(
                    task.task_id.value.clone(),
                    Task {
                        info: task.clone(),
                        agent_id: self.agents[agent].id.clone(),
                        executor_id: executor.as_ref().map(|e| e.executor_id.clone()),
                        resources: task_resources,
                        state: TaskState::TaskStaging,
                        latest: None,
                        freed: false,
                    },
                );
            }
            self.count_state(TaskState::TaskStaging);
            self.count("master/tasks_launched");
            self.agents[agent].send(AgentOp::Launch {
                framework: framework_info.clone(),
                executor: executor.unwrap_or_default(),
                task,
            });
        }
        offered.sub(&total)
    }

    /// `recoverResources` with filters: a refused-offer filter on `resources` for
    /// `max(allocation_interval, refuse_seconds)`; none for `refuse_seconds` 0 (or so
    /// small it is 0 ns). A negative value means the default 5 s, more than 365 days
    /// means 365 days. Nothing is allocated here: what is given back is offered at the
    /// next batch allocation, and the end of the filter does not allocate either.
    fn add_filter(&mut self, framework_id: &str, agent: usize, resources: Resources, refuse: f64) {
        let Some(timeout) = filter_timeout(refuse, self.config.allocation_interval) else {
            return;
        };
        if resources.is_empty() {
            return;
        }
        let agent_id = self.agents[agent].id.value.clone();
        if let Some(f) = self.frameworks.get_mut(framework_id) {
            f.filters.entry(agent_id).or_default().push(Filter {
                resources,
                until: Instant::now() + timeout,
            });
        }
    }

    fn decline(
        &mut self,
        framework_id: &str,
        offer_ids: &[OfferId],
        filters: Option<&brine_proto::mesos::v1::Filters>,
    ) {
        let refuse = filters.map(|f| f.refuse_seconds()).unwrap_or(5.0);
        for id in offer_ids {
            let belongs = self
                .offers
                .get(&id.value)
                .is_some_and(|o| o.offer.framework_id.value == framework_id);
            if belongs && let Some(o) = self.offers.remove(&id.value) {
                self.agents[o.agent].offered = self.agents[o.agent].offered.sub(&o.resources);
                if let Some(f) = self.frameworks.get_mut(framework_id) {
                    f.offers_declined += 1;
                }
                self.add_filter(framework_id, o.agent, o.resources, refuse);
            }
        }
    }

    fn kill(&mut self, framework_id: &str, kill: call::Kill) {
        let task = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.task(&kill.task_id))
            .map(|t| t.agent_id.clone());
        match task {
            None => {
                // Mesos answers a KILL of an unknown task with a reconciliation.
                let reconcile = call::Reconcile {
                    tasks: vec![call::reconcile::Task {
                        task_id: kill.task_id,
                        agent_id: kill.agent_id,
                    }],
                };
                if let Some(framework) = self.frameworks.get(framework_id) {
                    let answers = reconcile::answers(framework, &reconcile, |id| {
                        self.agents.iter().any(|a| a.active && a.id.value == id)
                    });
                    for status in answers {
                        self.send_to(framework_id, status);
                    }
                }
            }
            Some(agent_id) => {
                if kill.agent_id.as_ref().is_some_and(|a| *a != agent_id) {
                    return;
                }
                if let Some(i) = self.agent_index(&agent_id.value) {
                    self.agents[i].send(AgentOp::Kill {
                        framework_id: FrameworkId {
                            value: framework_id.to_owned(),
                        },
                        task_id: kill.task_id,
                    });
                }
            }
        }
    }

    fn acknowledge(&mut self, framework_id: &str, ack: call::Acknowledge) {
        if let Some(framework) = self.frameworks.get_mut(framework_id)
            && let Some(task) = framework.tasks.get(&ack.task_id.value)
            && task.state.is_terminal()
            && task
                .latest
                .as_ref()
                .and_then(|s| s.uuid.as_ref())
                .is_some_and(|u| *u == ack.uuid)
        {
            framework.tasks.remove(&ack.task_id.value);
        }
        if let Some(i) = self.agent_index(&ack.agent_id.value) {
            self.agents[i].send(AgentOp::Acknowledge {
                framework_id: FrameworkId {
                    value: framework_id.to_owned(),
                },
                task_id: ack.task_id,
                uuid: ack.uuid,
            });
        }
    }

    fn free_task(&mut self, agent: usize, framework_id: &str, task_id: &str) {
        self.agents[agent]
            .tasks
            .remove(&(framework_id.to_owned(), task_id.to_owned()));
    }

    fn agent_event(&mut self, index: usize, agent_event: AgentEvent) {
        let agent_id = self.agents[index].id.clone();
        match agent_event {
            AgentEvent::StatusUpdate {
                framework_id,
                status,
            } => {
                let state = status.state();
                self.count_state(state);
                self.count("master/status_updates");
                if state.is_terminal() {
                    self.free_task(index, &framework_id.value, &status.task_id.value);
                }
                let Some(framework) = self.frameworks.get_mut(&framework_id.value) else {
                    // A removed framework's updates are acknowledged here, as nobody
                    // else will.
                    if let Some(uuid) = status.uuid {
                        self.agents[index].send(AgentOp::Acknowledge {
                            framework_id,
                            task_id: status.task_id,
                            uuid,
                        });
                    }
                    return;
                };
                let remove = match framework.tasks.get_mut(&status.task_id.value) {
                    Some(task) => {
                        task.state = state;
                        task.latest = Some(status.clone());
                        if state.is_terminal() {
                            task.freed = true;
                        }
                        state.is_terminal() && status.uuid.is_none()
                    }
                    None => false,
                };
                if remove {
                    framework.tasks.remove(&status.task_id.value);
                }
                framework.send(&status_event(status));
            }
            AgentEvent::ExecutorMessage {
                framework_id,
                executor_id,
                data,
            } => {
                self.count("master/messages_executor_to_framework");
                if let Some(framework) = self.frameworks.get_mut(&framework_id.value) {
                    let mut e = event(event::Type::Message);
                    e.message = Some(event::Message {
                        agent_id,
                        executor_id,
                        data,
                    });
                    framework.send(&e);
                }
            }
            AgentEvent::ExecutorTerminated {
                framework_id,
                executor_id,
                status,
            } => {
                self.executor_gone(index, &framework_id, &executor_id);
                if let Some(framework) = self.frameworks.get_mut(&framework_id.value) {
                    let mut e = event(event::Type::Failure);
                    e.failure = Some(event::Failure {
                        agent_id: Some(agent_id),
                        executor_id: Some(executor_id),
                        status,
                    });
                    framework.send(&e);
                }
            }
        }
    }

    fn executor_gone(
        &mut self,
        index: usize,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        self.agents[index]
            .executors
            .remove(&(framework_id.value.clone(), executor_id.value.clone()));
    }

    fn launch_failed(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        agent_id: &AgentId,
        error: &str,
    ) {
        let Some(index) = self.agent_index(&agent_id.value) else {
            return;
        };
        self.free_task(index, &framework_id.value, &task_id.value);
        let executor_id = self
            .frameworks
            .get_mut(&framework_id.value)
            .and_then(|f| f.tasks.remove(&task_id.value))
            .and_then(|t| t.executor_id);
        if let Some(executor_id) = executor_id {
            let still_used = self.frameworks.get(&framework_id.value).is_some_and(|f| {
                f.tasks.values().any(|t| {
                    t.agent_id == *agent_id && t.executor_id.as_ref() == Some(&executor_id)
                })
            });
            if !still_used {
                self.executor_gone(index, framework_id, &executor_id);
            }
        }
        let status = master_status(
            task_id,
            TaskState::TaskError,
            task_status::Reason::TaskInvalid,
            format!("The local agent cannot launch this task: {error}"),
            Some(agent_id.clone()),
        );
        self.count_state(TaskState::TaskError);
        self.send_to(&framework_id.value, status);
    }

    /// Returns the outstanding offers of `framework_id` to the pool (no RESCIND).
    fn recover_offers_of(&mut self, framework_id: &str) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.offer.framework_id.value == framework_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(o) = self.offers.remove(&id) {
                self.agents[o.agent].offered = self.agents[o.agent].offered.sub(&o.resources);
            }
        }
    }

    /// Teardown or failover timeout: the stream ends, its executors are shut down, its
    /// offers go back to the pool, and it is listed as completed.
    fn remove_framework(&mut self, framework_id: &str) {
        let Some(mut framework) = self.frameworks.remove(framework_id) else {
            return;
        };
        framework.subscription = None;
        self.recover_offers_of(framework_id);
        for slot in &self.agents {
            for (fid, eid) in slot.executors.keys() {
                if fid == framework_id {
                    slot.send(AgentOp::Shutdown {
                        framework_id: framework.id.clone(),
                        executor_id: ExecutorId { value: eid.clone() },
                    });
                }
            }
        }
        for task in framework.tasks.values() {
            if !task.state.is_terminal()
                && task.executor_id.is_none()
                && let Some(i) = self.agent_index(&task.agent_id.value)
            {
                self.agents[i].send(AgentOp::Kill {
                    framework_id: framework.id.clone(),
                    task_id: task.info.task_id.clone(),
                });
            }
        }
        tracing::info!(framework = %framework_id, "framework removed");
        self.completed.push(framework);
        if self.completed.len() > 50 {
            self.completed.remove(0);
        }
    }

    fn remove_agent(&mut self, agent_id: &str) -> bool {
        let Some(index) = self.agent_index(agent_id) else {
            return false;
        };
        self.agents[index].active = false;
        let slot_id = self.agents[index].id.clone();
        let hostname = self.agents[index].info.hostname.clone();
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent == index)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(o) = self.offers.remove(&id) {
                let mut e = event(event::Type::Rescind);
                e.rescind = Some(event::Rescind {
                    offer_id: o.offer.id.clone(),
                });
                self.send_to_framework_event(&o.offer.framework_id.value, &e);
            }
        }
        self.agents[index].offered = Resources::default();
        self.agents[index].tasks.clear();
        self.agents[index].executors.clear();
        let keys: Vec<String> = self.frameworks.keys().cloned().collect();
        for key in keys {
            let Some(framework) = self.frameworks.get_mut(&key) else {
                continue;
            };
            let state = if framework.partition_aware() {
                TaskState::TaskGone
            } else {
                TaskState::TaskLost
            };
            let lost: Vec<String> = framework
                .tasks
                .iter()
                .filter(|(_, t)| t.agent_id == slot_id)
                .map(|(id, _)| id.clone())
                .collect();
            for id in lost {
                if let Some(task) = framework.tasks.remove(&id) {
                    let status = master_status(
                        &task.info.task_id,
                        state,
                        task_status::Reason::AgentRemoved,
                        format!("Agent {hostname} removed: agent shut down"),
                        Some(slot_id.clone()),
                    );
                    framework.send(&status_event(status));
                }
            }
            let mut e = event(event::Type::Failure);
            e.failure = Some(event::Failure {
                agent_id: Some(slot_id.clone()),
                executor_id: None,
                status: None,
            });
            framework.send(&e);
        }
        true
    }

    fn send_to_framework_event(
        &mut self,
        framework_id: &str,
        e: &brine_proto::mesos::v1::scheduler::Event,
    ) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.send(e);
        }
    }

    /// One batch allocation (Mesos's `generateOffers()` over every agent): each agent's
    /// free resources go, as one offer, to one framework that wants them (round robin
    /// over connected, unsuppressed frameworks with a role, skipping those whose filters
    /// hide these resources).
    ///
    /// It runs on the master's fixed `allocation_interval` grid (see [`super::Master`])
    /// and, at once, only where Mesos's allocator allocates at once: a framework added
    /// or re-activated (SUBSCRIBE) and REVIVE. Resources given back (unused part of an
    /// ACCEPT, DECLINE, terminal tasks, removed executors or frameworks) and the end of
    /// a filter wait for the next tick.
    pub fn allocate(&mut self) {
        let now = Instant::now();
        for framework in self.frameworks.values_mut() {
            framework.expire_filters(now);
        }
        let candidates: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.connected() && !f.suppressed && f.role().is_some())
            .map(|(id, _)| id.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        for index in 0..self.agents.len() {
            if !self.agents[index].active {
                continue;
            }
            let available = self.agents[index].available();
            if !available.allocatable() {
                continue;
            }
            let agent_id = self.agents[index].id.clone();
            let n = candidates.len();
            let chosen = (0..n)
                .map(|k| &candidates[(self.round_robin + k) % n])
                .find(|id| {
                    self.frameworks
                        .get(*id)
                        .is_some_and(|f| !f.filtered(&agent_id, &available, now))
                })
                .cloned();
            let Some(framework_id) = chosen else {
                continue;
            };
            self.round_robin = self.round_robin.wrapping_add(1);
            self.make_offer(index, &framework_id, available);
        }
    }

    fn make_offer(&mut self, index: usize, framework_id: &str, resources: Resources) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let Some(role) = framework.role() else {
            return;
        };
        let multi_role = framework.multi_role();
        let slot = &self.agents[index];
        let id = format!("{}-O{}", self.master_info.id, self.next_offer);
        self.next_offer += 1;
        let ip = slot.endpoint.ip().to_string();
        let mut executor_ids: Vec<ExecutorId> = slot
            .executors
            .keys()
            .filter(|(fid, _)| fid == framework_id)
            .map(|(_, eid)| ExecutorId { value: eid.clone() })
            .collect();
        executor_ids.sort_by(|a, b| a.value.cmp(&b.value));
        let mut offer = Offer {
            id: OfferId { value: id.clone() },
            framework_id: framework.id.clone(),
            agent_id: slot.id.clone(),
            hostname: slot.info.hostname.clone(),
            url: Some(Url {
                scheme: "http".to_owned(),
                address: Address {
                    hostname: Some(slot.info.hostname.clone()),
                    ip: Some(ip),
                    port: i32::from(slot.endpoint.port()),
                },
                path: Some("/slave(1)".to_owned()),
                ..Default::default()
            }),
            resources: resources.to_proto(&role),
            executor_ids,
            allocation_info: Some(resource::AllocationInfo { role: Some(role) }),
            ..Default::default()
        };
        if !multi_role {
            // Mesos strips `allocation_info` (offer and resources) for frameworks
            // without MULTI_ROLE.
            offer.allocation_info = None;
            for r in &mut offer.resources {
                r.allocation_info = None;
            }
        }
        self.agents[index].offered = self.agents[index].offered.add(&resources);
        self.offers.insert(
            id,
            OutstandingOffer {
                offer: offer.clone(),
                agent: index,
                resources,
            },
        );
        self.count("master/offers_sent");
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.offers_sent += 1;
            let mut e = event(event::Type::Offers);
            e.offers = Some(event::Offers {
                offers: vec![offer],
            });
            framework.send(&e);
        }
    }

    fn state_json(&self) -> Value {
        let framework_json = |f: &Framework, active: bool| {
            let tasks: Vec<Value> = f
                .tasks
                .values()
                .map(|t| {
                    json!({
                        "id": t.info.task_id.value,
                        "name": t.info.name,
                        "framework_id": f.id.value,
                        "agent_id": t.agent_id.value,
                        "slave_id": t.agent_id.value,
                        "executor_id": t.executor_id.as_ref().map(|e| e.value.clone()).unwrap_or_default(),
                        "state": t.state.as_str_name(),
                        "resources": resources_json(&t.resources),
                    })
                })
                .collect();
            let executors: Vec<Value> = self
                .agents
                .iter()
                .flat_map(|a| {
                    a.executors
                        .iter()
                        .filter(|((fid, _), _)| *fid == f.id.value)
                        .map(|((_, eid), (_, r))| {
                            json!({
                                "executor_id": eid,
                                "framework_id": f.id.value,
                                "agent_id": a.id.value,
                                "slave_id": a.id.value,
                                "resources": resources_json(r),
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let offered = self
                .offers
                .values()
                .filter(|o| o.offer.framework_id == f.id)
                .fold(Resources::default(), |sum, o| sum.add(&o.resources));
            let used = self
                .agents
                .iter()
                .flat_map(|a| {
                    let executors = a
                        .executors
                        .iter()
                        .filter(|((fid, _), _)| *fid == f.id.value)
                        .map(|(_, (_, r))| r);
                    let tasks = a
                        .tasks
                        .iter()
                        .filter(|((fid, _), _)| *fid == f.id.value)
                        .map(|(_, r)| r);
                    executors.chain(tasks)
                })
                .fold(Resources::default(), |sum, r| sum.add(r));
            let capabilities: Vec<&str> = f
                .info
                .capabilities
                .iter()
                .map(|c| c.r#type().as_str_name())
                .collect();
            let mut entry = json!({
                "id": f.id.value,
                "name": f.info.name,
                "user": f.info.user,
                "capabilities": capabilities,
                "failover_timeout": f.info.failover_timeout.unwrap_or(0.0),
                "hostname": f.info.hostname.clone().unwrap_or_default(),
                "webui_url": f.info.webui_url.clone().unwrap_or_default(),
                "checkpoint": f.info.checkpoint(),
                "active": active && f.connected(),
                "connected": f.connected(),
                "recovered": false,
                "registered_time": f.registered_time,
                "offered_resources": resources_json(&offered),
                "used_resources": resources_json(&used),
                "tasks": tasks,
                "executors": executors,
                "offers": self.offers.values().filter(|o| o.offer.framework_id == f.id).map(|o| json!({
                    "id": o.offer.id.value, "agent_id": o.offer.agent_id.value, "resources": resources_json(&o.resources),
                })).collect::<Vec<_>>(),
            });
            // Mesos lists `roles` for a MULTI_ROLE framework and `role` otherwise.
            if let Some(o) = entry.as_object_mut() {
                if f.multi_role() {
                    o.insert("roles".to_owned(), json!(f.info.roles));
                } else {
                    o.insert("role".to_owned(), json!(f.info.role()));
                }
            }
            entry
        };
        let agents: Vec<Value> = self
            .agents
            .iter()
            .filter(|a| a.active)
            .map(|a| {
                json!({
                    "id": a.id.value,
                    "hostname": a.info.hostname,
                    "port": a.endpoint.port(),
                    "pid": format!("slave(1)@{}", a.endpoint),
                    "resources": resources_json(&a.total),
                    "used_resources": resources_json(&a.used()),
                    "offered_resources": resources_json(&a.offered),
                    "active": true,
                })
            })
            .collect();
        let info = &self.master_info;
        json!({
            "version": "1.12.0",
            "id": info.id,
            "pid": info.pid,
            "hostname": info.hostname,
            "activated_slaves": agents.len(),
            "leader": info.pid,
            "slaves": agents,
            "frameworks": self.frameworks.values().map(|f| framework_json(f, true)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed.iter().map(|f| framework_json(f, false)).collect::<Vec<_>>(),
        })
    }

    fn metrics(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: f64| {
            m.insert(k.to_owned(), json!(v));
        };
        let connected = self.frameworks.values().filter(|f| f.connected()).count() as f64;
        put("master/elected", 1.0);
        put("master/uptime_secs", self.started.elapsed().as_secs_f64());
        put("master/frameworks_active", connected);
        put("master/frameworks_connected", connected);
        put(
            "master/frameworks_disconnected",
            self.frameworks.len() as f64 - connected,
        );
        put(
            "master/frameworks_inactive",
            self.frameworks.len() as f64 - connected,
        );
        let active = self.agents.iter().filter(|a| a.active).count() as f64;
        put("master/slaves_active", active);
        put("master/slaves_connected", active);
        put("master/slaves_disconnected", 0.0);
        put("master/slaves_inactive", 0.0);
        put("master/outstanding_offers", self.offers.len() as f64);
        let mut total = Resources::default();
        let mut used = Resources::default();
        for a in self.agents.iter().filter(|a| a.active) {
            total = total.add(&a.total);
            used = used.add(&a.used());
        }
        for (name, t, u) in [
            ("cpus", total.cpus, used.cpus),
            ("mem", total.mem, used.mem),
            ("disk", total.disk, used.disk),
        ] {
            put(&format!("master/{name}_total"), t);
            put(&format!("master/{name}_used"), u);
            put(
                &format!("master/{name}_percent"),
                if t > 0.0 { u / t } else { 0.0 },
            );
        }
        for state in [
            "staging",
            "starting",
            "running",
            "finished",
            "failed",
            "killed",
            "killing",
            "lost",
            "error",
            "dropped",
            "unreachable",
            "gone",
            "gone_by_operator",
            "unknown",
        ] {
            let n = self.task_states.get(state).copied().unwrap_or(0);
            put(&format!("master/tasks_{state}"), n as f64);
        }
        // `tasks_staging` / `tasks_running` are gauges in Mesos: count current tasks.
        let mut current: BTreeMap<&str, f64> = BTreeMap::new();
        for f in self.frameworks.values() {
            for t in f.tasks.values() {
                let key = match t.state {
                    TaskState::TaskStaging => "master/tasks_staging",
                    TaskState::TaskStarting => "master/tasks_starting",
                    TaskState::TaskRunning => "master/tasks_running",
                    TaskState::TaskKilling => "master/tasks_killing",
                    _ => continue,
                };
                *current.entry(key).or_default() += 1.0;
            }
        }
        for key in [
            "master/tasks_staging",
            "master/tasks_starting",
            "master/tasks_running",
            "master/tasks_killing",
        ] {
            put(key, current.get(key).copied().unwrap_or(0.0));
        }
        for (k, v) in &self.counters {
            put(k, *v as f64);
        }
        m
    }
}

fn resources_json(r: &Resources) -> Value {
    let ports: Vec<String> = r.ports.iter().map(|(b, e)| format!("{b}-{e}")).collect();
    let mut v = json!({"cpus": r.cpus, "mem": r.mem, "disk": r.disk});
    if !ports.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("ports".to_owned(), json!(format!("[{}]", ports.join(", "))));
    }
    v
}

/// How long a refused-offer filter lasts (`HierarchicalAllocatorProcess::
/// recoverResources`), or `None` for no filter.
fn filter_timeout(refuse_seconds: f64, allocation_interval: Duration) -> Option<Duration> {
    const DEFAULT: f64 = 5.0;
    const MAX: f64 = 365.0 * 86400.0;
    let seconds = if refuse_seconds > MAX {
        MAX
    } else if refuse_seconds < 0.0 {
        DEFAULT
    } else {
        refuse_seconds
    };
    if seconds.is_nan() {
        // stout turns NaN into a negative duration: the filter lasts one interval.
        return Some(allocation_interval);
    }
    // stout truncates to whole nanoseconds; a zero duration installs no filter.
    let nanos = (seconds * 1e9) as u64;
    if nanos == 0 {
        return None;
    }
    Some(Duration::from_nanos(nanos).max(allocation_interval))
}

/// The TaskInfos of LAUNCH and LAUNCH_GROUP operations.
fn launch_tasks(
    operations: &[brine_proto::mesos::v1::offer::Operation],
) -> Vec<&brine_proto::mesos::v1::TaskInfo> {
    let mut out = Vec::new();
    for op in operations {
        if let Some(launch) = &op.launch {
            out.extend(launch.task_infos.iter());
        }
        if let Some(group) = &op.launch_group {
            out.extend(group.task_group.tasks.iter());
        }
    }
    out
}

/// HEARTBEAT every `interval` while the subscription's stream is open (the one right
/// after SUBSCRIBED is sent by `subscribe`).
fn spawn_heartbeats(subscription: &Subscription, interval: Duration) {
    let weak = subscription.tx.downgrade();
    let Ok(payload) =
        brine_proto::codec::encode(subscription.content_type, &event(event::Type::Heartbeat))
    else {
        return;
    };
    let record = brine_proto::recordio::encode(&payload);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            ticks.tick().await;
            let Some(tx) = weak.upgrade() else { break };
            if tx.send(Ok(record.clone())).is_err() {
                break;
            }
        }
    });
}

/// `MasterInfo` as a 1.12 master describes itself.
pub fn master_info(id: &str, addr: std::net::SocketAddr, hostname: &str) -> MasterInfo {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        std::net::IpAddr::V6(_) => 0,
    };
    let capability = |t: master_info::capability::Type| master_info::Capability {
        r#type: Some(t as i32),
    };
    MasterInfo {
        id: id.to_owned(),
        ip,
        port: u32::from(addr.port()),
        pid: Some(format!("master@{addr}")),
        hostname: Some(hostname.to_owned()),
        version: Some("1.12.0".to_owned()),
        address: Some(Address {
            hostname: Some(hostname.to_owned()),
            ip: Some(addr.ip().to_string()),
            port: i32::from(addr.port()),
        }),
        capabilities: vec![
            capability(master_info::capability::Type::AgentUpdate),
            capability(master_info::capability::Type::AgentDraining),
            capability(master_info::capability::Type::QuotaV2),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_last_as_mesos_recover_resources_sets_them() {
        let second = Duration::from_secs(1);
        assert_eq!(filter_timeout(0.0, second), None);
        assert_eq!(filter_timeout(1e-12, second), None);
        assert_eq!(filter_timeout(0.5, second), Some(second));
        assert_eq!(filter_timeout(2.0, second), Some(Duration::from_secs(2)));
        assert_eq!(filter_timeout(-1.0, second), Some(Duration::from_secs(5)));
        assert_eq!(
            filter_timeout(1e300, second),
            Some(Duration::from_secs(365 * 86400))
        );
        assert_eq!(filter_timeout(f64::NAN, second), Some(second));
    }
}
