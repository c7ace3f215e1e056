//! Writes the seeds of the fuzz corpora, `corpus/<target>/<hash>`, each in the input
//! layout its target expects: from the real Mesos 1.12 captures
//! (`tests/fixtures/mesos-1.12`: event streams, the calls sent to master and agent) and
//! from encoded examples (every call type, and event streams whose tasks, leases and
//! messages carry Brine's own payloads).
//!
//! Usage, from proto/fuzz: `cargo run -p brine-fuzz-seed [fixture dir]` (default
//! `../../tests/fixtures/mesos-1.12`). Seeds are named as libFuzzer names corpus files
//! (the SHA-1 of the content), so running it again adds nothing twice.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use brine_proto::codec::{self, ContentType, MesosMessage};
use brine_proto::lane::LEASE_LABEL;
use brine_proto::mesos::v1::executor::{self, event};
use brine_proto::mesos::v1::scheduler::{self, call};
use brine_proto::mesos::v1::{
    AgentId, AgentInfo, CommandInfo, ContainerId, ExecutorId, ExecutorInfo, Filters, FrameworkId,
    FrameworkInfo, Label, Labels, OfferId, Resource, TaskGroupInfo, TaskId, TaskInfo, TaskState,
    TaskStatus, executor_info, framework_info, offer, task_status, value,
};
use brine_proto::payload::{
    Allocation, CacheLimits, DatasetRef, Encoding, ErrorKind, ExecutorConfig, ExecutorMessage,
    Heartbeat, LaneEndpoint, LaneUse, LeaseSpec, ModuleHash, ModuleRef, Payload, RunningTask,
    SchedulerMessage, Secret, TaskFailure, TaskOutcome, TaskSpec,
};
use brine_proto::recordio;
use bytes::Bytes;
use serde_json::Value;
use sha1::{Digest, Sha1};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn write(&mut self, target: &str, data: &[u8]) -> Result {
        let folder = self.root.join(target);
        fs::create_dir_all(&folder)?;
        let name = hex(&Sha1::digest(data));
        let path = folder.join(name);
        if !path.exists() {
            fs::write(path, data)?;
            self.written += 1;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() -> Result {
    let seed_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = seed_dir.parent().unwrap_or(seed_dir).to_path_buf();
    let fixtures = std::env::args_os().nth(1).map_or_else(
        || here.join("../../tests/fixtures/mesos-1.12"),
        PathBuf::from,
    );
    if !fixtures.join("README.md").is_file() {
        return Err(format!("fixtures not found at {}", fixtures.display()).into());
    }
    let mut corpus = Corpus {
        root: here.join("corpus"),
        written: 0,
    };
    captured_streams(&mut corpus, &fixtures)?;
    captured_calls(&mut corpus, &fixtures)?;
    payloads(&mut corpus)?;
    scheduler_calls(&mut corpus)?;
    executor_calls(&mut corpus)?;
    event_streams(&mut corpus)?;
    println!(
        "{} new seeds under {}",
        corpus.written,
        corpus.root.display()
    );
    Ok(())
}

/// Splits a RecordIO stream (the captures are well formed).
fn records(stream: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut decoder = recordio::Decoder::new();
    let records = decoder.decode(stream)?;
    decoder.finish()?;
    Ok(records.into_iter().map(|r| r.to_vec()).collect())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The captured event streams: `recordio` (the stream), `codec` (each record) and
/// `executor_events` (the executor's streams, as they came).
fn captured_streams(corpus: &mut Corpus, fixtures: &Path) -> Result {
    let mut all = Vec::new();
    files(fixtures, &mut all)?;
    for path in all {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".bin") {
            continue;
        }
        let stream = fs::read(&path)?;
        corpus.write("recordio", &[&[255, 5][..], &stream].concat())?;
        let json = u8::from(name.contains(".json."));
        let executor = name.starts_with("executor");
        // codec selector: bit 0 JSON, bits 1-2 executor Event / Call, scheduler Event / Call.
        let kind: u8 = if executor { 0 } else { 2 };
        for record in records(&stream)? {
            corpus.write("codec", &[&[(kind << 1) | json][..], &record].concat())?;
        }
        if executor {
            for checkpoint in [0, 4] {
                corpus.write(
                    "executor_events",
                    &[&[json | checkpoint, 5][..], &stream].concat(),
                )?;
            }
        }
    }
    Ok(())
}

/// A request's `Content-Type` and body in the `master_call` / `agent_call` layout.
fn request(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let head = match content_type {
        "application/x-protobuf" => vec![0],
        "application/json" => vec![1],
        "application/json; charset=utf-8" => vec![2],
        other => {
            let n = u8::try_from(other.len()).ok()?;
            [&[3, n][..], other.as_bytes()].concat()
        }
    };
    Some([&head[..], body].concat())
}

/// The calls sent to the captured master and agent: `master_call`, `agent_call`, and
/// `codec` (those that name a known content type).
fn captured_calls(corpus: &mut Corpus, fixtures: &Path) -> Result {
    let mut calls: Vec<Value> = Vec::new();
    for name in [
        "scheduler-call-responses.json",
        "executor-call-responses.json",
        "shutdown-scenario/call-responses.json",
    ] {
        if let Value::Array(list) = serde_json::from_slice(&fs::read(fixtures.join(name))?)? {
            calls.extend(list);
        }
    }
    let validation: Value =
        serde_json::from_slice(&fs::read(fixtures.join("subscribe-validation.json"))?)?;
    if let Some(Value::Array(list)) = validation.get("variants") {
        calls.extend(list.iter().cloned());
    }
    for call in &calls {
        let line = call["request_line"].as_str().unwrap_or_default();
        let (target, codec_kind) = if line.contains("/api/v1/scheduler") {
            ("master_call", 3u8)
        } else if line.contains("/api/v1/executor") {
            ("agent_call", 1u8)
        } else {
            continue;
        };
        let text = call["request_body"].as_str().unwrap_or_default();
        let body = match call["request_body_encoding"].as_str() {
            Some("base64") => base64::engine::general_purpose::STANDARD.decode(text)?,
            _ => text.as_bytes().to_vec(),
        };
        let content_type = call["request_headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| {
                h[0].as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case("content-type"))
            })
            .and_then(|h| h[1].as_str())
            .unwrap_or("");
        if let Some(input) = request(content_type, &body) {
            corpus.write(target, &input)?;
        }
        match content_type {
            "application/json" => {
                corpus.write("codec", &[&[(codec_kind << 1) | 1][..], &body].concat())?
            }
            "application/x-protobuf" => {
                corpus.write("codec", &[&[codec_kind << 1][..], &body].concat())?
            }
            _ => {}
        }
    }
    // The raw SUBSCRIBE requests: headers, a blank line, the body.
    for (name, target) in [
        ("scheduler-subscribe-request.json.http", "master_call"),
        ("scheduler-subscribe-request.protobuf.http", "master_call"),
        ("executor-subscribe-request.json.http", "agent_call"),
        ("executor-subscribe-request.protobuf.http", "agent_call"),
    ] {
        let raw = fs::read(fixtures.join(name))?;
        let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..at]);
        let content_type = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-type").then(|| v.trim())
            })
            .unwrap_or("");
        if let Some(input) = request(content_type, &raw[at + 4..]) {
            corpus.write(target, &input)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Brine's payloads

/// A module header and nothing else: small, and it names its own hash.
fn module() -> ModuleRef {
    ModuleRef::inline(b"\0asm\x01\0\0\0".to_vec())
}

fn task_spec(deadline: Option<Duration>) -> TaskSpec {
    TaskSpec {
        module: module(),
        export: "run".into(),
        args: b"[1,2,3]".to_vec(),
        encoding: Encoding::Json,
        deadline,
    }
}

fn lane() -> LaneEndpoint {
    LaneEndpoint {
        addr: "127.0.0.1:7070".into(),
        secret: Secret([7; 32]),
    }
}

fn config() -> ExecutorConfig {
    ExecutorConfig {
        running_update_delay: Duration::ZERO,
        ..ExecutorConfig::default()
    }
}

/// The `payload` target: byte 0 picks the type (TaskSpec, ExecutorConfig, TaskOutcome,
/// ExecutorMessage, SchedulerMessage), then the payload.
fn payloads(corpus: &mut Corpus) -> Result {
    let mut write =
        |selector: u8, bytes: Vec<u8>| corpus.write("payload", &[&[selector][..], &bytes].concat());
    write(0, task_spec(None).encode())?;
    write(
        0,
        TaskSpec {
            module: ModuleRef::by_hash(ModuleHash([1; 32])),
            encoding: Encoding::Postcard,
            ..task_spec(Some(Duration::from_millis(1500)))
        }
        .encode(),
    )?;
    write(1, ExecutorConfig::default().encode())?;
    write(
        1,
        ExecutorConfig {
            idle_timeout: None,
            dataset: Some(DatasetRef {
                path: "data/words.txt".into(),
            }),
            cache: CacheLimits {
                max_modules_in_memory: 1,
                max_disk_bytes: 0,
            },
            module_cache_dir: Some("/var/cache/brine".into()),
            default_task_deadline: Some(Duration::from_secs(30)),
            ..config()
        }
        .encode(),
    )?;
    write(
        2,
        TaskOutcome::Success {
            result: b"6".to_vec(),
        }
        .encode(),
    )?;
    write(
        2,
        TaskOutcome::Failure(TaskFailure::new(ErrorKind::GuestPanic, "boom")).encode(),
    )?;
    write(
        3,
        ExecutorMessage::Heartbeat(Heartbeat {
            seq: 3,
            sent_at_unix_ms: 1_700_000_000_000,
            running: vec![RunningTask {
                task_id: "t1".into(),
                progress: Some(0.5),
                elapsed_ms: 12,
            }],
            cached_modules: vec![module().hash],
            allocation: Allocation {
                cpus: 1.1,
                mem_mb: 160.0,
                disk_mb: 0.0,
                tasks: 1,
            },
            lane: LaneUse {
                leases: 1,
                running: 0,
                queued: 0,
                connected: true,
            },
        })
        .encode(),
    )?;
    for message in scheduler_messages() {
        write(4, message.encode())?;
    }
    Ok(())
}

fn scheduler_messages() -> Vec<SchedulerMessage> {
    vec![
        SchedulerMessage::Prefetch { module: module() },
        SchedulerMessage::Evict {
            hash: module().hash,
        },
        SchedulerMessage::Drain,
        SchedulerMessage::Lane(lane()),
    ]
}

// ---------------------------------------------------------------- scheduler calls

fn framework_id() -> FrameworkId {
    FrameworkId {
        value: "fuzz-framework".into(),
    }
}

fn agent_id() -> AgentId {
    AgentId {
        value: "fuzz-agent-S0".into(),
    }
}

fn ports(begin: u64, end: u64) -> Resource {
    Resource {
        name: "ports".into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range { begin, end }],
        }),
        ..Default::default()
    }
}

fn executor_info() -> ExecutorInfo {
    ExecutorInfo {
        executor_id: ExecutorId {
            value: "fuzz-executor".into(),
        },
        data: Some(config().encode().into()),
        resources: vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)],
        command: Some(CommandInfo {
            value: Some("./brine-executor".into()),
            shell: Some(false),
            ..Default::default()
        }),
        framework_id: Some(framework_id()),
        r#type: Some(executor_info::Type::Custom as i32),
        ..Default::default()
    }
}

fn task(id: &str, data: Vec<u8>, lease: bool) -> TaskInfo {
    let (key, value) = LEASE_LABEL;
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: agent_id(),
        resources: vec![Resource::scalar("cpus", 0.5), Resource::scalar("mem", 64.0)],
        executor: Some(executor_info()),
        data: Some(data.into()),
        labels: lease.then(|| Labels {
            labels: vec![Label {
                key: key.into(),
                value: Some(value.into()),
            }],
        }),
        ..Default::default()
    }
}

fn framework_info() -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: "brine".into(),
        id: Some(framework_id()),
        failover_timeout: Some(60.0),
        checkpoint: Some(true),
        roles: vec!["*".into(), "dev/batch".into()],
        capabilities: vec![framework_info::Capability {
            r#type: Some(framework_info::capability::Type::MultiRole as i32),
        }],
        ..Default::default()
    }
}

fn scheduler_call(kind: call::Type, fill: impl FnOnce(&mut scheduler::Call)) -> scheduler::Call {
    let mut call = scheduler::Call {
        framework_id: Some(framework_id()),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    fill(&mut call);
    call
}

/// Writes `message` for `target` as protobuf and as JSON (selectors 0 and 1).
fn both<M: MesosMessage>(corpus: &mut Corpus, target: &str, message: &M) -> Result {
    corpus.write(
        target,
        &[&[0][..], &codec::encode(ContentType::Protobuf, message)?].concat(),
    )?;
    corpus.write(
        target,
        &[&[1][..], &codec::encode(ContentType::Json, message)?].concat(),
    )
}

/// Every scheduler call type, well formed (`master_call`).
fn scheduler_calls(corpus: &mut Corpus) -> Result {
    let offer_id = || OfferId {
        value: "fuzz-O1".into(),
    };
    let uuid = Bytes::from_static(&[0x5a; 16]);
    let mut subscribe = scheduler_call(call::Type::Subscribe, |c| {
        c.subscribe = Some(call::Subscribe {
            framework_info: framework_info(),
            suppressed_roles: vec!["dev/batch".into()],
        });
    });
    both(corpus, "master_call", &subscribe)?;
    // A first subscription: no id anywhere.
    subscribe.framework_id = None;
    if let Some(s) = subscribe.subscribe.as_mut() {
        s.framework_info.id = None;
    }
    both(corpus, "master_call", &subscribe)?;
    let launch = offer::Operation {
        r#type: Some(offer::operation::Type::Launch as i32),
        launch: Some(offer::operation::Launch {
            task_infos: vec![
                task("t1", task_spec(None).encode(), false),
                TaskInfo {
                    resources: vec![Resource::scalar("cpus", 0.25), ports(31000, 31004)],
                    ..task("l1", LeaseSpec { lane: lane() }.encode(), true)
                },
            ],
        }),
        ..Default::default()
    };
    let launch_group = offer::Operation {
        r#type: Some(offer::operation::Type::LaunchGroup as i32),
        launch_group: Some(offer::operation::LaunchGroup {
            executor: executor_info(),
            task_group: TaskGroupInfo {
                tasks: vec![TaskInfo {
                    executor: None,
                    command: Some(CommandInfo::default()),
                    ..task("g1", task_spec(None).encode(), false)
                }],
            },
        }),
        ..Default::default()
    };
    let calls = [
        scheduler_call(call::Type::Accept, |c| {
            c.accept = Some(call::Accept {
                offer_ids: vec![offer_id()],
                operations: vec![launch, launch_group],
                filters: Some(Filters {
                    refuse_seconds: Some(1.0),
                }),
            });
        }),
        scheduler_call(call::Type::Decline, |c| {
            c.decline = Some(call::Decline {
                offer_ids: vec![offer_id()],
                filters: None,
            });
        }),
        scheduler_call(call::Type::Revive, |c| {
            c.revive = Some(call::Revive {
                roles: vec!["*".into()],
            });
        }),
        scheduler_call(call::Type::Suppress, |c| {
            c.suppress = Some(call::Suppress { roles: Vec::new() });
        }),
        scheduler_call(call::Type::Kill, |c| {
            c.kill = Some(call::Kill {
                task_id: TaskId { value: "t1".into() },
                agent_id: Some(agent_id()),
                kill_policy: None,
            });
        }),
        scheduler_call(call::Type::Shutdown, |c| {
            c.shutdown = Some(call::Shutdown {
                executor_id: executor_info().executor_id,
                agent_id: agent_id(),
            });
        }),
        scheduler_call(call::Type::Acknowledge, |c| {
            c.acknowledge = Some(call::Acknowledge {
                agent_id: agent_id(),
                task_id: TaskId { value: "t1".into() },
                uuid: uuid.clone(),
            });
        }),
        scheduler_call(call::Type::Reconcile, |c| {
            c.reconcile = Some(call::Reconcile {
                tasks: vec![call::reconcile::Task {
                    task_id: TaskId { value: "t1".into() },
                    agent_id: Some(agent_id()),
                }],
            });
        }),
        scheduler_call(call::Type::Message, |c| {
            c.message = Some(call::Message {
                agent_id: agent_id(),
                executor_id: executor_info().executor_id,
                data: SchedulerMessage::Drain.encode().into(),
            });
        }),
        scheduler_call(call::Type::Teardown, |_| {}),
        scheduler_call(call::Type::UpdateFramework, |c| {
            c.update_framework = Some(call::UpdateFramework {
                framework_info: framework_info(),
                suppressed_roles: Vec::new(),
            });
        }),
        scheduler_call(call::Type::Request, |c| {
            c.request = Some(call::Request::default());
        }),
    ];
    for call in &calls {
        both(corpus, "master_call", call)?;
    }
    // An odd but accepted Content-Type spelling.
    let body = codec::encode(ContentType::Json, &calls[1])?;
    if let Some(input) = request("application/json;charset=UTF-8", &body) {
        corpus.write("master_call", &input)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- executor calls

fn executor_call(
    kind: executor::call::Type,
    fill: impl FnOnce(&mut executor::Call),
) -> executor::Call {
    let mut call = executor::Call {
        executor_id: executor_info().executor_id,
        framework_id: framework_id(),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    fill(&mut call);
    call
}

fn update(task_id: &str, state: TaskState) -> executor::call::Update {
    executor::call::Update {
        status: TaskStatus {
            task_id: TaskId {
                value: task_id.into(),
            },
            state: state as i32,
            data: Some(
                TaskOutcome::Success {
                    result: b"6".to_vec(),
                }
                .encode()
                .into(),
            ),
            agent_id: Some(agent_id()),
            timestamp: Some(1_700_000_000.5),
            executor_id: Some(executor_info().executor_id),
            source: Some(task_status::Source::Executor as i32),
            uuid: Some(Bytes::from_static(&[0xa5; 16])),
            ..Default::default()
        },
    }
}

/// Every executor call type, well formed (`agent_call`).
fn executor_calls(corpus: &mut Corpus) -> Result {
    use executor::call::Type;
    let calls = [
        executor_call(Type::Subscribe, |c| {
            c.subscribe = Some(executor::call::Subscribe {
                unacknowledged_tasks: vec![task("t1", task_spec(None).encode(), false)],
                unacknowledged_updates: vec![update("t0", TaskState::TaskFinished)],
            });
        }),
        executor_call(Type::Update, |c| {
            c.update = Some(update("t1", TaskState::TaskRunning))
        }),
        executor_call(Type::Message, |c| {
            c.message = Some(executor::call::Message {
                data: b"heartbeat".to_vec().into(),
            });
        }),
        executor_call(Type::Heartbeat, |_| {}),
    ];
    for call in &calls {
        both(corpus, "agent_call", call)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- executor events

fn event(kind: event::Type, fill: impl FnOnce(&mut executor::Event)) -> executor::Event {
    let mut event = executor::Event {
        r#type: Some(kind as i32),
        ..Default::default()
    };
    fill(&mut event);
    event
}

fn subscribed(config: Option<Vec<u8>>) -> executor::Event {
    event(event::Type::Subscribed, |e| {
        e.subscribed = Some(event::Subscribed {
            executor_info: ExecutorInfo {
                data: config.map(Bytes::from),
                ..executor_info()
            },
            framework_info: framework_info(),
            agent_info: AgentInfo {
                hostname: "127.0.0.1".into(),
                id: Some(agent_id()),
                port: Some(5051),
                ..Default::default()
            },
            container_id: Some(ContainerId {
                value: "fuzz-container".into(),
                parent: None,
            }),
        });
    })
}

fn launch(task: TaskInfo) -> executor::Event {
    event(event::Type::Launch, |e| {
        e.launch = Some(event::Launch { task })
    })
}

fn kill(id: &str) -> executor::Event {
    event(event::Type::Kill, |e| {
        e.kill = Some(event::Kill {
            task_id: TaskId { value: id.into() },
            kill_policy: None,
        });
    })
}

/// An ACKNOWLEDGED whose one-byte uuid names the n-th unacknowledged update (see the
/// target).
fn acknowledged(n: u8) -> executor::Event {
    event(event::Type::Acknowledged, |e| {
        e.acknowledged = Some(event::Acknowledged {
            task_id: TaskId { value: "t1".into() },
            uuid: vec![n].into(),
        });
    })
}

fn message(data: Vec<u8>) -> executor::Event {
    event(event::Type::Message, |e| {
        e.message = Some(event::Message { data: data.into() });
    })
}

fn simple(kind: event::Type) -> executor::Event {
    event(kind, |_| {})
}

/// Scripted event streams (`executor_events`), each written in both content types and
/// both framings.
fn event_streams(corpus: &mut Corpus) -> Result {
    let config = config().encode();
    let spec = task_spec(None).encode();
    let lease = LeaseSpec { lane: lane() }.encode();
    let scripts: Vec<Vec<executor::Event>> = vec![
        // A day in the life: tasks, a lease, a group, messages, acknowledgements.
        vec![
            subscribed(Some(config.clone())),
            launch(task("t1", spec.clone(), false)),
            launch(task("l1", lease.clone(), true)),
            event(event::Type::LaunchGroup, |e| {
                e.launch_group = Some(event::LaunchGroup {
                    task_group: TaskGroupInfo {
                        tasks: vec![
                            task("t2", spec.clone(), false),
                            task("t3", spec.clone(), false),
                        ],
                    },
                });
            }),
            simple(event::Type::Heartbeat),
            acknowledged(0),
            kill("t2"),
            message(SchedulerMessage::Lane(lane()).encode()),
            message(
                SchedulerMessage::Evict {
                    hash: module().hash,
                }
                .encode(),
            ),
            message(SchedulerMessage::Prefetch { module: module() }.encode()),
            simple(event::Type::Heartbeat),
            simple(event::Type::Heartbeat),
            kill("l1"),
            acknowledged(1),
            acknowledged(0),
            simple(event::Type::Shutdown),
        ],
        // Refusals: bad task data, a drain, a launch while draining.
        vec![
            subscribed(Some(config.clone())),
            launch(task("bad", b"\x01garbage".to_vec(), false)),
            launch(task("empty", Vec::new(), false)),
            launch(task("lease-bad", b"\x01".to_vec(), true)),
            launch(task("t1", spec.clone(), false)),
            launch(task("t1", spec.clone(), false)),
            message(b"not a message".to_vec()),
            message(SchedulerMessage::Drain.encode()),
            launch(task("late", spec.clone(), false)),
            kill("unknown"),
            simple(event::Type::Heartbeat),
            event(event::Type::Error, |e| {
                e.error = Some(event::Error {
                    message: "agent error".into(),
                });
            }),
        ],
        // Before SUBSCRIBED, then a configuration the executor refuses.
        vec![
            launch(task("early", spec.clone(), false)),
            message(SchedulerMessage::Drain.encode()),
            subscribed(None),
        ],
        vec![
            subscribed(Some(b"\x01\x00".to_vec())),
            launch(task("t1", spec.clone(), false)),
        ],
        // Shutdown first, then more launches and kills.
        vec![
            subscribed(Some(config.clone())),
            launch(task("l1", lease.clone(), true)),
            launch(task("t1", spec.clone(), false)),
            simple(event::Type::Shutdown),
            launch(task("t2", spec.clone(), false)),
            kill("t1"),
            acknowledged(0),
            acknowledged(0),
            acknowledged(0),
        ],
        // A lease released (no task running), SUBSCRIBED again.
        vec![
            subscribed(Some(config.clone())),
            launch(task("l1", lease.clone(), true)),
            simple(event::Type::Heartbeat),
            subscribed(Some(config)),
            acknowledged(1),
            acknowledged(0),
        ],
    ];
    for script in &scripts {
        for (json, content_type) in [(0u8, ContentType::Protobuf), (1, ContentType::Json)] {
            let encoded: Vec<Vec<u8>> = script
                .iter()
                .map(|e| codec::encode(content_type, e))
                .collect::<std::result::Result<_, _>>()?;
            let recordio: Vec<u8> = encoded.iter().flat_map(|r| recordio::encode(r)).collect();
            let mut framed = Vec::new();
            for record in &encoded {
                let n = u16::try_from(record.len())?;
                framed.extend_from_slice(&n.to_le_bytes());
                framed.extend_from_slice(record);
            }
            corpus.write("executor_events", &[&[json, 3][..], &recordio].concat())?;
            corpus.write("executor_events", &[&[json | 4, 0][..], &recordio].concat())?;
            corpus.write("executor_events", &[&[json | 2, 0][..], &framed].concat())?;
        }
    }
    Ok(())
}
