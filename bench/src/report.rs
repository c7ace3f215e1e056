//! What a run produces: the Markdown table (stdout and `latest.md`), the raw numbers
//! (`latest.json`), and the goals checked against them.

use std::fmt::Write as _;

use serde::Serialize;

use crate::dataset::Sharing;
use crate::e2e::{Batch, MapMemory};
use crate::stats::{Series, Spread, Summary, human};

/// One latency series with its summary, as written to the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesReport {
    pub key: String,
    pub label: String,
    pub between: String,
    pub summary_ns: Summary,
    pub spread_ns: Spread,
    /// Every sample, in ns, per round.
    pub samples_ns: Vec<Vec<u64>>,
}

impl SeriesReport {
    pub fn from(series: &Series) -> anyhow::Result<Self> {
        Ok(Self {
            key: series.key.clone(),
            label: series.label.clone(),
            between: series.between.clone(),
            summary_ns: series.summary()?,
            spread_ns: series.spread()?,
            samples_ns: series.rounds.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub master: String,
    pub batches: Vec<Batch>,
    /// Median of the batches' closures per second.
    pub median_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    pub target: String,
    pub measured: String,
    /// `None`: the part it needs was not run, or the goal is a figure to report.
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub cpu_model: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            cpu_model,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub unix_time: u64,
    pub machine: Machine,
    pub elapsed_seconds: f64,
    pub latency: Vec<SeriesReport>,
    pub throughput: Vec<Throughput>,
    pub dataset: Option<Sharing>,
    /// Peak memory around the long `map`.
    pub memory: Option<MapMemory>,
    pub goals: Vec<Goal>,
}

impl Report {
    fn series(&self, key: &str) -> Option<&SeriesReport> {
        self.latency.iter().find(|s| s.key == key)
    }

    /// Checks the goals against what was measured.
    pub fn check_goals(&mut self) {
        let mut goals = Vec::new();
        let warm = self.series("warm.launch_to_entry").map(|s| s.summary_ns);
        goals.push(Goal {
            goal: "executor warm start, LAUNCH → guest entry".into(),
            target: "p50 ≤ 25 µs, p99 ≤ 250 µs".into(),
            measured: warm.map_or_else(String::new, |s| {
                format!("p50 {}, p99 {}", human(s.p50), human(s.p99))
            }),
            met: warm.map(|s| s.p50 <= 25_000 && s.p99 <= 250_000),
        });
        let ratio = match (
            self.series("native.to_entry"),
            self.series("warm.decoded_to_entry"),
        ) {
            (Some(native), Some(warm)) if warm.summary_ns.p50 > 0 => {
                Some(native.summary_ns.p50 as f64 / warm.summary_ns.p50 as f64)
            }
            _ => None,
        };
        goals.push(Goal {
            goal: "warm start vs process per task, LAUNCH decoded → task code entered (p50)".into(),
            target: "≥ 100× faster".into(),
            measured: ratio.map_or_else(String::new, |r| format!("{r:.0}× faster")),
            met: ratio.map(|r| r >= 100.0),
        });
        let e2e = self.series("e2e.local:1.latency").map(|s| s.summary_ns);
        goals.push(Goal {
            goal: "end to end submit → result, one at a time, lease held, `local:1`".into(),
            target: "p50 ≤ 300 µs, p99 ≤ 1 ms".into(),
            measured: e2e.map_or_else(String::new, |s| {
                format!("p50 {}, p99 {}", human(s.p50), human(s.p99))
            }),
            met: e2e.map(|s| s.p50 <= 300_000 && s.p99 <= 1_000_000),
        });
        let first = self
            .series("e2e.local:1.first_closure")
            .map(|s| s.summary_ns);
        goals.push(Goal {
            goal: "first closure of an idle framework (no lease held), `local:1`".into(),
            target: "≤ one allocation tick (1 s) + 50 ms".into(),
            measured: first.map_or_else(String::new, |s| {
                format!("p50 {}, max {}", human(s.p50), human(s.max))
            }),
            met: first.map(|s| s.max <= 1_050_000_000),
        });
        let batch = self
            .throughput
            .iter()
            .find(|t| t.master == "local:2")
            .map(|t| t.median_per_second);
        goals.push(Goal {
            goal: "batch throughput, `local:2`".into(),
            target: "≥ 20,000 closures/s (10,000 closures, 256 in flight)".into(),
            measured: batch.map_or_else(String::new, |b| format!("{b:.0} closures/s")),
            met: batch.map(|b| b >= 20_000.0),
        });
        let memory = self.memory.as_ref();
        goals.push(Goal {
            goal: "resident memory during a long `map`, `local:2`".into(),
            target: "bounded (peak reported)".into(),
            measured: memory.map_or_else(String::new, |m| {
                format!(
                    "{} closures: scheduler process {} peak, executors {} peak",
                    m.closures,
                    m.scheduler_peak_kib
                        .map_or_else(|| "?".into(), |k| mib(k * 1024)),
                    m.executor_peak_kib
                        .iter()
                        .map(|k| mib(k * 1024))
                        .collect::<Vec<_>>()
                        .join(" / ")
                )
            }),
            // A figure, not a threshold: boundedness is read against the closure
            // count (a leak would grow with it).
            met: None,
        });
        let sharing = self.dataset.as_ref();
        let added = sharing.and_then(Sharing::added_by_tasks);
        goals.push(Goal {
            goal: "dataset sharing: memory charged for concurrent tasks beyond the executor \
                   holding the dataset"
                .into(),
            target: "< 10 % of the dataset".into(),
            measured: match (sharing, added) {
                (Some(d), Some(added)) => {
                    let all = d.row(&d.default_access, d.tasks).map_or(0, |r| r.total());
                    let processes = d.row("processes", d.tasks).map_or(0, |r| r.total());
                    format!(
                        "{} tasks over {}, `{}`: +{} ({:.1} %); {} charged in all, against {} \
                         for {} processes",
                        d.tasks,
                        mib(d.dataset_bytes),
                        d.default_access,
                        mib(added),
                        100.0 * added as f64 / d.dataset_bytes.max(1) as f64,
                        mib(all),
                        mib(processes),
                        d.tasks
                    )
                }
                _ => String::new(),
            },
            met: sharing
                .zip(added)
                .map(|(d, added)| added * 10 < d.dataset_bytes),
        });
        self.goals = goals;
    }

    pub fn markdown(&self, plot_name: Option<&str>) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Benchmark ({} run, {} CPUs, {}, Linux {}; {:.0} s)\n",
            self.mode,
            self.machine.cpus,
            if self.machine.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &self.machine.cpu_model
            },
            self.machine.kernel,
            self.elapsed_seconds
        );
        if !self.latency.is_empty() {
            md.push_str(
                "| measurement | between | n | p50 | p90 | p99 | p99.9 | max | p50 across runs |\n\
                 |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for s in &self.latency {
                let m = &s.summary_ns;
                let spread = &s.spread_ns;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} – {} ({} runs) |",
                    s.label,
                    s.between,
                    m.count,
                    human(m.p50),
                    human(m.p90),
                    human(m.p99),
                    human(m.p999),
                    human(m.max),
                    human(spread.p50_min),
                    human(spread.p50_max),
                    spread.rounds
                );
            }
            md.push('\n');
        }
        if !self.throughput.is_empty() {
            md.push_str(
                "| batch throughput | closures per batch | in flight | closures/s (median) | range |\n\
                 |---|---:|---:|---:|---:|\n",
            );
            for t in &self.throughput {
                let (lo, hi) = t.batches.iter().fold((f64::MAX, 0f64), |(lo, hi), b| {
                    (lo.min(b.per_second), hi.max(b.per_second))
                });
                let first = t.batches.first();
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} | {:.0} | {:.0} – {:.0} ({} batches) |",
                    t.master,
                    first.map_or(0, |b| b.closures),
                    first.map_or(0, |b| b.in_flight),
                    t.median_per_second,
                    lo,
                    hi,
                    t.batches.len()
                );
            }
            md.push('\n');
        }
        if let Some(d) = &self.dataset {
            dataset_markdown(&mut md, d);
        }
        if !self.goals.is_empty() {
            md.push_str("| goal | target | measured | met |\n|---|---|---|:---:|\n");
            for g in &self.goals {
                let met = match g.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None if g.measured.is_empty() => "not run",
                    None => "(a figure)",
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    g.goal, g.target, g.measured, met
                );
            }
            md.push('\n');
        }
        if let Some(plot) = plot_name {
            let _ = writeln!(
                md,
                "![latency distributions: warm start vs baselines]({plot})\n"
            );
        }
        md
    }
}

/// Part 6's tables: the rounds, then each side before them.
fn dataset_markdown(md: &mut String, d: &Sharing) {
    let side = |mode: &str| match mode {
        "processes" => "separate processes, each reading the file into its own memory".to_owned(),
        access if access == d.default_access => format!("executor, `{access}` (default)"),
        access => format!("executor, `{access}`"),
    };
    let _ = writeln!(
        md,
        "| dataset: `wordcount` over all of a {} dataset, {} rounds | N | memory charged, peak: {} | per task | Σ PSS, peak | wordcount GB/s, all N together (median) | range |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        mib(d.dataset_bytes),
        d.rounds,
        d.meter
    );
    for r in &d.rows {
        let (lo, hi) = r
            .gb_per_s
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &g| (lo.min(g), hi.max(g)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} – {:.2} |",
            side(&r.mode),
            r.tasks,
            mib(r.total()),
            mib(r.total() / r.tasks.max(1) as u64),
            mib(r.pss()),
            r.median_gb_per_s(),
            lo,
            hi
        );
    }
    md.push('\n');
    md.push_str(
        "| the host's read path alone (`Dataset::read_at`, 64 KiB at a time, one thread, page cache warm) | first pass over a fresh open, GB/s (median) | later passes, GB/s (median) |\n\
         |---|---:|---:|\n",
    );
    for h in &d.host_reads {
        let _ = writeln!(
            md,
            "| `{}` | {:.2} | {:.2} |",
            h.mode,
            median(&h.first_gb_per_s),
            median(&h.again_gb_per_s)
        );
    }
    md.push('\n');
    md.push_str(
        "| before the rounds | charged, the dataset not in the page cache | after one whole read | Σ PSS after it | that first read, GB/s |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for b in &d.baselines {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} |",
            side(&b.mode),
            mib(b.idle.total()),
            mib(b.warm.total()),
            mib(b.warm.pss),
            b.first_read_gb_per_s
        );
    }
    md.push('\n');
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// The median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
