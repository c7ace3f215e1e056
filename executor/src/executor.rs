//! The executor's event loop: one task owns all state (task table, unacknowledged
//! updates, work queue, link state) and reacts to inputs — agent events, finished
//! tasks, signals, the closure lane — and timers (heartbeat, idle timeout,
//! re-subscription, shutdown deadline, lane reconnection and progress). Nothing slow
//! runs on it: wasm runs on blocking threads ([`crate::pool`]), HTTP calls on two
//! sender tasks (one for UPDATEs, in order; one for heartbeat MESSAGEs, latest first),
//! the event stream on a reader task, the lane on a reader and a writer task
//! ([`crate::lane`]).
//!
//! The loop's work, by what it is about: `setup` (the configuration, runtime and dataset
//! at the first SUBSCRIBED), `link` (subscribing, the reader and sender tasks, status
//! updates), `events` (each agent event to its handler), `lifecycle` (a task from LAUNCH
//! to its terminal update, and KILL), `outcome` (a task's end as a status update),
//! `closures` (leases and lane closures), `timers`, `shutdown` and `signals`.

mod closures;
mod events;
mod lifecycle;
mod link;
mod outcome;
mod setup;
mod shutdown;
mod signals;
mod timers;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use brine_proto::mesos::v1::executor::{Call, Event};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

pub use self::link::SUBSCRIBE_RETRY;
use self::link::{LinkState, send_calls};
pub use self::outcome::{reason_for, terminal_status};
use self::setup::Setup;
pub use self::setup::parse_config;
use self::shutdown::Shutdown;
pub use self::shutdown::shutdown_margin;
use self::signals::spawn_signal_listener;
use crate::agent::AgentLink;
use crate::backoff::Reconnect;
use crate::env::MesosEnv;
use crate::heartbeat::Heartbeats;
use crate::lane::{LaneEvent, LaneLink};
use crate::leases::Leases;
use crate::pool::{TaskDone, WorkQueue};
use crate::runtime::RuntimeError;
use crate::tasks::TaskTable;
use crate::updates::Unacknowledged;

/// Most inputs handled in one pass of the event loop (between two looks at the timers).
const MAX_INPUTS_PER_PASS: usize = 256;

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
    /// The compilation closure `local` started and outlived has ended.
    CompileEnded {
        local: u64,
    },
    Lane(LaneEvent),
    Terminate(&'static str),
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
            Input::CompileEnded { local } => self.on_compile_ended(local),
            Input::Lane(event) => self.on_lane_event(event),
            Input::Terminate(signal) => self.begin_shutdown(format!("received {signal}")),
        }
        Ok(())
    }
}
