//! Helpers for the agent tests: an agent on a temp dir, a hand-played executor over
//! real HTTP, and bounded waits for events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod scheduler;

use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_local::agent::{Agent, AgentConfig, AgentEvent, CgroupsMode};
use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::{Call, Event, call};
use brine_proto::mesos::v1::{
    CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Resource, TaskId, TaskInfo,
    TaskState, TaskStatus, task_status,
};
use brine_proto::recordio;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn fixtures() -> PathBuf {
    std::env::var_os("BRINE_MESOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mesos-1.12")
        })
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn config(dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(dir.join("work"));
    config.cgroups = CgroupsMode::Off;
    config
}

pub fn framework(id: &str, checkpoint: bool) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: "agent-test".into(),
        id: Some(FrameworkId { value: id.into() }),
        checkpoint: Some(checkpoint),
        roles: vec!["*".into()],
        ..Default::default()
    }
}

pub fn executor_info(id: &str, command: &str) -> ExecutorInfo {
    ExecutorInfo {
        executor_id: ExecutorId { value: id.into() },
        resources: vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)],
        command: Some(CommandInfo {
            value: Some(command.into()),
            shell: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn task(id: &str, cpus: f64, mem: f64) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: vec![Resource::scalar("cpus", cpus), Resource::scalar("mem", mem)],
        data: Some(Bytes::from_static(b"task data")),
        ..Default::default()
    }
}

/// Waits (bounded) for the next agent event matching `pred`, skipping others.
pub async fn next_event(
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    mut pred: impl FnMut(&AgentEvent) -> bool,
) -> AgentEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("agent events channel closed");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .expect("timed out waiting for an agent event")
}

pub fn status_of(event: &AgentEvent) -> Option<&TaskStatus> {
    match event {
        AgentEvent::StatusUpdate { status, .. } => Some(status),
        _ => None,
    }
}

/// Polls `cond` every 20 ms until it holds, for at most [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An agent on `dir` with [`config`] adjusted by `tweak`, and its event stream.
pub async fn start_agent(
    dir: &Path,
    tweak: impl FnOnce(&mut AgentConfig),
) -> (Agent, mpsc::UnboundedReceiver<AgentEvent>) {
    let mut config = config(dir);
    tweak(&mut config);
    let mut agent = Agent::start(config).await.unwrap();
    let events = agent.take_events().unwrap();
    (agent, events)
}

/// Launches task `t1` (cpus 0.1, mem 16) of framework `fw` (no checkpointing) on a new
/// executor `executor` that runs `command`.
pub async fn launch_one(agent: &Agent, executor: &str, command: &str) {
    agent
        .launch(
            framework("fw", false),
            executor_info(executor, command),
            task("t1", 0.1, 16.0),
        )
        .await
        .unwrap();
}

/// Waits until the first executor's process is running (has a pid).
pub async fn wait_for_executor(agent: &Agent) {
    wait_until("the executor runs", || {
        agent.executors().first().is_some_and(|e| e.pid.is_some())
    })
    .await;
}

/// An HTTP/1.1 client connection to `addr` (an agent or a master), its connection
/// task spawned.
pub async fn connect(
    addr: impl tokio::net::ToSocketAddrs,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// One HTTP/1.1 request on a fresh connection: (status, headers, body).
pub async fn request(
    agent: &Agent,
    method: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> (u16, http::HeaderMap, Bytes) {
    let mut sender = connect(agent.endpoint()).await;
    let mut req = http::Request::builder()
        .method(method)
        .uri("/api/v1/executor")
        .header("Host", agent.endpoint().to_string());
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let response = sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

/// Sends a call as protobuf; returns the status code.
pub async fn post_call(agent: &Agent, call: &Call) -> u16 {
    let body = codec::encode(ContentType::Protobuf, call).unwrap();
    let (status, _, _) = request(
        agent,
        "POST",
        &[("Content-Type".into(), "application/x-protobuf".into())],
        body.into(),
    )
    .await;
    status
}

/// A hand-played executor's SUBSCRIBE stream.
pub struct Stream {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Completes when the body ends (`true` cleanly, `false` on a cut connection).
    pub ended: tokio::sync::oneshot::Receiver<bool>,
    /// Sizes of each chunk's data, and whether each held exactly one record.
    pub one_record_per_chunk: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub async fn subscribe(agent: &Agent, call: &Call, accept: ContentType) -> Stream {
    let mut sender = connect(agent.endpoint()).await;
    let req = http::Request::post("/api/v1/executor")
        .header("Host", agent.endpoint().to_string())
        .header("Content-Type", "application/json")
        .header("Accept", accept.as_str())
        .body(Full::new(Bytes::from(
            codec::encode(ContentType::Json, call).unwrap(),
        )))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let (end_tx, end_rx) = tokio::sync::oneshot::channel();
    let one = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let one2 = one.clone();
    let mut body = response.into_body();
    tokio::spawn(async move {
        let mut decoder = recordio::Decoder::new();
        let clean = loop {
            match body.frame().await {
                None => break true,
                Some(Err(_)) => break false,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let records = decoder.decode(&data).unwrap();
                        if records.len() != 1 || decoder.buffered_len() != 0 {
                            one2.store(false, std::sync::atomic::Ordering::SeqCst);
                        }
                        for record in records {
                            let _ = tx.send(codec::decode::<Event>(accept, &record).unwrap());
                        }
                    }
                }
            }
        };
        let _ = end_tx.send(clean);
    });
    Stream {
        status,
        headers,
        events: rx,
        ended: end_rx,
        one_record_per_chunk: one,
    }
}

impl Stream {
    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("timed out waiting for an executor event")
            .expect("executor stream ended")
    }
}

pub fn subscribe_call(fid: &str, eid: &str) -> Call {
    Call {
        executor_id: ExecutorId { value: eid.into() },
        framework_id: FrameworkId { value: fid.into() },
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe::default()),
        ..Default::default()
    }
}

pub fn update_call(fid: &str, eid: &str, task: &str, state: TaskState) -> (Call, Bytes) {
    let uuid = Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let call = Call {
        executor_id: ExecutorId { value: eid.into() },
        framework_id: FrameworkId { value: fid.into() },
        r#type: Some(call::Type::Update as i32),
        update: Some(call::Update {
            status: TaskStatus {
                task_id: TaskId { value: task.into() },
                state: state as i32,
                source: Some(task_status::Source::Executor as i32),
                executor_id: Some(ExecutorId { value: eid.into() }),
                timestamp: Some(1.0),
                uuid: Some(uuid.clone()),
                ..Default::default()
            },
        }),
        ..Default::default()
    };
    (call, uuid)
}
