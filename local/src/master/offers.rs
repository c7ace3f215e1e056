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
        let result = match op {
            AgentOp::Launch {
                framework,
                executor,
                task,
            } => {
                let framework_id = framework.id.clone().unwrap_or_default();
                let task_id = task.task_id.clone();
                if let Err(e) = agent.launch(framework, executor, task).await {
                    tracing::warn!(task = %task_id.value, error = %e, "launch failed");
                    let _ = master.send(Command::LaunchFailed {
                        framework_id,
                        task_id,
                        agent_id: agent.agent_id().clone(),
                        error: e.to_string(),
                    });
                }
                Ok(())
            }
            AgentOp::Kill {
                framework_id,
                task_id,
            } => agent.kill_task(&framework_id, &task_id).await,
            AgentOp::Shutdown {
                framework_id,
                executor_id,
            } => agent.shutdown_executor(&framework_id, &executor_id).await,
            AgentOp::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => agent.acknowledge(&framework_id, &task_id, &uuid).await,
            AgentOp::Message {
                framework_id,
                executor_id,
                data,
            } => agent.send_message(&framework_id, &executor_id, data).await,
        };
        if let Err(e) = result {
            tracing::debug!(agent = %agent.agent_id().value, error = %e, "agent refused an operation");
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
