//! Running a [`LocalCluster`] standalone until SIGINT/SIGTERM: what both `brine-local`
//! and `brine local` do, with the same flags ([`ServeArgs`]), so the two binaries cannot
//! drift apart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::agent::AgentResources;
use crate::master::{Credentials, CredentialsError};
use crate::{LocalCluster, LocalClusterConfig, LocalClusterError};

/// The command-line flags of a standalone local cluster (`#[command(flatten)]` them).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Number of agents.
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    /// Work directory (sandboxes); default a new directory under the system temp dir.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Master port (0: any free port).
    #[arg(long, default_value_t = 5050)]
    pub port: u16,
    /// Address to bind the master to.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub ip: IpAddr,
    /// CPUs per agent (default: the machine's, split across the agents).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Memory per agent in MB.
    #[arg(long)]
    pub mem: Option<f64>,
    /// Disk per agent in MB.
    #[arg(long)]
    pub disk: Option<f64>,
    /// Seconds between master HEARTBEAT events.
    #[arg(long, default_value_t = 15.0)]
    pub heartbeat_interval: f64,
    /// Mesos's `--allocation_interval` (a Mesos duration such as `1secs`, `200ms`): a
    /// batch allocation offers free resources every interval; SUBSCRIBE and REVIVE
    /// allocate at once, resources given back wait for the next one.
    #[arg(long, default_value = "1secs", value_parser = positive_duration)]
    pub allocation_interval: Duration,
    /// A Mesos credentials file (`{"credentials":[{"principal":"…","secret":"…"}]}`):
    /// frameworks must then authenticate with HTTP basic authentication, as with Mesos's
    /// `--authenticate_http_frameworks --http_framework_authenticators=basic
    /// --credentials=<file>`.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// How long a terminated executor's sandbox is kept (Mesos's `--gc_delay`, a Mesos
    /// duration such as `1weeks`, `3days`, `30mins`); shorter as the disk fills.
    #[arg(long, default_value = "1weeks", value_parser = mesos_duration)]
    pub gc_delay: Duration,
    /// Mesos's `--gc_disk_headroom` (0 to 1): at each disk check, sandboxes older than
    /// `gc_delay * max(0, 1 - headroom - disk usage)` are removed.
    #[arg(long, default_value_t = 0.1, value_parser = headroom)]
    pub gc_disk_headroom: f64,
    /// How often the disk is checked (Mesos's `--disk_watch_interval`).
    #[arg(long, default_value = "1mins", value_parser = mesos_duration)]
    pub disk_watch_interval: Duration,
}

fn mesos_duration(text: &str) -> Result<Duration, String> {
    brine_proto::duration::parse(text).map_err(|e| e.to_string())
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match mesos_duration(text)? {
        d if d.is_zero() => Err("must be greater than zero".to_owned()),
        d => Ok(d),
    }
}

fn headroom(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{text}' is not a number between 0.0 and 1.0")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--heartbeat-interval must be a positive number of seconds, not {0}")]
    HeartbeatInterval(f64),
    #[error("--credentials: {0}")]
    Credentials(#[from] CredentialsError),
    #[error("cannot start the local cluster: {0}")]
    Start(#[from] LocalClusterError),
    #[error("cannot handle SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Standalone(String),
}

impl ServeArgs {
    /// The cluster these flags describe. The work directory defaults to
    /// `<temp>/brine-local-<pid>`, so two clusters on one machine never share sandboxes.
    pub fn config(&self) -> Result<LocalClusterConfig, ServeError> {
        let work_dir = match &self.work_dir {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!("brine-local-{}", std::process::id())),
        };
        let mut config = LocalClusterConfig::new(self.agents, &work_dir);
        config.gc_delay = self.gc_delay;
        config.gc_disk_headroom = self.gc_disk_headroom;
        config.disk_watch_interval = self.disk_watch_interval;
        config.master_listen = SocketAddr::new(self.ip, self.port);
        config.allocation_interval = self.allocation_interval;
        config.heartbeat_interval = Duration::try_from_secs_f64(self.heartbeat_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(ServeError::HeartbeatInterval(self.heartbeat_interval))?;
        if self.cpus.is_some() || self.mem.is_some() || self.disk.is_some() {
            let machine = AgentResources::detect(&work_dir);
            let n = self.agents.max(1) as f64;
            config.agent_resources = Some(AgentResources {
                cpus: self.cpus.unwrap_or(machine.cpus / n),
                mem_mb: self.mem.unwrap_or((machine.mem_mb / n).floor()),
                disk_mb: self.disk.unwrap_or((machine.disk_mb / n).floor()),
            });
        }
        if let Some(path) = &self.credentials {
            let credentials = Credentials::read(path)?;
            tracing::info!(
                ?credentials,
                "only allowing authenticated HTTP frameworks to register"
            );
            config.credentials = Some(credentials);
        }
        Ok(config)
    }
}

/// Starts the cluster, hands it to `ready` (which prints the master URL: callers wait
/// for that line to know the master is listening), then runs until SIGINT or SIGTERM and
/// shuts everything down (executors get SHUTDOWN, then SIGKILL after the grace period).
pub async fn serve(
    config: LocalClusterConfig,
    ready: impl FnOnce(&LocalCluster),
) -> Result<(), ServeError> {
    // Before starting, so a failure leaves nothing running.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    let cluster = LocalCluster::start(config).await?;
    ready(&cluster);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    cluster.shutdown().await;
    Ok(())
}
