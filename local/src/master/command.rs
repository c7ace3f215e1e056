//! What the event loop is sent: calls from the HTTP layer, agent events, timers and
//! queries, with the answers that go back. A leaf module: the HTTP layer, the agent
//! workers (`offers`) and the state all depend on it, and it on none of them, so the
//! master's modules depend one way.

use std::io;

use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::scheduler::Call;
use brine_proto::mesos::v1::{AgentId, FrameworkId, TaskId};
use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::agent::AgentEvent;
use crate::link::{AgentOp, LinkEvent, Registration};

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
    pub(super) tx: mpsc::UnboundedSender<Command>,
    pub(super) framework_id: String,
    pub(super) stream_id: String,
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
    /// A standalone agent (re-)registers: its id, the link's number, its operations.
    RegisterAgent {
        registration: Registration,
        reply: oneshot::Sender<Result<AgentLink, String>>,
    },
    /// A standalone agent's subscription stream ended.
    AgentStreamClosed {
        agent_id: String,
        connection: u64,
    },
    /// Events from a standalone agent over its link `connection`; false if that link
    /// is no longer the agent's.
    AgentEvents {
        agent_id: String,
        connection: u64,
        events: Vec<LinkEvent>,
        reply: oneshot::Sender<bool>,
    },
    /// A disconnected agent's time to re-register is over.
    AgentReregisterTimeout {
        agent_id: String,
        connection: u64,
    },
    State(oneshot::Sender<Value>),
    Metrics(oneshot::Sender<serde_json::Map<String, Value>>),
    InvalidCall,
    Stop(oneshot::Sender<()>),
}

/// A registered standalone agent's side of its link.
pub struct AgentLink {
    pub agent_id: String,
    pub connection: u64,
    pub ops: mpsc::UnboundedReceiver<AgentOp>,
}
