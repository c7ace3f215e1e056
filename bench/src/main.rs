//! `brine-bench`: measures, in one run on one machine, what starting a task costs in
//! Brine against honest baselines, and checks the numbers against the project's goals.
//!
//! Parts (each can be run alone with `--only`):
//! 1. `floor`: wasmtime instantiate + call in-process, the executor's engine settings.
//! 2. `executor` (with 3): the real executor under the real local agent — warm starts,
//!    a never-seen module on a running executor, a new executor process (disk cache or
//!    compile).
//! 4. `native`: a process per task (fork + exec of a native `sum`).
//! 5. `e2e`: `Cluster::submit` → result on `local:1` and `local:2` (or `--master`),
//!    one at a time and as bounded batches.
//! 6. `dataset`: the memory charged to the cgroup and the `wordcount` throughput of N
//!    concurrent tasks over one dataset, read through a mapping or with `pread`,
//!    against N processes each holding their own copy.
//!
//! Output: a Markdown table on stdout and in `<out>/latest.md`, every sample in
//! `<out>/latest.json`, the latency plot as `<out>/latest.svg` and `.png`. See
//! `bench/README.md`.

mod charge;
mod dataset;
mod e2e;
mod floor;
mod native;
mod paths;
mod plot;
mod report;
mod resident;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use crate::report::{Machine, Report, SeriesReport, Throughput, median};

/// Brine's benchmark harness: task start latency against baselines, end-to-end
/// latency and throughput, dataset sharing. Prints a Markdown table and writes it,
/// the raw numbers (JSON) and a latency plot (SVG, PNG) to --out.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Few iterations (under a minute): a smoke check for CI.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Every part at full size (under ten minutes; the default).
    #[arg(long)]
    full: bool,
    /// Where latest.{md,json,svg,png} are written.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Run the end-to-end part against this Mesos master (http://host:port) instead
    /// of local:1 and local:2.
    #[arg(long)]
    master: Option<String>,
    /// `cpus` of each end-to-end task (default: the scheduler's own default). Mesos
    /// packs tasks into offers by resources, so this bounds the closures in flight per
    /// agent.
    #[arg(long)]
    task_cpus: Option<f64>,
    /// Run only these parts (repeatable).
    #[arg(long, value_enum)]
    only: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Floor,
    Executor,
    Native,
    E2e,
    Dataset,
}

/// How much of everything a run does.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub mode: &'static str,
    /// Repeated runs of each latency loop (their spread is reported).
    pub rounds: usize,
    pub floor_warmup: usize,
    pub floor_iters: usize,
    pub warm_warmup: usize,
    pub warm_iters: usize,
    pub cold_module_iters: usize,
    pub cold_process_iters: usize,
    pub native_warmup: usize,
    pub native_iters: usize,
    pub e2e_warmup: usize,
    pub e2e_latency_iters: usize,
    pub e2e_batch: usize,
    pub e2e_in_flight: usize,
    pub batch_rounds: usize,
    /// First closures of an idle framework (each after its leases went back).
    pub first_closure_iters: usize,
    /// The long `map` whose peak memory is reported (0: none).
    pub memory_closures: usize,
    /// The batch run with one Mesos task per closure.
    pub task_batch: usize,
    pub dataset_bytes: u64,
    pub dataset_tasks: usize,
    /// Rounds of part 6 (each side with 1 task, then `dataset_tasks`).
    pub dataset_rounds: usize,
}

impl Plan {
    fn quick() -> Self {
        Self {
            mode: "quick",
            rounds: 2,
            floor_warmup: 200,
            floor_iters: 1000,
            warm_warmup: 50,
            warm_iters: 200,
            cold_module_iters: 2,
            cold_process_iters: 1,
            native_warmup: 10,
            native_iters: 100,
            e2e_warmup: 20,
            e2e_latency_iters: 100,
            e2e_batch: 1000,
            e2e_in_flight: 64,
            batch_rounds: 2,
            first_closure_iters: 2,
            memory_closures: 0,
            task_batch: 20,
            dataset_bytes: 64 << 20,
            dataset_tasks: 8,
            dataset_rounds: 2,
        }
    }

    fn full() -> Self {
        Self {
            mode: "full",
            rounds: 5,
            floor_warmup: 1000,
            floor_iters: 10_000,
            warm_warmup: 200,
            warm_iters: 2000,
            cold_module_iters: 4,
            cold_process_iters: 3,
            native_warmup: 20,
            native_iters: 300,
            e2e_warmup: 50,
            e2e_latency_iters: 1000,
            e2e_batch: 10_000,
            e2e_in_flight: 256,
            batch_rounds: 5,
            first_closure_iters: 10,
            memory_closures: 100_000,
            task_batch: 200,
            dataset_bytes: 1 << 30,
            dataset_tasks: 8,
            dataset_rounds: 3,
        }
    }

    /// Progress-bar steps for `parts` with `clusters` end-to-end configurations.
    fn steps(&self, parts: &[Part], clusters: usize) -> u64 {
        let r = self.rounds;
        let steps: usize = parts
            .iter()
            .map(|part| match part {
                Part::Floor => r * self.floor_iters,
                Part::Executor => {
                    r * (self.warm_iters + self.cold_module_iters + 2 * self.cold_process_iters)
                }
                Part::Native => r * self.native_iters,
                Part::E2e => {
                    clusters
                        * (r * self.e2e_latency_iters
                            + self.batch_rounds
                            + self.first_closure_iters
                            + 1)
                        // The long `map`, the callers and the frameworks.
                        + 3 * usize::from(self.memory_closures > 0)
                }
                // Two executors' first read and the processes' (5), then per round
                // three sides with 1 and with N tasks.
                Part::Dataset => 5 + self.dataset_rounds * 3 * (1 + self.dataset_tasks),
            })
            .sum();
        steps as u64
    }
}

/// What every part gets.
pub struct Context {
    pub artifacts: paths::Artifacts,
    pub progress: ProgressBar,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    // SAFETY: no other thread exists yet.
    let artifacts = unsafe { paths::Artifacts::locate()? };
    let plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let parts = if cli.only.is_empty() {
        vec![
            Part::Floor,
            Part::Native,
            Part::Executor,
            Part::E2e,
            Part::Dataset,
        ]
    } else {
        cli.only.clone()
    };
    let clusters: Vec<String> = match &cli.master {
        Some(url) => vec![url.clone()],
        None => vec!["local:1".into(), "local:2".into()],
    };
    let progress = ProgressBar::new(plan.steps(&parts, clusters.len()));
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ctx = Context {
        artifacts,
        progress,
    };
    let started = Instant::now();
    let mut report = Report {
        mode: plan.mode.to_owned(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: Machine::detect(),
        elapsed_seconds: 0.0,
        latency: Vec::new(),
        throughput: Vec::new(),
        dataset: None,
        memory: None,
        goals: Vec::new(),
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut series = Vec::new();
    for part in &parts {
        tracing::info!(?part, "running");
        ctx.progress.set_message(format!("{part:?}"));
        match part {
            Part::Floor => {
                let f = floor::measure(&ctx, &plan)?;
                series.extend([f.to_entry, f.run]);
            }
            Part::Native => {
                let n = native::measure(&ctx, &plan)?;
                series.extend([n.to_entry, n.to_result]);
            }
            Part::Executor => {
                let (w, c) = tokio.block_on(resident::measure(&ctx, &plan))?;
                series.extend([w.decoded_to_entry, w.launch_to_entry, w.launch_to_terminal]);
                series.extend([
                    c.module_to_entry,
                    c.module_to_terminal,
                    c.process_disk_to_entry,
                    c.process_disk_to_terminal,
                    c.process_compile_to_entry,
                    c.process_compile_to_terminal,
                ]);
            }
            Part::E2e => {
                for master in &clusters {
                    let e = tokio.block_on(e2e::measure(&ctx, &plan, master, cli.task_cpus))?;
                    let rates: Vec<f64> = e.batches.iter().map(|b| b.per_second).collect();
                    report.throughput.push(Throughput {
                        master: e.master,
                        median_per_second: median(&rates),
                        batches: e.batches,
                    });
                    series.push(e.latency);
                    series.push(e.first_closure);
                    if e.memory.is_some() {
                        report.memory = e.memory;
                    }
                    if let Some(load) = e.load {
                        series.push(load.callers_latency);
                        report.throughput.push(Throughput {
                            master: format!(
                                "{master}, {} callers at once ({} closures each, in turn)",
                                e2e::CALLERS,
                                e2e::CALLER_CLOSURES
                            ),
                            median_per_second: load.callers.per_second,
                            batches: vec![load.callers],
                        });
                        report.throughput.push(Throughput {
                            master: format!(
                                "one local:2 master, {} frameworks at once ({} closures each; \
                                 first done after {:.1} s, last after {:.1} s)",
                                e2e::FRAMEWORKS,
                                e2e::FRAMEWORK_CLOSURES,
                                load.first_framework_seconds,
                                load.last_framework_seconds
                            ),
                            median_per_second: load.frameworks.per_second,
                            batches: vec![load.frameworks],
                        });
                    }
                    let tasks = tokio.block_on(e2e::task_per_closure(
                        &plan,
                        &ctx,
                        master,
                        cli.task_cpus,
                    ))?;
                    report.throughput.push(Throughput {
                        master: format!("{master}, one Mesos task per closure"),
                        median_per_second: tasks.per_second,
                        batches: vec![tasks],
                    });
                }
            }
            Part::Dataset => {
                report.dataset = Some(tokio.block_on(dataset::measure(&ctx, &plan))?);
            }
        }
    }
    ctx.progress.finish_and_clear();
    report.latency = series
        .iter()
        .filter(|s| !s.is_empty())
        .map(SeriesReport::from)
        .collect::<anyhow::Result<_>>()?;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report.check_goals();
    write(&cli.out, &report)
}

fn write(out: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let stem = out.join("latest");
    let text = plot::load_font();
    let plotted = match plot::draw(&stem, &report.latency, text) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("{e:#}");
            false
        }
    };
    let markdown = report.markdown(plotted.then_some("latest.svg"));
    print!("{markdown}");
    std::fs::write(stem.with_extension("md"), &markdown)?;
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(stem.with_extension("json"), json)?;
    tracing::info!(out = %out.display(), "results written");
    Ok(())
}

fn init_logging() {
    let filter = std::env::var("BRINE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn,brine_bench=info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
