//! `brine run`: one closure (`--args`, `--args-file`, or no argument) or one per line of a
//! JSON-lines file (`--map`). Arguments and results are JSON (ABI encoding 1), so any
//! task whose types are serde types can be called without writing Rust.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use brine_scheduler::{Cluster, JobStatus, Module};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Outcome;
use crate::options::ClusterArgs;
use crate::report;

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("input").args(["args", "args_file", "map"]))]
pub struct RunArgs {
    /// The task module (`.wasm`).
    pub module: PathBuf,
    /// The task (the module's export) to call.
    pub entry: String,
    /// The argument, as JSON (`'"1 2 3"'`, `'{"samples": 1000}'`); default `null`.
    #[arg(long)]
    pub args: Option<String>,
    /// Read the argument (JSON) from this file.
    #[arg(long)]
    pub args_file: Option<PathBuf>,
    /// Run the task once per line of this JSON-lines file (blank lines are skipped);
    /// prints `{"line":N,"ok":…}` or `{"line":N,"error":…}` per line as tasks complete.
    #[arg(long)]
    pub map: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let module = Module::from_file(&args.module)
        .with_context(|| format!("cannot read the module {}", args.module.display()))?;
    // Read every input before connecting: a bad file fails fast, with nothing started.
    let work = match (&args.map, &args.args_file, &args.args) {
        (Some(path), _, _) => Work::Map(read_lines(path)?),
        (None, Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --args-file {}", path.display()))?;
            Work::One(parse_json(&text).with_context(|| format!("--args-file {}", path.display()))?)
        }
        (None, None, Some(text)) => Work::One(parse_json(text).context("--args")?),
        (None, None, None) => Work::One(Value::Null),
    };
    let default_state = args.map.as_deref().map(state_beside);
    let config = args.cluster.config(default_state)?;
    let state_file = config.state_file.clone();
    let master = &args.cluster.master;
    let cluster = Cluster::connect_with(master, config)
        .await
        .with_context(|| format!("cannot connect to the master {master}"))?;
    tracing::info!(framework_id = cluster.framework_id(), "connected");
    let ran = tokio::select! {
        ran = work.run(&cluster, &module, &args.entry) => ran,
        signal = interrupted() => {
            signal?;
            Ok(Outcome::Interrupted)
        }
    };
    if ran.as_ref().is_ok_and(|o| *o == Outcome::Interrupted)
        && let Some(path) = &state_file
    {
        // No teardown: the framework and its state file stay, so running the same
        // command again resumes within the failover timeout.
        eprintln!(
            "brine run: interrupted; run the same command again to resume (state in {})",
            path.display()
        );
        cluster.abandon().await;
        return ran;
    }
    // Tears the framework down (killing what still runs) and removes the state file:
    // its FrameworkID can never be used again.
    cluster.shutdown().await;
    ran
}

enum Work {
    One(Value),
    /// (1-based line number, the line's JSON or why it is not JSON)
    Map(Vec<(usize, Result<Value, String>)>),
}

impl Work {
    async fn run(self, cluster: &Cluster, module: &Module, entry: &str) -> anyhow::Result<Outcome> {
        match self {
            Work::One(args) => run_one(cluster, module, entry, &args).await,
            Work::Map(lines) => run_map(cluster, module, entry, lines).await,
        }
    }
}

async fn run_one(
    cluster: &Cluster,
    module: &Module,
    entry: &str,
    args: &Value,
) -> anyhow::Result<Outcome> {
    let handle = cluster.submit_json(module, entry, args);
    let spinner = stderr_bar(ProgressBar::new_spinner());
    let follower = handle
        .watch()
        .map(|status| tokio::spawn(follow(status, spinner.clone())));
    let result = handle.await;
    if let Some(follower) = follower {
        follower.abort();
    }
    spinner.finish_and_clear();
    let mut stdout = std::io::stdout().lock();
    match result {
        Ok(value) => {
            writeln!(stdout, "{value}").context("cannot write the result")?;
            Ok(Outcome::Success)
        }
        Err(error) => {
            let line = json!({"error": report::error_json(&error)});
            writeln!(stdout, "{line}").context("cannot write the result")?;
            eprintln!("brine run: {error}");
            Ok(Outcome::TasksFailed)
        }
    }
}

/// Shows a job's state and progress on the spinner, and logs its state changes (at
/// `info`, with `RUST_LOG=info`) so scripts can see a job start running.
async fn follow(mut status: watch::Receiver<JobStatus>, spinner: ProgressBar) {
    let mut last_state = None;
    loop {
        let now = status.borrow_and_update().clone();
        if last_state != Some(now.state) {
            tracing::info!(state = ?now.state, agent = ?now.agent, task = ?now.task_id, attempts = now.attempts, "job");
            last_state = Some(now.state);
        }
        let progress = now
            .progress
            .map(|p| format!(" {:.0}%", p * 100.0))
            .unwrap_or_default();
        let agent = now.agent.map(|a| format!(" on {a}")).unwrap_or_default();
        spinner.set_message(format!("{:?}{agent}{progress}", now.state).to_lowercase());
        if status.changed().await.is_err() {
            return;
        }
    }
}

async fn run_map(
    cluster: &Cluster,
    module: &Module,
    entry: &str,
    lines: Vec<(usize, Result<Value, String>)>,
) -> anyhow::Result<Outcome> {
    let bar = stderr_bar(ProgressBar::new(lines.len() as u64));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tasks, {per_sec}, eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut failed = 0usize;
    let mut numbers = Vec::with_capacity(lines.len());
    let mut inputs = Vec::with_capacity(lines.len());
    let mut out = Output::new(bar.clone());
    for (number, parsed) in lines {
        match parsed {
            Ok(value) => {
                numbers.push(number);
                inputs.push(value);
            }
            Err(message) => {
                failed += 1;
                bar.inc(1);
                out.line(
                    &json!({"line": number, "error": {"kind": "invalid_json", "message": message}}),
                )?;
            }
        }
    }
    let mut results = std::pin::pin!(cluster.map_json(module, entry, inputs));
    while let Some((index, result)) = results.next().await {
        let number = numbers.get(index).copied().unwrap_or(index + 1);
        if result.is_err() {
            failed += 1;
            bar.set_message(format!("({failed} failed)"));
        }
        bar.inc(1);
        out.line(&report::map_line(number, &result))?;
    }
    bar.finish_and_clear();
    if failed > 0 {
        eprintln!(
            "brine run: {failed} of {} lines failed",
            bar.length().unwrap_or(0)
        );
        return Ok(Outcome::TasksFailed);
    }
    Ok(Outcome::Success)
}

/// JSON lines on stdout, written around the progress bar so neither garbles the other.
struct Output {
    bar: ProgressBar,
}

impl Output {
    fn new(bar: ProgressBar) -> Self {
        Output { bar }
    }

    fn line(&mut self, value: &Value) -> anyhow::Result<()> {
        self.bar
            .suspend(|| writeln!(std::io::stdout().lock(), "{value}"))
            .context("cannot write to stdout")
    }
}

/// A bar drawn on stderr when it is a terminal, and hidden otherwise (logs and pipes get
/// no escape sequences).
fn stderr_bar(bar: ProgressBar) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(100));
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// `<input>.brine-state` beside the input: a rerun of the same `--map` finds it.
fn state_beside(input: &Path) -> PathBuf {
    let mut name = input
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".brine-state");
    input.with_file_name(name)
}

fn parse_json(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text)
        .context("not valid JSON (a string argument needs quotes: '\"1 2 3\"')")
}

/// The non-blank lines of a JSON-lines file, each parsed on its own so one bad line
/// fails only itself.
fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, Result<Value, String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --map {}", path.display()))?;
    let lines: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, serde_json::from_str(line).map_err(|e| e.to_string())))
        .collect();
    if lines.is_empty() {
        bail!("--map {} has no lines", path.display());
    }
    Ok(lines)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_sits_beside_the_input() {
        assert_eq!(
            state_beside(Path::new("/data/in.jsonl")),
            PathBuf::from("/data/in.jsonl.brine-state")
        );
        assert_eq!(
            state_beside(Path::new("in.jsonl")),
            PathBuf::from("in.jsonl.brine-state")
        );
    }
}
