//! [`LocalCluster`]: a local master and N local agents in this process, the master
//! driving the agents through the [`Agent`] API.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::{Agent, AgentConfig, AgentError, AgentResources, CgroupsMode};
use crate::master::{Credentials, Master, MasterAgent, MasterConfig, MasterError};

/// How to start a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// Number of agents (at least 1).
    pub agents: usize,
    /// Agent `i` works under `<work_dir>/agent-<i>`.
    pub work_dir: PathBuf,
    /// Default `127.0.0.1:0`.
    pub master_listen: SocketAddr,
    /// Resources of each agent; default this machine's, split evenly across the agents.
    pub agent_resources: Option<AgentResources>,
    /// Port ranges each agent offers; default `[31000-32000]` (Mesos's default).
    pub agent_ports: Vec<(u64, u64)>,
    /// Default 15 s (Mesos).
    pub heartbeat_interval: Duration,
    /// The master's `--allocation_interval` ([`MasterConfig::allocation_interval`]);
    /// default 1 s (Mesos).
    pub allocation_interval: Duration,
    /// Default [`CgroupsMode::Auto`].
    pub cgroups: CgroupsMode,
    /// Agents' `--executor_shutdown_grace_period`; default 5 s.
    pub executor_shutdown_grace_period: Duration,
    /// The master's HTTP framework authentication ([`MasterConfig::credentials`]).
    pub credentials: Option<Credentials>,
    /// Agents' `--gc_delay`; default 1 week ([`AgentConfig::gc_delay`]).
    pub gc_delay: Duration,
    /// Agents' `--gc_disk_headroom`; default 0.1.
    pub gc_disk_headroom: f64,
    /// Agents' `--disk_watch_interval`; default 1 min.
    pub disk_watch_interval: Duration,
}

impl LocalClusterConfig {
    pub fn new(agents: usize, work_dir: impl Into<PathBuf>) -> Self {
        LocalClusterConfig {
            agents,
            work_dir: work_dir.into(),
            master_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            agent_resources: None,
            agent_ports: vec![(31000, 32000)],
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            cgroups: CgroupsMode::Auto,
            executor_shutdown_grace_period: Duration::from_secs(5),
            credentials: None,
            gc_delay: Duration::from_secs(7 * 24 * 3600),
            gc_disk_headroom: 0.1,
            disk_watch_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("a local cluster needs at least one agent")]
    NoAgents,
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Master(#[from] MasterError),
}

/// A running master with its agents.
pub struct LocalCluster {
    master: Option<Master>,
    agents: Vec<Arc<Agent>>,
}

impl LocalCluster {
    pub async fn start(config: LocalClusterConfig) -> Result<LocalCluster, LocalClusterError> {
        if config.agents == 0 {
            return Err(LocalClusterError::NoAgents);
        }
        let master_config = MasterConfig {
            listen: config.master_listen,
            heartbeat_interval: config.heartbeat_interval,
            allocation_interval: config.allocation_interval,
            credentials: config.credentials.clone(),
            ..MasterConfig::default()
        };
        let n = config.agents as f64;
        let resources = config.agent_resources.unwrap_or_else(|| {
            let machine = AgentResources::detect(&config.work_dir);
            AgentResources {
                cpus: (machine.cpus / n * 100.0).floor() / 100.0,
                mem_mb: (machine.mem_mb / n).floor(),
                disk_mb: (machine.disk_mb / n).floor(),
            }
        });
        let mut agents = Vec::new();
        let mut handed = Vec::new();
        for i in 0..config.agents {
            let mut agent_config = AgentConfig::new(config.work_dir.join(format!("agent-{i}")));
            agent_config.agent_id = format!("{}-S{i}", master_config.id);
            agent_config.resources = resources;
            agent_config.cgroups = config.cgroups;
            agent_config.executor_shutdown_grace_period = config.executor_shutdown_grace_period;
            agent_config.gc_delay = config.gc_delay;
            agent_config.gc_disk_headroom = config.gc_disk_headroom;
            agent_config.disk_watch_interval = config.disk_watch_interval;
            let mut agent = Agent::start(agent_config).await?;
            let Some(events) = agent.take_events() else {
                continue;
            };
            let agent = Arc::new(agent);
            agents.push(Arc::clone(&agent));
            handed.push(MasterAgent {
                agent,
                events,
                ports: config.agent_ports.clone(),
            });
        }
        let master = Master::start(master_config, handed).await?;
        Ok(LocalCluster {
            master: Some(master),
            agents,
        })
    }

    /// `http://ip:port` of the master (the scheduler API is at `/api/v1/scheduler`).
    pub fn master_url(&self) -> String {
        self.master.as_ref().map(Master::url).unwrap_or_default()
    }

    pub fn master(&self) -> Option<&Master> {
        self.master.as_ref()
    }

    pub fn agents(&self) -> &[Arc<Agent>] {
        &self.agents
    }

    /// Stops the master, then shuts every agent down (executors get SHUTDOWN, then
    /// SIGKILL after the grace period).
    pub async fn shutdown(mut self) {
        if let Some(master) = self.master.take() {
            master.shutdown().await;
        }
        for agent in self.agents.drain(..) {
            match Arc::try_unwrap(agent) {
                Ok(agent) => agent.shutdown().await,
                Err(agent) => drop(agent),
            }
        }
    }
}
