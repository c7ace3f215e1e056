//! The link between a standalone agent (`brine-local agent`) and its master
//! (`brine-local master`): what Mesos carries over libprocess messages
//! (`RegisterSlaveMessage`, `ReregisterSlaveMessage`, `RunTaskMessage`,
//! `KillTaskMessage`, `StatusUpdateMessage`, …), carried here over HTTP, which is
//! brine-local's own protocol (see `local/README.md`):
//!
//! - `POST /brine/v1/agent/subscribe` with a JSON [`Registration`]: `200` and a RecordIO
//!   stream of JSON records, `REGISTERED {agent_id, connection}` first, then the
//!   master's [`AgentOp`]s in order, and `PING` every few seconds. The stream is the
//!   agent's connection: when it breaks, the master takes the agent as disconnected.
//! - `POST /brine/v1/agent/events` with `{agent_id, connection, events: [...]}`: the
//!   agent's [`LinkEvent`]s in order; `202`, or `409` when that connection is no longer
//!   the agent's (the agent then registers again and re-sends).
//!
//! Mesos messages ride in these JSON objects as base64 of their protobuf bytes.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use brine_proto::mesos::v1::{
    AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, TaskId, TaskInfo, TaskState,
    TaskStatus,
};
use bytes::Bytes;
use prost::Message;
use serde_json::{Value, json};

use crate::agent::{AgentEvent, AgentResources, ExecutorReport};

pub(crate) const SUBSCRIBE_PATH: &str = "/brine/v1/agent/subscribe";
pub(crate) const EVENTS_PATH: &str = "/brine/v1/agent/events";

/// What the master asks of an agent (Mesos's RunTask, KillTask, ShutdownExecutor,
/// StatusUpdateAcknowledgement, FrameworkToExecutor messages).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum AgentOp {
    Launch {
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        task: TaskInfo,
    },
    Kill {
        framework_id: FrameworkId,
        task_id: TaskId,
    },
    Shutdown {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    },
    Acknowledge {
        framework_id: FrameworkId,
        task_id: TaskId,
        uuid: Bytes,
    },
    Message {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Bytes,
    },
}

/// A launch the agent could not carry out, for the master to hear of.
pub(crate) struct LaunchFailure {
    pub framework_id: brine_proto::mesos::v1::FrameworkId,
    pub task_id: brine_proto::mesos::v1::TaskId,
    pub error: String,
}

impl AgentOp {
    /// Applies the operation to `agent`, whether the agent runs in the master's
    /// process or on its own. A failed launch is returned; other refusals (a task or
    /// executor the agent no longer has) are only logged.
    pub(crate) async fn apply(self, agent: &crate::agent::Agent) -> Option<LaunchFailure> {
        let result = match self {
            AgentOp::Launch {
                framework,
                executor,
                task,
            } => {
                let framework_id = framework.id.clone().unwrap_or_default();
                let task_id = task.task_id.clone();
                return match agent.launch(framework, executor, task).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!(task = %task_id.value, error = %e, "launch failed");
                        Some(LaunchFailure {
                            framework_id,
                            task_id,
                            error: e.to_string(),
                        })
                    }
                };
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
        None
    }
}

/// What a standalone agent tells its master: its [`AgentEvent`]s, and launches it
/// refused (which the in-process master hears from the `Agent` API's error).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum LinkEvent {
    Agent(AgentEvent),
    LaunchFailed {
        framework_id: FrameworkId,
        task_id: TaskId,
        error: String,
    },
}

/// An agent (re-)registering (Mesos's `RegisterSlaveMessage` /
/// `ReregisterSlaveMessage`): no `agent_id` to be given one, else the checkpointed id
/// and what runs there.
#[derive(Debug, Clone)]
pub struct Registration {
    pub agent_id: Option<String>,
    pub info: AgentInfo,
    /// The agent's HTTP endpoint (offers' `url`, `/master/state`).
    pub endpoint: SocketAddr,
    pub resources: AgentResources,
    pub ports: Vec<(u64, u64)>,
    pub executors: Vec<ExecutorReport>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed agent link message: {0}")]
pub struct LinkError(String);

fn bad(what: impl std::fmt::Display) -> LinkError {
    LinkError(what.to_string())
}

fn b64(message: &impl Message) -> Value {
    Value::String(STANDARD.encode(message.encode_to_vec()))
}

fn bytes64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

fn raw(value: &Value, field: &str) -> Result<Vec<u8>, LinkError> {
    let text = value[field]
        .as_str()
        .ok_or_else(|| bad(format!("missing '{field}'")))?;
    STANDARD
        .decode(text)
        .map_err(|e| bad(format!("{field}: {e}")))
}

fn proto<M: Message + Default>(value: &Value, field: &str) -> Result<M, LinkError> {
    M::decode(raw(value, field)?.as_slice()).map_err(|e| bad(format!("{field}: {e}")))
}

fn text(value: &Value, field: &str) -> Result<String, LinkError> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("missing '{field}'")))
}

fn fid(value: &Value) -> Result<FrameworkId, LinkError> {
    Ok(FrameworkId {
        value: text(value, "framework_id")?,
    })
}

fn eid(value: &Value) -> Result<ExecutorId, LinkError> {
    Ok(ExecutorId {
        value: text(value, "executor_id")?,
    })
}

fn tid(value: &Value) -> Result<TaskId, LinkError> {
    Ok(TaskId {
        value: text(value, "task_id")?,
    })
}

impl AgentOp {
    pub fn to_json(&self) -> Value {
        match self {
            AgentOp::Launch {
                framework,
                executor,
                task,
            } => json!({"type": "LAUNCH", "framework_info": b64(framework),
                "executor_info": b64(executor), "task_info": b64(task)}),
            AgentOp::Kill {
                framework_id,
                task_id,
            } => json!({"type": "KILL", "framework_id": framework_id.value,
                "task_id": task_id.value}),
            AgentOp::Shutdown {
                framework_id,
                executor_id,
            } => json!({"type": "SHUTDOWN", "framework_id": framework_id.value,
                "executor_id": executor_id.value}),
            AgentOp::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => json!({"type": "ACKNOWLEDGE", "framework_id": framework_id.value,
                "task_id": task_id.value, "uuid": bytes64(uuid)}),
            AgentOp::Message {
                framework_id,
                executor_id,
                data,
            } => json!({"type": "MESSAGE", "framework_id": framework_id.value,
                "executor_id": executor_id.value, "data": bytes64(data)}),
        }
    }

    /// `Ok(None)` for records that are not operations (`REGISTERED`, `PING`).
    pub fn from_json(value: &Value) -> Result<Option<AgentOp>, LinkError> {
        Ok(Some(match value["type"].as_str().unwrap_or_default() {
            "LAUNCH" => AgentOp::Launch {
                framework: proto(value, "framework_info")?,
                executor: proto(value, "executor_info")?,
                task: proto(value, "task_info")?,
            },
            "KILL" => AgentOp::Kill {
                framework_id: fid(value)?,
                task_id: tid(value)?,
            },
            "SHUTDOWN" => AgentOp::Shutdown {
                framework_id: fid(value)?,
                executor_id: eid(value)?,
            },
            "ACKNOWLEDGE" => AgentOp::Acknowledge {
                framework_id: fid(value)?,
                task_id: tid(value)?,
                uuid: Bytes::from(raw(value, "uuid")?),
            },
            "MESSAGE" => AgentOp::Message {
                framework_id: fid(value)?,
                executor_id: eid(value)?,
                data: Bytes::from(raw(value, "data")?),
            },
            "REGISTERED" | "PING" => return Ok(None),
            other => return Err(bad(format!("unknown operation '{other}'"))),
        }))
    }
}

impl LinkEvent {
    pub fn to_json(&self) -> Value {
        match self {
            LinkEvent::Agent(AgentEvent::StatusUpdate {
                framework_id,
                status,
            }) => json!({"type": "STATUS_UPDATE", "framework_id": framework_id.value,
                "status": b64(status)}),
            LinkEvent::Agent(AgentEvent::ExecutorMessage {
                framework_id,
                executor_id,
                data,
            }) => json!({"type": "EXECUTOR_MESSAGE", "framework_id": framework_id.value,
                "executor_id": executor_id.value, "data": bytes64(data)}),
            LinkEvent::Agent(AgentEvent::ExecutorTerminated {
                framework_id,
                executor_id,
                status,
            }) => json!({"type": "EXECUTOR_TERMINATED", "framework_id": framework_id.value,
                "executor_id": executor_id.value, "status": status}),
            LinkEvent::LaunchFailed {
                framework_id,
                task_id,
                error,
            } => json!({"type": "LAUNCH_FAILED", "framework_id": framework_id.value,
                "task_id": task_id.value, "error": error}),
        }
    }

    pub fn from_json(value: &Value) -> Result<LinkEvent, LinkError> {
        Ok(match value["type"].as_str().unwrap_or_default() {
            "STATUS_UPDATE" => LinkEvent::Agent(AgentEvent::StatusUpdate {
                framework_id: fid(value)?,
                status: proto::<TaskStatus>(value, "status")?,
            }),
            "EXECUTOR_MESSAGE" => LinkEvent::Agent(AgentEvent::ExecutorMessage {
                framework_id: fid(value)?,
                executor_id: eid(value)?,
                data: Bytes::from(raw(value, "data")?),
            }),
            "EXECUTOR_TERMINATED" => LinkEvent::Agent(AgentEvent::ExecutorTerminated {
                framework_id: fid(value)?,
                executor_id: eid(value)?,
                status: value["status"].as_i64().and_then(|s| i32::try_from(s).ok()),
            }),
            "LAUNCH_FAILED" => LinkEvent::LaunchFailed {
                framework_id: fid(value)?,
                task_id: tid(value)?,
                error: text(value, "error")?,
            },
            other => return Err(bad(format!("unknown event '{other}'"))),
        })
    }
}

impl Registration {
    pub fn to_json(&self) -> Value {
        json!({
            "agent_id": self.agent_id,
            "agent_info": b64(&self.info),
            "endpoint": self.endpoint.to_string(),
            "resources": {"cpus": self.resources.cpus, "mem": self.resources.mem_mb,
                "disk": self.resources.disk_mb},
            "ports": self.ports.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
            "executors": self.executors.iter().map(|e| json!({
                "framework_info": b64(&e.framework),
                "executor_info": b64(&e.executor),
                "tasks": e.tasks.iter().map(|(t, s)| json!({
                    "task_info": b64(t), "state": s.as_str_name(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn from_json(value: &Value) -> Result<Registration, LinkError> {
        let number = |v: &Value| v.as_f64().ok_or_else(|| bad("resources"));
        let resources = &value["resources"];
        let mut ports = Vec::new();
        for range in value["ports"].as_array().into_iter().flatten() {
            match (range[0].as_u64(), range[1].as_u64()) {
                (Some(a), Some(b)) => ports.push((a, b)),
                _ => return Err(bad("ports")),
            }
        }
        let mut executors = Vec::new();
        for e in value["executors"].as_array().into_iter().flatten() {
            let mut tasks = Vec::new();
            for t in e["tasks"].as_array().into_iter().flatten() {
                let state = t["state"]
                    .as_str()
                    .and_then(TaskState::from_str_name)
                    .ok_or_else(|| bad("task state"))?;
                tasks.push((proto(t, "task_info")?, state));
            }
            executors.push(ExecutorReport {
                framework: proto(e, "framework_info")?,
                executor: proto(e, "executor_info")?,
                tasks,
            });
        }
        Ok(Registration {
            agent_id: value["agent_id"].as_str().map(str::to_owned),
            info: proto(value, "agent_info")?,
            endpoint: text(value, "endpoint")?
                .parse()
                .map_err(|e| bad(format!("endpoint: {e}")))?,
            resources: AgentResources {
                cpus: number(&resources["cpus"])?,
                mem_mb: number(&resources["mem"])?,
                disk_mb: number(&resources["disk"])?,
            },
            ports,
            executors,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn operations_and_events_round_trip() {
        let op = AgentOp::Acknowledge {
            framework_id: FrameworkId { value: "F".into() },
            task_id: TaskId { value: "T".into() },
            uuid: Bytes::from_static(&[7; 16]),
        };
        let back = AgentOp::from_json(&op.to_json()).unwrap().unwrap();
        assert_eq!(format!("{back:?}"), format!("{op:?}"));
        let event = LinkEvent::Agent(AgentEvent::ExecutorTerminated {
            framework_id: FrameworkId { value: "F".into() },
            executor_id: ExecutorId { value: "E".into() },
            status: Some(9),
        });
        let back = LinkEvent::from_json(&event.to_json()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
        assert!(
            AgentOp::from_json(&json!({"type": "PING"}))
                .unwrap()
                .is_none()
        );
    }
}
