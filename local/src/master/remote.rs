//! Standalone agents (`brine-local agent`), linked over HTTP (`crate::link`): their
//! (re-)registration, their events, their disconnection and the time they have to come
//! back, as Mesos's master handles `RegisterSlaveMessage`, `ReregisterSlaveMessage`,
//! `exited()` of an agent and `agentReregisterTimeout`.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::command::{AgentLink, Command};
use super::offers::AgentSlot;
use super::resources::Resources;
use super::state::State;
use super::tasks::Task;
use crate::link::{AgentOp, LinkEvent, Registration};
use crate::web::{ResponseBody, accepted, plain, read_body, stream_response};
use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::{AgentId, TaskState};

/// How often the master writes a `PING` on an agent's stream (so a dead peer is noticed
/// by the write failing, whatever the TCP stack says).
const PING_INTERVAL: Duration = Duration::from_secs(5);

impl State {
    /// `RegisterSlaveMessage` (no id: a new agent, `<master id>-S<n>`) or
    /// `ReregisterSlaveMessage` (its checkpointed id): the agent is (again) connected
    /// and offered; a known agent keeps the tasks the master knows; an unknown one (the
    /// master restarted, or removed it) is added with what it reports.
    pub(super) fn register_agent(&mut self, reg: Registration) -> Result<AgentLink, String> {
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        self.next_connection += 1;
        let connection = self.next_connection;
        let agent_id = match &reg.agent_id {
            Some(id) => id.clone(),
            None => format!("{}-S{}", self.master_info.id, self.agents.len()),
        };
        let total = Resources {
            cpus: reg.resources.cpus,
            mem: reg.resources.mem_mb,
            disk: reg.resources.disk_mb,
            ports: reg.ports.clone(),
        };
        let mut info = reg.info.clone();
        info.id = Some(AgentId {
            value: agent_id.clone(),
        });
        let known = self.agents.iter().position(|a| a.id.value == agent_id);
        let index = match known {
            Some(index) if self.agents[index].active => {
                tracing::info!(agent = %agent_id, "agent re-registered");
                let slot = &mut self.agents[index];
                slot.ops = ops_tx;
                slot.connected = true;
                slot.connection = connection;
                slot.endpoint = reg.endpoint;
                slot.info = info;
                return self.registered(agent_id, connection, ops_rx);
            }
            Some(index) => {
                tracing::info!(agent = %agent_id, "a removed agent re-registered");
                index
            }
            None => {
                tracing::info!(agent = %agent_id, endpoint = %reg.endpoint, "agent registered");
                self.agents.push(AgentSlot {
                    id: AgentId {
                        value: agent_id.clone(),
                    },
                    info: info.clone(),
                    endpoint: reg.endpoint,
                    total: total.clone(),
                    ops: ops_tx.clone(),
                    executors: Default::default(),
                    tasks: Default::default(),
                    offered: Resources::default(),
                    active: true,
                    connected: true,
                    connection,
                });
                self.agents.len() - 1
            }
        };
        let slot = &mut self.agents[index];
        slot.info = info;
        slot.endpoint = reg.endpoint;
        slot.total = total;
        slot.ops = ops_tx;
        slot.active = true;
        slot.connected = true;
        slot.connection = connection;
        slot.offered = Resources::default();
        slot.executors.clear();
        slot.tasks.clear();
        let slot_id = slot.id.clone();
        // What runs there is in use; tasks of frameworks the master knows are theirs
        // again (reconciliation answers, kills, acknowledgements).
        for report in reg.executors {
            let fid = report
                .framework
                .id
                .clone()
                .map(|i| i.value)
                .unwrap_or_default();
            let slot = &mut self.agents[index];
            slot.executors.insert(
                (fid.clone(), report.executor.executor_id.value.clone()),
                (
                    report.executor.clone(),
                    Resources::from_proto(&report.executor.resources),
                ),
            );
            for (task, state) in report.tasks {
                let resources = Resources::from_proto(&task.resources);
                slot.tasks
                    .insert((fid.clone(), task.task_id.value.clone()), resources.clone());
                if let Some(framework) = self.frameworks.get_mut(&fid) {
                    framework
                        .tasks
                        .entry(task.task_id.value.clone())
                        .or_insert_with(|| Task {
                            agent_id: slot_id.clone(),
                            executor_id: Some(report.executor.executor_id.clone()),
                            resources,
                            state,
                            latest: None,
                            freed: false,
                            info: task,
                        });
                }
            }
        }
        // An agent added: Mesos's allocator offers it at once.
        self.allocate_now = true;
        self.registered(agent_id, connection, ops_rx)
    }

    fn registered(
        &mut self,
        agent_id: String,
        connection: u64,
        ops: mpsc::UnboundedReceiver<AgentOp>,
    ) -> Result<AgentLink, String> {
        self.allocate_now = true;
        Ok(AgentLink {
            agent_id,
            connection,
            ops,
        })
    }

    /// `Master::exited` for an agent: it stays, with its tasks, but is not offered; its
    /// offers are rescinded; it has until the re-registration timeout to come back.
    pub(super) fn agent_disconnected(&mut self, agent_id: &str, connection: u64) {
        let Some(index) = self
            .agents
            .iter()
            .position(|a| a.active && a.id.value == agent_id && a.connection == connection)
        else {
            return;
        };
        if !self.agents[index].connected {
            return;
        }
        tracing::info!(agent = %agent_id, "agent disconnected");
        self.agents[index].connected = false;
        self.rescind_agent_offers(index);
        let by_pings = self.config.agent_ping_timeout * self.config.max_agent_ping_timeouts.max(1);
        let timeout = self.config.agent_reregister_timeout.min(by_pings);
        let tx = self.tx.clone();
        let agent_id = agent_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = tx.send(Command::AgentReregisterTimeout {
                agent_id,
                connection,
            });
        });
    }

    /// `markUnreachable`: the agent did not come back in time.
    pub(super) fn agent_reregister_timeout(&mut self, agent_id: &str, connection: u64) {
        let Some(index) = self.agents.iter().position(|a| {
            a.active && !a.connected && a.id.value == agent_id && a.connection == connection
        }) else {
            return;
        };
        tracing::info!(agent = %agent_id, "agent did not re-register in time: marking it unreachable");
        let hostname = self.agents[index].info.hostname.clone();
        self.remove_agent_at(
            index,
            TaskState::TaskUnreachable,
            &format!("Agent {hostname} is unreachable: agent did not reregister in time"),
        );
    }

    /// Events of a standalone agent, taken only from its current link.
    pub(super) fn agent_events(
        &mut self,
        agent_id: &str,
        connection: u64,
        events: Vec<LinkEvent>,
    ) -> bool {
        let Some(index) = self.agents.iter().position(|a| {
            a.active && a.connected && a.id.value == agent_id && a.connection == connection
        }) else {
            return false;
        };
        let id = self.agents[index].id.clone();
        for event in events {
            match event {
                LinkEvent::Agent(event) => self.agent_event(index, event),
                LinkEvent::LaunchFailed {
                    framework_id,
                    task_id,
                    error,
                } => self.launch_failed(&framework_id, &task_id, &id, &error),
            }
        }
        true
    }
}

/// Tells the master the stream is gone when the response body is dropped.
struct LinkGuard {
    tx: mpsc::UnboundedSender<Command>,
    agent_id: String,
    connection: u64,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::AgentStreamClosed {
            agent_id: std::mem::take(&mut self.agent_id),
            connection: self.connection,
        });
    }
}

fn record(value: &Value) -> bytes::Bytes {
    brine_proto::recordio::encode(value.to_string().as_bytes())
}

async fn json_body(req: Request<Incoming>) -> Result<Value, Response<ResponseBody>> {
    if req.method() != http::Method::POST {
        return Err(crate::web::post_only(req.method()));
    }
    let body = read_body(req.into_body()).await?;
    serde_json::from_slice(&body).map_err(|e| plain(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// `POST /brine/v1/agent/subscribe`.
pub(super) async fn subscribe(
    tx: mpsc::UnboundedSender<Command>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let value = match json_body(req).await {
        Ok(value) => value,
        Err(response) => return response,
    };
    let registration = match Registration::from_json(&value) {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let (reply, rx) = oneshot::channel();
    if tx
        .send(Command::RegisterAgent {
            registration,
            reply,
        })
        .is_err()
    {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down");
    }
    let link = match rx.await {
        Ok(Ok(link)) => link,
        Ok(Err(message)) => return plain(StatusCode::BAD_REQUEST, &message),
        Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down"),
    };
    let (records_tx, records_rx) = mpsc::unbounded_channel();
    let _ = records_tx.send(Ok(record(&json!({"type": "REGISTERED",
        "agent_id": link.agent_id, "connection": link.connection}))));
    let guard = LinkGuard {
        tx,
        agent_id: link.agent_id,
        connection: link.connection,
    };
    let mut ops = link.ops;
    tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            let value = tokio::select! {
                op = ops.recv() => match op {
                    Some(op) => op.to_json(),
                    None => break,
                },
                _ = ping.tick() => json!({"type": "PING"}),
            };
            if records_tx.send(Ok(record(&value))).is_err() {
                break;
            }
        }
    });
    stream_response(records_rx, guard, ContentType::Json)
}

/// `POST /brine/v1/agent/events`.
pub(super) async fn events(
    tx: mpsc::UnboundedSender<Command>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let value = match json_body(req).await {
        Ok(value) => value,
        Err(response) => return response,
    };
    let mut events = Vec::new();
    for event in value["events"].as_array().into_iter().flatten() {
        match LinkEvent::from_json(event) {
            Ok(e) => events.push(e),
            Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let (Some(agent_id), Some(connection)) =
        (value["agent_id"].as_str(), value["connection"].as_u64())
    else {
        return plain(StatusCode::BAD_REQUEST, "missing agent_id or connection");
    };
    let (reply, rx) = oneshot::channel();
    if tx
        .send(Command::AgentEvents {
            agent_id: agent_id.to_owned(),
            connection,
            events,
            reply,
        })
        .is_err()
    {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down");
    }
    match rx.await {
        Ok(true) => accepted(),
        Ok(false) => plain(StatusCode::CONFLICT, "Not the agent's current connection"),
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down"),
    }
}
