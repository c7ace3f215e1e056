//! `brine-local`: a local Mesos-compatible master with N agents, until SIGINT/SIGTERM.
//! The flags and the serving live in `brine_local::serve`, shared with `brine local`.

use anyhow::Context;
use brine_local::serve::{ServeArgs, serve};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "brine-local",
    about = "A single-machine Mesos-compatible master and agents"
)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
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
    let config = args.serve.config()?;
    serve(config, |cluster| println!("{}", cluster.master_url()))
        .await
        .context("brine-local")?;
    Ok(())
}
