//! Agent restart with checkpointing, with real processes: `brine-local master` and
//! `brine-local agent` as separate processes, the real `brine-executor` running the
//! example wasm modules, a JSON scheduler over HTTP. The agent is SIGKILLed and started
//! again on the same work directory.
//!
//! Needs `brine-executor` (`cargo build -p brine-executor`) and the example modules
//! (`make examples`); without them the tests say so and pass without running.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::{
    CommandInfo, ExecutorId, ExecutorInfo, Resource, TaskId, TaskInfo, command_info,
};
use brine_proto::payload::{Encoding, ExecutorConfig, ModuleRef, Payload, TaskSpec};
use brine_tests::process::{free_port, spawn_first_line};
use bytes::Bytes;
use common::scheduler::{Framework, get, json_headers};
use serde_json::{Value, json};
use tokio::process::Child;

/// Bound on every wait (debug builds on a loaded 2-core machine).
const BOUND: Duration = Duration::from_secs(60);

/// `target/<profile>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The executor binary and the `failures` module, or why the test cannot run.
fn artifacts() -> (PathBuf, Vec<u8>) {
    let executor = std::env::var_os("BRINE_EXECUTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("brine-executor"));
    let examples = std::env::var_os("BRINE_EXAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            profile_dir()
                .parent()
                .unwrap()
                .join("wasm32-wasip1/release")
        });
    let module = std::fs::read(examples.join("example_failures.wasm")).ok();
    match (executor.is_file(), module) {
        (true, Some(module)) => (executor, module),
        _ => panic!(
            "needs {} (cargo build -p brine-executor) and example_failures.wasm in {} \
             (make examples); `make test` builds both",
            executor.display(),
            examples.display()
        ),
    }
}

fn to_json(message: &impl brine_proto::codec::MesosMessage) -> Value {
    serde_json::from_slice(&codec::encode(ContentType::Json, message).unwrap()).unwrap()
}

/// Spawns `brine-local <args>` and returns it with the first line it prints.
async fn spawn(args: &[&str]) -> (Child, String) {
    spawn_first_line(Path::new(env!("CARGO_BIN_EXE_brine-local")), args).await
}

/// Polls `url` `path` (JSON) until `pred` holds, within [`BOUND`].
async fn poll(url: &str, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + BOUND;
    loop {
        let text = get(url, path).await;
        if let Ok(value) = serde_json::from_str::<Value>(&text)
            && pred(&value)
        {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigkill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

struct Setup {
    _dir: tempfile::TempDir,
    _master: Child,
    url: String,
    agent: Child,
    agent_url: String,
    agent_args: Vec<String>,
    framework: Framework,
    executor: ExecutorInfo,
    module: ModuleRef,
}

/// A master, an agent (reregistration timeout `timeout`), a subscribed checkpointing
/// framework and the brine-executor's ExecutorInfo.
async fn setup(timeout: &str) -> Setup {
    common::init_tracing();
    let (executor_binary, module) = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let (master, url) = spawn(&["master", "--port", "0", "--allocation-interval", "100ms"]).await;
    let port = free_port();
    let agent_args: Vec<String> = [
        "agent",
        "--master",
        &url,
        "--work-dir",
        &dir.path().join("agent").display().to_string(),
        "--port",
        &port.to_string(),
        "--cpus",
        "4",
        "--mem",
        "4096",
        "--disk",
        "10000",
        "--isolation",
        "posix/cpu,posix/mem",
        "--executor-reregistration-timeout",
        timeout,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
    let (agent, agent_id) = spawn(&args).await;
    assert!(agent_id.ends_with("-S0"), "{agent_id}");
    let framework = Framework::subscribe(
        &url,
        json!({"user": "root", "name": "agent-restart", "checkpoint": true}),
        json_headers(None),
    )
    .await;
    let config = ExecutorConfig {
        heartbeat_interval: Duration::from_secs(3600),
        ..ExecutorConfig::default()
    };
    let binary = executor_binary.display().to_string();
    let executor = ExecutorInfo {
        executor_id: ExecutorId {
            value: "brine".into(),
        },
        data: Some(Bytes::from(config.encode())),
        resources: vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)],
        command: Some(CommandInfo {
            value: Some(binary.clone()),
            shell: Some(false),
            arguments: vec![binary],
            uris: Vec::<command_info::Uri>::new(),
            ..Default::default()
        }),
        ..Default::default()
    };
    Setup {
        _dir: dir,
        _master: master,
        url,
        agent,
        agent_url: format!("http://127.0.0.1:{port}"),
        agent_args,
        framework,
        executor,
        module: ModuleRef::inline(module),
    }
}

impl Setup {
    /// Launches `(task id, export, JSON args)` tasks of 1 cpu on the next offer.
    async fn launch(&mut self, tasks: &[(&str, &str, &str)]) {
        let offer = self.framework.offer().await;
        let infos: Vec<Value> = tasks
            .iter()
            .map(|(id, export, args)| {
                let spec = TaskSpec {
                    module: self.module.clone(),
                    export: (*export).into(),
                    args: args.as_bytes().to_vec(),
                    encoding: Encoding::Json,
                    deadline: None,
                };
                let mut task = to_json(&TaskInfo {
                    name: (*id).into(),
                    task_id: TaskId {
                        value: (*id).into(),
                    },
                    resources: vec![Resource::scalar("cpus", 1.0), Resource::scalar("mem", 64.0)],
                    executor: Some(self.executor.clone()),
                    data: Some(Bytes::from(spec.encode())),
                    ..Default::default()
                });
                task["agent_id"] = offer["agent_id"].clone();
                task
            })
            .collect();
        let (code, body) = self
            .framework
            .call(
                json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}}),
            )
            .await;
        assert_eq!(code, 202, "{body}");
    }

    /// The agent's view of the executor, once `pred` holds.
    async fn executor_where(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let state = poll(&self.agent_url, "/state", what, |s| {
            s["frameworks"][0]["executors"][0].is_object()
                && pred(&s["frameworks"][0]["executors"][0])
        })
        .await;
        state["frameworks"][0]["executors"][0].clone()
    }

    /// Waits until the agent has no unacknowledged update, then SIGKILLs it.
    async fn kill_agent(&mut self) {
        poll(
            &self.agent_url,
            "/state",
            "every update acknowledged",
            |s| s["unacknowledged_status_updates"] == 0,
        )
        .await;
        self.agent.start_kill().unwrap();
        self.agent.wait().await.unwrap();
        poll(&self.url, "/master/state", "the agent disconnected", |s| {
            s["slaves"][0]["active"] == false
        })
        .await;
    }

    async fn restart_agent(&mut self) {
        let args: Vec<&str> = self.agent_args.iter().map(String::as_str).collect();
        let (agent, id) = spawn(&args).await;
        assert!(id.ends_with("-S0"), "the same agent id: {id}");
        self.agent = agent;
    }

    /// Every UPDATE seen so far and later ones until `done` holds (bounded).
    async fn updates_until(&mut self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + BOUND;
        let mut updates = Vec::new();
        loop {
            let event = self
                .framework
                .wait_until(deadline, |e| e["type"] == "UPDATE")
                .await
                .unwrap_or_else(|| panic!("timed out; updates so far: {updates:#?}"));
            updates.push(event.1["update"]["status"].clone());
            if done(&updates) {
                return updates;
            }
        }
    }
}

fn state_of<'a>(updates: &'a [Value], task: &str) -> Vec<&'a str> {
    updates
        .iter()
        .filter(|u| u["task_id"]["value"] == task)
        .map(|u| u["state"].as_str().unwrap())
        .collect()
}

/// SIGKILL of the agent mid-task: the executor keeps running, re-subscribes to the
/// restarted agent (same id, same port), its tasks finish, and every update reaches
/// the scheduler exactly once and is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_keeps_the_executor_and_its_tasks() {
    let mut s = setup("5secs").await;
    s.launch(&[("a", "spin", "3000"), ("b", "spin", "3000")])
        .await;
    let before = s
        .updates_until(|u| {
            state_of(u, "a").contains(&"TASK_RUNNING") && state_of(u, "b").contains(&"TASK_RUNNING")
        })
        .await;
    let executor = s
        .executor_where("subscribed", |e| e["subscribed"] == true)
        .await;
    let pid = executor["pid"].as_u64().unwrap() as u32;
    s.kill_agent().await;
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the executor outlives its agent"
    );
    s.restart_agent().await;
    poll(&s.url, "/master/state", "the agent re-registered", |st| {
        st["slaves"][0]["active"] == true
    })
    .await;
    let after = s
        .updates_until(|u| {
            state_of(u, "a").contains(&"TASK_FINISHED")
                && state_of(u, "b").contains(&"TASK_FINISHED")
        })
        .await;
    let executor = s
        .executor_where("re-subscribed", |e| e["subscribed"] == true)
        .await;
    assert_eq!(executor["pid"], json!(pid), "the same executor process");

    let all: Vec<&Value> = before.iter().chain(&after).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for u in &all {
        assert_ne!(u["state"], "TASK_LOST", "{u}");
        assert_ne!(u["state"], "TASK_FAILED", "{u}");
        let uuid = u["uuid"].as_str().expect("a uuid").to_owned();
        *seen.entry(uuid).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "each uuid once: {all:#?}");
    for task in ["a", "b"] {
        let states: Vec<&str> = all
            .iter()
            .filter(|u| u["task_id"]["value"] == task)
            .map(|u| u["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["TASK_RUNNING", "TASK_FINISHED"], "{task}");
    }
    // Every update was acknowledged (the client acknowledges each before passing it
    // on; the agent has none pending).
    poll(&s.agent_url, "/state", "nothing pending", |st| {
        st["unacknowledged_status_updates"] == 0
    })
    .await;
    // The re-subscribed executor takes new tasks.
    s.launch(&[("c", "spin", "10")]).await;
    let more = s
        .updates_until(|u| {
            state_of(u, "c")
                .iter()
                .any(|st| *st == "TASK_FINISHED" || *st == "TASK_ERROR")
        })
        .await;
    assert_eq!(
        state_of(&more, "c"),
        ["TASK_RUNNING", "TASK_FINISHED"],
        "{more:#?}"
    );
    sigkill(pid);
}

/// The executor dies while its agent is down: after the reregistration timeout the
/// restarted agent reports its task lost with REASON_EXECUTOR_REREGISTRATION_TIMEOUT
/// and the executor terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_gone_while_the_agent_was_down_is_reported_after_the_timeout() {
    let mut s = setup("2secs").await;
    s.launch(&[("x", "loop_forever", "")]).await;
    s.updates_until(|u| state_of(u, "x").contains(&"TASK_RUNNING"))
        .await;
    let executor = s
        .executor_where("subscribed", |e| e["subscribed"] == true)
        .await;
    let pid = executor["pid"].as_u64().unwrap() as u32;
    s.kill_agent().await;
    sigkill(pid);
    let restarted = Instant::now();
    s.restart_agent().await;
    let lost = s
        .updates_until(|u| state_of(u, "x").iter().any(|s| *s != "TASK_RUNNING"))
        .await;
    let elapsed = restarted.elapsed();
    let status = lost.last().unwrap();
    assert_eq!(status["state"], "TASK_LOST", "{status}");
    assert_eq!(status["reason"], "REASON_EXECUTOR_REREGISTRATION_TIMEOUT");
    assert_eq!(status["source"], "SOURCE_AGENT");
    assert_eq!(
        status["message"],
        "Executor did not reregister within 2secs"
    );
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    let failure = s
        .framework
        .wait("FAILURE", |e| e["type"] == "FAILURE")
        .await;
    assert_eq!(failure["failure"]["executor_id"]["value"], "brine");
    poll(&s.agent_url, "/state", "the executor gone", |st| {
        st["completed_executors"][0]["id"] == "brine"
    })
    .await;
}
