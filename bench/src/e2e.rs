//! Part 5, end to end: `brine_scheduler::Cluster` against a master (an in-process
//! `local:N` cluster, or `--master URL`), `sum` closures submitted and their typed
//! results awaited — one at a time (latency) and as a batch with bounded in-flight
//! work through `Cluster::map` (throughput).

use std::time::Instant;

use anyhow::{Context as _, bail};
use brine_executor::runtime::monotonic_ns;
use brine_scheduler::{Cluster, ClusterConfig, Module};
use futures::StreamExt;
use serde::Serialize;

use crate::stats::Series;
use crate::{Context, Plan};

/// One batch: how many closures, how long, how many per second.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub closures: usize,
    pub in_flight: usize,
    pub seconds: f64,
    pub per_second: f64,
}

pub struct EndToEnd {
    /// `local:1`, `local:2` or the master's URL.
    pub master: String,
    pub latency: Series,
    pub batches: Vec<Batch>,
}

pub async fn measure(
    ctx: &Context,
    plan: &Plan,
    master: &str,
    task_cpus: Option<f64>,
) -> anyhow::Result<EndToEnd> {
    let mut config = ClusterConfig {
        max_in_flight: plan.e2e_in_flight,
        ..ClusterConfig::default()
    };
    if let Some(cpus) = task_cpus {
        config.task_cpus = cpus;
    }
    let cluster = Cluster::connect_with(master, config)
        .await
        .with_context(|| format!("cannot connect to {master}"))?;
    let outcome = run(ctx, plan, master, &cluster).await;
    cluster.shutdown().await;
    outcome
}

async fn run(
    ctx: &Context,
    plan: &Plan,
    master: &str,
    cluster: &Cluster,
) -> anyhow::Result<EndToEnd> {
    let module = Module::from_bytes(ctx.artifacts.example("sum")?);
    let args = "1 2 3".to_owned();
    let mut e2e = EndToEnd {
        master: master.to_owned(),
        latency: Series::new(
            &format!("e2e.{master}.latency"),
            &format!("end to end on {master}: one closure at a time"),
            "`submit` called → typed result returned by the awaited handle",
        ),
        batches: Vec::new(),
    };
    // Warm-up: executors started, the module compiled and known to be held.
    for _ in 0..plan.e2e_warmup {
        expect_six(cluster.submit::<String, i64>(&module, "sum", &args).await)?;
    }
    // A batch as wide as the bound, so every agent's executor holds the module.
    batch(cluster, &module, plan.e2e_in_flight).await?;
    for _ in 0..plan.rounds {
        e2e.latency.start_round();
        for _ in 0..plan.e2e_latency_iters {
            let start = monotonic_ns();
            let result = cluster.submit::<String, i64>(&module, "sum", &args).await;
            let end = monotonic_ns();
            expect_six(result)?;
            e2e.latency.record(end.saturating_sub(start));
            ctx.progress.inc(1);
        }
    }
    for _ in 0..plan.batch_rounds {
        let seconds = batch(cluster, &module, plan.e2e_batch).await?;
        ctx.progress.inc(1);
        e2e.batches.push(Batch {
            closures: plan.e2e_batch,
            in_flight: plan.e2e_in_flight,
            seconds,
            per_second: plan.e2e_batch as f64 / seconds,
        });
    }
    Ok(e2e)
}

/// Runs `n` closures through `Cluster::map`; returns the seconds it took.
async fn batch(cluster: &Cluster, module: &Module, n: usize) -> anyhow::Result<f64> {
    let items = (0..n).map(|i| format!("{i} 1 2"));
    let start = Instant::now();
    let mut results = std::pin::pin!(cluster.map::<String, i64, _>(module, "sum", items));
    let mut seen = 0;
    while let Some((i, result)) = results.next().await {
        let total = result.with_context(|| format!("closure {i} failed"))?;
        if total != i as i64 + 3 {
            bail!("closure {i} returned {total}");
        }
        seen += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    if seen != n {
        bail!("{seen} of {n} closures came back");
    }
    Ok(seconds)
}

fn expect_six<E: std::fmt::Display>(result: Result<i64, E>) -> anyhow::Result<()> {
    match result {
        Ok(6) => Ok(()),
        Ok(other) => bail!("sum returned {other}"),
        Err(e) => bail!("sum failed: {e}"),
    }
}
