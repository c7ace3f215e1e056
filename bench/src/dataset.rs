//! Part 6, the shared dataset: what the machine pays in memory, and the read speed, for
//! N `wordcount` tasks over one dataset in the executor — read through a mapping
//! (`mmap`) or with `pread` — against N processes that each read the whole file into
//! their own memory, as a task without Brine does.
//!
//! Memory is the cgroup's charge (see [`crate::charge`]): the local agent runs as root
//! with cgroups on, so each executor has its own cgroup (its allocation, the dataset's
//! size included, is its limit, so the limit never binds), and the N processes get one
//! made beside them. Page cache is charged to the cgroup that first reads a page in, so
//! before anything is measured each side's file (the executor's fetched copy; the file
//! the processes read) is dropped from the page cache, then read once by that side:
//! every side then holds the dataset's page cache once, charged to itself, and the
//! measured runs read it warm.
//!
//! Rounds alternate the sides (pread, mmap, processes; 1 task, then N), so a machine
//! whose load changes during the run moves every side alike. Throughput is the dataset
//! bytes all N tasks counted over the wall time from the first launch (or spawn) to
//! the last result; the processes count natively, the tasks in wasm.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use brine_executor::runtime::{Dataset, DatasetAccess};
use brine_local::agent::{CgroupPaths, CgroupsMode};
use brine_proto::mesos::v1::{ExecutorInfo, Resource, TaskInfo, environment};
use brine_proto::payload::{DatasetRef, ExecutorConfig, ModuleRef};
use example_wordcount::{WordcountArgs, WordcountResult};
use serde::Serialize;

use crate::charge::{self, Cgroup, Peaks, Sampler, Watch};
use crate::report::median;
use crate::resident::{BenchAgent, result_of};
use crate::{Context, Plan};

/// Where the agent puts the executors' cgroups (and the harness the processes').
const CGROUPS_ROOT: &str = "brine-bench";
/// Each `wordcount` task's `mem` (its guest's limit; the counting itself needs little).
const TASK_MEM_MB: f64 = 256.0;
/// The executor's own `mem` beyond the dataset, which it holds in the page cache.
const EXECUTOR_MEM_MB: f64 = 128.0;

/// One side's figures for one task count, over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `mmap`, `pread` or `processes`.
    pub mode: String,
    pub tasks: usize,
    /// Each round's peaks.
    pub peaks: Vec<Peaks>,
    /// Each round's GB/s (10⁹ bytes per second, all tasks together).
    pub gb_per_s: Vec<f64>,
}

impl Row {
    /// The highest peak charge (or its estimate without a cgroup) of the rounds.
    pub fn total(&self) -> u64 {
        self.peaks.iter().map(Peaks::total).max().unwrap_or(0)
    }

    /// The highest Σ PSS of the rounds.
    pub fn pss(&self) -> u64 {
        self.peaks.iter().map(|p| p.pss).max().unwrap_or(0)
    }

    /// The median GB/s of the rounds.
    pub fn median_gb_per_s(&self) -> f64 {
        median(&self.gb_per_s)
    }
}

/// One side before the measured rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub mode: String,
    /// The executor with the dataset dropped from the page cache, after a first (1-byte)
    /// task; for the processes, their empty cgroup.
    pub idle: Peaks,
    /// After one whole read of the dataset (a task; a process, which then exited).
    pub warm: Peaks,
    /// That first read's GB/s, from the disk.
    pub first_read_gb_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sharing {
    pub dataset_bytes: u64,
    /// N, the concurrent tasks (processes) of the larger runs.
    pub tasks: usize,
    pub rounds: usize,
    /// What "charged" is: the cgroup file read, or the PSS-based estimate.
    pub meter: String,
    /// The executor's default access (`mmap` or `pread`).
    pub default_access: String,
    pub baselines: Vec<Baseline>,
    pub rows: Vec<Row>,
    /// The host's read path alone, in this process.
    pub host_reads: Vec<HostRead>,
    pub words: u64,
}

/// `Dataset::read_at` over the whole file, 64 KiB at a time, in this process: the
/// executor's side of `brine.dataset_read` without the guest (whose counting dominates
/// the tasks' time), page cache warm.
#[derive(Debug, Clone, Serialize)]
pub struct HostRead {
    pub mode: String,
    /// Each round's first pass over a freshly opened dataset (a new mapping faults its
    /// pages in), GB/s.
    pub first_gb_per_s: Vec<f64>,
    /// Each round's passes after the first (what a long-lived executor does), GB/s.
    pub again_gb_per_s: Vec<f64>,
}

impl Sharing {
    pub fn row(&self, mode: &str, tasks: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.mode == mode && r.tasks == tasks)
    }

    pub fn baseline(&self, mode: &str) -> Option<&Baseline> {
        self.baselines.iter().find(|b| b.mode == mode)
    }

    /// What N tasks of the default access add to its executor, the dataset held:
    /// peak charge with N tasks − the charge after one read.
    pub fn added_by_tasks(&self) -> Option<u64> {
        let row = self.row(&self.default_access, self.tasks)?;
        let warm = self.baseline(&self.default_access)?.warm.total();
        Some(row.total().saturating_sub(warm))
    }
}

/// Writes `bytes` of text (words of 1–12 letters, spaces and newlines) to `path`.
fn generate(path: &Path, bytes: u64) -> anyhow::Result<()> {
    const BLOCK: usize = 4 << 20;
    let mut block = Vec::with_capacity(BLOCK);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while block.len() < BLOCK {
        let r = next();
        let len = 1 + (r % 12) as usize;
        block.extend((0..len).map(|i| b'a' + ((r >> (8 + i * 4)) % 26) as u8));
        block.push(if r % 16 == 0 { b'\n' } else { b' ' });
    }
    block.truncate(BLOCK);
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(BLOCK, |l| l.min(BLOCK));
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

/// 10⁹ bytes per second.
fn gb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e9
}

/// An executor reading the dataset one way.
struct Executor {
    access: DatasetAccess,
    id: String,
    info: ExecutorInfo,
    pid: u32,
    cgroup: Option<CgroupPaths>,
    watch: Watch,
}

/// What every side shares.
struct Setup<'a> {
    ctx: &'a Context,
    plan: &'a Plan,
    wasm: Vec<u8>,
    /// The whole dataset's word count, once known.
    words: Option<u64>,
}

impl Setup<'_> {
    fn task(&self, id: &str, len: u64) -> anyhow::Result<TaskInfo> {
        let args = serde_json::to_string(&WordcountArgs { offset: 0, len })?;
        let spec = brine_tests::spec(ModuleRef::inline(self.wasm.clone()), "wordcount", &args);
        Ok(brine_tests::task(id, &spec, 1.0, TASK_MEM_MB))
    }

    /// Checks a whole-dataset count against the first one.
    fn check(&mut self, result: WordcountResult) -> anyhow::Result<()> {
        if result.bytes != self.plan.dataset_bytes || self.words.is_some_and(|w| w != result.words)
        {
            bail!(
                "wordcount results disagree: {result:?}, expected {:?} words over {} bytes",
                self.words,
                self.plan.dataset_bytes
            );
        }
        self.words = Some(result.words);
        Ok(())
    }
}

pub async fn measure(ctx: &Context, plan: &Plan) -> anyhow::Result<Sharing> {
    let mut bench = BenchAgent::start_with(|config| {
        config.cgroups = CgroupsMode::Auto;
        config.cgroups_root = CGROUPS_ROOT.into();
    })
    .await?;
    let data = bench.dir().join("dataset.txt");
    generate(&data, plan.dataset_bytes)?;
    let mut setup = Setup {
        ctx,
        plan,
        wasm: ctx.artifacts.example("wordcount")?,
        words: None,
    };
    let mut baselines = Vec::new();
    let mut executors = Vec::new();
    for access in [DatasetAccess::Pread, DatasetAccess::Mmap] {
        let (executor, baseline) = start_executor(&mut bench, &mut setup, &data, access).await?;
        executors.push(executor);
        baselines.push(baseline);
    }
    let cgroup = executors.iter().find_map(|e| e.cgroup.clone());
    if cgroup.is_none() {
        tracing::warn!(
            "the local agent has no cgroups (not root, or no writable memory controller): \
             memory is PSS without the dataset's mappings + the dataset's page cache"
        );
    }
    let native_cgroup = cgroup
        .as_ref()
        .map(|paths| {
            Cgroup::beside(paths, &format!("bench-native-{}", std::process::id()))
                .map(Arc::new)
                .context("cannot create the processes' cgroup")
        })
        .transpose()?;
    let meter = native_cgroup.as_ref().map_or_else(
        || "Σ PSS without the dataset's mappings + its page cache (no cgroup)".to_owned(),
        |c| c.meter().to_owned(),
    );
    let mut natives = Natives {
        program: ctx.artifacts.native_task.clone(),
        data: data.clone(),
        cgroup: native_cgroup,
    };
    baselines.push(natives.baseline(&mut setup)?);

    let counts = [1, plan.dataset_tasks];
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |mode: &str, tasks: usize| -> usize {
        match rows.iter().position(|r| r.mode == mode && r.tasks == tasks) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    mode: mode.to_owned(),
                    tasks,
                    peaks: Vec::new(),
                    gb_per_s: Vec::new(),
                });
                rows.len() - 1
            }
        }
    };
    let mut runs = Vec::new();
    for round in 0..plan.dataset_rounds {
        for &n in &counts {
            for executor in &executors {
                let (peaks, rate) = run_tasks(&mut bench, &mut setup, executor, n, round).await?;
                runs.push((row(executor.access.as_str(), n), peaks, rate));
            }
            let (peaks, rate) = natives.run(&mut setup, n)?;
            runs.push((row("processes", n), peaks, rate));
        }
    }
    for (i, peaks, rate) in runs {
        rows[i].peaks.push(peaks);
        rows[i].gb_per_s.push(rate);
    }
    rows.sort_by_key(|r| (mode_order(&r.mode), r.tasks));
    let host_reads = host_reads(&data, plan)?;
    for executor in &executors {
        bench.stop_executor(&executor.id).await?;
    }
    bench.shutdown().await;
    Ok(Sharing {
        dataset_bytes: plan.dataset_bytes,
        tasks: plan.dataset_tasks,
        rounds: plan.dataset_rounds,
        meter,
        default_access: DatasetAccess::default().as_str().to_owned(),
        baselines,
        rows,
        host_reads,
        words: setup.words.context("no wordcount ran")?,
    })
}

/// [`HostRead`] for both accesses, rounds alternating between them.
fn host_reads(data: &Path, plan: &Plan) -> anyhow::Result<Vec<HostRead>> {
    const PASSES: usize = 3;
    let mut buf = vec![0u8; example_wordcount::CHUNK];
    let mut reads: Vec<HostRead> = [DatasetAccess::Mmap, DatasetAccess::Pread]
        .iter()
        .map(|a| HostRead {
            mode: a.as_str().to_owned(),
            first_gb_per_s: Vec::new(),
            again_gb_per_s: Vec::new(),
        })
        .collect();
    // Brings the file into the page cache (it may have been pushed out since).
    std::fs::read(data).context("cannot read the dataset")?;
    for _ in 0..plan.dataset_rounds {
        for read in &mut reads {
            let access: DatasetAccess = read.mode.parse().map_err(anyhow::Error::msg)?;
            let dataset = Dataset::open_with(data, access)?;
            if dataset.access() != Some(access) {
                bail!("{} is not read with {access}", data.display());
            }
            for pass in 0..PASSES {
                let started = Instant::now();
                let mut offset = 0;
                loop {
                    let n = dataset.read_at(offset, &mut buf);
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                }
                let rate = gb_per_s(offset, started.elapsed());
                if offset != plan.dataset_bytes {
                    bail!("read {offset} bytes of {}", plan.dataset_bytes);
                }
                if pass == 0 {
                    read.first_gb_per_s.push(rate);
                } else {
                    read.again_gb_per_s.push(rate);
                }
            }
        }
    }
    Ok(reads)
}

fn mode_order(mode: &str) -> u8 {
    match mode {
        "mmap" => 0,
        "pread" => 1,
        _ => 2,
    }
}

/// Starts an executor reading the dataset with `access`, checks that it does, drops its
/// copy of the dataset from the page cache, then has it read the whole dataset once.
async fn start_executor(
    bench: &mut BenchAgent,
    setup: &mut Setup<'_>,
    data: &Path,
    access: DatasetAccess,
) -> anyhow::Result<(Executor, Baseline)> {
    let id = format!("bench-dataset-{access}");
    let config = ExecutorConfig {
        dataset: Some(DatasetRef {
            path: "dataset.txt".into(),
        }),
        ..brine_tests::config(Duration::from_secs(2))
    };
    let mut info = bench.executor(&id, &config, &[data]);
    if let Some(env) = info.command.as_mut().and_then(|c| c.environment.as_mut()) {
        env.variables.push(environment::Variable {
            name: DatasetAccess::ENV.into(),
            value: Some(access.as_str().into()),
            ..Default::default()
        });
    }
    // The executor holds the dataset's page cache: its allocation (its cgroup's limit
    // with cgroups on) includes it, as a user would size it.
    let dataset_mb = setup.plan.dataset_bytes as f64 / (1024.0 * 1024.0);
    info.resources = vec![
        Resource::scalar("cpus", 0.1),
        Resource::scalar("mem", EXECUTOR_MEM_MB + dataset_mb.ceil()),
    ];
    let first = bench
        .run(&info, setup.task(&format!("{id}-first"), 1)?)
        .await?;
    result_of(&first.status)?;
    let snapshot = bench
        .agent
        .executors()
        .into_iter()
        .find(|e| e.executor_id.value == id)
        .context("the dataset executor is not running")?;
    let pid = snapshot.pid.context("the dataset executor has no pid")?;
    let copy = snapshot.sandbox.join("dataset.txt");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .context("cannot read the executor's mappings")?;
    let copy_text = copy.to_string_lossy();
    if maps.contains(&*copy_text) != (access == DatasetAccess::Mmap) {
        bail!("the executor asked for {access} does not read its dataset that way");
    }
    charge::evict(&copy).with_context(|| format!("cannot evict {}", copy.display()))?;
    let watch = Watch {
        cgroup: snapshot
            .cgroup
            .as_ref()
            .map(|c| Arc::new(Cgroup::of_executor(c))),
        pids: Box::new(move || vec![pid]),
        dataset: vec![copy],
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = watch.now();
    let started = Instant::now();
    let warmup = bench
        .run(&info, setup.task(&format!("{id}-warmup"), u64::MAX)?)
        .await?;
    let elapsed = started.elapsed();
    setup.check(serde_json::from_slice(&result_of(&warmup.status)?)?)?;
    setup.ctx.progress.inc(2);
    let warm = watch.now();
    let executor = Executor {
        access,
        id,
        info,
        pid,
        cgroup: snapshot.cgroup,
        watch,
    };
    let baseline = Baseline {
        mode: access.as_str().to_owned(),
        idle,
        warm,
        first_read_gb_per_s: gb_per_s(setup.plan.dataset_bytes, elapsed),
    };
    tracing::info!(pid = executor.pid, ?baseline, "dataset executor ready");
    Ok((executor, baseline))
}

/// `n` tasks at once on `executor`, each counting the whole dataset.
async fn run_tasks(
    bench: &mut BenchAgent,
    setup: &mut Setup<'_>,
    executor: &Executor,
    n: usize,
    round: usize,
) -> anyhow::Result<(Peaks, f64)> {
    let tasks = (0..n)
        .map(|i| setup.task(&format!("{}-{round}-{n}-{i}", executor.id), u64::MAX))
        .collect::<anyhow::Result<_>>()?;
    let sampler = Sampler::start(Watch {
        cgroup: executor.watch.cgroup.clone(),
        pids: Box::new({
            let pid = executor.pid;
            move || vec![pid]
        }),
        dataset: executor.watch.dataset.clone(),
    });
    let started = Instant::now();
    let statuses = bench.run_all(&executor.info, tasks).await;
    let elapsed = started.elapsed();
    let peaks = sampler.stop()?;
    for status in statuses? {
        setup.check(serde_json::from_slice(&result_of(&status)?)?)?;
        setup.ctx.progress.inc(1);
    }
    Ok((
        peaks,
        gb_per_s(n as u64 * setup.plan.dataset_bytes, elapsed),
    ))
}

/// The baseline: native processes, each reading the whole file into its own memory.
struct Natives {
    program: PathBuf,
    data: PathBuf,
    cgroup: Option<Arc<Cgroup>>,
}

impl Natives {
    /// Drops the file from the page cache, then reads it once with one process.
    fn baseline(&mut self, setup: &mut Setup<'_>) -> anyhow::Result<Baseline> {
        charge::evict(&self.data)
            .with_context(|| format!("cannot evict {}", self.data.display()))?;
        let idle = self.watch(Arc::default()).now();
        let (_, first_read_gb_per_s) = self.run(setup, 1)?;
        let warm = self.watch(Arc::default()).now();
        Ok(Baseline {
            mode: "processes".into(),
            idle,
            warm,
            first_read_gb_per_s,
        })
    }

    fn watch(&self, pids: Arc<Mutex<Vec<u32>>>) -> Watch {
        Watch {
            cgroup: self.cgroup.clone(),
            pids: Box::new(move || pids.lock().map(|p| p.clone()).unwrap_or_default()),
            dataset: vec![self.data.clone()],
        }
    }

    /// `n` processes at once, each counting the whole file.
    fn run(&mut self, setup: &mut Setup<'_>, n: usize) -> anyhow::Result<(Peaks, f64)> {
        let pids = Arc::new(Mutex::new(Vec::new()));
        let sampler = Sampler::start(self.watch(Arc::clone(&pids)));
        let path = self.data.to_string_lossy().into_owned();
        let started = Instant::now();
        let mut children = Vec::new();
        for _ in 0..n {
            let mut command = std::process::Command::new(&self.program);
            command
                .args(["wordcount", &path])
                .stdout(std::process::Stdio::piped());
            let child = match &self.cgroup {
                Some(cgroup) => cgroup.spawn(&mut command),
                None => command.spawn(),
            }
            .context("cannot start brine-native-task")?;
            if let Ok(mut p) = pids.lock() {
                p.push(child.id());
            }
            children.push(child);
        }
        let mut outputs = Vec::new();
        for child in children {
            outputs.push(child.wait_with_output()?);
        }
        let elapsed = started.elapsed();
        let peaks = sampler.stop()?;
        for out in outputs {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut fields = text.split_whitespace().skip(1).map(|w| w.parse::<u64>());
            match (out.status.success(), fields.next(), fields.next()) {
                (true, Some(Ok(words)), Some(Ok(bytes))) => {
                    setup.check(WordcountResult { words, bytes })?;
                }
                _ => bail!(
                    "brine-native-task wordcount failed ({}): {text}",
                    out.status
                ),
            }
            setup.ctx.progress.inc(1);
        }
        Ok((
            peaks,
            gb_per_s(n as u64 * setup.plan.dataset_bytes, elapsed),
        ))
    }
}
