//! Part 6, dataset sharing: the resident memory the executor adds while N `wordcount`
//! tasks run at once over one shared dataset (mapped once, fetched once into its
//! sandbox), against N processes each reading their own copy of it (what a process
//! per task gets when every task fetches and loads the data itself).
//!
//! Resident memory is sampled from `/proc/<pid>/status` every few milliseconds while
//! the tasks run; the peak counts. `VmRSS` is split into `RssAnon` (private memory) and
//! `RssFile` (file pages mapped into the process, i.e. page cache it holds mapped).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use brine_proto::payload::{DatasetRef, ExecutorConfig, ModuleRef};
use example_wordcount::{WordcountArgs, WordcountResult};
use serde::Serialize;

use crate::resident::{BenchAgent, result_of};
use crate::{Context, Plan};

/// Resident memory of one or more processes, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rss {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sharing {
    pub dataset_bytes: u64,
    pub tasks: usize,
    /// The executor after a first task, before the measured ones.
    pub executor_idle: Rss,
    /// The executor's peak while the tasks ran.
    pub executor_peak: Rss,
    /// Peak minus idle, `VmRSS`.
    pub executor_added: u64,
    /// Peak of the sum over the baseline's processes.
    pub processes_peak: Rss,
    pub words: u64,
}

fn read_rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    Some(Rss {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    })
}

/// Samples the summed resident memory of `pids()` until stopped; returns the peak.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Rss>,
}

impl Sampler {
    fn start(pids: impl Fn() -> Vec<u32> + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = Rss::default();
            while !flag.load(Ordering::Relaxed) {
                let mut now = Rss::default();
                for pid in pids() {
                    if let Some(r) = read_rss(pid) {
                        now.rss += r.rss;
                        now.anon += r.anon;
                        now.file += r.file;
                    }
                }
                if now.rss > peak.rss {
                    peak = now;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        Self { stop, thread }
    }

    fn stop(self) -> anyhow::Result<Rss> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the memory sampler panicked"))
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

pub async fn measure(ctx: &Context, plan: &Plan) -> anyhow::Result<Sharing> {
    let mut bench = BenchAgent::start().await?;
    let data = bench.dir().join("dataset.txt");
    generate(&data, plan.dataset_bytes)?;
    let wasm = ctx.artifacts.example("wordcount")?;
    let config = ExecutorConfig {
        dataset: Some(DatasetRef {
            path: "dataset.txt".into(),
        }),
        ..brine_tests::config(Duration::from_secs(2))
    };
    let executor = bench.executor("bench-dataset", &config, &[&data]);
    let task = |id: &str, len: u64| -> anyhow::Result<_> {
        let args = serde_json::to_string(&WordcountArgs { offset: 0, len })?;
        let spec = brine_tests::spec(ModuleRef::inline(wasm.clone()), "wordcount", &args);
        Ok(brine_tests::task(id, &spec, 1.0, 256.0))
    };
    let first = bench.run(&executor, task("dataset-first", 1)?).await?;
    result_of(&first.status)?;
    let pid = bench
        .executor_pid("bench-dataset")
        .context("the dataset executor has no pid")?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = read_rss(pid).context("cannot read the executor's memory")?;

    let sampler = Sampler::start(move || vec![pid]);
    let tasks = (0..plan.dataset_tasks)
        .map(|i| task(&format!("dataset-{i}"), plan.dataset_bytes))
        .collect::<anyhow::Result<_>>()?;
    let statuses = bench.run_all(&executor, tasks).await;
    let peak = sampler.stop()?;
    let mut words = None;
    for status in statuses? {
        let result: WordcountResult = serde_json::from_slice(&result_of(&status)?)?;
        if result.bytes != plan.dataset_bytes || words.is_some_and(|w| w != result.words) {
            bail!("wordcount results disagree: {result:?}");
        }
        words = Some(result.words);
        ctx.progress.inc(1);
    }
    let words = words.context("no wordcount task ran")?;
    bench.stop_executor("bench-dataset").await?;

    let processes = baseline(ctx, plan, &data, words)?;
    bench.shutdown().await;
    Ok(Sharing {
        dataset_bytes: plan.dataset_bytes,
        tasks: plan.dataset_tasks,
        executor_idle: idle,
        executor_peak: peak,
        executor_added: peak.rss.saturating_sub(idle.rss),
        processes_peak: processes,
        words,
    })
}

/// N native processes at once, each reading the dataset into its own memory.
fn baseline(ctx: &Context, plan: &Plan, data: &Path, words: u64) -> anyhow::Result<Rss> {
    let pids = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let watched = Arc::clone(&pids);
    let sampler = Sampler::start(move || watched.lock().map(|p| p.clone()).unwrap_or_default());
    let path = data.to_string_lossy().into_owned();
    let mut children = Vec::new();
    for _ in 0..plan.dataset_tasks {
        let child = std::process::Command::new(&ctx.artifacts.native_task)
            .args(["wordcount", &path])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot start brine-native-task")?;
        if let Ok(mut p) = pids.lock() {
            p.push(child.id());
        }
        children.push(child);
    }
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let counted: Option<u64> = text.split_whitespace().nth(1).and_then(|w| w.parse().ok());
        if !out.status.success() || counted != Some(words) {
            failures.push(format!("{}: {text}", out.status));
        }
        ctx.progress.inc(1);
    }
    let peak = sampler.stop()?;
    if !failures.is_empty() {
        bail!("native wordcount disagreed with the executor ({words} words): {failures:?}");
    }
    Ok(peak)
}
