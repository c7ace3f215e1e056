//! `pi` with live progress: the guest reports the fraction done, the executor sends it in
//! its heartbeats (every 100 ms here), and the task's handle publishes it in
//! `JobStatus.progress`, which this draws as a bar per task.

use std::io::IsTerminal;
use std::time::Instant;

use brine_scheduler::{Cluster, JobStatus, Module};
use example_pi::{PiArgs, PiResult};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::agents::Agents;

/// Tasks, each with its own seed; their counts add up to one estimate.
const TASKS: u64 = 2;
/// Points per task: a few seconds of work for one core.
const SAMPLES: u64 = 150_000_000;

pub async fn run(cluster: &Cluster, module: &Module, agents: &Agents) -> anyhow::Result<()> {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bars = MultiProgress::with_draw_target(if terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("pi task {prefix}: [{bar:40}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut handles = Vec::new();
    let mut followers = Vec::new();
    for seed in 1..=TASKS {
        let args = PiArgs {
            samples: SAMPLES,
            seed,
        };
        let handle = cluster.submit::<_, PiResult>(module, "pi", &args);
        let bar = bars.add(ProgressBar::new(100).with_style(style.clone()));
        bar.set_prefix(seed.to_string());
        if let Some(status) = handle.watch() {
            followers.push(tokio::spawn(follow(status, bar, seed, terminal)));
        }
        handles.push(handle);
    }
    let results = futures::future::join_all(handles.into_iter().map(|h| agents.track(h))).await;
    for follower in followers {
        follower.abort();
    }
    let _ = bars.clear();
    let (mut inside, mut samples) = (0, 0);
    for result in results {
        let result = result?;
        inside += result.inside;
        samples += result.samples;
    }
    let estimate = 4.0 * inside as f64 / samples as f64;
    println!(
        "{TASKS} tasks drew {samples} points in {:.1?}: pi ≈ {estimate:.6} (error {:.1e})",
        started.elapsed(),
        (estimate - std::f64::consts::PI).abs()
    );
    Ok(())
}

/// Draws one task's progress; without a terminal, prints a line at every quarter.
async fn follow(
    mut status: watch::Receiver<JobStatus>,
    bar: ProgressBar,
    task: u64,
    terminal: bool,
) {
    let mut printed_quarter = 0;
    loop {
        let now = status.borrow_and_update().clone();
        let percent = (now.progress.unwrap_or(0.0).clamp(0.0, 1.0) * 100.0) as u64;
        bar.set_position(percent);
        let state = format!("{:?}", now.state).to_lowercase();
        bar.set_message(match &now.agent {
            Some(agent) => format!("{state} on {agent}"),
            None => state,
        });
        if !terminal && percent / 25 > printed_quarter {
            printed_quarter = percent / 25;
            println!("pi task {task}: {percent}% done");
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}
