//! Part 5, end to end: `brine_scheduler::Cluster` against a master (an in-process
//! `local:N` cluster, or `--master URL`), `sum` closures submitted and their typed
//! results awaited — one at a time (latency, a lease held), the first closure of an
//! idle framework (no lease held: REVIVE, offer, lease launch, lane), as a batch with
//! bounded in-flight work through `Cluster::map` (throughput), a long `map` with its
//! peak memory, and the same batch with one Mesos task per closure (what every closure
//! cost before leases, and what it costs on Apache Mesos: its allocator re-offers
//! freed resources only at its tick).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use brine_executor::runtime::monotonic_ns;
use brine_scheduler::{Cluster, ClusterConfig, Dispatch, Module};
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
    /// The first closure after the framework gave back every lease.
    pub first_closure: Series,
    pub batches: Vec<Batch>,
    /// The long `map` (only where the plan asks for it).
    pub memory: Option<MapMemory>,
    /// Many callers and many frameworks at once (with the long `map`).
    pub load: Option<Load>,
}

/// Callers submitting side by side on one cluster, and frameworks side by side on one
/// master.
pub struct Load {
    /// [`CALLERS`] callers, each `submit`ting [`CALLER_CLOSURES`] closures one after
    /// another (every caller a future of one task: the scheduler sees them all at once).
    pub callers: Batch,
    pub callers_latency: Series,
    /// [`FRAMEWORKS`] frameworks on one `local:2` master, each a batch of
    /// [`FRAMEWORK_CLOSURES`]: the whole, and when the first and the last finished.
    pub frameworks: Batch,
    pub first_framework_seconds: f64,
    pub last_framework_seconds: f64,
}

pub const CALLERS: usize = 1_000;
pub const CALLER_CLOSURES: usize = 10;
pub const FRAMEWORKS: usize = 10;
pub const FRAMEWORK_CLOSURES: usize = 1_000;

/// Peak memory around one long `map`.
#[derive(Debug, Clone, Serialize)]
pub struct MapMemory {
    pub master: String,
    pub closures: usize,
    pub seconds: f64,
    /// This process's peak resident set (VmHWM): the scheduler, and for `local:N`
    /// the in-process master and agents too.
    pub scheduler_peak_kib: Option<u64>,
    /// Each executor's peak resident set (VmHWM), for `local:N`.
    pub executor_peak_kib: Vec<u64>,
}

/// How long a lease may idle in the bench before it goes back (short, so that the
/// idle-framework measurement does not wait long).
const LEASE_IDLE: Duration = Duration::from_millis(300);

pub async fn measure(
    ctx: &Context,
    plan: &Plan,
    master: &str,
    task_cpus: Option<f64>,
) -> anyhow::Result<EndToEnd> {
    let mut config = ClusterConfig::default()
        .with_max_in_flight(plan.e2e_in_flight)
        .with_lease_idle_timeout(LEASE_IDLE);
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
        first_closure: Series::new(
            &format!("e2e.{master}.first_closure"),
            &format!("end to end on {master}: first closure, no lease held"),
            "`submit` called with every lease given back → typed result returned",
        ),
        batches: Vec::new(),
        memory: None,
        load: None,
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
    e2e.first_closure.start_round();
    for _ in 0..plan.first_closure_iters {
        idle(cluster).await?;
        let start = monotonic_ns();
        let result = cluster.submit::<String, i64>(&module, "sum", &args).await;
        let end = monotonic_ns();
        expect_six(result)?;
        e2e.first_closure.record(end.saturating_sub(start));
        ctx.progress.inc(1);
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
    if plan.memory_closures > 0 && master == "local:2" {
        let seconds = batch(cluster, &module, plan.memory_closures).await?;
        ctx.progress.inc(1);
        let executor_peak_kib = cluster
            .local()
            .map(|local| {
                local
                    .agents()
                    .iter()
                    .flat_map(|a| a.executors())
                    .filter_map(|e| e.pid)
                    .filter_map(|pid| brine_tests::proc_status_kib(pid, "VmHWM"))
                    .collect()
            })
            .unwrap_or_default();
        e2e.memory = Some(MapMemory {
            master: master.to_owned(),
            closures: plan.memory_closures,
            seconds,
            scheduler_peak_kib: brine_tests::proc_status_kib(std::process::id(), "VmHWM"),
            executor_peak_kib,
        });
        let (callers, callers_latency) = callers(cluster, &module, master).await?;
        ctx.progress.inc(1);
        let (frameworks, first, last) = frameworks(ctx, plan).await?;
        ctx.progress.inc(1);
        e2e.load = Some(Load {
            callers,
            callers_latency,
            frameworks,
            first_framework_seconds: first,
            last_framework_seconds: last,
        });
    }
    Ok(e2e)
}

/// [`CALLERS`] callers at once, each submitting [`CALLER_CLOSURES`] closures in turn.
async fn callers(
    cluster: &Cluster,
    module: &Module,
    master: &str,
) -> anyhow::Result<(Batch, Series)> {
    let mut latency = Series::new(
        &format!("e2e.{master}.callers"),
        &format!("end to end on {master}: {CALLERS} callers at once"),
        "`submit` called → typed result returned, each caller's closures in turn",
    );
    latency.start_round();
    let start = Instant::now();
    let callers = (0..CALLERS).map(|caller| async move {
        let mut took = Vec::with_capacity(CALLER_CLOSURES);
        for i in 0..CALLER_CLOSURES {
            let args = format!("{caller} {i} 1");
            let begun = monotonic_ns();
            let total = cluster
                .submit::<String, i64>(module, "sum", &args)
                .await
                .with_context(|| format!("caller {caller}, closure {i}"))?;
            took.push(monotonic_ns().saturating_sub(begun));
            if total != (caller + i + 1) as i64 {
                bail!("caller {caller}, closure {i}: sum returned {total}");
            }
        }
        anyhow::Ok(took)
    });
    for took in futures::future::join_all(callers).await {
        for ns in took? {
            latency.record(ns);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let closures = CALLERS * CALLER_CLOSURES;
    let batch = Batch {
        closures,
        in_flight: CALLERS,
        seconds,
        per_second: closures as f64 / seconds,
    };
    Ok((batch, latency))
}

/// [`FRAMEWORKS`] frameworks on one `local:2` master at once, each running a batch of
/// [`FRAMEWORK_CLOSURES`]; returns the whole, and when the first and the last
/// framework finished (seconds from the start).
async fn frameworks(ctx: &Context, plan: &Plan) -> anyhow::Result<(Batch, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let local =
        brine_local::LocalCluster::start(brine_local::LocalClusterConfig::new(2, dir.path()))
            .await
            .context("cannot start a local:2 cluster")?;
    let url = local.master_url();
    let module = Module::from_bytes(ctx.artifacts.example("sum")?);
    let mut clusters = Vec::with_capacity(FRAMEWORKS);
    for n in 0..FRAMEWORKS {
        let config = ClusterConfig::default()
            .with_max_in_flight(plan.e2e_in_flight)
            .with_lease_idle_timeout(LEASE_IDLE)
            .with_name(format!("brine-bench-{n}"));
        clusters.push(
            Cluster::connect_with(&url, config)
                .await
                .with_context(|| format!("framework {n} cannot subscribe to {url}"))?,
        );
    }
    let start = Instant::now();
    let runs = clusters.iter().map(|cluster| async {
        batch(cluster, &module, FRAMEWORK_CLOSURES).await?;
        anyhow::Ok(start.elapsed().as_secs_f64())
    });
    let ends = futures::future::join_all(runs).await;
    let seconds = start.elapsed().as_secs_f64();
    for cluster in clusters {
        cluster.shutdown().await;
    }
    local.shutdown().await;
    let ends: Vec<f64> = ends.into_iter().collect::<anyhow::Result<_>>()?;
    let first = ends.iter().copied().fold(f64::INFINITY, f64::min);
    let last = ends.iter().copied().fold(0.0, f64::max);
    let closures = FRAMEWORKS * FRAMEWORK_CLOSURES;
    let batch = Batch {
        closures,
        in_flight: FRAMEWORKS * plan.e2e_in_flight,
        seconds,
        per_second: closures as f64 / seconds,
    };
    Ok((batch, first, last))
}

/// Waits until the framework holds no lease (they go back after [`LEASE_IDLE`]).
async fn idle(cluster: &Cluster) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.status().await.context("the scheduler stopped")?;
        if status.executors.iter().all(|e| e.leases == 0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("leases still held after 60 s idle: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The batch with one Mesos task per closure, on a cluster of its own.
pub async fn task_per_closure(
    plan: &Plan,
    ctx: &Context,
    master: &str,
    task_cpus: Option<f64>,
) -> anyhow::Result<Batch> {
    let mut config = ClusterConfig::default()
        .with_dispatch(Dispatch::TaskPerClosure)
        .with_max_in_flight(plan.e2e_in_flight);
    if let Some(cpus) = task_cpus {
        config.task_cpus = cpus;
    }
    let cluster = Cluster::connect_with(master, config)
        .await
        .with_context(|| format!("cannot connect to {master}"))?;
    let module = Module::from_bytes(ctx.artifacts.example("sum")?);
    let outcome = batch(&cluster, &module, plan.task_batch).await;
    cluster.shutdown().await;
    ctx.progress.inc(1);
    let seconds = outcome?;
    Ok(Batch {
        closures: plan.task_batch,
        in_flight: plan.e2e_in_flight,
        seconds,
        per_second: plan.task_batch as f64 / seconds,
    })
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
