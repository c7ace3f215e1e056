//! A chatty guest (`print_lines` of the failures example) against the output capture:
//! it finishes, its files stop at their bound, the stderr tail of a failure is the last
//! bytes written, the executor's memory does not grow with the output, and other tasks
//! run meanwhile. No timing is asserted (the speed is in `executor/README.md`).
//!
//! The tests take [`ONE_AT_A_TIME`]: the memory check reads this process's resident
//! set, which another test running beside it would disturb.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use brine_executor::runtime::{
    DEFAULT_STDERR_TAIL_BYTES, LoadedModule, MemoryOutput, Output, Runtime, TaskRun,
};
use brine_proto::payload::{Encoding, ErrorKind};
use common::*;

/// Lines each way in the big runs.
const LINES: u64 = 100_000;
/// Bytes per line, newline included (`example_failures::LINE_BYTES`).
const LINE_BYTES: usize = 121;
/// The bound on each output file in these tests: well under the 12.1 MB each stream
/// gets, so the bound is what stops the files. (The executor uses
/// `brine_executor::pool::MAX_TASK_OUTPUT_BYTES`, 16 MiB; the runtime applies whatever
/// it is given.)
const CAP: u64 = 4 << 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn shared() -> &'static (Runtime, Arc<LoadedModule>) {
    static SHARED: OnceLock<(Runtime, Arc<LoadedModule>)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = runtime();
        let module = load(&runtime, &example("failures"));
        (runtime, module)
    })
}

/// Line `i` of `stream` as `print_lines` prints it (`example_failures::line`), newline
/// included.
fn line(stream: &str, i: u64) -> String {
    let mut line = format!("{stream} line {i:>12} ");
    line.extend(std::iter::repeat_n('.', LINE_BYTES - 1 - line.len()));
    line.push('\n');
    assert_eq!(line.len(), LINE_BYTES);
    line
}

/// The first `len` bytes `print_lines(n)` writes to `stream`.
fn expected_prefix(stream: &str, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + LINE_BYTES);
    let mut i = 0;
    while bytes.len() < len {
        bytes.extend(line(stream, i).as_bytes());
        i += 1;
    }
    bytes.truncate(len);
    bytes
}

/// The last `len` bytes `print_lines(n)` writes to `stream`.
fn expected_suffix(stream: &str, n: u64, len: usize) -> Vec<u8> {
    let lines = (len / LINE_BYTES + 1) as u64;
    let mut bytes = Vec::new();
    for i in n.saturating_sub(lines)..n {
        bytes.extend(line(stream, i).as_bytes());
    }
    bytes[bytes.len().saturating_sub(len)..].to_vec()
}

fn to_files(dir: &Path, export: &str, n: u64) -> TaskRun {
    TaskRun {
        stdout: Output::File {
            path: dir.join("stdout"),
            max_bytes: CAP,
        },
        stderr: Output::File {
            path: dir.join("stderr"),
            max_bytes: CAP,
        },
        ..TaskRun::new(
            export,
            serde_json::to_vec(&n).unwrap(),
            brine_proto::payload::Encoding::Json,
        )
    }
}

/// This process's resident set in bytes (`VmRSS`), if `/proc` says.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `print_lines(n)` to fresh files and returns the resident set afterwards.
fn print_to_files(n: u64) -> Option<u64> {
    let (runtime, module) = shared();
    let dir = tempfile::tempdir().unwrap();
    let result = runtime.run(module, &to_files(dir.path(), "print_lines", n));
    assert_eq!(result.unwrap(), n.to_string().as_bytes());
    resident_bytes()
}

#[test]
fn a_hundred_thousand_lines_each_way_are_capped_and_take_no_memory() {
    let _one = one_at_a_time();
    let (runtime, module) = shared();
    let dir = tempfile::tempdir().unwrap();

    // Finishes, and each file holds exactly the first CAP bytes of its stream.
    let task = to_files(dir.path(), "print_lines", LINES);
    assert_eq!(
        runtime.run(module, &task).unwrap(),
        LINES.to_string().as_bytes()
    );
    for stream in ["stdout", "stderr"] {
        let written = std::fs::read(dir.path().join(stream)).unwrap();
        assert_eq!(written.len() as u64, CAP, "{stream} stops at its bound");
        assert!(
            written == expected_prefix(stream, CAP as usize),
            "{stream} holds the first {CAP} bytes of the stream"
        );
    }

    // The executor's memory does not grow with the output: ten times the lines (about
    // 22 MB more output) leave the resident set within a few MiB. (If the capture kept
    // what it was given, the second run would add the 22 MB; the first run warms the
    // instance slot and the allocator.)
    print_to_files(1_000);
    let after_ten_thousand = print_to_files(10_000);
    let after_hundred_thousand = print_to_files(LINES);
    if let (Some(small), Some(large)) = (after_ten_thousand, after_hundred_thousand) {
        let growth = large.saturating_sub(small);
        assert!(
            growth < 8 << 20,
            "resident set grew {growth} bytes from 10,000 to 100,000 lines \
             ({small} → {large})"
        );
    }
}

#[test]
fn the_stderr_tail_of_a_failure_is_the_last_bytes_written() {
    let _one = one_at_a_time();
    let (runtime, module) = shared();
    let dir = tempfile::tempdir().unwrap();
    let failure = run_err(
        runtime,
        module,
        &to_files(dir.path(), "print_lines_then_fail", LINES),
    );
    assert_failure(&failure, ErrorKind::GuestError, "printed 100000 lines");
    let expected = expected_suffix("stderr", LINES, DEFAULT_STDERR_TAIL_BYTES);
    assert_eq!(failure.stderr_tail.len(), DEFAULT_STDERR_TAIL_BYTES);
    assert!(
        failure.stderr_tail.as_bytes() == expected,
        "the tail is the last {DEFAULT_STDERR_TAIL_BYTES} bytes of stderr, it ends {:?}",
        &failure.stderr_tail[failure.stderr_tail.len() - LINE_BYTES..]
    );
    // The file still stops at its bound (the tail is kept apart from it).
    let written = std::fs::metadata(dir.path().join("stderr")).unwrap().len();
    assert_eq!(written, CAP);

    // A small run to memory: everything arrives, in order, and the runtime is fine.
    let (stdout, stderr) = (MemoryOutput::new(1 << 20), MemoryOutput::new(1 << 20));
    let task = TaskRun {
        stdout: Output::Memory(stdout.clone()),
        stderr: Output::Memory(stderr.clone()),
        ..TaskRun::new("print_lines", b"3".to_vec(), Encoding::Json)
    };
    assert_eq!(runtime.run(module, &task).unwrap(), b"3");
    assert_eq!(stdout.contents(), expected_prefix("stdout", 3 * LINE_BYTES));
    assert_eq!(stderr.contents(), expected_prefix("stderr", 3 * LINE_BYTES));
}

#[test]
fn other_tasks_run_while_one_prints() {
    let _one = one_at_a_time();
    let (runtime, module) = shared();
    let dir = tempfile::tempdir().unwrap();
    // Far more lines than the test waits for: it is killed at the end.
    let printer = TaskRun {
        deadline: Some(BOUND),
        ..to_files(dir.path(), "print_lines", u64::MAX)
    };
    std::thread::scope(|scope| {
        let _guard = KillOnDrop(printer.kill.clone());
        let printing = scope.spawn(|| run_err(runtime, module, &printer));
        // Printing: its first buffer reached the file.
        let started = std::time::Instant::now();
        while !dir.path().join("stdout").exists() {
            assert!(started.elapsed() < BOUND, "the printer never wrote");
            std::thread::sleep(Duration::from_millis(10));
        }
        // While it prints (to the same kind of capture), short tasks come and go.
        for n in 0..5u64 {
            let task = TaskRun::new("print_lines", n.to_string().into_bytes(), Encoding::Json);
            assert_eq!(
                runtime.run(module, &task).unwrap(),
                n.to_string().as_bytes()
            );
        }
        printer.kill.kill();
        assert_failure(&printing.join().unwrap(), ErrorKind::Killed, "killed");
    });
    // What it printed before the kill is in its files, within the bound.
    for stream in ["stdout", "stderr"] {
        let len = std::fs::metadata(dir.path().join(stream)).unwrap().len();
        assert!(len > 0 && len <= CAP, "{stream}: {len} bytes");
    }
}
