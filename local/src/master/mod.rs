//! A Mesos-compatible local master: serves the v1 scheduler HTTP API on loopback
//! (protobuf and JSON), offers its agents' free resources and relays launches, kills,
//! acknowledgements and messages to them (through the [`crate::agent::Agent`] API; real
//! Mesos agents register over libprocess, which brine-local does not speak), and their
//! status updates, messages and executor exits back to the frameworks.
//!
//! Modules: `http` (the endpoint), `validation` (calls, offers, tasks), `frameworks`
//! (the registry), `offers` (agents, offers, the per-agent worker), `resources`,
//! `tasks`, `reconcile`; `command` (what the event loop is sent), `state` (the state
//! and the event loop), and what the loop does, by subject: `subscribe`, `calls`,
//! `accept`, `agent_events`, `allocator`, `endpoints`.

mod accept;
mod agent_events;
mod allocator;
mod calls;
mod command;
mod endpoints;
mod frameworks;
mod http;
mod offers;
mod reconcile;
mod remote;
pub mod resources;
mod state;
mod subscribe;
mod tasks;
mod validation;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::agent::{Agent, AgentEvent};
use command::Command;
pub use http::check_scheduler_call;
use offers::AgentSlot;
use resources::Resources;
use state::State;

/// Master configuration.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Where to serve; default `127.0.0.1:0` (any free port).
    pub listen: SocketAddr,
    /// `--hostname`; default `127.0.0.1`.
    pub hostname: String,
    /// Master id (framework ids are `<id>-NNNN`, offers `<id>-ON`); default a fresh uuid.
    pub id: String,
    /// HEARTBEAT interval (`SUBSCRIBED.heartbeat_interval_seconds`); Mesos: 15 s.
    pub heartbeat_interval: Duration,
    /// Mesos `--allocation_interval` (default 1 s): a batch allocation runs every
    /// interval on a fixed grid from the master's start ([`Master::allocation_epoch`]);
    /// besides, only SUBSCRIBE (a framework added or re-activated) and REVIVE allocate
    /// at once, as in Mesos. Resources given back wait for the next tick. Zero is taken
    /// as 1 ms.
    pub allocation_interval: Duration,
    /// HTTP framework authentication: `Some` is Mesos's `--authenticate_http_frameworks
    /// --http_framework_authenticators=basic --credentials=<file>`, so every request
    /// to `/api/v1/scheduler` must carry `Authorization: Basic` with one of these.
    /// Default `None` (Mesos's default: frameworks need not authenticate).
    pub credentials: Option<Credentials>,
    /// Mesos `--agent_reregister_timeout` (default 10mins): a standalone agent whose
    /// link broke is marked unreachable (its tasks `TASK_LOST`, `TASK_UNREACHABLE` for
    /// PARTITION_AWARE frameworks) unless it re-registers within this, or within
    /// `agent_ping_timeout × max_agent_ping_timeouts` if that is shorter.
    pub agent_reregister_timeout: Duration,
    /// Mesos `--agent_ping_timeout` (default 15secs).
    pub agent_ping_timeout: Duration,
    /// Mesos `--max_agent_ping_timeouts` (default 5).
    pub max_agent_ping_timeouts: u32,
}

/// Principals and their secrets: a Mesos credentials file
/// (`{"credentials":[{"principal":"…","secret":"…"}]}`, `src/credentials/credentials.hpp`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    secrets: HashMap<String, String>,
}

/// Secrets never reach a log.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut principals: Vec<&String> = self.secrets.keys().collect();
        principals.sort();
        f.debug_struct("Credentials")
            .field("principals", &principals)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Failed to read credentials file '{path}': {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid json format: {0}")]
    Json(String),
    #[error("Failed to parse credentials: {0}")]
    Parse(String),
    #[error("Credentials file must contain at least one credential")]
    Empty,
}

impl Credentials {
    /// From `(principal, secret)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Credentials {
        Credentials {
            secrets: pairs.into_iter().collect(),
        }
    }

    /// Reads a Mesos credentials file (a path, or `file://` and a path, as Mesos's
    /// path flags). The errors are Mesos's texts; an empty file is an error, as for a
    /// Mesos master.
    pub fn read(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = path.to_string_lossy();
        let path = Path::new(text.strip_prefix("file://").unwrap_or(&text));
        let body = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o007 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "Permissions on credentials file are too open; it is recommended that your \
                     credentials file is NOT accessible by others"
                );
            }
        }
        Credentials::from_json(&body)
    }

    /// Parses the JSON of a credentials file.
    pub fn from_json(body: &str) -> Result<Credentials, CredentialsError> {
        if body.is_empty() {
            return Err(CredentialsError::Empty);
        }
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| CredentialsError::Json(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| CredentialsError::Json("not a JSON object".to_owned()))?;
        let mut secrets = HashMap::new();
        let list = match object.get("credentials") {
            None | Some(serde_json::Value::Null) => &Vec::new(),
            Some(serde_json::Value::Array(list)) => list,
            Some(_) => {
                return Err(CredentialsError::Parse(
                    "Not expecting a JSON value other than an array for field 'credentials'"
                        .to_owned(),
                ));
            }
        };
        for entry in list {
            let principal = entry
                .get("principal")
                .and_then(|p| p.as_str())
                .ok_or_else(|| {
                    CredentialsError::Parse(
                        "Missing required fields: credentials[].principal".into(),
                    )
                })?;
            let secret = match entry.get("secret") {
                None | Some(serde_json::Value::Null) => "",
                Some(serde_json::Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(CredentialsError::Parse(
                        "Not expecting a JSON value other than a string for field 'secret'"
                            .to_owned(),
                    ));
                }
            };
            secrets.insert(principal.to_owned(), secret.to_owned());
        }
        if secrets.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Credentials { secrets })
    }

    /// Whether `principal` exists and has this `secret`.
    pub fn check(&self, principal: &str, secret: &str) -> bool {
        self.secrets.get(principal).is_some_and(|s| s == secret)
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            hostname: "127.0.0.1".to_owned(),
            id: uuid::Uuid::new_v4().to_string(),
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            credentials: None,
            agent_reregister_timeout: Duration::from_secs(600),
            agent_ping_timeout: Duration::from_secs(15),
            max_agent_ping_timeouts: 5,
        }
    }
}

/// An agent handed to the master: the agent, its event receiver
/// ([`Agent::take_events`]) and the port ranges to offer with it.
pub struct MasterAgent {
    pub agent: Arc<Agent>,
    pub events: mpsc::UnboundedReceiver<AgentEvent>,
    pub ports: Vec<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running local master. Dropping it stops serving.
pub struct Master {
    addr: SocketAddr,
    id: String,
    allocation_epoch: std::time::Instant,
    allocation_interval: Duration,
    tx: mpsc::UnboundedSender<Command>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Master {
    /// Binds the scheduler API and starts the master over `agents`.
    pub async fn start(
        config: MasterConfig,
        agents: Vec<MasterAgent>,
    ) -> Result<Master, MasterError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| MasterError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| MasterError::Bind {
            addr: config.listen,
            source,
        })?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        let mut slots = Vec::new();
        for (
            index,
            MasterAgent {
                agent,
                mut events,
                ports,
            },
        ) in agents.into_iter().enumerate()
        {
            let (ops_tx, ops_rx) = mpsc::unbounded_channel();
            tasks.push(tokio::spawn(offers::agent_worker(
                Arc::clone(&agent),
                ops_rx,
                tx.clone(),
            )));
            let forward = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if forward.send(Command::Agent { index, event }).is_err() {
                        break;
                    }
                }
            }));
            let r = agent.config().resources;
            slots.push(AgentSlot {
                id: agent.agent_id().clone(),
                info: agent.info(),
                endpoint: agent.endpoint(),
                total: Resources {
                    cpus: r.cpus,
                    mem: r.mem_mb,
                    disk: r.disk_mb,
                    ports,
                },
                ops: ops_tx,
                executors: Default::default(),
                tasks: Default::default(),
                offered: Resources::default(),
                active: true,
                connected: true,
                connection: 0,
            });
        }
        let info = state::master_info(&config.id, addr, &config.hostname);
        let credentials = config.credentials.clone();
        let id = config.id.clone();
        let mut config = config;
        if config.allocation_interval.is_zero() {
            tracing::warn!("allocation interval 0: using 1ms");
            config.allocation_interval = Duration::from_millis(1);
        }
        let interval = config.allocation_interval;
        let mut state = State::new(config, info, tx.clone(), slots);
        // The periodic allocation: a free-running grid, `epoch + k × interval`, that no
        // call restarts (Mesos's allocator loops `after(allocation_interval)`). A tick
        // missed because the loop was busy is skipped, not made up for.
        let epoch = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval_at(epoch + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    command = rx.recv() => {
                        let Some(command) = command else { break };
                        if !state.handle(command) {
                            break;
                        }
                    }
                    _ = ticks.tick() => state.allocate(),
                }
            }
        }));
        let (stop, stop_rx) = watch::channel(false);
        let http_tx = tx.clone();
        let credentials = Arc::new(credentials);
        tasks.push(tokio::spawn(crate::web::serve(
            listener,
            stop_rx,
            move |req| http::handle(http_tx.clone(), Arc::clone(&credentials), req),
        )));
        tracing::info!(%addr, master_id = %id, "local master started");
        Ok(Master {
            addr,
            id,
            allocation_epoch: epoch.into_std(),
            allocation_interval: interval,
            tx,
            stop,
            tasks,
        })
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn endpoint(&self) -> SocketAddr {
        self.addr
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the periodic allocation started: batch allocations run at
    /// `allocation_epoch() + k × allocation_interval()`, k ≥ 1, whatever the calls.
    pub fn allocation_epoch(&self) -> std::time::Instant {
        self.allocation_epoch
    }

    /// The interval of the periodic allocation (as configured; zero became 1 ms).
    pub fn allocation_interval(&self) -> Duration {
        self.allocation_interval
    }

    /// The agent went away: its offers are rescinded, its tasks reported lost
    /// (`TASK_LOST`, `TASK_GONE` for PARTITION_AWARE frameworks) and every framework
    /// gets a FAILURE naming it. False if no such active agent.
    pub async fn remove_agent(&self, agent_id: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::RemoveAgent {
                agent_id: agent_id.to_owned(),
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Ends every subscription stream and stops serving.
    pub async fn shutdown(mut self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Stop(reply)).is_ok() {
            let _ = rx.await;
        }
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}
