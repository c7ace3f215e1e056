//! Part 4, the process-per-task baseline: what Mesos's CommandExecutor does for each
//! task, a fork + exec of a program, here `brine-native-task` doing `sum`'s work
//! natively. Measured from the same point as the executor's warm start ("LAUNCH
//! decoded": the harness holds the decoded task and is about to spawn) to the same
//! point ("task code entered": `CLOCK_MONOTONIC` first thing in the child's `main`,
//! reported back over its stdout pipe), and to the result read back and the child
//! reaped.

use std::io::Read;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use brine_executor::runtime::monotonic_ns;

use crate::stats::Series;
use crate::{Context, Plan};

pub struct Native {
    pub to_entry: Series,
    pub to_result: Series,
}

/// One task: spawn, read `<entered ns> <result...>`, reap. Returns (spawn point,
/// entered, result read + reaped) and the child's output after the timestamp.
pub fn run_once(ctx: &Context, args: &[&str]) -> anyhow::Result<(u64, u64, u64, String)> {
    let start = monotonic_ns();
    let mut child = Command::new(&ctx.artifacts.native_task)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start brine-native-task")?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .context("no stdout pipe")?
        .read_to_string(&mut out)
        .context("cannot read brine-native-task's output")?;
    let status = child.wait().context("cannot reap brine-native-task")?;
    let end = monotonic_ns();
    if !status.success() {
        bail!("brine-native-task {args:?} failed: {status}");
    }
    let (entered, rest) = out
        .trim()
        .split_once(' ')
        .with_context(|| format!("unexpected output {out:?}"))?;
    let entered: u64 = entered.parse().context("bad timestamp")?;
    Ok((start, entered, end, rest.to_owned()))
}

pub fn measure(ctx: &Context, plan: &Plan) -> anyhow::Result<Native> {
    let mut native = Native {
        to_entry: Series::new(
            "native.to_entry",
            "process per task (fork+exec native `sum`): to task entry",
            "task decoded, about to spawn → child's `main` entered",
        ),
        to_result: Series::new(
            "native.to_result",
            "process per task (fork+exec native `sum`): to result",
            "task decoded, about to spawn → result read and child reaped",
        ),
    };
    for _ in 0..plan.native_warmup {
        run_once(ctx, &["sum", "1 2 3"])?;
    }
    for _ in 0..plan.rounds {
        native.to_entry.start_round();
        native.to_result.start_round();
        for _ in 0..plan.native_iters {
            let (start, entered, end, result) = run_once(ctx, &["sum", "1 2 3"])?;
            anyhow::ensure!(result == "6", "native sum returned {result:?}");
            native.to_entry.record(entered.saturating_sub(start));
            native.to_result.record(end.saturating_sub(start));
            ctx.progress.inc(1);
        }
    }
    Ok(native)
}
