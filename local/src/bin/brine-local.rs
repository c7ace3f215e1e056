//! `brine-local`: a local Mesos-compatible master with N agents, until SIGINT/SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use brine_local::agent::AgentResources;
use brine_local::{LocalCluster, LocalClusterConfig};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "brine-local",
    about = "A single-machine Mesos-compatible master and agents"
)]
struct Args {
    /// Number of agents.
    #[arg(long, default_value_t = 1)]
    agents: usize,
    /// Work directory (sandboxes); default a new directory under the system temp dir.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Master port (0: any free port).
    #[arg(long, default_value_t = 5050)]
    port: u16,
    /// Address to bind the master to.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    ip: IpAddr,
    /// CPUs per agent (default: the machine's, split across the agents).
    #[arg(long)]
    cpus: Option<f64>,
    /// Memory per agent in MB.
    #[arg(long)]
    mem: Option<f64>,
    /// Disk per agent in MB.
    #[arg(long)]
    disk: Option<f64>,
    /// Seconds between master HEARTBEAT events.
    #[arg(long, default_value_t = 15.0)]
    heartbeat_interval: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let work_dir = match args.work_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("brine-local-{}", std::process::id())),
    };
    let mut config = LocalClusterConfig::new(args.agents, &work_dir);
    config.master_listen = SocketAddr::new(args.ip, args.port);
    config.heartbeat_interval = Duration::try_from_secs_f64(args.heartbeat_interval)
        .context("--heartbeat-interval must be a positive number of seconds")?;
    if args.cpus.is_some() || args.mem.is_some() || args.disk.is_some() {
        let machine = AgentResources::detect(&work_dir);
        let n = args.agents.max(1) as f64;
        config.agent_resources = Some(AgentResources {
            cpus: args.cpus.unwrap_or(machine.cpus / n),
            mem_mb: args.mem.unwrap_or((machine.mem_mb / n).floor()),
            disk_mb: args.disk.unwrap_or((machine.disk_mb / n).floor()),
        });
    }
    let cluster = LocalCluster::start(config)
        .await
        .context("cannot start the local cluster")?;
    println!("{}", cluster.master_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    cluster.shutdown().await;
    Ok(())
}
