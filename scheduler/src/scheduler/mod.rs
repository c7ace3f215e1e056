//! The scheduling loop: one task owns all state, so no locks. It reacts to the
//! master's events (offers, updates, messages, failures), to the user's submissions
//! and cancellations, and to a clock (babysitting executors, reconciling tasks).
//!
//! - `jobs`: the job table; `executors`: the executor registry; `health`: agents set
//!   aside; `updates`: status updates and retries.
//! - Two ways to run a closure ([`crate::Dispatch`]): `closures` + `leases` (the
//!   default: leases from offers, closures over the lane) and `offers` (a Mesos task
//!   per closure, packed into offers).

mod closures;
mod executors;
mod health;
mod jobs;
mod leases;
mod offers;
#[cfg(test)]
mod tests;
mod updates;

use std::time::{Duration, Instant};

use brine_http::Backoff;
use brine_proto::mesos::v1::scheduler::{Call, Event, call, event};
use brine_proto::mesos::v1::{
    AgentId, ExecutorId, Filters, FrameworkInfo, OfferId, TaskId, TaskInfo, offer,
};
use brine_proto::payload::{ExecutorMessage, Payload};
use tokio::sync::{mpsc, oneshot};

use crate::client::{Caller, Subscription};
use crate::connection::{self, MasterAddr, Subscribed};
use crate::job::JobId;
use crate::lane::LaneEvent;
use crate::status::{ClusterStatus, ExecutorStatus, JobCounts};
use crate::store::{Record, State, Store};
use crate::{ClusterConfig, Dispatch, JobState, TaskError};
use brine_proto::payload::LaneEndpoint;
use leases::Leases;

use executors::Executors;
pub(crate) use executors::Template;
use health::AgentHealth;
pub(crate) use jobs::Job;
use jobs::Jobs;

/// What the handles (`Cluster`, `TaskHandle`, the status endpoint) ask of the loop.
pub(crate) enum Command {
    Submit(Box<Job>),
    Cancel(JobId),
    Status(oneshot::Sender<ClusterStatus>),
    Shutdown(oneshot::Sender<()>),
}

/// The link to the master.
enum Link {
    Up {
        /// The master's events; `None` where they are fed to the loop by hand (the
        /// unit tests of this module).
        subscription: Option<Subscription>,
        calls: Calls,
    },
    /// Lost; a re-subscription is under way (its result comes on `reconnected`).
    Down,
    /// The master removed the framework: nothing more can run.
    Gone(String),
}

/// Executors presumed lost or gone, kept for the status endpoint.
const LOST_EXECUTORS_SHOWN: usize = 16;

pub(crate) struct Scheduler {
    config: ClusterConfig,
    master: MasterAddr,
    framework: FrameworkInfo,
    template: Template,
    link: Link,
    reconnect_tx: mpsc::UnboundedSender<Result<Subscribed, crate::ClusterError>>,
    reconnect_rx: mpsc::UnboundedReceiver<Result<Subscribed, crate::ClusterError>>,
    jobs: Jobs,
    executors: Executors,
    lost_executors: Vec<ExecutorStatus>,
    health: AgentHealth,
    store: Option<Store>,
    suppressed: bool,
    last_reconcile: Instant,
    /// When the latest (re)subscription came up: heartbeats travel through the master,
    /// so no executor can be heard before it, and silence counts from it at the most.
    subscribed_at: Instant,
    /// Lease mode: the leases, the lane executors are told about, its events, and the
    /// last lane closure id used.
    leases: Leases,
    lane: LaneEndpoint,
    lane_events: mpsc::UnboundedReceiver<LaneEvent>,
    next_closure: u64,
}

/// The closure lane as the loop gets it: where executors reach it, its events, and a
/// prefix for lease ids unique to this process.
pub(crate) struct Lane {
    pub endpoint: LaneEndpoint,
    pub events: mpsc::UnboundedReceiver<LaneEvent>,
    pub lease_prefix: String,
}

impl Scheduler {
    pub(crate) fn new(
        config: ClusterConfig,
        master: MasterAddr,
        framework: FrameworkInfo,
        template: Template,
        subscribed: Subscribed,
        store: Option<(Store, State)>,
        lane: Lane,
    ) -> Self {
        let (store, state) = match store {
            Some((store, state)) => (Some(store), state),
            None => (None, State::default()),
        };
        let executors = Executors::restore(&template, &state.executors, state.generations);
        let jobs = Jobs::with_orphans(state.jobs);
        let health = AgentHealth::new(
            config.agent_failure_limit,
            config.agent_failure_window,
            config.agent_cooldown,
        );
        let (reconnect_tx, reconnect_rx) = mpsc::unbounded_channel();
        let calls = Calls::spawn(subscribed.subscription.caller.clone());
        Self {
            config,
            master,
            framework,
            template,
            link: Link::Up {
                subscription: Some(subscribed.subscription),
                calls,
            },
            reconnect_tx,
            reconnect_rx,
            jobs,
            executors,
            lost_executors: Vec::new(),
            health,
            store,
            suppressed: false,
            last_reconcile: Instant::now(),
            subscribed_at: Instant::now(),
            leases: Leases::new(lane.lease_prefix),
            lane: lane.endpoint,
            lane_events: lane.events,
            next_closure: 0,
        }
    }

    fn leasing(&self) -> bool {
        self.config.dispatch == Dispatch::Leases
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.on_subscribed();
        let tick = (self.config.heartbeat_timeout / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut clock = tokio::time::interval(tick);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let up = matches!(self.link, Link::Up { .. });
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Submit(job)) => self.submit(*job),
                    Some(Command::Cancel(id)) => self.cancel(id),
                    Some(Command::Status(reply)) => {
                        let _ = reply.send(self.status());
                    }
                    Some(Command::Shutdown(done)) => {
                        self.teardown().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                event = next_event(&mut self.link), if up => match event {
                    Some(Ok(event)) => self.on_event(event),
                    Some(Err(e)) => self.disconnected(e.to_string()),
                    None => self.disconnected("event stream closed".into()),
                },
                Some(result) = self.reconnect_rx.recv() => self.reconnected(result),
                Some(event) = self.lane_events.recv() => self.on_lane_event(event),
                _ = clock.tick() => self.on_tick(),
            }
            if let Some(store) = &mut self.store {
                store.flush();
            }
        }
    }

    fn call(&self, r#type: call::Type, fill: impl FnOnce(&mut Call)) {
        let Link::Up { calls, .. } = &self.link else {
            // Re-sent or reconciled once the link is back.
            tracing::debug!(call = r#type.as_str_name(), "not connected: call dropped");
            return;
        };
        let mut call = Call {
            framework_id: self.framework.id.clone(),
            r#type: Some(r#type as i32),
            ..Default::default()
        };
        fill(&mut call);
        calls.send(call);
    }

    fn record(&mut self, record: Record) {
        if let Some(store) = &mut self.store {
            store.append(&record);
        }
    }

    /// SUPPRESS or REVIVE, whichever turns offers to `wanted` (nothing if they are).
    fn want_offers(&mut self, wanted: bool) {
        if wanted {
            self.revive();
        } else {
            self.suppress();
        }
    }

    /// ACCEPT `offer` with one LAUNCH of `tasks`. The filter is 0 s: what is left of
    /// the offer may come back at the allocator's next tick.
    fn launch(&self, offer: OfferId, tasks: Vec<TaskInfo>) {
        self.call(call::Type::Accept, |c| {
            c.accept = Some(call::Accept {
                offer_ids: vec![offer],
                operations: vec![offer::Operation {
                    r#type: Some(offer::operation::Type::Launch as i32),
                    launch: Some(offer::operation::Launch { task_infos: tasks }),
                    ..Default::default()
                }],
                filters: Some(Filters {
                    refuse_seconds: Some(0.0),
                }),
            })
        });
    }

    /// DECLINE `offers` (if any), filtered for `refuse_seconds`: the allocator offers
    /// them to others meanwhile.
    fn decline(&self, offers: Vec<OfferId>) {
        if offers.is_empty() {
            return;
        }
        let refuse = self.config.refuse_seconds;
        self.call(call::Type::Decline, |c| {
            c.decline = Some(call::Decline {
                offer_ids: offers,
                filters: Some(Filters {
                    refuse_seconds: Some(refuse),
                }),
            })
        });
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

    fn submit(&mut self, mut job: Job) {
        if let Link::Gone(why) = &self.link {
            let why = why.clone();
            job.resolve(Err(TaskError::Connection(why)));
            return;
        }
        job.key = self.jobs.key_for(&job);
        if let Some(orphan) = self.jobs.orphans.remove(&job.key) {
            if let Some(outcome) = orphan.stored.outcome {
                tracing::debug!(job = %job.key, "resubmitted job already ended in an earlier life");
                self.count_end(&outcome);
                job.resolve(outcome);
                return;
            }
            if let Some((task_id, agent, attempt)) = orphan.stored.task {
                job.attempts = attempt;
                self.jobs.orphan_tasks.remove(&task_id);
                if orphan.live {
                    tracing::debug!(job = %job.key, task = %task_id, "resubmitted job still running from an earlier life");
                    if let Some(executor) = self.executors.by_agent.get_mut(&agent) {
                        executor.tasks.insert(task_id.clone());
                    }
                    let executor = self
                        .executors
                        .by_agent
                        .get(&agent)
                        .map(|e| e.id().to_owned())
                        .unwrap_or_default();
                    job.attempt = Some(jobs::Attempt {
                        task_id: task_id.clone(),
                        agent,
                        executor,
                        closure: None,
                    });
                    job.set_state(JobState::Staging);
                    self.jobs.by_task.insert(task_id, job.id);
                    self.jobs.jobs.insert(job.id, job);
                    return;
                }
            }
        }
        self.enqueue(job, false);
    }

    /// Puts `job` in the pending queue (at the front for a retry).
    fn enqueue(&mut self, job: Job, front: bool) {
        job.set_state(JobState::Pending);
        let id = job.id;
        self.jobs.jobs.insert(id, job);
        if front {
            self.jobs.pending.push_front(id);
        } else {
            self.jobs.pending.push_back(id);
        }
        if self.leasing() {
            self.dispatch();
        } else {
            self.revive();
        }
    }

    fn cancel(&mut self, id: JobId) {
        let Some(job) = self.jobs.jobs.remove(&id) else {
            return;
        };
        if let Some(attempt) = job.attempt.as_ref().filter(|a| a.closure.is_some()) {
            tracing::debug!(task = %attempt.task_id, "job cancelled: closure killed");
            self.cancel_closure(attempt);
        } else if let Some(attempt) = &job.attempt {
            tracing::debug!(task = %attempt.task_id, "job cancelled: KILL");
            self.jobs.by_task.remove(&attempt.task_id);
            if let Some(executor) = self.executors.by_agent.get_mut(&attempt.agent) {
                executor.tasks.remove(&attempt.task_id);
            }
            self.kill(&attempt.task_id, &attempt.agent);
        }
        job.resolve(Err(TaskError::Cancelled));
    }

    fn kill(&self, task_id: &str, agent: &str) {
        self.call(call::Type::Kill, |c| {
            c.kill = Some(call::Kill {
                task_id: TaskId {
                    value: task_id.to_owned(),
                },
                agent_id: Some(AgentId {
                    value: agent.to_owned(),
                }),
                ..Default::default()
            })
        });
    }

    fn count_end(&mut self, outcome: &Result<Vec<u8>, TaskError>) {
        if outcome.is_ok() {
            self.jobs.ended.succeeded += 1;
        } else {
            self.jobs.ended.failed += 1;
        }
    }

    fn on_event(&mut self, event: Event) {
        match event.r#type() {
            event::Type::Offers => {
                let offers = event.offers.map(|o| o.offers).unwrap_or_default();
                if self.leasing() {
                    self.take_leases(offers);
                } else {
                    self.on_offers(offers);
                }
            }
            event::Type::Update => {
                if let Some(update) = event.update {
                    self.on_update(update.status);
                }
            }
            event::Type::Message => {
                if let Some(message) = event.message {
                    self.on_message(
                        &message.agent_id.value,
                        &message.executor_id.value,
                        &message.data,
                    );
                }
            }
            event::Type::Failure => {
                if let Some(failure) = event.failure {
                    tracing::warn!(?failure, "FAILURE");
                    if let Some(agent) = failure.agent_id {
                        let executor = failure.executor_id.map(|e| e.value);
                        self.executor_gone(&agent.value, executor.as_deref());
                    }
                }
            }
            event::Type::Error => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                self.gone(format!("master error: {message}"));
            }
            event::Type::Heartbeat | event::Type::Subscribed | event::Type::Rescind => {}
            other => tracing::debug!(event = other.as_str_name(), "ignored event"),
        }
    }

    /// A framework message: Brine executors send heartbeats.
    fn on_message(&mut self, agent: &str, executor_id: &str, data: &[u8]) {
        let beat = match ExecutorMessage::decode(data) {
            Ok(ExecutorMessage::Heartbeat(beat)) => beat,
            Err(e) => {
                tracing::debug!(agent, executor = executor_id, error = %e, "undecodable executor message");
                return;
            }
        };
        if !self.executors.heartbeat(agent, executor_id, &beat) {
            tracing::debug!(
                agent,
                executor = executor_id,
                "heartbeat from an executor no longer used"
            );
            return;
        }
        for running in &beat.running {
            if let Some(job) = self
                .jobs
                .by_task
                .get(&running.task_id)
                .and_then(|id| self.jobs.jobs.get(id))
            {
                if job.state() == JobState::Staging {
                    job.set_state(JobState::Running);
                }
                job.set_progress(running.progress);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Disconnected, the scheduler hears nobody: that is not the executors' silence.
        if matches!(self.link, Link::Up { .. }) {
            let timeout = self.config.heartbeat_timeout;
            for agent in self.executors.silent(now, timeout, self.subscribed_at) {
                self.presume_lost(&agent);
            }
        }
        if matches!(self.link, Link::Up { .. })
            && now.duration_since(self.last_reconcile) >= self.config.reconcile_interval
        {
            self.reconcile();
        }
        if self.leasing() {
            self.lane_tick(now);
        }
    }

    /// Babysitting: an executor that stopped beating is presumed lost. Its tasks are
    /// killed and retried elsewhere, it is shut down, and its id is never used again.
    fn presume_lost(&mut self, agent: &str) {
        let Some(executor) = self.executors.remove(agent, None) else {
            return;
        };
        let silent = executor.last_heartbeat.unwrap_or(executor.since).elapsed();
        tracing::warn!(
            agent,
            executor = executor.id(),
            silent = ?silent,
            tasks = executor.tasks.len(),
            "executor missed its heartbeats: presumed lost"
        );
        self.call(call::Type::Shutdown, |c| {
            c.shutdown = Some(call::Shutdown {
                executor_id: ExecutorId {
                    value: executor.id().to_owned(),
                },
                agent_id: AgentId {
                    value: agent.to_owned(),
                },
            })
        });
        let message = format!(
            "executor {} on agent {agent} sent no heartbeat for {silent:?}",
            executor.id()
        );
        for task_id in &executor.tasks {
            self.kill(task_id, agent);
            if let Some((job, _)) = self.jobs.take_task(task_id) {
                self.infra_failure(job, agent, "TASK_LOST", "executor presumed lost", &message);
            }
        }
        self.forget(executor, true);
    }

    /// The master says the executor on `agent` ended (or the agent is gone).
    fn executor_gone(&mut self, agent: &str, executor_id: Option<&str>) {
        if let Some(executor) = self.executors.remove(agent, executor_id) {
            tracing::info!(
                agent,
                executor = executor.id(),
                "executor gone; the next task starts a new one"
            );
            self.forget(executor, false);
        }
    }

    fn forget(&mut self, executor: executors::Executor, lost: bool) {
        // Its leases went with it, and so did the closures in flight on its lane.
        if let Some(link) = &executor.lane {
            link.writer.close();
        }
        for (lease, _) in self.leases.remove_executor(executor.id()) {
            if lost {
                self.kill(&lease, &executor.agent);
            }
        }
        let closures = self
            .jobs
            .closures_in(|a| a.closure.is_some() && a.executor == executor.id());
        let message = format!(
            "executor {} on agent {} is gone",
            executor.id(),
            executor.agent
        );
        self.closures_lost(closures, &executor.agent, "TASK_LOST", &message, true);
        self.jobs.unanswerable(executor.id());
        self.record(Record::ExecutorGone {
            agent: executor.agent.clone(),
            id: executor.id().to_owned(),
        });
        if self.lost_executors.len() >= LOST_EXECUTORS_SHOWN {
            self.lost_executors.remove(0);
        }
        let mut status = executor_status(&executor);
        status.lost = lost;
        // Its tasks have been retried or will be reported ended.
        status.tasks.clear();
        self.lost_executors.push(status);
    }

    /// Explicit reconciliation of every task this scheduler believes live, and in
    /// lease mode an implicit one too: every task of the framework is reported, so
    /// leases no one uses (of an earlier life of this scheduler, or ended on a
    /// master's word while their agent was unknown to it) show up as unknown live
    /// tasks and are killed.
    fn reconcile(&mut self) {
        self.last_reconcile = Instant::now();
        if self.leasing() {
            self.call(call::Type::Reconcile, |c| {
                c.reconcile = Some(call::Reconcile { tasks: Vec::new() })
            });
        }
        let mut tasks: Vec<call::reconcile::Task> = Vec::new();
        for (task_id, id) in &self.jobs.by_task {
            if let Some(attempt) = self.jobs.jobs.get(id).and_then(|j| j.attempt.as_ref()) {
                tasks.push(reconcile_task(task_id, &attempt.agent));
            }
        }
        for (task_id, key) in &self.jobs.orphan_tasks {
            if let Some((_, agent, _)) = self
                .jobs
                .orphans
                .get(key)
                .and_then(|o| o.stored.task.as_ref())
            {
                tasks.push(reconcile_task(task_id, agent));
            }
        }
        for (lease, l) in self.leases.all() {
            tasks.push(reconcile_task(lease, &l.agent));
        }
        if tasks.is_empty() {
            return;
        }
        tracing::debug!(tasks = tasks.len(), "RECONCILE");
        self.call(call::Type::Reconcile, |c| {
            c.reconcile = Some(call::Reconcile { tasks })
        });
    }

    /// (Re)subscribed: the master has the framework; bring it up to date.
    fn on_subscribed(&mut self) {
        self.subscribed_at = Instant::now();
        // The master keeps no suppression across a re-subscription.
        self.suppressed = false;
        if self.leasing() {
            self.want_more_leases();
        } else if !self.jobs.has_pending() {
            self.suppress();
        }
        self.reconcile();
    }

    fn disconnected(&mut self, why: String) {
        if !matches!(self.link, Link::Up { .. }) {
            return;
        }
        tracing::warn!(error = %why, "lost the master: re-subscribing");
        self.link = Link::Down;
        let master = self.master.clone();
        let framework = self.framework.clone();
        let client = self.config.client.clone();
        let max_backoff = self.config.max_resubscribe_backoff;
        let tx = self.reconnect_tx.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), max_backoff);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                    // The scheduler is gone (its `Cluster` dropped): stop retrying.
                    () = tx.closed() => return,
                }
                match connection::subscribe(&master, &framework, &client).await {
                    Ok(subscribed) => {
                        let _ = tx.send(Ok(subscribed));
                        return;
                    }
                    // The master answered and refused: retrying will not help.
                    Err(e @ crate::ClusterError::Subscribe(_)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, retry_in = ?backoff.peek(), "re-subscription failed");
                    }
                }
            }
        });
    }

    fn reconnected(&mut self, result: Result<Subscribed, crate::ClusterError>) {
        match result {
            Ok(subscribed) => {
                if self.framework.id.as_ref() != Some(&subscribed.framework_id) {
                    tracing::error!(
                        expected = ?self.framework.id,
                        got = %subscribed.framework_id.value,
                        "the master gave another FrameworkID"
                    );
                }
                tracing::info!(master = %subscribed.url, "re-subscribed");
                let calls = Calls::spawn(subscribed.subscription.caller.clone());
                self.link = Link::Up {
                    subscription: Some(subscribed.subscription),
                    calls,
                };
                self.on_subscribed();
            }
            Err(e) => self.gone(e.to_string()),
        }
    }

    /// The framework cannot go on: every job fails with `why`.
    fn gone(&mut self, why: String) {
        tracing::error!(error = %why, "the framework is gone");
        for (_, job) in self.jobs.jobs.drain() {
            job.resolve(Err(TaskError::Connection(why.clone())));
        }
        self.jobs.pending.clear();
        self.jobs.by_task.clear();
        self.jobs.by_closure.clear();
        self.link = Link::Gone(why);
    }

    fn status(&self) -> ClusterStatus {
        let (pending, staging, running) = self.jobs.counts();
        let mut executors: Vec<ExecutorStatus> = self
            .executors
            .by_agent
            .values()
            .map(|e| {
                let mut status = executor_status(e);
                status.leases = self.leases.count_on(e.id());
                status
            })
            .collect();
        executors.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        executors.extend(self.lost_executors.iter().cloned());
        ClusterStatus {
            framework_id: self
                .framework
                .id
                .as_ref()
                .map(|id| id.value.clone())
                .unwrap_or_default(),
            connected: matches!(self.link, Link::Up { .. }),
            jobs: JobCounts {
                pending,
                staging,
                running,
                succeeded: self.jobs.ended.succeeded,
                failed: self.jobs.ended.failed,
                completed_twice: self.jobs.ended.completed_twice,
            },
            executors,
            set_aside_agents: self.health.set_aside_agents(),
        }
    }

    /// TEARDOWN: the master shuts every executor of the framework down. The state
    /// store is removed: nothing is left to resume.
    async fn teardown(&mut self) {
        // What is queued (acknowledgements above all) goes first, TEARDOWN last, and
        // nothing after it: a local master (the whole cluster) is going away.
        self.call(call::Type::Teardown, |_| {});
        if let Link::Up { calls, .. } = std::mem::replace(&mut self.link, Link::Down) {
            calls.finish().await;
        }
        for (_, job) in self.jobs.jobs.drain() {
            job.resolve(Err(TaskError::Cancelled));
        }
        if let Some(store) = self.store.take() {
            store.remove();
        }
    }
}

async fn next_event(link: &mut Link) -> Option<Result<Event, crate::client::ClientError>> {
    match link {
        Link::Up {
            subscription: Some(subscription),
            ..
        } => subscription.events.recv().await,
        _ => std::future::pending().await,
    }
}

fn reconcile_task(task_id: &str, agent: &str) -> call::reconcile::Task {
    call::reconcile::Task {
        task_id: TaskId {
            value: task_id.to_owned(),
        },
        agent_id: Some(AgentId {
            value: agent.to_owned(),
        }),
    }
}

fn executor_status(executor: &executors::Executor) -> ExecutorStatus {
    let mut tasks: Vec<String> = executor.tasks.iter().cloned().collect();
    tasks.sort();
    ExecutorStatus {
        agent_id: executor.agent.clone(),
        executor_id: executor.id().to_owned(),
        tasks,
        cpus: executor.cpus,
        mem_mb: executor.mem_mb,
        last_heartbeat_unix_ms: executor.last_heartbeat_unix_ms,
        modules: executor.modules.len(),
        lost: false,
        leases: 0,
        lane_connected: executor.lane.is_some(),
        lane_running: executor.lane_use.running,
    }
}

/// Sends calls one after another, in the order the loop made them (a task's
/// acknowledgements must reach the master in order), without blocking the loop.
/// Dropped with a lost link, it still sends what was queued.
struct Calls {
    queue: mpsc::UnboundedSender<Call>,
    /// The task sending them; none where the queue's receiver is read by hand (tests).
    sender: Option<tokio::task::JoinHandle<()>>,
}

impl Calls {
    fn spawn(caller: Caller) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<Call>();
        let sender = tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                if let Err(e) = caller.call(&call).await {
                    // ACCEPTs are answered 202 even when invalid (the error comes as an
                    // UPDATE); anything else failing means the master is in trouble,
                    // which the event stream reports.
                    tracing::warn!(error = %e, call = call.r#type().as_str_name(), "call failed");
                }
            }
        });
        Calls {
            queue,
            sender: Some(sender),
        }
    }

    fn send(&self, call: Call) {
        // The receiver lives until `finish` or the queue is dropped.
        let _ = self.queue.send(call);
    }

    /// Sends everything queued, then stops.
    async fn finish(self) {
        drop(self.queue);
        if let Some(sender) = self.sender {
            let _ = sender.await;
        }
    }
}
