//! Master and agents as separate processes, as Mesos is deployed: `brine-local master`
//! ([`MasterArgs`], [`serve_master`]) and `brine-local agent --master http://…`
//! ([`AgentArgs`], [`serve_agent`]). The agent registers over `crate::link`, keeps its
//! state checkpointed under `<work_dir>/meta`, and when started again on the same work
//! directory recovers it and re-registers under the same id (Mesos's
//! `--recover=reconnect`). SIGTERM/SIGINT stop the agent process and leave its
//! executors running (to be recovered); SIGUSR1 shuts them down first (as Mesos).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brine_http::{Backoff, Connector, Target};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::agent::{Agent, AgentConfig, AgentResources, CgroupsMode};
use crate::link::{AgentOp, EVENTS_PATH, LinkEvent, Registration, SUBSCRIBE_PATH};
use crate::master::{Credentials, Master, MasterConfig};
use crate::serve::ServeError;

fn mesos_duration(text: &str) -> Result<Duration, String> {
    brine_proto::duration::parse(text).map_err(|e| e.to_string())
}

/// `brine-local master`: a master alone; agents register with it over HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct MasterArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 5050)]
    pub port: u16,
    /// Address to bind to.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub ip: IpAddr,
    /// Seconds between HEARTBEAT events to frameworks.
    #[arg(long, default_value_t = 15.0)]
    pub heartbeat_interval: f64,
    /// Mesos's `--allocation_interval`.
    #[arg(long, default_value = "1secs", value_parser = mesos_duration)]
    pub allocation_interval: Duration,
    /// A Mesos credentials file (HTTP basic authentication of frameworks).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Mesos's `--agent_reregister_timeout`: how long a disconnected agent has to
    /// re-register before it is marked unreachable.
    #[arg(long, default_value = "10mins", value_parser = mesos_duration)]
    pub agent_reregister_timeout: Duration,
    /// Mesos's `--agent_ping_timeout`.
    #[arg(long, default_value = "15secs", value_parser = mesos_duration)]
    pub agent_ping_timeout: Duration,
    /// Mesos's `--max_agent_ping_timeouts`: a disconnected agent is marked unreachable
    /// after `agent_ping_timeout × max_agent_ping_timeouts` at the latest.
    #[arg(long, default_value_t = 5)]
    pub max_agent_ping_timeouts: u32,
}

/// `brine-local agent`: one agent, registered with a master.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The master, `http://host:port`.
    #[arg(long)]
    pub master: String,
    /// Mesos's `--work_dir`: sandboxes under `slaves/`, the checkpoint under `meta/`.
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Port of the executor API (`MESOS_AGENT_ENDPOINT`). Recovered executors
    /// reconnect to it, so a restarted agent must use the same one.
    #[arg(long, default_value_t = 5051)]
    pub port: u16,
    /// Address to bind to.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub ip: IpAddr,
    /// CPUs offered (default: the machine's).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Memory offered, in MB.
    #[arg(long)]
    pub mem: Option<f64>,
    /// Disk offered, in MB.
    #[arg(long)]
    pub disk: Option<f64>,
    /// Mesos's `--isolation`: `cgroups/cpu,cgroups/mem` (default; unenforced where
    /// cgroups are not writable) or `posix/cpu,posix/mem` (no cgroups).
    #[arg(long, default_value = "cgroups/cpu,cgroups/mem")]
    pub isolation: String,
    /// Mesos's `--executor_registration_timeout`.
    #[arg(long, default_value = "1mins", value_parser = mesos_duration)]
    pub executor_registration_timeout: Duration,
    /// Mesos's `--executor_reregistration_timeout`: after a restart, how long
    /// recovered executors have to re-subscribe.
    #[arg(long, default_value = "2secs", value_parser = mesos_duration)]
    pub executor_reregistration_timeout: Duration,
    /// Mesos's `--executor_shutdown_grace_period`.
    #[arg(long, default_value = "5secs", value_parser = mesos_duration)]
    pub executor_shutdown_grace_period: Duration,
    /// Mesos's `--recovery_timeout` (passed to checkpointing executors).
    #[arg(long, default_value = "15mins", value_parser = mesos_duration)]
    pub recovery_timeout: Duration,
    /// Mesos's `--recover`: only `reconnect` is supported.
    #[arg(long, default_value = "reconnect", value_parser = ["reconnect"])]
    pub recover: String,
    /// Mesos's `--gc_delay`.
    #[arg(long, default_value = "1weeks", value_parser = mesos_duration)]
    pub gc_delay: Duration,
}

/// Runs a master with no agents of its own until SIGINT/SIGTERM; `ready` gets its URL.
pub async fn serve_master(args: MasterArgs, ready: impl FnOnce(&str)) -> Result<(), ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut config = MasterConfig {
        listen: SocketAddr::new(args.ip, args.port),
        allocation_interval: args.allocation_interval,
        agent_reregister_timeout: args.agent_reregister_timeout,
        agent_ping_timeout: args.agent_ping_timeout,
        max_agent_ping_timeouts: args.max_agent_ping_timeouts,
        ..MasterConfig::default()
    };
    config.heartbeat_interval = Duration::try_from_secs_f64(args.heartbeat_interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or(ServeError::HeartbeatInterval(args.heartbeat_interval))?;
    if let Some(path) = &args.credentials {
        config.credentials = Some(Credentials::read(path)?);
    }
    let master = Master::start(config, Vec::new())
        .await
        .map_err(|e| ServeError::Standalone(e.to_string()))?;
    ready(&master.url());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    master.shutdown().await;
    Ok(())
}

/// The master as the agent reaches it (plain HTTP, `brine-http`'s connections).
#[derive(Clone)]
struct MasterClient {
    master: Target,
}

impl MasterClient {
    /// `http://host:port`; a bare `host:port` means `http://host:port`.
    fn new(url: &str) -> Result<MasterClient, ServeError> {
        let master = if url.contains("://") {
            Target::parse(url)
        } else {
            Target::parse(&format!("http://{url}"))
        }
        .map_err(|e| ServeError::Standalone(format!("--master {url}: {e}")))?;
        Ok(MasterClient { master })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<http::Response<Incoming>, String> {
        let (mut sender, _driver) = Connector::plain()
            .open::<Full<Bytes>>(&self.master)
            .await
            .map_err(|e| e.to_string())?;
        let request = http::Request::post(path)
            .header(http::header::HOST, self.master.host_header())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A registered link: the agent's id, the link's number and the operations stream.
struct Link {
    agent_id: String,
    connection: u64,
    body: Incoming,
    decoder: brine_proto::recordio::Decoder,
    pending: std::collections::VecDeque<Value>,
}

impl Link {
    async fn open(master: &MasterClient, registration: &Registration) -> Result<Link, String> {
        let response = master.post(SUBSCRIBE_PATH, &registration.to_json()).await?;
        let status = response.status();
        let mut link = Link {
            agent_id: String::new(),
            connection: 0,
            body: response.into_body(),
            decoder: brine_proto::recordio::Decoder::new(),
            pending: Default::default(),
        };
        if status != http::StatusCode::OK {
            let text = link
                .body
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(format!("registration refused: {status} {text}"));
        }
        let first = link
            .next()
            .await
            .ok_or("the master closed the link before REGISTERED")?;
        if first["type"] != "REGISTERED" {
            return Err(format!("expected REGISTERED, got {first}"));
        }
        link.agent_id = first["agent_id"].as_str().unwrap_or_default().to_owned();
        link.connection = first["connection"].as_u64().unwrap_or_default();
        Ok(link)
    }

    /// The next record; `None` when the link is gone.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(value) = self.pending.pop_front() {
                return Some(value);
            }
            let frame = self.body.frame().await?.ok()?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for record in self.decoder.decode(&data).ok()? {
                self.pending
                    .push_back(serde_json::from_slice(&record).ok()?);
            }
        }
    }
}

/// Applies the master's operations to the agent one at a time, in order.
async fn run_ops(
    agent: Arc<Agent>,
    mut ops: mpsc::UnboundedReceiver<AgentOp>,
    events: mpsc::UnboundedSender<LinkEvent>,
) {
    while let Some(op) = ops.recv().await {
        if let Some(failed) = op.apply(&agent).await {
            let _ = events.send(LinkEvent::LaunchFailed {
                framework_id: failed.framework_id,
                task_id: failed.task_id,
                error: failed.error,
            });
        }
    }
}

/// Posts the agent's events to the master in order, in batches, over the current
/// link; a batch the master did not take waits for the next link.
async fn post_events(
    master: MasterClient,
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    mut link: watch::Receiver<Option<(String, u64)>>,
) {
    const BATCH: usize = 256;
    while let Some(first) = events.recv().await {
        let mut batch = vec![first.to_json()];
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event.to_json()),
                Err(_) => break,
            }
        }
        loop {
            let current = link.borrow_and_update().clone();
            let Some((agent_id, connection)) = current else {
                if link.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let body = json!({"agent_id": agent_id, "connection": connection, "events": batch});
            match master.post(EVENTS_PATH, &body).await {
                Ok(response) if response.status() == http::StatusCode::ACCEPTED => break,
                Ok(response) => {
                    tracing::info!(status = %response.status(), "the master did not take events; waiting for a new link")
                }
                Err(e) => tracing::info!(error = %e, "cannot post events; waiting for a new link"),
            }
            // Wait for a link other than the one that failed.
            let stale = Some((agent_id, connection));
            while *link.borrow() == stale {
                if link.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

fn registration(
    agent_id: Option<String>,
    agent: Option<&Agent>,
    config: &AgentConfig,
    endpoint: SocketAddr,
) -> Registration {
    let r = config.resources;
    let info = agent
        .map(Agent::info)
        .unwrap_or_else(|| brine_proto::mesos::v1::AgentInfo {
            hostname: config.hostname.clone(),
            port: Some(i32::from(endpoint.port())),
            resources: vec![
                brine_proto::mesos::v1::Resource::scalar("cpus", r.cpus),
                brine_proto::mesos::v1::Resource::scalar("mem", r.mem_mb),
                brine_proto::mesos::v1::Resource::scalar("disk", r.disk_mb),
            ],
            ..Default::default()
        });
    Registration {
        agent_id,
        info,
        endpoint,
        resources: r,
        ports: vec![(31000, 32000)],
        executors: agent.map(Agent::report).unwrap_or_default(),
    }
}

/// Registers until the master takes it, backing off up to 5 s between attempts.
async fn register(master: &MasterClient, registration: &Registration) -> Link {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match Link::open(master, registration).await {
            Ok(link) => return link,
            Err(e) => tracing::warn!(error = %e, "cannot register with the master; retrying"),
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// Runs one agent registered with `--master` until a signal. `ready` gets the agent
/// id once it is (re-)registered and serving.
pub async fn serve_agent(args: AgentArgs, ready: impl FnOnce(&str)) -> Result<(), ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(ServeError::Signal)?;
    let master = MasterClient::new(&args.master)?;
    let listen = SocketAddr::new(args.ip, args.port);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Standalone(format!("cannot listen on {listen}: {e}")))?;
    let endpoint = listener
        .local_addr()
        .map_err(|e| ServeError::Standalone(e.to_string()))?;
    let mut config = AgentConfig::new(&args.work_dir);
    config.listen = endpoint;
    config.recover = true;
    let machine = config.resources;
    config.resources = AgentResources {
        cpus: args.cpus.unwrap_or(machine.cpus),
        mem_mb: args.mem.unwrap_or(machine.mem_mb),
        disk_mb: args.disk.unwrap_or(machine.disk_mb),
    };
    config.cgroups = if args.isolation.contains("cgroups/") {
        CgroupsMode::Auto
    } else {
        CgroupsMode::Off
    };
    config.executor_registration_timeout = args.executor_registration_timeout;
    config.executor_reregistration_timeout = args.executor_reregistration_timeout;
    config.executor_shutdown_grace_period = args.executor_shutdown_grace_period;
    config.recovery_timeout = args.recovery_timeout;
    config.gc_delay = args.gc_delay;

    // A new agent is named by the master; a checkpointed one keeps its id.
    let mut first = None;
    if Agent::checkpointed_id(&args.work_dir).is_none() {
        let link = register(&master, &registration(None, None, &config, endpoint)).await;
        config.agent_id = link.agent_id.clone();
        first = Some(link);
    }
    let mut agent = Agent::start_on(listener, config.clone())
        .await
        .map_err(|e| ServeError::Standalone(e.to_string()))?;
    let Some(mut agent_events) = agent.take_events() else {
        return Err(ServeError::Standalone("agent events already taken".into()));
    };
    let agent = Arc::new(agent);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let forward = events_tx.clone();
    tokio::spawn(async move {
        while let Some(event) = agent_events.recv().await {
            if forward.send(LinkEvent::Agent(event)).is_err() {
                break;
            }
        }
    });
    let (link_tx, link_rx) = watch::channel(None);
    tokio::spawn(post_events(master.clone(), events_rx, link_rx));
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    tokio::spawn(run_ops(Arc::clone(&agent), ops_rx, events_tx));
    let mut ready = Some(ready);
    let agent_id = agent.agent_id().value.clone();
    let shutdown = loop {
        let mut link = match first.take() {
            Some(link) => link,
            None => {
                let registration =
                    registration(Some(agent_id.clone()), Some(&agent), &config, endpoint);
                tokio::select! {
                    link = register(&master, &registration) => link,
                    _ = tokio::signal::ctrl_c() => break false,
                    _ = term.recv() => break false,
                    _ = usr1.recv() => break true,
                }
            }
        };
        tracing::info!(agent_id = %link.agent_id, connection = link.connection, "registered with the master");
        let _ = link_tx.send(Some((link.agent_id.clone(), link.connection)));
        agent.resend_pending_updates();
        if let Some(ready) = ready.take() {
            ready(&agent_id);
        }
        let lost = async {
            while let Some(record) = link.next().await {
                match AgentOp::from_json(&record) {
                    Ok(Some(op)) => {
                        let _ = ops_tx.send(op);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "ignoring a bad operation"),
                }
            }
        };
        tokio::select! {
            _ = lost => {
                tracing::warn!("lost the link to the master; re-registering");
                let _ = link_tx.send(None);
            }
            _ = tokio::signal::ctrl_c() => break false,
            _ = term.recv() => break false,
            _ = usr1.recv() => break true,
        }
    };
    if shutdown {
        tracing::info!("SIGUSR1: shutting down every executor");
        agent.shutdown_executors().await;
    } else {
        // Like a Mesos agent stopped by SIGTERM: executors keep running, to be
        // recovered by the next agent on this work directory.
        tracing::info!("stopping; executors keep running");
        std::process::exit(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::agent::AgentEvent;

    #[test]
    fn agent_events_are_link_events() {
        // Every AgentEvent variant has a wire form.
        let e = LinkEvent::Agent(AgentEvent::ExecutorMessage {
            framework_id: Default::default(),
            executor_id: Default::default(),
            data: Bytes::from_static(b"x"),
        });
        assert_eq!(e.to_json()["type"], "EXECUTOR_MESSAGE");
        assert_eq!(
            MasterClient::new("http://127.0.0.1:5050")
                .unwrap()
                .master
                .authority(),
            "127.0.0.1:5050"
        );
        // A bare host:port is http://host:port.
        assert_eq!(
            MasterClient::new("m:5050").unwrap().master.to_string(),
            "http://m:5050/"
        );
        assert!(MasterClient::new("http://u:p@m:5050").is_err());
    }
}
