//! The process-per-task baseline: a native program doing the example tasks' work, so
//! `brine-bench` can time what Mesos's CommandExecutor pays for every task (fork +
//! exec + process start) against a warm start in the resident executor.
//!
//! `brine-native-task sum "1 2 3"` prints `<entered ns> <sum>`;
//! `brine-native-task wordcount <file>` reads the whole file into its own memory (its
//! own copy of the dataset, as a process per task gets) and prints
//! `<entered ns> <words> <bytes>`. `<entered ns>` is `CLOCK_MONOTONIC` read first thing
//! in `main`: the same clock, and the same point ("task code entered"), the executor
//! reports for a wasm task.
//!
//! Deliberately no clap, logging or allocator set-up: anything in front of the work
//! would be charged to the baseline.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let entered = monotonic_ns();
    let mut args = std::env::args().skip(1);
    let (mode, input) = (args.next(), args.next());
    let line = match (mode.as_deref(), input) {
        (Some("sum"), Some(text)) => match example_sum::sum_str(&text) {
            Ok(total) => format!("{entered} {total}"),
            Err(e) => return fail(&e.to_string()),
        },
        (Some("wordcount"), Some(path)) => match std::fs::read(&path) {
            Ok(bytes) => {
                let (words, _) = example_wordcount::count_word_starts(true, &bytes);
                format!("{entered} {words} {}", bytes.len())
            }
            Err(e) => return fail(&format!("cannot read {path}: {e}")),
        },
        _ => return fail("usage: brine-native-task sum TEXT | wordcount FILE"),
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `CLOCK_MONOTONIC` in ns, read as the executor reads it
/// (`brine_executor::runtime::monotonic_ns`), without linking the executor in.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("brine-native-task: {message}");
    ExitCode::FAILURE
}
