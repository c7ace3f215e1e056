//! The `brine` command line as a user runs it: the built binary as a real process, with
//! real local clusters and executors. Every wait is on an output or an exit, bounded;
//! nothing sleeps to synchronize.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use brine_tests::get_json;
use serde_json::Value;

const BOUND: Duration = Duration::from_secs(120);

/// `brine` with the executor it needs (failing clearly when it is not built).
fn brine() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brine"));
    command
        .env("BRINE_EXECUTOR", brine_tests::executor_binary())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn module(name: &str) -> PathBuf {
    let path = brine_tests::examples_dir().join(format!("example_{name}.wasm"));
    assert!(
        path.is_file(),
        "{} missing: build the examples with `make examples`",
        path.display()
    );
    path
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs to completion within [`BOUND`] (killed and failed otherwise).
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn brine");
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let (stdout, stderr) = match (stdout.recv_timeout(BOUND), stderr.recv_timeout(BOUND)) {
        (Ok(out), Ok(err)) => (out, err),
        _ => {
            let _ = child.kill();
            panic!("brine did not finish within {BOUND:?}");
        }
    };
    // Both pipes closed: the process is exiting.
    let status = child.wait().unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The whole of a pipe, sent when it closes.
fn read_all(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

/// Each line of a pipe as it arrives.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line matching `wanted`, within [`BOUND`].
fn await_line(lines: &mpsc::Receiver<String>, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {what} ({e})"),
        }
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn run_prints_the_result() {
    let out = run(brine()
        .args(["run", "--master", "local:1"])
        .arg(module("sum"))
        .args(["sum", "--args", "\"1 2 3\""]));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "6");
}

#[test]
fn map_prints_a_result_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("numbers.jsonl");
    let text: String = (1..=50).map(|i| format!("\"{i} {i} 1\"\n")).collect();
    std::fs::write(&input, text).unwrap();
    let out = run(brine()
        .args(["run", "--master", "local:2", "--max-in-flight", "8"])
        .arg(module("sum"))
        .arg("sum")
        .arg("--map")
        .arg(&input));
    assert!(out.status.success(), "{}", out.stderr);
    let mut results: Vec<(u64, i64)> = json_lines(&out.stdout)
        .iter()
        .map(|v| (v["line"].as_u64().unwrap(), v["ok"].as_i64().unwrap()))
        .collect();
    results.sort();
    let expected: Vec<(u64, i64)> = (1..=50).map(|i| (i as u64, 2 * i + 1)).collect();
    assert_eq!(results, expected);
    // The run completed and its framework is gone: nothing is left to resume.
    assert!(!state_beside(&input).exists());
}

fn state_beside(input: &Path) -> PathBuf {
    input.with_file_name(format!(
        "{}.brine-state",
        input.file_name().unwrap().to_string_lossy()
    ))
}

#[test]
fn failures_are_json_and_a_nonzero_exit() {
    let out = run(brine()
        .args(["run", "--master", "local"])
        .arg(module("sum"))
        .args(["sum", "--args", "\"1 x 3\""]));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let error: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "guest_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"x\"")
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(&input, "\"1 2\"\n\n\"1 x\"\nnot json\n").unwrap();
    let out = run(brine()
        .args(["run", "--master", "local"])
        .arg(module("sum"))
        .arg("sum")
        .arg("--map")
        .arg(&input));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let mut by_line: Vec<Value> = json_lines(&out.stdout);
    by_line.sort_by_key(|v| v["line"].as_u64());
    assert_eq!(by_line.len(), 3, "{}", out.stdout);
    assert_eq!(by_line[0], serde_json::json!({"line": 1, "ok": 3}));
    assert_eq!(by_line[1]["line"], 3);
    assert_eq!(by_line[1]["error"]["kind"], "guest_error");
    assert_eq!(by_line[2]["line"], 4);
    assert_eq!(by_line[2]["error"]["kind"], "invalid_json");
}

#[test]
fn bad_usage_exits_2_before_starting_anything() {
    let out = run(brine()
        .args(["run", "--master", "mesos:5050"])
        .arg(module("sum"))
        .arg("sum"));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--master"), "{}", out.stderr);
    let out = run(brine()
        .args(["run", "--master", "local"])
        .arg(module("sum"))
        .args(["sum", "--args", "1 2 3"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("not valid JSON"), "{}", out.stderr);
    for (flag, value, says) in [
        ("--gc-delay", "1week", "1week"),
        ("--gc-disk-headroom", "1.5", "between 0.0 and 1.0"),
    ] {
        let out = run(brine().args(["local", "--port", "0", flag, value]));
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }
}

/// A child process killed (and reaped) when the test ends, pass or fail.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `brine local` on a free port, and its master URL.
fn brine_local(agents: usize, work_dir: &Path) -> (Process, String) {
    let mut local = Process(
        brine()
            .args([
                "local",
                "--agents",
                &agents.to_string(),
                "--port",
                "0",
                "--work-dir",
            ])
            .arg(work_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = lines(local.0.stdout.take().unwrap());
    let master = await_line(&out, "the master URL", |l| l.starts_with("http://"));
    // Keep reading so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in out {});
    (local, master)
}

fn terminate(process: &mut Process) -> ExitStatus {
    let pid = nix::unistd::Pid::from_raw(process.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    process.0.wait().unwrap()
}

#[test]
fn status_shows_a_running_framework_and_survives_its_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let (mut local, master) = brine_local(1, dir.path());

    // A task that runs for a minute: it is still running when status looks.
    let mut scheduler = Process(
        brine()
            .args(["--log-format", "json", "run", "--master", &master])
            .arg(module("failures"))
            .args(["spin", "--args", "60000"])
            .env("RUST_LOG", "brine=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let logs = lines(scheduler.0.stderr.take().unwrap());
    await_line(&logs, "the job running", |l| {
        l.contains(r#""state":"Running""#)
    });

    let out = run(brine().args(["status", "--json", "--master", &master]));
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let frameworks = report["frameworks"].as_array().unwrap();
    assert_eq!(frameworks.len(), 1, "{report:#}");
    let framework = &frameworks[0];
    let executors = framework["executors"].as_array().unwrap();
    assert_eq!(executors.len(), 1, "{report:#}");
    let tasks = executors[0]["tasks"].as_array().unwrap();
    assert!(
        tasks.iter().any(|t| t["state"] == "TASK_RUNNING"),
        "{report:#}"
    );
    // The scheduler's own view, found through the framework's webui_url.
    let view = &framework["scheduler"];
    assert_eq!(view["framework_id"], framework["id"], "{report:#}");
    assert_eq!(view["jobs"]["running"], 1, "{report:#}");

    // The scheduler dies: the master still knows the framework (failover), the
    // heartbeats are unknown.
    let _ = scheduler.0.kill();
    scheduler.0.wait().unwrap();
    let out = run(brine().args(["status", "--master", &master]));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains(framework["id"].as_str().unwrap()),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TASK_RUNNING"), "{}", out.stdout);
    assert!(out.stdout.contains("unknown"), "{}", out.stdout);

    assert!(terminate(&mut local).success());
}

/// `GET path` from a plain-HTTP master, as JSON.
#[test]
fn a_killed_brine_run_resumes_as_the_same_framework() {
    let dir = tempfile::tempdir().unwrap();
    let (mut local, master) = brine_local(2, &dir.path().join("cluster"));
    let input = dir.path().join("batch.jsonl");
    let jobs = 24;
    std::fs::write(&input, "300\n".repeat(jobs)).unwrap();
    let map = |command: &mut Command| {
        command
            .args(["run", "--master", &master])
            .arg(module("failures"))
            .args(["spin", "--executor-heartbeat", "100ms", "--map"])
            .arg(&input);
    };

    // The first scheduler dies (SIGKILL) a few results into the batch.
    let mut first = brine();
    map(&mut first);
    let mut first = Process(
        first
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first_out = lines(first.0.stdout.take().unwrap());
    for n in 0..4 {
        await_line(&first_out, &format!("result {n}"), |l| l.contains("\"ok\""));
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let state = state_beside(&input);
    let stored = std::fs::read_to_string(&state).expect("the state file survives a crash");
    let framework_id = stored
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["record"] == "framework")
        .and_then(|r| r["id"].as_str().map(str::to_owned))
        .expect("the state file names the framework");

    // The same command again: same framework, reconciled, the whole batch.
    let mut second = brine();
    map(&mut second);
    let out = run(&mut second);
    assert!(out.status.success(), "{}", out.stderr);
    let results = json_lines(&out.stdout);
    let lines_seen: std::collections::HashSet<u64> = results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(results.len(), jobs, "{}", out.stdout);
    assert_eq!(lines_seen.len(), jobs, "each line once: {}", out.stdout);
    assert!(
        results
            .iter()
            .all(|r| r["ok"].as_u64().is_some_and(|spins| spins > 0)),
        "{}",
        out.stdout
    );
    assert!(!state.exists(), "a finished batch leaves no state");

    // One framework in all: the restarted scheduler was the same one, then tore down.
    let master_state = get_json(&master, "/master/state");
    let done: Vec<&str> = master_state["completed_frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(done, vec![framework_id.as_str()], "{master_state:#}");
    assert!(
        master_state["frameworks"].as_array().unwrap().is_empty(),
        "{master_state:#}"
    );
    assert!(terminate(&mut local).success());
}
