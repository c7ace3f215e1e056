//! End-to-end tests across Brine's pieces, and the helpers they share.
//!
//! - [`executor_binary`], [`examples_dir`], [`example`]: find the built `brine-executor`
//!   and the example `.wasm` modules (failing with a clear message when missing).
//! - [`framework`], [`executor_info`], [`task`], [`spec`]…: build the Mesos messages a
//!   scheduler would send.
//! - [`Harness`]: a real local agent in a temporary directory whose events are recorded
//!   (status updates acknowledged as they arrive, like a scheduler would) and awaited
//!   with bounded timeouts — never with sleeps.
//! - [`lease_task`], [`LaneServer`], [`LaneConn`]: the scheduler's side of the closure
//!   lane (`brine_proto::lane`), played by the test over real TCP.
//! - `tls` (feature `tls`): a test CA and a TLS terminator in front of any plain
//!   server.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test helpers

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use brine_local::agent::{
    Agent, AgentConfig, AgentEvent, AgentResources, CgroupsMode, ExecutorSnapshot,
};
use brine_proto::lane::{
    ClosureId, FrameDecoder, LEASE_LABEL, ToExecutor, ToScheduler, encode_frame,
};
use brine_proto::mesos::v1::{
    CommandInfo, Environment, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Label, Labels,
    Resource, TaskId, TaskInfo, TaskState, TaskStatus, command_info, environment,
};
use brine_proto::payload::{
    Encoding, ExecutorConfig, ExecutorMessage, Heartbeat, LaneEndpoint, LeaseSpec, ModuleRef,
    Payload, Secret, TaskOutcome, TaskSpec,
};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

pub mod process;
#[cfg(feature = "tls")]
pub mod tls;

/// The default bound on any wait.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `target/<profile>` directory the running test binary was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the test binary lives in target/<profile>/deps")
}

/// The `brine-executor` binary: `$BRINE_EXECUTOR`, else next to the test binary
/// (`target/<profile>/brine-executor`, built by `cargo test --workspace`).
pub fn executor_binary() -> PathBuf {
    let path = std::env::var_os("BRINE_EXECUTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("brine-executor"));
    assert!(
        path.is_file(),
        "brine-executor not found at {}: build it (`cargo build -p brine-executor`, or run \
         `cargo test --workspace`) or set BRINE_EXECUTOR to its path",
        path.display()
    );
    path
}

/// The `brine-local` binary (master and agents as processes of their own):
/// `$BRINE_LOCAL`, else next to the test binary (built by `cargo test --workspace`).
pub fn local_binary() -> PathBuf {
    workspace_binary("brine-local", "BRINE_LOCAL", "brine-local")
}

/// The `brine` command line: `$BRINE_CLI`, else next to the test binary (built by
/// `cargo test --workspace`).
pub fn cli_binary() -> PathBuf {
    workspace_binary("brine", "BRINE_CLI", "brine-cli")
}

fn workspace_binary(name: &str, var: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join(name));
    assert!(
        path.is_file(),
        "{name} not found at {}: build it (`cargo build -p {package}`, or run `cargo test \
         --workspace`) or set {var} to its path",
        path.display()
    );
    path
}

/// `GET path` from `http://host:port` as JSON (plain HTTP/1.0: the answer ends with
/// the connection), for the endpoints Mesos users read (`/master/state`, `/state`,
/// `/status`).
pub fn get_json(base: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(WAIT * 2)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    serde_json::from_str(body).unwrap()
}

/// Where the example `.wasm` modules are: `$BRINE_EXAMPLES_DIR`, else
/// `<target dir>/wasm32-wasip1/release` (built by `make examples`).
pub fn examples_dir() -> PathBuf {
    std::env::var_os("BRINE_EXAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            profile_dir()
                .parent()
                .map(|target| target.join("wasm32-wasip1").join("release"))
                .expect("target directory")
        })
}

/// The bytes of `example_<name>.wasm`.
pub fn example(name: &str) -> Vec<u8> {
    let path = examples_dir().join(format!("example_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; build the examples with `make examples` or set \
             BRINE_EXAMPLES_DIR",
            path.display()
        )
    })
}

/// A framework (`user` root, role `*`).
pub fn framework(id: &str, checkpoint: bool) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: "brine-tests".into(),
        id: Some(FrameworkId { value: id.into() }),
        checkpoint: Some(checkpoint),
        roles: vec!["*".into()],
        ..Default::default()
    }
}

/// An ExecutorInfo running the real `brine-executor` (no shell: the agent's pid is
/// the executor's) with `config` in its data, 0.1 cpus and 32 MB of its own, and
/// `uris` to fetch into the sandbox.
pub fn executor_info(id: &str, config: &ExecutorConfig, uris: &[&Path]) -> ExecutorInfo {
    executor_info_with_data(id, Bytes::from(config.encode()), uris)
}

/// [`executor_info`] with arbitrary `data` (to test bad configurations).
pub fn executor_info_with_data(id: &str, data: Bytes, uris: &[&Path]) -> ExecutorInfo {
    let binary = executor_binary().to_string_lossy().into_owned();
    let log = std::env::var("BRINE_TEST_EXECUTOR_LOG").unwrap_or_else(|_| "info".into());
    ExecutorInfo {
        executor_id: ExecutorId { value: id.into() },
        data: Some(data),
        resources: vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)],
        command: Some(CommandInfo {
            value: Some(binary.clone()),
            shell: Some(false),
            arguments: vec![binary],
            uris: uris
                .iter()
                .map(|p| command_info::Uri {
                    value: p.to_string_lossy().into_owned(),
                    ..Default::default()
                })
                .collect(),
            environment: Some(Environment {
                variables: vec![environment::Variable {
                    name: "BRINE_LOG".into(),
                    value: Some(log),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        name: Some("brine-executor".into()),
        ..Default::default()
    }
}

/// A quick executor configuration for tests: heartbeats every `heartbeat`.
pub fn config(heartbeat: Duration) -> ExecutorConfig {
    ExecutorConfig {
        heartbeat_interval: heartbeat,
        ..ExecutorConfig::default()
    }
}

/// A TaskSpec calling `export` of `module` with JSON `args`.
pub fn spec(module: ModuleRef, export: &str, json_args: &str) -> TaskSpec {
    TaskSpec {
        module,
        export: export.into(),
        args: json_args.as_bytes().to_vec(),
        encoding: Encoding::Json,
        deadline: None,
    }
}

/// A TaskInfo with `data` as its data and `cpus`/`mem` resources.
pub fn task_with_data(id: &str, data: Bytes, cpus: f64, mem_mb: f64) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: vec![
            Resource::scalar("cpus", cpus),
            Resource::scalar("mem", mem_mb),
        ],
        data: Some(data),
        ..Default::default()
    }
}

/// A TaskInfo carrying `spec`.
pub fn task(id: &str, spec: &TaskSpec, cpus: f64, mem_mb: f64) -> TaskInfo {
    task_with_data(id, Bytes::from(spec.encode()), cpus, mem_mb)
}

/// A lease: a TaskInfo labelled [`LEASE_LABEL`] with `spec` as its data and
/// `cpus`/`mem` (one slot) as its resources.
pub fn lease_task(id: &str, spec: &LeaseSpec, cpus: f64, mem_mb: f64) -> TaskInfo {
    let mut info = task_with_data(id, Bytes::from(spec.encode()), cpus, mem_mb);
    let (key, value) = LEASE_LABEL;
    info.labels = Some(Labels {
        labels: vec![Label {
            key: key.into(),
            value: Some(value.into()),
        }],
    });
    info
}

/// The TaskOutcome in a status's data.
pub fn outcome(status: &TaskStatus) -> TaskOutcome {
    TaskOutcome::decode(status.data.as_deref().unwrap_or_default())
        .unwrap_or_else(|e| panic!("status of {} has no TaskOutcome: {e}", status.task_id.value))
}

/// The result bytes of a TASK_FINISHED status.
pub fn result(status: &TaskStatus) -> Vec<u8> {
    match outcome(status) {
        TaskOutcome::Success { result } => result,
        TaskOutcome::Failure(f) => panic!("task {} failed: {f}", status.task_id.value),
    }
}

/// Everything the agent reported, with the time it arrived.
#[derive(Debug, Default)]
pub struct Log {
    pub statuses: Vec<(Instant, TaskStatus)>,
    /// Framework messages decoded as heartbeats (anything else is kept in `other`).
    pub heartbeats: Vec<(Instant, String, Heartbeat)>,
    pub other_messages: Vec<Bytes>,
    pub terminated: Vec<(Instant, String, Option<i32>)>,
}

impl Log {
    /// Statuses of one task, in arrival order.
    pub fn statuses_of(&self, task_id: &str) -> Vec<&TaskStatus> {
        self.statuses
            .iter()
            .filter(|(_, s)| s.task_id.value == task_id)
            .map(|(_, s)| s)
            .collect()
    }

    pub fn terminal_of(&self, task_id: &str) -> Option<&TaskStatus> {
        self.statuses_of(task_id)
            .into_iter()
            .find(|s| s.state().is_terminal())
    }
}

struct Shared {
    log: Mutex<Log>,
    changed: Notify,
    auto_ack: AtomicBool,
}

/// A local agent under test, with its events recorded.
pub struct Harness {
    pub agent: Arc<Agent>,
    pub framework: FrameworkInfo,
    shared: Arc<Shared>,
    // Dropped last: the agent's work directory.
    _dir: tempfile::TempDir,
}

/// How to set up a [`Harness`].
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    pub checkpoint: bool,
    pub cgroups: bool,
    pub grace: Duration,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            checkpoint: false,
            cgroups: false,
            grace: Duration::from_secs(5),
        }
    }
}

impl Harness {
    pub async fn start(options: HarnessOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = AgentConfig::new(dir.path().join("agent"));
        config.resources = AgentResources {
            cpus: 16.0,
            mem_mb: 16384.0,
            disk_mb: 16384.0,
        };
        config.cgroups = if options.cgroups {
            CgroupsMode::Auto
        } else {
            CgroupsMode::Off
        };
        config.executor_shutdown_grace_period = options.grace;
        let mut agent = Agent::start(config).await.expect("agent starts");
        let mut events = agent.take_events().expect("agent events");
        let agent = Arc::new(agent);
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            changed: Notify::new(),
            auto_ack: AtomicBool::new(true),
        });
        let framework = framework("brine-tests-framework", options.checkpoint);
        {
            let agent = Arc::clone(&agent);
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    let now = Instant::now();
                    match event {
                        AgentEvent::StatusUpdate {
                            framework_id,
                            status,
                        } => {
                            if let Some(uuid) = status.uuid.clone()
                                && shared.auto_ack.load(Ordering::SeqCst)
                            {
                                let _ = agent
                                    .acknowledge(&framework_id, &status.task_id, &uuid)
                                    .await;
                            }
                            lock(&shared.log).statuses.push((now, status));
                        }
                        AgentEvent::ExecutorMessage {
                            executor_id, data, ..
                        } => {
                            let mut log = lock(&shared.log);
                            match ExecutorMessage::decode(&data) {
                                Ok(ExecutorMessage::Heartbeat(beat)) => {
                                    log.heartbeats.push((now, executor_id.value, beat));
                                }
                                Err(_) => log.other_messages.push(data),
                            }
                        }
                        AgentEvent::ExecutorTerminated {
                            executor_id,
                            status,
                            ..
                        } => lock(&shared.log)
                            .terminated
                            .push((now, executor_id.value, status)),
                    }
                    shared.changed.notify_waiters();
                }
            });
        }
        Self {
            agent,
            framework,
            shared,
            _dir: dir,
        }
    }

    pub fn framework_id(&self) -> FrameworkId {
        self.framework.id.clone().unwrap_or_default()
    }

    /// Whether status updates are acknowledged as they arrive (default: yes).
    pub fn set_auto_ack(&self, on: bool) {
        self.shared.auto_ack.store(on, Ordering::SeqCst);
    }

    /// Launches `task` on the executor `executor`.
    pub async fn launch(&self, executor: &ExecutorInfo, task: TaskInfo) {
        self.agent
            .launch(self.framework.clone(), executor.clone(), task)
            .await
            .expect("launch accepted");
    }

    /// Launches `task` on `executor` and waits for its terminal status.
    pub async fn run(&self, executor: &ExecutorInfo, task: TaskInfo) -> TaskStatus {
        let task_id = task.task_id.value.clone();
        self.launch(executor, task).await;
        self.terminal(&task_id).await
    }

    pub async fn kill(&self, task_id: &str) {
        self.agent
            .kill_task(
                &self.framework_id(),
                &TaskId {
                    value: task_id.into(),
                },
            )
            .await
            .expect("kill accepted");
    }

    /// A view of what was recorded so far.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.shared.log)
    }

    /// Waits until `find` returns something, for at most `timeout`.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut find: impl FnMut(&Log) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = find(&self.log()) {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let log = self.log();
                let statuses: Vec<String> = log
                    .statuses
                    .iter()
                    .map(|(_, s)| {
                        format!(
                            "{} {} {}",
                            s.task_id.value,
                            s.state().as_str_name(),
                            s.message()
                        )
                    })
                    .collect();
                let terminated = log.terminated.clone();
                drop(log);
                panic!(
                    "timed out after {timeout:?} waiting for {what}; statuses so far: \
                     {statuses:#?}; terminated: {terminated:?}\n{}",
                    self.executor_logs()
                );
            }
        }
    }

    /// Waits for a status of `task_id` in `state`.
    pub async fn status(&self, task_id: &str, state: TaskState) -> TaskStatus {
        self.wait_for(WAIT, &format!("{task_id} {}", state.as_str_name()), |log| {
            log.statuses_of(task_id)
                .into_iter()
                .find(|s| s.state() == state)
                .cloned()
        })
        .await
    }

    /// Waits for the terminal status of `task_id`.
    pub async fn terminal(&self, task_id: &str) -> TaskStatus {
        self.terminal_within(task_id, WAIT).await
    }

    pub async fn terminal_within(&self, task_id: &str, timeout: Duration) -> TaskStatus {
        self.wait_for(timeout, &format!("a terminal status of {task_id}"), |log| {
            log.terminal_of(task_id).cloned()
        })
        .await
    }

    /// Waits for the executor `executor_id` to terminate; returns its wait status.
    pub async fn terminated(&self, executor_id: &str, timeout: Duration) -> Option<i32> {
        self.wait_for(
            timeout,
            &format!("executor {executor_id} to terminate"),
            |log| {
                log.terminated
                    .iter()
                    .find(|(_, id, _)| id == executor_id)
                    .map(|(_, _, status)| *status)
            },
        )
        .await
    }

    /// Waits for a heartbeat of `executor_id` satisfying `pred`.
    pub async fn heartbeat(
        &self,
        executor_id: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Heartbeat) -> bool,
    ) -> Heartbeat {
        self.wait_for(timeout, &format!("a heartbeat of {executor_id}"), |log| {
            log.heartbeats
                .iter()
                .find(|(_, id, beat)| id == executor_id && pred(beat))
                .map(|(_, _, beat)| beat.clone())
        })
        .await
    }

    /// Waits for a heartbeat of `executor_id` that arrived at `since` or later and
    /// satisfies `pred`.
    pub async fn heartbeat_since(
        &self,
        executor_id: &str,
        since: Instant,
        mut pred: impl FnMut(&Heartbeat) -> bool,
    ) -> Heartbeat {
        self.wait_for(WAIT, &format!("a new heartbeat of {executor_id}"), |log| {
            log.heartbeats
                .iter()
                .find(|(at, id, beat)| *at >= since && id == executor_id && pred(beat))
                .map(|(_, _, beat)| beat.clone())
        })
        .await
    }

    /// The last lines of every executor's sandbox `stderr` (its log), for failure
    /// messages.
    pub fn executor_logs(&self) -> String {
        let mut out = String::new();
        let all = self
            .agent
            .executors()
            .into_iter()
            .chain(self.agent.completed_executors());
        for e in all {
            let text = std::fs::read_to_string(e.sandbox.join("stderr")).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "--- executor {} log (last {} lines) ---\n{}\n",
                e.executor_id.value,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// The agent's view of the executor, if it is alive.
    pub fn executor(&self, executor_id: &str) -> Option<ExecutorSnapshot> {
        self.agent
            .executors()
            .into_iter()
            .find(|e| e.executor_id.value == executor_id)
    }

    /// The executor's process id (it is started without a shell).
    pub fn pid(&self, executor_id: &str) -> u32 {
        self.executor(executor_id)
            .and_then(|e| e.pid)
            .unwrap_or_else(|| panic!("executor {executor_id} has no pid"))
    }

    /// The executor's sandbox.
    pub fn sandbox(&self, executor_id: &str) -> PathBuf {
        self.executor(executor_id)
            .map(|e| e.sandbox)
            .or_else(|| {
                self.agent
                    .completed_executors()
                    .into_iter()
                    .find(|e| e.executor_id.value == executor_id)
                    .map(|e| e.sandbox)
            })
            .unwrap_or_else(|| panic!("executor {executor_id} is unknown"))
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// VmRSS of a process, in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS")
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`, `VmHWM`…).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How long any end-to-end step may take before a test fails (generous: debug builds on
/// a loaded 2-core machine).
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(180);

/// `f`, or a panic naming `what` after [`BOUND`].
pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {BOUND:?} waiting for {what}"))
}

/// Test logs through the test writer, filtered by `BRINE_TEST_LOG` (default `warn`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BRINE_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

// ----- the closure lane: the test plays the scheduler's side -----

/// The scheduler's end of the closure lane: a listener on `127.0.0.1` and the secret
/// executors must present.
pub struct LaneServer {
    listener: TcpListener,
    pub secret: Secret,
}

/// What an executor said in its `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneHello {
    pub framework_id: String,
    pub executor_id: String,
    pub agent_id: String,
}

impl LaneServer {
    /// Listens on an ephemeral port; `seed` makes the secret (distinct servers, distinct
    /// secrets).
    pub async fn bind(seed: u8) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the lane listener");
        let mut secret = [seed; 32];
        secret[0] = 0xb1;
        Self {
            listener,
            secret: Secret(secret),
        }
    }

    pub fn endpoint(&self) -> LaneEndpoint {
        LaneEndpoint {
            addr: self
                .listener
                .local_addr()
                .expect("listener address")
                .to_string(),
            secret: self.secret.clone(),
        }
    }

    /// A lease naming this lane.
    pub fn lease(&self) -> LeaseSpec {
        LeaseSpec {
            lane: self.endpoint(),
        }
    }

    /// The next connection, within [`WAIT`].
    pub async fn accept(&self) -> LaneConn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .unwrap_or_else(|_| panic!("no lane connection within {WAIT:?}"))
            .expect("accept a lane connection");
        let (read, write) = stream.into_split();
        LaneConn {
            read,
            write,
            decoder: FrameDecoder::default(),
            buf: vec![0; 64 << 10],
        }
    }

    /// The next connection, its `Hello` checked (this server's secret) and answered
    /// with `Welcome { ping_interval }`.
    pub async fn accept_welcomed(&self, ping_interval: Duration) -> (LaneConn, LaneHello) {
        let mut conn = self.accept().await;
        let hello = match conn.recv().await {
            Some(ToScheduler::Hello {
                secret,
                framework_id,
                executor_id,
                agent_id,
            }) => {
                assert!(secret.matches(&self.secret), "the Hello carries the secret");
                LaneHello {
                    framework_id,
                    executor_id,
                    agent_id,
                }
            }
            other => panic!("expected Hello first, got {other:?}"),
        };
        conn.send(&ToExecutor::Welcome { ping_interval }).await;
        (conn, hello)
    }
}

/// One lane connection, scheduler side.
pub struct LaneConn {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl LaneConn {
    /// The next frame from the executor (within [`WAIT`]); `None` once it closed the
    /// connection.
    pub async fn recv(&mut self) -> Option<ToScheduler> {
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("a well-formed frame") {
                return Some(frame);
            }
            let n = tokio::time::timeout(WAIT, self.read.read(&mut self.buf))
                .await
                .unwrap_or_else(|_| panic!("no lane frame within {WAIT:?}"))
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    /// The next `Done` (skipping `Progress` and `Pong`).
    pub async fn done(&mut self) -> (ClosureId, TaskOutcome) {
        loop {
            match self.recv().await {
                Some(ToScheduler::Done { closure, outcome }) => return (closure, outcome),
                Some(ToScheduler::Progress { .. } | ToScheduler::Pong { .. }) => {}
                other => panic!("expected Done, got {other:?}"),
            }
        }
    }

    /// Waits for the executor to close the connection (frames before that are dropped).
    pub async fn closed(&mut self) {
        while self.recv().await.is_some() {}
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ToExecutor) {
        self.send_all(std::slice::from_ref(frame)).await;
    }

    /// Sends frames in one write.
    pub async fn send_all(&mut self, frames: &[ToExecutor]) {
        let mut wire = Vec::new();
        for frame in frames {
            encode_frame(frame, &mut wire);
        }
        self.write
            .write_all(&wire)
            .await
            .expect("write to the lane");
    }
}

/// WebAssembly written out byte by byte, for modules too large to write (or parse)
/// as text.
pub mod wasm {
    /// An unsigned LEB128.
    pub fn leb(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// Section `id` holding `contents`.
    pub fn section(id: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        out.extend(leb(contents.len() as u64));
        out.extend(contents);
        out
    }

    /// A module of `count` empty functions (100 000 take seconds to compile, even
    /// in a release build).
    pub fn many_functions(count: u64) -> Vec<u8> {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend(section(1, &[1, 0x60, 0, 0]));
        let mut functions = leb(count);
        functions.extend(std::iter::repeat_n(0, count as usize));
        module.extend(section(3, &functions));
        let mut code = leb(count);
        for _ in 0..count {
            code.extend([2, 0, 0x0b]);
        }
        module.extend(section(10, &code));
        module
    }
}
