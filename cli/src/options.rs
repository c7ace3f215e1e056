//! The flags that say which master to use and how to run tasks there, turned into a
//! [`ClusterConfig`]. Flags left out keep the library's defaults, so the command line
//! and a program using the library behave alike.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use brine_scheduler::{ClusterConfig, Dispatch};

/// `--master`: checked here so a typo fails before anything starts.
pub fn parse_master(master: &str) -> Result<String, String> {
    let local = master == "local"
        || master
            .strip_prefix("local:")
            .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n > 0));
    let remote = ["http://", "https://", "zk://"]
        .iter()
        .any(|scheme| master.starts_with(scheme));
    if local || remote {
        Ok(master.to_owned())
    } else {
        Err(
            "expected local, local:N (N ≥ 1), http://host:port, https://host:port or \
             zk://host:port[,host:port…]/path"
                .to_owned(),
        )
    }
}

/// A Mesos duration string (`500ms`, `5secs`, `2mins`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    brine_proto::duration::parse(text).map_err(|e| e.to_string())
}

/// How to authenticate to the master (HTTP basic, as Mesos's `--authenticate_frameworks`
/// with the default authenticator expects).
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialArgs {
    /// Principal to authenticate as (HTTP basic); needs --secret-file.
    #[arg(long, requires = "secret_file")]
    pub principal: Option<String>,
    /// File holding the secret (trailing newline ignored), so it never shows in `ps`.
    #[arg(long, requires = "principal")]
    pub secret_file: Option<PathBuf>,
}

impl CredentialArgs {
    /// `(principal, secret)` when both were given.
    pub fn read(&self) -> anyhow::Result<Option<(String, String)>> {
        let (Some(principal), Some(file)) = (&self.principal, &self.secret_file) else {
            return Ok(None);
        };
        let secret = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --secret-file {}", file.display()))?;
        let secret = secret.trim_end_matches(['\r', '\n']).to_owned();
        if secret.is_empty() {
            bail!("--secret-file {} is empty", file.display());
        }
        Ok(Some((principal.clone(), secret)))
    }
}

/// Where tasks run and with what.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The master: local (1 agent in this process), local:N, http(s)://host:port, or
    /// zk://host:port[,…]/mesos.
    #[arg(long, default_value = "local", value_parser = parse_master)]
    pub master: String,
    /// Failover state store: with it, a restarted `brine run` re-subscribes with the
    /// same FrameworkID. Default with --map: `<input>.brine-state`; otherwise none.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Most tasks in flight at once with --map (default: the library's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: Option<u64>,
    /// A file shipped to every executor once and readable by every task.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Where agents fetch the dataset instead of `--dataset` (`http://…`, `hdfs://…`),
    /// for agents that do not share this machine's files.
    #[arg(long, conflicts_with = "dataset")]
    pub dataset_uri: Option<String>,
    /// Where agents fetch `brine-executor` (`http://…`, `hdfs://…`) instead of the
    /// binary beside this one as a `file://` URI.
    #[arg(long)]
    pub executor_uri: Option<String>,
    /// CPUs of each task (default: the library's, 0.1).
    #[arg(long)]
    pub task_cpus: Option<f64>,
    /// Memory of each task in MB; also the task's memory limit (default 64).
    #[arg(long)]
    pub task_mem: Option<f64>,
    /// How often executors heartbeat (and report progress), e.g. `500ms`, `2secs`.
    #[arg(long, value_parser = parse_duration)]
    pub executor_heartbeat: Option<Duration>,
    /// Silence after which an executor is presumed lost and its tasks retried elsewhere.
    #[arg(long, value_parser = parse_duration)]
    pub heartbeat_timeout: Option<Duration>,
    /// Where this scheduler serves `GET /status` (for `brine status`; advertised as the
    /// framework's webui_url). Default 127.0.0.1 on a free port (the library serves
    /// nothing unless asked; the command line always asks): give a reachable address
    /// when `brine status` runs on another machine.
    #[arg(long)]
    pub status_addr: Option<std::net::SocketAddr>,
    /// How closures reach executors: `leases` (Mesos tasks that each reserve one
    /// closure slot; closures go over a direct connection, the lane) or `tasks` (one
    /// Mesos task per closure: an offer round each).
    #[arg(long, value_enum, default_value_t = DispatchArg::Leases)]
    pub dispatch: DispatchArg,
    /// Most leases held at once (default: the library's, 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_leases: Option<u64>,
    /// How long a lease may stay idle before it goes back to Mesos, e.g. `2secs`.
    #[arg(long, value_parser = parse_duration)]
    pub lease_idle: Option<Duration>,
    /// Where the agents reach this machine's closure lane: `host` or `host:port`
    /// (default: the address on the route to the master).
    #[arg(long)]
    pub lane_advertise: Option<String>,
    /// Where the closure lane listens (default 0.0.0.0 on a free port; 127.0.0.1 for
    /// local masters).
    #[arg(long)]
    pub lane_bind: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// `--dispatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DispatchArg {
    Leases,
    Tasks,
}

impl ClusterArgs {
    /// The library's configuration, with `default_state` as the state store when
    /// `--state` was not given.
    pub fn config(&self, default_state: Option<PathBuf>) -> anyhow::Result<ClusterConfig> {
        let mut config = ClusterConfig::default().with_status_addr(
            self.status_addr
                .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        );
        config.state_file = self.state.clone().or(default_state);
        config.dataset = self.dataset.clone();
        config.dataset_uri = self.dataset_uri.clone();
        config.executor_uri = self.executor_uri.clone();
        if let Some(dataset) = &config.dataset
            && !dataset.is_file()
        {
            bail!("--dataset {} is not a readable file", dataset.display());
        }
        config.dispatch = match self.dispatch {
            DispatchArg::Leases => Dispatch::Leases,
            DispatchArg::Tasks => Dispatch::TaskPerClosure,
        };
        if let Some(n) = self.max_leases {
            config.max_leases = usize::try_from(n).context("--max-leases is too large")?;
        }
        if let Some(idle) = self.lease_idle {
            config.lease_idle_timeout = idle;
        }
        config.lane_advertise = self.lane_advertise.clone();
        config.lane_bind = self.lane_bind;
        if let Some(n) = self.max_in_flight {
            config.max_in_flight = usize::try_from(n).context("--max-in-flight is too large")?;
        }
        if let Some(cpus) = self.task_cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                bail!("--task-cpus must be a positive number, not {cpus}");
            }
            config.task_cpus = cpus;
        }
        if let Some(mem) = self.task_mem {
            if !(mem.is_finite() && mem >= 1.0) {
                bail!("--task-mem must be at least 1 (MB), not {mem}");
            }
            config.task_mem_mb = mem;
        }
        if let Some(interval) = self.executor_heartbeat {
            if interval.is_zero() {
                bail!("--executor-heartbeat must be longer than 0");
            }
            config.executor_config.heartbeat_interval = interval;
        }
        if let Some(timeout) = self.heartbeat_timeout {
            config.heartbeat_timeout = timeout;
        }
        if config.heartbeat_timeout <= config.executor_config.heartbeat_interval {
            bail!(
                "--heartbeat-timeout ({}) must be longer than the executor heartbeat ({})",
                brine_proto::duration::format(config.heartbeat_timeout),
                brine_proto::duration::format(config.executor_config.heartbeat_interval)
            );
        }
        if let Some((principal, secret)) = self.credentials.read()? {
            config.client.credential =
                Some(brine_scheduler::client::Credential::new(principal, secret));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters() {
        for ok in [
            "local",
            "local:3",
            "http://m:5050",
            "https://m:5050",
            "zk://a:2181,b:2181/mesos",
        ] {
            assert_eq!(parse_master(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "local:0", "local:x", "m:5050", "ftp://m"] {
            assert!(parse_master(bad).is_err(), "{bad}");
        }
    }

    /// The flags alone, as clap parses them.
    fn cluster_args(flags: &[&str]) -> ClusterArgs {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            cluster: ClusterArgs,
        }
        let argv = std::iter::once("brine").chain(flags.iter().copied());
        <Flags as clap::Parser>::parse_from(argv).cluster
    }

    /// The library serves no status endpoint unless asked; `brine run` always asks, so
    /// that `brine status` can follow the framework's webui_url.
    #[test]
    fn the_status_endpoint_is_on_by_default() {
        let config = cluster_args(&[]).config(None).unwrap();
        assert_eq!(
            config.status_addr,
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        let config = cluster_args(&["--status-addr", "0.0.0.0:7070"])
            .config(None)
            .unwrap();
        assert_eq!(
            config.status_addr,
            Some(std::net::SocketAddr::from(([0, 0, 0, 0], 7070)))
        );
    }

    #[test]
    fn durations_are_mesos_strings() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5secs"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 s").is_err());
    }
}
