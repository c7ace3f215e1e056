//! The master's state and its event loop: every call, agent event and timer reaches
//! [`State::handle`], one at a time, in the order it arrived. What each command does
//! lives in the module named for it: `subscribe` (frameworks coming and going),
//! `calls` and `accept` (the scheduler calls), `agent_events`, `allocator`,
//! `endpoints` (`/master/state`, `/metrics/snapshot`).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use brine_proto::mesos::v1::scheduler::event;
use brine_proto::mesos::v1::{Address, MasterInfo, TaskState, TaskStatus, master_info};
use tokio::sync::{mpsc, oneshot};

use super::MasterConfig;
use super::command::Command;
use super::frameworks::{Framework, event};
use super::offers::{AgentSlot, OutstandingOffer};

/// Everything the master knows; only the event loop touches it.
pub struct State {
    pub config: MasterConfig,
    pub master_info: MasterInfo,
    pub tx: mpsc::UnboundedSender<Command>,
    pub agents: Vec<AgentSlot>,
    pub frameworks: BTreeMap<String, Framework>,
    pub completed: Vec<Framework>,
    pub offers: HashMap<String, OutstandingOffer>,
    pub(super) next_framework: u64,
    pub(super) next_offer: u64,
    /// Numbers the links of standalone agents.
    pub(super) next_connection: u64,
    pub(super) round_robin: usize,
    /// Set by what makes Mesos allocate at once (a framework added or re-activated,
    /// REVIVE): the command's handler runs a batch allocation after answering.
    pub(super) allocate_now: bool,
    pub(super) started: Instant,
    pub(super) counters: BTreeMap<String, u64>,
    pub(super) task_states: BTreeMap<&'static str, u64>,
}

pub(super) fn status_event(status: TaskStatus) -> brine_proto::mesos::v1::scheduler::Event {
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
            next_connection: 0,
            round_robin: 0,
            allocate_now: false,
            started: Instant::now(),
            counters: BTreeMap::new(),
            task_states: BTreeMap::new(),
        }
    }

    pub(super) fn count(&mut self, key: &str) {
        *self.counters.entry(key.to_owned()).or_default() += 1;
    }

    pub(super) fn count_state(&mut self, state: TaskState) {
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

    pub(super) fn agent_index(&self, agent_id: &str) -> Option<usize> {
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
            Command::RegisterAgent {
                registration,
                reply,
            } => {
                let result = self.register_agent(registration);
                self.reply_then_allocate(reply, result);
            }
            Command::AgentStreamClosed {
                agent_id,
                connection,
            } => self.agent_disconnected(&agent_id, connection),
            Command::AgentEvents {
                agent_id,
                connection,
                events,
                reply,
            } => {
                let accepted = self.agent_events(&agent_id, connection, events);
                let _ = reply.send(accepted);
            }
            Command::AgentReregisterTimeout {
                agent_id,
                connection,
            } => self.agent_reregister_timeout(&agent_id, connection),
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

    pub(super) fn send_to(&mut self, framework_id: &str, status: TaskStatus) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.send(&status_event(status));
        }
    }

    pub(super) fn send_to_framework_event(
        &mut self,
        framework_id: &str,
        e: &brine_proto::mesos::v1::scheduler::Event,
    ) {
        if let Some(framework) = self.frameworks.get_mut(framework_id) {
            framework.send(e);
        }
    }
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
