//! Agents as the allocator sees them (total, in use, offered), outstanding offers, and
//! the operations the master sends to each agent (one worker per agent, in order).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use brine_proto::mesos::v1::{AgentId, AgentInfo, ExecutorInfo, Offer};
use tokio::sync::mpsc;

use super::command::Command;
use super::resources::Resources;
use crate::agent::Agent;

pub use crate::link::AgentOp;

/// Runs `ops` against `agent` one at a time, so an agent sees them in the order the
/// master decided them; launch failures go back to the master.
pub async fn agent_worker(
    agent: Arc<Agent>,
    mut ops: mpsc::UnboundedReceiver<AgentOp>,
    master: mpsc::UnboundedSender<Command>,
) {
    while let Some(op) = ops.recv().await {
        if let Some(failed) = op.apply(&agent).await {
            let _ = master.send(Command::LaunchFailed {
                framework_id: failed.framework_id,
                task_id: failed.task_id,
                agent_id: agent.agent_id().clone(),
                error: failed.error,
            });
        }
    }
}

/// One agent in the master.
#[derive(Debug)]
pub struct AgentSlot {
    pub id: AgentId,
    pub info: AgentInfo,
    pub endpoint: SocketAddr,
    pub total: Resources,
    pub ops: mpsc::UnboundedSender<AgentOp>,
    /// Executors started for a framework: (framework id, executor id) → info, resources.
    pub executors: HashMap<(String, String), (ExecutorInfo, Resources)>,
    /// Non-terminal tasks: (framework id, task id) → resources.
    pub tasks: HashMap<(String, String), Resources>,
    /// Σ resources of this agent's outstanding offers.
    pub offered: Resources,
    /// False once removed (or marked unreachable).
    pub active: bool,
    /// A standalone agent's link is up (in-process agents always are). A disconnected
    /// agent keeps its tasks, gets no offers, and is removed unless it re-registers
    /// in time.
    pub connected: bool,
    /// The current link of a standalone agent (0 for in-process agents).
    pub connection: u64,
}

impl AgentSlot {
    pub fn used(&self) -> Resources {
        let mut used = Resources::default();
        for (_, r) in self.executors.values() {
            used = used.add(r);
        }
        for r in self.tasks.values() {
            used = used.add(r);
        }
        used
    }

    /// Neither in use nor offered.
    pub fn available(&self) -> Resources {
        self.total.sub(&self.used()).sub(&self.offered)
    }

    pub fn executor(&self, framework_id: &str, executor_id: &str) -> Option<&ExecutorInfo> {
        self.executors
            .get(&(framework_id.to_owned(), executor_id.to_owned()))
            .map(|(info, _)| info)
    }

    pub fn send(&self, op: AgentOp) {
        if self.ops.send(op).is_err() {
            tracing::warn!(agent = %self.id.value, "agent worker gone; operation dropped");
        }
    }
}

/// An offer not yet accepted, declined or rescinded.
#[derive(Debug, Clone)]
pub struct OutstandingOffer {
    pub offer: Offer,
    pub agent: usize,
    pub resources: Resources,
}
