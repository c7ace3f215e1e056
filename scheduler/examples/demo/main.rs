//! The main job of `make demo`: the example tasks run as closures on a local Mesos-style
//! cluster of two agents (`Cluster::connect_with("local:2", …)`), through the scheduler
//! library exactly as a user program would.
//!
//! 1. `hello` and `sum`: one closure each, typed arguments and results, a guest error.
//! 2. `wordcount`: a generated text dataset shipped once to each executor and read by
//!    every task, counted in byte ranges and checked against a count on this machine.
//! 3. `pi`: a long task whose progress (reported by the guest, carried by the
//!    executor's heartbeats) is drawn live.
//! 4. `evolve`: a genetic algorithm, each generation evaluated in parallel chunks with
//!    `map`, until it finds exact solutions.
//!
//! The runtime alone (no cluster) has its own demo: `cargo run --release -p
//! brine-executor --example runtime_demo`.

mod agents;
mod evolve;
mod pi;
mod setup;
mod wordcount;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use brine_scheduler::{Cluster, ClusterConfig, TaskError};

use crate::agents::Agents;

/// Size of the generated wordcount dataset.
const DATASET_BYTES: usize = 32 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The demo's own output tells the story; RUST_LOG=info shows the rest.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let started = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("brine-demo-")
        .tempdir()
        .context("cannot create a temp directory")?;
    let dataset = scratch.path().join("words.txt");
    let text = wordcount::generate(DATASET_BYTES);
    std::fs::write(&dataset, &text)
        .with_context(|| format!("cannot write the dataset {}", dataset.display()))?;

    let mut config = ClusterConfig::default()
        .with_dataset(dataset.clone())
        .with_executor_binary(setup::executor_binary()?)
        // Progress reaches the scheduler in heartbeats: frequent ones make the bar live.
        .with_heartbeat_timeout(Duration::from_secs(5));
    config.executor_config.heartbeat_interval = Duration::from_millis(100);
    println!("Starting a local cluster: one master and two agents (local:2) …");
    let cluster = Cluster::connect_with("local:2", config)
        .await
        .context("cannot start the local cluster")?;
    println!(
        "Connected to {} as framework {}.\n",
        cluster.master_url(),
        cluster.framework_id()
    );
    let modules = setup::Modules::load()?;
    let agents = Agents::default();

    section("hello and sum: one closure each");
    hello_and_sum(&cluster, &modules, &agents).await?;
    section(&format!(
        "wordcount: {} MiB of generated text, shipped once per executor",
        DATASET_BYTES >> 20
    ));
    wordcount::run(&cluster, &modules.wordcount, &text, &agents).await?;
    drop(text);
    section("pi: one long task, its progress reported through heartbeats");
    pi::run(&cluster, &modules.pi, &agents).await?;
    section("evolve: a genetic algorithm, each generation in parallel chunks");
    evolve::run(&cluster, &modules.evolve).await?;

    section("where the work ran");
    agents.print(cluster.status().await.as_ref());
    cluster.shutdown().await;
    println!("\nDemo finished in {:.1?}.", started.elapsed());
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title}");
}

async fn hello_and_sum(
    cluster: &Cluster,
    modules: &setup::Modules,
    agents: &Agents,
) -> anyhow::Result<()> {
    let greeting: String = agents
        .track(cluster.submit(&modules.hello, "hello", &()))
        .await?;
    println!("{:<18} -> {greeting:?}", "hello()");
    // Submitted together: they run side by side.
    let inputs = ["1 2 3", "4 5 6", "7 8 9"];
    let handles: Vec<_> = inputs
        .iter()
        .map(|numbers| cluster.submit::<String, i64>(&modules.sum, "sum", &numbers.to_string()))
        .collect();
    for (numbers, handle) in inputs.iter().zip(handles) {
        let total = agents.track(handle).await?;
        println!("{:<18} -> {total}", format!("sum({numbers:?})"));
    }
    // A guest error comes back as a typed error, and is not retried.
    match agents
        .track(cluster.submit::<String, i64>(&modules.sum, "sum", &"1 two 3".to_string()))
        .await
    {
        Ok(total) => bail!("sum of \"1 two 3\" returned {total}"),
        Err(TaskError::Guest { kind, message, .. }) => {
            println!(
                "{:<18} -> guest error ({kind}): {message}",
                "sum(\"1 two 3\")"
            );
        }
        Err(other) => bail!("sum of \"1 two 3\" failed unexpectedly: {other}"),
    }
    Ok(())
}
