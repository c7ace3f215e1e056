//! `brine-local`: a local Mesos-compatible master with N agents, until SIGINT/SIGTERM
//! (no subcommand; the flags and the serving live in `brine_local::serve`, shared with
//! `brine local`), or, as Mesos is deployed, a master (`brine-local master`) and agents
//! (`brine-local agent --master http://…`) as separate processes
//! (`brine_local::standalone`).

use anyhow::Context;
use brine_local::serve::{ServeArgs, serve};
use brine_local::standalone::{AgentArgs, MasterArgs, serve_agent, serve_master};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "brine-local",
    about = "A single-machine Mesos-compatible master and agents",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A master alone; agents register with it (prints its URL).
    Master(MasterArgs),
    /// One agent registered with a master; recovers its checkpoint under
    /// `<work-dir>/meta` when started again (prints its agent id).
    Agent(AgentArgs),
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
    match args.command {
        Some(Command::Master(master)) => serve_master(master, |url| println!("{url}"))
            .await
            .context("brine-local master")?,
        Some(Command::Agent(agent)) => serve_agent(agent, |id| println!("{id}"))
            .await
            .context("brine-local agent")?,
        None => {
            let config = args.serve.config()?;
            serve(config, |cluster| println!("{}", cluster.master_url()))
                .await
                .context("brine-local")?;
        }
    }
    Ok(())
}
