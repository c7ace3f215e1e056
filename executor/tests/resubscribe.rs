//! The real binary against a scripted fake agent: what SUBSCRIBE carries after a
//! disconnection (unacknowledged updates and tasks, exactly as the protocol requires),
//! disconnection without checkpointing, and an `ExecutorConfig` whose durations no clock
//! can hold.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::{Call, Event, call, event};
use brine_proto::mesos::v1::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, TaskId, TaskInfo,
    TaskState,
};
use brine_proto::payload::{Encoding, ExecutorConfig, ModuleRef, Payload, TaskSpec};
use brine_proto::recordio;
use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Either, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

type Body = Either<Channel<Bytes, std::io::Error>, Empty<Bytes>>;

/// What the fake agent saw: each call, and for SUBSCRIBE the stream to write events to.
enum Seen {
    Subscribe(Box<Call>, Sender<Bytes, std::io::Error>),
    Other(Box<Call>),
}

async fn fake_agent() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let call: Call = codec::decode(ContentType::Protobuf, &body).unwrap();
                        let response = if call.r#type() == call::Type::Subscribe {
                            let (sender, channel) = Channel::new(16);
                            let _ = tx.send(Seen::Subscribe(Box::new(call), sender));
                            Response::builder()
                                .status(StatusCode::OK)
                                .header("Content-Type", "application/x-protobuf")
                                .body(Either::Left(channel))
                        } else {
                            let _ = tx.send(Seen::Other(Box::new(call)));
                            Response::builder()
                                .status(StatusCode::ACCEPTED)
                                .body(Either::Right(Empty::new()))
                        };
                        Ok::<Response<Body>, Infallible>(response.unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn spawn_executor(
    agent: std::net::SocketAddr,
    sandbox: &Path,
    checkpoint: bool,
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_brine-executor"));
    cmd.env_clear()
        .env("MESOS_AGENT_ENDPOINT", agent.to_string())
        .env("MESOS_FRAMEWORK_ID", "fw")
        .env("MESOS_EXECUTOR_ID", "ex")
        .env("MESOS_SANDBOX", sandbox)
        .env("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "3secs")
        .env("MESOS_CHECKPOINT", if checkpoint { "1" } else { "0" })
        .env("MESOS_RECOVERY_TIMEOUT", "10secs")
        .env("MESOS_SUBSCRIPTION_BACKOFF_MAX", "100ms")
        .env("BRINE_LOG", "brine_executor=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd.spawn().unwrap()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a call")
        .expect("fake agent gone")
}

async fn next_subscribe(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> (Call, Sender<Bytes, std::io::Error>) {
    loop {
        match next(rx).await {
            Seen::Subscribe(call, stream) => return (*call, stream),
            Seen::Other(_) => continue, // heartbeats
        }
    }
}

async fn next_update(rx: &mut mpsc::UnboundedReceiver<Seen>) -> call::Update {
    loop {
        if let Seen::Other(call) = next(rx).await
            && call.r#type() == call::Type::Update
        {
            return call.update.clone().unwrap();
        }
    }
}

async fn send(stream: &mut Sender<Bytes, std::io::Error>, event: &Event) {
    let bytes = codec::encode(ContentType::Protobuf, event).unwrap();
    stream.send_data(recordio::encode(&bytes)).await.unwrap();
}

fn subscribed() -> Event {
    let config = ExecutorConfig {
        heartbeat_interval: Duration::from_secs(60),
        ..ExecutorConfig::default()
    };
    Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            executor_info: ExecutorInfo {
                executor_id: ExecutorId { value: "ex".into() },
                data: Some(config.encode().into()),
                ..Default::default()
            },
            framework_info: FrameworkInfo {
                id: Some(FrameworkId { value: "fw".into() }),
                ..Default::default()
            },
            agent_info: AgentInfo {
                hostname: "localhost".into(),
                id: Some(AgentId { value: "ag".into() }),
                ..Default::default()
            },
            container_id: None,
        }),
        ..Default::default()
    }
}

fn launch_garbage(id: &str) -> (Event, TaskInfo) {
    launch(id, Bytes::from_static(b"not a task spec"))
}

/// LAUNCH of task `id` on agent `ag` with `data`; the event and the task.
fn launch(id: &str, data: Bytes) -> (Event, TaskInfo) {
    let task = TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: AgentId { value: "ag".into() },
        data: Some(data),
        ..Default::default()
    };
    let event = Event {
        r#type: Some(event::Type::Launch as i32),
        launch: Some(event::Launch { task: task.clone() }),
        ..Default::default()
    };
    (event, task)
}

/// The agent's ACKNOWLEDGED for `update`.
fn acknowledged(update: &call::Update) -> Event {
    Event {
        r#type: Some(event::Type::Acknowledged as i32),
        acknowledged: Some(event::Acknowledged {
            task_id: update.status.task_id.clone(),
            uuid: update.status.uuid.clone().unwrap(),
        }),
        ..Default::default()
    }
}

fn shutdown() -> Event {
    Event {
        r#type: Some(event::Type::Shutdown as i32),
        ..Default::default()
    }
}

async fn exit_code(child: &mut tokio::process::Child) -> Option<i32> {
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("executor did not exit")
        .unwrap()
        .code()
}

#[tokio::test]
async fn resubscription_carries_exactly_the_unacknowledged_updates_and_tasks() {
    let (addr, mut rx) = fake_agent().await;
    let sandbox = tempfile::tempdir().unwrap();
    let mut child = spawn_executor(addr, sandbox.path(), true);

    let (first, mut stream) = next_subscribe(&mut rx).await;
    let sub = first.subscribe.clone().unwrap();
    assert!(sub.unacknowledged_tasks.is_empty() && sub.unacknowledged_updates.is_empty());
    assert_eq!(first.executor_id.value, "ex");
    assert_eq!(first.framework_id.value, "fw");

    send(&mut stream, &subscribed()).await;
    let (launch, task) = launch_garbage("t1");
    send(&mut stream, &launch).await;
    let update = next_update(&mut rx).await;
    assert_eq!(update.status.state(), TaskState::TaskError);
    assert_eq!(update.status.uuid.as_ref().map(Bytes::len), Some(16));
    assert_eq!(
        update.status.agent_id.as_ref().map(|a| a.value.as_str()),
        Some("ag")
    );

    // Cut the stream without acknowledging: both lists come back in SUBSCRIBE.
    stream.abort(std::io::Error::other("connection cut"));
    let (second, mut stream) = next_subscribe(&mut rx).await;
    let sub = second.subscribe.clone().unwrap();
    assert_eq!(sub.unacknowledged_updates, vec![update.clone()]);
    assert_eq!(sub.unacknowledged_tasks, vec![task]);

    // Acknowledge: the update and the (terminal) task are settled.
    send(&mut stream, &subscribed()).await;
    send(&mut stream, &acknowledged(&update)).await;
    // A second task after the acknowledgement, so we know it was processed.
    let (launch, _) = launch_garbage("t2");
    send(&mut stream, &launch).await;
    let update2 = next_update(&mut rx).await;
    assert_eq!(update2.status.task_id.value, "t2");
    stream.abort(std::io::Error::other("connection cut"));
    let (third, mut stream) = next_subscribe(&mut rx).await;
    let sub = third.subscribe.clone().unwrap();
    assert_eq!(
        sub.unacknowledged_updates,
        vec![update2.clone()],
        "t1's is gone"
    );
    assert_eq!(
        sub.unacknowledged_tasks
            .iter()
            .map(|t| t.task_id.value.as_str())
            .collect::<Vec<_>>(),
        ["t2"]
    );

    // SHUTDOWN with nothing running: it waits for t2's acknowledgement, then exits 0.
    send(&mut stream, &subscribed()).await;
    send(&mut stream, &shutdown()).await;
    send(&mut stream, &acknowledged(&update2)).await;
    assert_eq!(exit_code(&mut child).await, Some(0));
}

#[tokio::test]
async fn without_checkpointing_a_cut_stream_ends_the_executor() {
    let (addr, mut rx) = fake_agent().await;
    let sandbox = tempfile::tempdir().unwrap();
    let mut child = spawn_executor(addr, sandbox.path(), false);
    let (_, mut stream) = next_subscribe(&mut rx).await;
    send(&mut stream, &subscribed()).await;
    stream.abort(std::io::Error::other("connection cut"));
    assert_eq!(exit_code(&mut child).await, Some(0));
    // It never tried again.
    while let Ok(seen) = rx.try_recv() {
        assert!(!matches!(seen, Seen::Subscribe(..)), "re-subscribed");
    }
}

/// Regression (found while writing the `executor_events` fuzz target): the scheduler's
/// `ExecutorConfig` may carry any duration, and a `heartbeat_interval` or a
/// `running_update_delay` too long to add to a clock reading panicked the event loop
/// (`Instant + Duration` overflow) at the first heartbeat and at the first task started.
/// Such a duration now means "never".
#[tokio::test]
async fn durations_too_long_for_the_clock_mean_never() {
    let (addr, mut rx) = fake_agent().await;
    let sandbox = tempfile::tempdir().unwrap();
    let mut child = spawn_executor(addr, sandbox.path(), false);
    let (_, mut stream) = next_subscribe(&mut rx).await;
    let config = ExecutorConfig {
        heartbeat_interval: Duration::MAX,
        running_update_delay: Duration::MAX,
        ..ExecutorConfig::default()
    };
    let mut subscribed = subscribed();
    if let Some(s) = subscribed.subscribed.as_mut() {
        s.executor_info.data = Some(config.encode().into());
    }
    send(&mut stream, &subscribed).await;
    // A task that gets as far as a worker (where its module, not wasm, fails).
    let spec = TaskSpec {
        module: ModuleRef::inline(b"not wasm".to_vec()),
        export: "run".into(),
        args: Vec::new(),
        encoding: Encoding::Json,
        deadline: None,
    };
    let (launch, _) = launch("t1", spec.encode().into());
    send(&mut stream, &launch).await;
    // Its TASK_RUNNING never falls due: the first update is the terminal one.
    let update = next_update(&mut rx).await;
    assert_eq!(update.status.state(), TaskState::TaskFailed);
    assert!(child.try_wait().unwrap().is_none(), "the executor exited");

    send(&mut stream, &shutdown()).await;
    send(&mut stream, &acknowledged(&update)).await;
    assert_eq!(exit_code(&mut child).await, Some(0));
}
