//! The fault matrix's cases where the master and the agents are processes of their
//! own (`brine-local master`, `brine-local agent`), as Mesos is deployed: an agent
//! SIGKILLed and started again on its work dir, the master SIGKILLed and started
//! again, and the scheduler (`brine run`, a process of its own) SIGKILLed and started
//! again on its state file. `faults.rs` says what every case checks.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brine_scheduler::Cluster;
use brine_tests::bounded;
use brine_tests::get_json;
use brine_tests::process::{command, free_port, spawn_first_line};
use common::matrix::{
    BEFORE_FAULT, JOBS, ONE_AT_A_TIME, Row, SPIN_MS, batch_with_fault, publish, settle,
};
use common::{fast_heartbeats, init};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};

/// A master and agents, each a `brine-local` process.
struct Deployed {
    _dir: tempfile::TempDir,
    master_port: u16,
    master: Child,
    agents: Vec<Agent>,
}

struct Agent {
    port: u16,
    work_dir: PathBuf,
    process: Option<Child>,
    id: String,
}

/// SIGKILL, and reaped.
async fn sigkill(child: &mut Child) {
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

impl Deployed {
    async fn start(agents: usize) -> Deployed {
        let mut deployed = Self::master_only(agents).await;
        for i in 0..agents {
            deployed.start_agent(i).await;
        }
        deployed
    }

    /// The master, and `agents` agents to start with [`Deployed::start_agent`].
    async fn master_only(agents: usize) -> Deployed {
        let dir = tempfile::tempdir().unwrap();
        let master_port = free_port();
        let master = Self::master(master_port).await;
        Deployed {
            agents: (0..agents)
                .map(|i| Agent {
                    port: free_port(),
                    work_dir: dir.path().join(format!("agent-{i}")),
                    process: None,
                    id: String::new(),
                })
                .collect(),
            _dir: dir,
            master_port,
            master,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.master_port)
    }

    async fn master(port: u16) -> Child {
        let args = ["master", "--port", &port.to_string()].map(String::from);
        spawn_first_line(&brine_tests::local_binary(), &args)
            .await
            .0
    }

    /// Starts agent `i` (again: on the same work dir and port, so it recovers).
    async fn start_agent(&mut self, i: usize) {
        let url = self.url();
        let agent = &mut self.agents[i];
        let args = [
            "agent",
            "--master",
            &url,
            "--work-dir",
            &agent.work_dir.display().to_string(),
            "--port",
            &agent.port.to_string(),
            "--cpus",
            "1",
            "--mem",
            "4096",
        ]
        .map(String::from);
        let (process, id) = spawn_first_line(&brine_tests::local_binary(), &args).await;
        assert!(
            agent.id.is_empty() || agent.id == id,
            "agent {i} came back as {id}, not {}",
            agent.id
        );
        agent.id = id;
        agent.process = Some(process);
    }

    async fn kill_agent(&mut self, i: usize) {
        sigkill(self.agents[i].process.as_mut().unwrap()).await;
    }

    /// SIGKILLs the master and starts another on the same port.
    async fn restart_master(&mut self) {
        sigkill(&mut self.master).await;
        self.master = Self::master(self.master_port).await;
    }

    /// Waits until the master has every agent connected.
    async fn agents_connected(&self) {
        let url = self.url();
        let n = self.agents.len();
        common::until("every agent connected", || {
            let state = get_json(&url, "/master/state");
            state["activated_slaves"].as_u64() == Some(n as u64)
        })
        .await;
    }
}

async fn connect(deployed: &Deployed) -> Cluster {
    bounded(
        "connect",
        Cluster::connect_with(&deployed.url(), fast_heartbeats()),
    )
    .await
    .expect("connects")
}

/// Every executor the scheduler started is still its own, none presumed lost.
async fn executors_survived(cluster: &Cluster, before: &[String]) {
    let status = cluster.status().await.unwrap();
    for id in before {
        assert!(
            status
                .executors
                .iter()
                .any(|e| &e.executor_id == id && !e.lost),
            "{id} did not survive: {status:?}"
        );
    }
}

async fn executor_ids(cluster: &Cluster) -> Vec<String> {
    let status = cluster.status().await.unwrap();
    status
        .executors
        .iter()
        .filter(|e| !e.lost)
        .map(|e| e.executor_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sigkill_and_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    let mut deployed = Deployed::start(2).await;
    deployed.agents_connected().await;
    let cluster = connect(&deployed).await;
    let mut before = Vec::new();
    let mut down = Duration::ZERO;
    let outcome = batch_with_fault(&cluster, || async {
        before = executor_ids(&cluster).await;
        let killed = Instant::now();
        deployed.kill_agent(0).await;
        deployed.start_agent(0).await;
        down = killed.elapsed();
    })
    .await;
    let row = settle(
        &cluster,
        "agent SIGKILL, started again on its work dir",
        format!(
            "the executors outlived it and kept serving over the lane; started again, the \
             agent recovered its checkpoint and re-registered under the same id {:.2} s \
             after the kill; its executors re-subscribed",
            down.as_secs_f64()
        ),
        outcome,
    )
    .await;
    assert_eq!(row.ran_again, 0, "{row:?}");
    deployed.agents_connected().await;
    executors_survived(&cluster, &before).await;
    assert_eq!(common::sum(&cluster, "4 5").await, 9);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_sigkill_and_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    let mut deployed = Deployed::start(2).await;
    deployed.agents_connected().await;
    let cluster = connect(&deployed).await;
    let mut before = Vec::new();
    let mut killed = Instant::now();
    let outcome = batch_with_fault(&cluster, || async {
        before = executor_ids(&cluster).await;
        killed = Instant::now();
        deployed.restart_master().await;
    })
    .await;
    deployed.agents_connected().await;
    bounded("the scheduler re-subscribed", async {
        while !cluster.status().await.unwrap().connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let back = killed.elapsed();
    let row = settle(
        &cluster,
        "master SIGKILL, started again",
        format!(
            "closures kept flowing over the lane; the agents re-registered with their \
             executors and tasks, the scheduler re-subscribed as the same framework and \
             reconciled (all back within {:.2} s of the kill). The new master keeps no \
             registry (as Mesos with --registry=in_memory): a lease reconciled before its \
             agent re-registered is TASK_LOST, and is released over its live lane (its \
             running closures finish there, those queued in it run again)",
            back.as_secs_f64()
        ),
        outcome,
    )
    .await;
    // How many ran again depends on which reaches the new master first: the
    // scheduler's reconciliation (leases answered lost are released over their lanes;
    // the closures running in them finish there, those queued behind them are
    // refused and sent again) or the agents' re-registration (nothing runs again).
    eprintln!("{row:?}");
    executors_survived(&cluster, &before).await;
    assert_eq!(common::sum(&cluster, "4 5").await, 9);
    cluster.shutdown().await;
}

/// `brine run --map` over `JOBS` spins of `SPIN_MS`, with its state file: the
/// scheduler as a process of its own. Its output lines, as they come.
fn brine_run(
    url: &str,
    input: &Path,
    state: &Path,
) -> (Child, tokio::io::Lines<BufReader<ChildStdout>>) {
    let module = brine_tests::examples_dir().join("example_failures.wasm");
    let mut child = command(&brine_tests::cli_binary())
        .arg("run")
        .args(["--master", url])
        .arg(&module)
        .arg("spin")
        .arg("--map")
        .arg(input)
        .arg("--state")
        .arg(state)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The input line a `--map` output line answers, if it is a success.
fn ok_line(line: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("ok")?;
    value["line"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_sigkill_and_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    let deployed = Deployed::start(2).await;
    deployed.agents_connected().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, format!("{SPIN_MS}\n").repeat(JOBS)).unwrap();
    let state = dir.path().join("state");

    let (mut first, mut lines) = brine_run(&deployed.url(), &input, &state);
    let mut done_first = HashSet::new();
    while done_first.len() < BEFORE_FAULT {
        let line = bounded("the first life's results", lines.next_line())
            .await
            .unwrap()
            .expect("a result line");
        let n = ok_line(&line).unwrap_or_else(|| panic!("not a success: {line}"));
        assert!(done_first.insert(n), "line {n} answered twice");
    }
    let killed = Instant::now();
    sigkill(&mut first).await;
    // Whatever it printed before dying counts as done in its life.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(n) = ok_line(&line) {
            done_first.insert(n);
        }
    }

    let (mut second, mut lines) = brine_run(&deployed.url(), &input, &state);
    let mut done_second = HashSet::new();
    while let Some(line) = bounded("the second life's results", lines.next_line())
        .await
        .unwrap()
    {
        let n = ok_line(&line).unwrap_or_else(|| panic!("not a success: {line}"));
        assert!(done_second.insert(n), "line {n} answered twice in one life");
    }
    let recovery = killed.elapsed();
    let status = bounded("the second life to exit", second.wait())
        .await
        .unwrap();
    assert!(status.success(), "brine run: {status}");
    // The second life answers every line: those the first finished from the state
    // file, the rest by running them.
    assert_eq!(done_second.len(), JOBS, "every line answered");
    assert!(done_first.is_subset(&done_second));
    let ran_in_second = JOBS - done_first.len();
    publish(&Row {
        case: "scheduler (brine run) SIGKILL, started again on its state file".into(),
        happened: format!(
            "the second life re-subscribed as the same framework, answered the {} lines the \
             first had finished from its state file, killed the first life's leases and \
             ran the other {ran_in_second} (those in flight at the kill among them)",
            done_first.len()
        ),
        recovery_ms: recovery.as_millis() as u64,
        lost: JOBS - done_second.len(),
        ran_again: ran_in_second,
        completed_twice: 0,
    });
    // A run that completes tears its framework down and removes its state file.
    assert!(
        !state.exists(),
        "the state file is removed after a completed run"
    );
}

/// A tmpfs of `mb` MB mounted on `at` for as long as it lives (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount tmpfs on {}: {status}",
            at.display()
        );
        Tmpfs(at.to_owned())
    }

    /// Writes zeros into `name` until the filesystem is full.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.0.join(name)).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: an executor may still hold files there.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (mounts a tmpfs as an agent's work dir): `make test` runs it as root \
            (make test-cgroups)"]
async fn disk_full_while_the_agent_writes_a_sandbox() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    // Agent 0 works on a tmpfs with room for one copy of the (debug) executor and a
    // little more; agent 1 on the ordinary disk.
    let executor_mb = std::fs::metadata(brine_tests::executor_binary())
        .unwrap()
        .len()
        .div_ceil(1 << 20);
    let mut deployed = Deployed::master_only(2).await;
    let disk = Tmpfs::mount(&deployed.agents[0].work_dir, executor_mb + 64);
    deployed.start_agent(0).await;
    deployed.start_agent(1).await;
    deployed.agents_connected().await;
    let cluster = connect(&deployed).await;
    let agent_url = format!("http://127.0.0.1:{}", deployed.agents[0].port);
    let outcome = batch_with_fault(&cluster, || async {
        // The disk fills up, then agent 0's executor dies: the agent must write a new
        // sandbox (and a copy of the executor) to launch the next one.
        disk.fill("filler");
        let state = get_json(&agent_url, "/state");
        let pid = state["frameworks"][0]["executors"][0]["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("agent 0 runs no executor: {state}"));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    })
    .await;
    settle(
        &cluster,
        "disk full on an agent while it writes a sandbox",
        "agent 0's disk filled up and its executor died; launching a new one failed at \
         creating its sandbox (No space left on device; its checkpoint writes failed too, \
         logged), so those leases failed and the closures ran on agent 1"
            .into(),
        outcome,
    )
    .await;
    cluster.shutdown().await;
}
