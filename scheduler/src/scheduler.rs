//! The scheduling loop: one task owns all state, so no locks. It reacts to the master's
//! events (offers, updates, failures) and to the user's submissions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use brine_proto::mesos::v1::scheduler::{Call, Event, call, event};
use brine_proto::mesos::v1::{
    CommandInfo, ExecutorId, ExecutorInfo, Filters, FrameworkId, Offer, OfferId, Resource, TaskId,
    TaskInfo, TaskState, TaskStatus, command_info, offer, value,
};
use brine_proto::payload::{
    Encoding, ErrorKind, ModuleHash, ModuleRef, Payload, TaskOutcome, TaskSpec,
};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::client::{Caller, Subscription};
use crate::cluster::ClusterConfig;
use crate::{Module, TaskError};

type Reply = oneshot::Sender<Result<Vec<u8>, TaskError>>;

pub(crate) enum Command {
    Submit(Job),
    Shutdown(oneshot::Sender<()>),
}

/// One submitted closure, across its attempts.
pub(crate) struct Job {
    module: Module,
    entry: String,
    args: Vec<u8>,
    attempts: u32,
    /// Send the module bytes whatever the executor is believed to hold (it said
    /// `module_missing`).
    force_inline: bool,
    reply: Reply,
}

impl Job {
    pub(crate) fn new(module: Module, entry: String, args: Vec<u8>, reply: Reply) -> Self {
        Self {
            module,
            entry,
            args,
            attempts: 0,
            force_inline: false,
            reply,
        }
    }

    fn resolve(self, result: Result<Vec<u8>, TaskError>) {
        // The user may have dropped the handle; nothing to do then.
        let _ = self.reply.send(result);
    }
}

struct Launched {
    job: Job,
    agent: String,
    executor: String,
}

/// The executor this framework runs on an agent.
struct AgentExecutor {
    info: ExecutorInfo,
    /// Modules sent inline to it: it holds (or is about to hold) them.
    modules: HashSet<ModuleHash>,
}

pub(crate) struct Scheduler {
    config: ClusterConfig,
    framework_id: FrameworkId,
    executor_uri: String,
    subscription: Subscription,
    calls: mpsc::UnboundedSender<Call>,
    pending: VecDeque<Job>,
    launched: HashMap<String, Launched>,
    executors: HashMap<String, AgentExecutor>,
    /// Executors started per agent so far: ids are never reused.
    generations: HashMap<String, u64>,
    next_task: u64,
    suppressed: bool,
    /// Why the master connection is gone, once it is.
    dead: Option<String>,
}

impl Scheduler {
    pub(crate) fn new(
        config: ClusterConfig,
        framework_id: FrameworkId,
        executor_binary: &Path,
        subscription: Subscription,
    ) -> Self {
        let calls = spawn_call_sender(subscription.caller.clone());
        Self {
            config,
            framework_id,
            executor_uri: format!("file://{}", executor_binary.display()),
            subscription,
            calls,
            pending: VecDeque::new(),
            launched: HashMap::new(),
            executors: HashMap::new(),
            generations: HashMap::new(),
            next_task: 0,
            suppressed: false,
            dead: None,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // Nothing is pending yet: do not hold the cluster's resources.
        self.suppress();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Submit(job)) => self.submit(job),
                    Some(Command::Shutdown(done)) => {
                        self.teardown().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                event = self.subscription.events.recv(), if self.dead.is_none() => match event {
                    Some(Ok(event)) => self.on_event(event),
                    Some(Err(e)) => self.disconnected(e.to_string()),
                    None => self.disconnected("event stream closed".into()),
                },
            }
        }
    }

    fn call(&self, r#type: call::Type, fill: impl FnOnce(&mut Call)) {
        let mut call = Call {
            framework_id: Some(self.framework_id.clone()),
            r#type: Some(r#type as i32),
            ..Default::default()
        };
        fill(&mut call);
        // The sender only stops with the scheduler.
        let _ = self.calls.send(call);
    }

    fn suppress(&mut self) {
        if !self.suppressed {
            tracing::debug!("nothing pending: SUPPRESS");
            self.call(call::Type::Suppress, |c| {
                c.suppress = Some(Default::default())
            });
            self.suppressed = true;
        }
    }

    fn revive(&mut self) {
        if self.suppressed {
            tracing::debug!("work arrived: REVIVE");
            self.call(call::Type::Revive, |c| c.revive = Some(Default::default()));
            self.suppressed = false;
        }
    }

    fn submit(&mut self, job: Job) {
        if let Some(why) = &self.dead {
            job.resolve(Err(TaskError::Connection(why.clone())));
            return;
        }
        self.pending.push_back(job);
        self.revive();
    }

    fn on_event(&mut self, event: Event) {
        match event.r#type() {
            event::Type::Offers => {
                let offers = event.offers.map(|o| o.offers).unwrap_or_default();
                self.on_offers(offers);
            }
            event::Type::Update => {
                if let Some(update) = event.update {
                    self.on_update(update.status);
                }
            }
            event::Type::Failure => {
                if let Some(failure) = event.failure {
                    tracing::warn!(?failure, "FAILURE");
                    if let Some(agent) = failure.agent_id {
                        self.forget_executor(&agent.value, failure.executor_id.map(|e| e.value));
                    }
                }
            }
            event::Type::Error => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                self.disconnected(format!("master error: {message}"));
            }
            event::Type::Heartbeat | event::Type::Subscribed | event::Type::Rescind => {}
            other => tracing::debug!(event = other.as_str_name(), "ignored event"),
        }
    }

    fn on_offers(&mut self, offers: Vec<Offer>) {
        let mut declined = Vec::new();
        for offer in offers {
            if !self.launch_on(&offer) {
                declined.push(offer.id);
            }
        }
        if !declined.is_empty() {
            let refuse = self.config.refuse_seconds;
            self.call(call::Type::Decline, |c| {
                c.decline = Some(call::Decline {
                    offer_ids: declined,
                    filters: Some(Filters {
                        refuse_seconds: Some(refuse),
                    }),
                })
            });
        }
        if self.pending.is_empty() {
            self.suppress();
        }
    }

    /// Packs pending tasks first-fit into `offer`; false when nothing fit.
    fn launch_on(&mut self, offer: &Offer) -> bool {
        const EPSILON: f64 = 1e-9;
        let agent = offer.agent_id.value.clone();
        let mut cpus = scalar(&offer.resources, "cpus");
        let mut mem = scalar(&offer.resources, "mem");
        let new_executor = !self.executors.contains_key(&agent);
        if new_executor {
            cpus -= self.config.executor_cpus;
            mem -= self.config.executor_mem_mb;
        }
        let (task_cpus, task_mem) = (self.config.task_cpus, self.config.task_mem_mb);
        let mut jobs = Vec::new();
        while cpus + EPSILON >= task_cpus && mem + EPSILON >= task_mem {
            let Some(job) = self.pending.pop_front() else {
                break;
            };
            cpus -= task_cpus;
            mem -= task_mem;
            jobs.push(job);
        }
        if jobs.is_empty() {
            return false;
        }
        if new_executor {
            let info = self.executor_info(&agent);
            self.executors.insert(
                agent.clone(),
                AgentExecutor {
                    info,
                    modules: HashSet::new(),
                },
            );
        }
        let Some(executor) = self.executors.get_mut(&agent) else {
            return false;
        };
        let executor_id = executor.info.executor_id.value.clone();
        let mut task_infos = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            self.next_task += 1;
            let task_id = format!("brine-task-{}", self.next_task);
            let hash = job.module.hash;
            let module = if job.force_inline || executor.modules.insert(hash) {
                ModuleRef::inline(job.module.bytes.to_vec())
            } else {
                ModuleRef::by_hash(hash)
            };
            let spec = TaskSpec {
                module,
                export: job.entry.clone(),
                args: job.args.clone(),
                encoding: Encoding::Postcard,
                deadline: None,
            };
            job.attempts += 1;
            job.force_inline = false;
            task_infos.push(TaskInfo {
                name: task_id.clone(),
                task_id: TaskId {
                    value: task_id.clone(),
                },
                agent_id: offer.agent_id.clone(),
                resources: vec![resource("cpus", task_cpus), resource("mem", task_mem)],
                executor: Some(executor.info.clone()),
                data: Some(Bytes::from(spec.encode())),
                ..Default::default()
            });
            self.launched.insert(
                task_id,
                Launched {
                    job,
                    agent: agent.clone(),
                    executor: executor_id.clone(),
                },
            );
        }
        tracing::debug!(agent = %agent, executor = %executor_id, tasks = task_infos.len(), "ACCEPT");
        let offer_id: OfferId = offer.id.clone();
        self.call(call::Type::Accept, |c| {
            c.accept = Some(call::Accept {
                offer_ids: vec![offer_id],
                operations: vec![offer::Operation {
                    r#type: Some(offer::operation::Type::Launch as i32),
                    launch: Some(offer::operation::Launch { task_infos }),
                    ..Default::default()
                }],
                // What is left of the offer may come straight back for the next task.
                filters: Some(Filters {
                    refuse_seconds: Some(0.0),
                }),
            })
        });
        true
    }

    /// The one ExecutorInfo every task on `agent` carries (Mesos requires it identical
    /// for the executor's whole life).
    fn executor_info(&mut self, agent: &str) -> ExecutorInfo {
        let generation = self.generations.entry(agent.to_owned()).or_insert(0);
        *generation += 1;
        ExecutorInfo {
            executor_id: ExecutorId {
                value: format!("brine-{agent}-{generation}"),
            },
            framework_id: Some(self.framework_id.clone()),
            data: Some(Bytes::from(self.config.executor_config.encode())),
            resources: vec![
                resource("cpus", self.config.executor_cpus),
                resource("mem", self.config.executor_mem_mb),
            ],
            command: Some(CommandInfo {
                uris: vec![command_info::Uri {
                    value: self.executor_uri.clone(),
                    executable: Some(true),
                    ..Default::default()
                }],
                // The fetcher puts the binary in the sandbox, the command's working
                // directory; `exec` keeps the executor's pid the container's.
                value: Some("exec ./brine-executor".into()),
                shell: Some(true),
                ..Default::default()
            }),
            name: Some("brine-executor".into()),
            ..Default::default()
        }
    }

    fn forget_executor(&mut self, agent: &str, executor_id: Option<String>) {
        let matches = self.executors.get(agent).is_some_and(|e| {
            executor_id
                .as_deref()
                .is_none_or(|id| id == e.info.executor_id.value)
        });
        if matches {
            tracing::info!(agent, "executor gone; the next task starts a new one");
            self.executors.remove(agent);
        }
    }

    fn on_update(&mut self, status: TaskStatus) {
        let state = status.state();
        tracing::trace!(task = %status.task_id.value, state = state.as_str_name(), "UPDATE");
        if state.is_terminal()
            && let Some(launched) = self.launched.remove(&status.task_id.value)
        {
            self.finish(launched, &status);
        }
        // Only updates with a uuid are acknowledged (master-made ones must not be).
        if let (Some(uuid), Some(agent_id)) = (status.uuid.clone(), status.agent_id.clone()) {
            let task_id = status.task_id.clone();
            self.call(call::Type::Acknowledge, |c| {
                c.acknowledge = Some(call::Acknowledge {
                    agent_id,
                    task_id,
                    uuid,
                })
            });
        }
    }

    fn finish(&mut self, launched: Launched, status: &TaskStatus) {
        let Launched {
            mut job,
            agent,
            executor,
        } = launched;
        let state = status.state();
        let outcome = status
            .data
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(TaskOutcome::decode);
        match (state, outcome) {
            (TaskState::TaskFinished, Some(Ok(TaskOutcome::Success { result }))) => {
                job.resolve(Ok(result));
            }
            (TaskState::TaskFinished, other) => job.resolve(Err(TaskError::Protocol(format!(
                "TASK_FINISHED without a success outcome: {other:?}"
            )))),
            (TaskState::TaskKilled, _) => job.resolve(Err(TaskError::Killed {
                message: status.message().to_owned(),
            })),
            (_, Some(Ok(TaskOutcome::Failure(failure)))) => {
                if failure.kind == ErrorKind::ModuleMissing {
                    if let Some(e) = self.executors.get_mut(&agent) {
                        e.modules.remove(&job.module.hash);
                    }
                    if !job.force_inline {
                        // Not the task's fault: resend with the bytes, not counted.
                        job.attempts = job.attempts.saturating_sub(1);
                        job.force_inline = true;
                    }
                }
                if failure.kind.is_deterministic() || job.attempts > self.config.max_retries {
                    job.resolve(Err(TaskError::Guest {
                        kind: failure.kind,
                        message: failure.message,
                        stderr_tail: failure.stderr_tail,
                    }));
                } else {
                    tracing::info!(kind = %failure.kind, attempts = job.attempts, "retrying task");
                    self.retry(job);
                }
            }
            // No Brine outcome: Mesos (agent or master) ended it.
            (_, _) => {
                if status.reason()
                    == brine_proto::mesos::v1::task_status::Reason::ExecutorTerminated
                {
                    self.forget_executor(&agent, Some(executor));
                }
                let retryable = state != TaskState::TaskError;
                if retryable && job.attempts <= self.config.max_retries {
                    tracing::info!(
                        task = %status.task_id.value,
                        state = state.as_str_name(),
                        reason = status.reason().as_str_name(),
                        attempts = job.attempts,
                        "retrying task as a new attempt"
                    );
                    self.retry(job);
                } else {
                    let attempts = job.attempts;
                    job.resolve(Err(TaskError::Lost {
                        state: state.as_str_name().to_owned(),
                        reason: status.reason().as_str_name().to_owned(),
                        message: status.message().to_owned(),
                        attempts,
                    }));
                }
            }
        }
    }

    fn retry(&mut self, job: Job) {
        self.pending.push_front(job);
        self.revive();
    }

    fn disconnected(&mut self, why: String) {
        tracing::error!(error = %why, "lost the master");
        for job in self.pending.drain(..) {
            job.resolve(Err(TaskError::Connection(why.clone())));
        }
        for (_, launched) in self.launched.drain() {
            launched
                .job
                .resolve(Err(TaskError::Connection(why.clone())));
        }
        self.dead = Some(why);
    }

    /// TEARDOWN: the master shuts every executor of the framework down.
    async fn teardown(&mut self) {
        if self.dead.is_none() {
            let call = Call {
                framework_id: Some(self.framework_id.clone()),
                r#type: Some(call::Type::Teardown as i32),
                ..Default::default()
            };
            if let Err(e) = self.subscription.caller.call(&call).await {
                tracing::warn!(error = %e, "TEARDOWN failed");
            }
        }
        for job in self.pending.drain(..) {
            job.resolve(Err(TaskError::Cancelled));
        }
        for (_, launched) in self.launched.drain() {
            launched.job.resolve(Err(TaskError::Cancelled));
        }
    }
}

/// Sends calls one after another, in the order the loop made them (a task's
/// acknowledgements must reach the master in order), without blocking the loop.
fn spawn_call_sender(caller: Caller) -> mpsc::UnboundedSender<Call> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Call>();
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            if let Err(e) = caller.call(&call).await {
                // ACCEPTs are answered 202 even when invalid (the error comes as an
                // UPDATE); anything else failing means the master is in trouble, which
                // the event stream reports.
                tracing::warn!(error = %e, "call failed");
            }
        }
    });
    tx
}

fn scalar(resources: &[Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum()
}

fn resource(name: &str, v: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        ..Default::default()
    }
}
