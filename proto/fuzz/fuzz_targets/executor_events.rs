//! What the executor does with the bytes its agent sends it: the SUBSCRIBE response's
//! RecordIO stream of `mesos.v1.executor.Event`s, decoded as the executor's event stream
//! decodes it (`brine_executor::agent::EventStream`: a bad record is skipped, a broken
//! frame ends the stream), then each event handled as the executor's event loop handles
//! it — SUBSCRIBED, LAUNCH / LAUNCH_GROUP with arbitrary `TaskInfo`s and `data`, KILL,
//! ACKNOWLEDGED, MESSAGE with arbitrary `data`, SHUTDOWN.
//!
//! The event loop itself (`brine_executor::executor`) cannot run without I/O: its
//! SUBSCRIBED builds a wasmtime runtime, tasks run on the worker pool, leases connect to
//! the lane. So this target runs the loop's pure parts, in the loop's order, with the
//! executor's own types: the `ExecutorConfig` check (`parse_config`), the task table
//! (`TaskTable`: allocation, concurrency, acknowledgements), the work queue, the leases
//! (`Leases`), the lane endpoint (`LaneLink::set_endpoint`, never connected), the
//! unacknowledged updates (`Unacknowledged`), heartbeats, terminal statuses, task
//! directory names, and `TaskSpec` / `LeaseSpec` / `SchedulerMessage` decoding. What
//! runs on the worker pool is left out: a HEARTBEAT event (which the executor ignores)
//! stands for "the oldest running task ends" here (or, with none running, "the oldest
//! lease is released"), and a KILL ends a running task at once.
//!
//! Checks: nothing panics; after every event the task table, queue and leases agree
//! (every queued task is in the queue, every running lease is held, the allocation is
//! the executor's own plus its active tasks', never NaN); every status update the
//! executor sends, and the SUBSCRIBE it would re-send, is accepted by the local agent's
//! `POST /api/v1/executor` (`brine_local::agent::check_executor_call`); heartbeats
//! decode; task directory names are safe and distinct for distinct task ids.
//!
//! Input: byte 0: bit 0 = the stream's content type (0 protobuf, which the executor asks
//! for; 1 JSON), bit 1 = framing (0 the agent's RecordIO stream, cut into chunks by the
//! pattern in byte 1; 1 records each behind a 2-byte little-endian length, easier to
//! mutate), bit 2 = whether the framework checkpoints (a broken stream re-subscribes
//! rather than shutting down). Byte 1: the chunk pattern. The rest: the stream.
//! A one-byte ACKNOWLEDGED uuid names the n-th unacknowledged update (the executor's
//! uuids are random: the fuzzer could not guess them).

#![no_main]

use std::collections::HashMap;
use std::time::Instant;

use brine_executor::executor::{parse_config, reason_for, terminal_status};
use brine_executor::heartbeat::Heartbeats;
use brine_executor::lane::LaneLink;
use brine_executor::leases::{End, Leases};
use brine_executor::pool::{Queued, WorkQueue};
use brine_executor::runtime::RuntimeConfig;
use brine_executor::tasks::{Phase, Resources, TaskTable, sanitize_task_id};
use brine_executor::updates::{StatusSpec, Unacknowledged};
use brine_local::agent::check_executor_call;
use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::{Call, Event, call, event};
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::mesos::v1::{ExecutorId, FrameworkId, TaskInfo, TaskState};
use brine_proto::payload::{
    ErrorKind, ExecutorConfig, ExecutorMessage, LeaseSpec, Payload, SchedulerMessage, TaskFailure,
    TaskOutcome, TaskSpec,
};
use brine_proto::recordio::Decoder;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

const FRAMEWORK_ID: &str = "fuzz-framework";
const EXECUTOR_ID: &str = "fuzz-executor";

/// `outcome.rs`'s `failure_status`.
fn failure_status(task_id: &str, state: TaskState, failure: TaskFailure) -> StatusSpec {
    let mut s = StatusSpec::new(task_id, state);
    s.message = Some(failure.to_string());
    s.reason = reason_for(failure.kind);
    s.data = Some(TaskOutcome::Failure(failure).encode());
    s
}

fn call(kind: call::Type, fill: impl FnOnce(&mut Call)) -> Call {
    let mut call = Call {
        executor_id: ExecutorId {
            value: EXECUTOR_ID.to_owned(),
        },
        framework_id: FrameworkId {
            value: FRAMEWORK_ID.to_owned(),
        },
        r#type: Some(kind as i32),
        ..Default::default()
    };
    fill(&mut call);
    call
}

/// The agent's answer to a call the executor sends (protobuf, as the executor sends it).
fn agent_accepts(call: &Call) -> Result<(), String> {
    let body = codec::encode(ContentType::Protobuf, call).expect("calls encode");
    check_executor_call(b"application/x-protobuf", &body)
        .map(|_| ())
        .map_err(|(status, text)| format!("{status}: {text}"))
}

/// The executor's state that events change, without its I/O.
struct Executor {
    checkpoint: bool,
    agent_id: Option<String>,
    config: Option<ExecutorConfig>,
    max_instances: u32,
    tasks: TaskTable,
    queue: WorkQueue,
    leases: Leases,
    lane: LaneLink<()>,
    updates: Unacknowledged,
    heartbeats: Heartbeats,
    draining: bool,
    shutdown: bool,
    /// Task ends simulated so far (picks the next outcome).
    ends: u32,
    /// Task directory name → the task id it was made from.
    dirs: HashMap<String, String>,
}

impl Executor {
    fn new(checkpoint: bool) -> Self {
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        Self {
            checkpoint,
            agent_id: None,
            config: None,
            max_instances: RuntimeConfig::default().max_instances,
            tasks: TaskTable::default(),
            queue: WorkQueue::default(),
            leases: Leases::default(),
            lane: LaneLink::new(FRAMEWORK_ID.into(), EXECUTOR_ID.into(), tx, |_| ()),
            updates: Unacknowledged::new(),
            heartbeats: Heartbeats::new(),
            draining: false,
            shutdown: false,
            ends: 0,
            dirs: HashMap::new(),
        }
    }

    /// `events.rs`'s `on_event`. `false`: the executor has ended.
    fn on_event(&mut self, event: Event) -> bool {
        use event::Type;
        match event.r#type() {
            Type::Subscribed => {
                if let Some(subscribed) = event.subscribed
                    && !self.on_subscribed(subscribed)
                {
                    return false;
                }
            }
            Type::Launch => {
                if let Some(launch) = event.launch {
                    self.launch(launch.task);
                }
            }
            Type::LaunchGroup => {
                if let Some(group) = event.launch_group {
                    for task in group.task_group.tasks {
                        self.launch(task);
                    }
                }
            }
            Type::Kill => {
                if let Some(kill) = event.kill {
                    self.kill(&kill.task_id.value);
                }
            }
            Type::Acknowledged => {
                if let Some(ack) = event.acknowledged {
                    self.acknowledged(&ack.uuid);
                }
            }
            Type::Message => {
                if let Some(message) = event.message {
                    self.on_message(&message.data);
                }
            }
            Type::Shutdown => self.begin_shutdown(),
            // The executor ignores HEARTBEAT; here it stands for the worker pool.
            Type::Heartbeat => {
                self.end_one();
                self.heartbeat();
            }
            Type::Error | Type::Unknown => {}
        }
        self.check();
        // `shutdown.rs`'s `finished`, with the link up.
        !(self.shutdown && self.tasks.active_count() == 0 && self.updates.is_empty())
    }

    /// `false`: a bad `ExecutorConfig`, the executor exits.
    fn on_subscribed(&mut self, subscribed: event::Subscribed) -> bool {
        self.agent_id = subscribed.agent_info.id.map(|id| id.value);
        self.lane
            .set_agent_id(self.agent_id.as_deref().unwrap_or_default());
        if self.config.is_some() {
            return true;
        }
        let info = subscribed.executor_info;
        let Ok(config) = parse_config(&info) else {
            return false;
        };
        // `Setup::new` builds the runtime from this (not here: it is wasmtime).
        self.max_instances = RuntimeConfig::for_executor(&config, None).max_instances;
        self.tasks.set_own(Resources::from_mesos(&info.resources));
        self.config = Some(config);
        true
    }

    /// `lifecycle.rs`'s `launch`.
    fn launch(&mut self, task: TaskInfo) {
        let id = task.task_id.value.clone();
        if self.tasks.contains(&id) {
            return;
        }
        let data = task.data.clone();
        assert!(self.tasks.insert(task));
        if self.shutdown {
            let failure = TaskFailure::new(ErrorKind::Killed, "the executor is shutting down");
            self.terminate(&id, failure_status(&id, TaskState::TaskKilled, failure));
            return;
        }
        if self.draining || self.config.is_none() {
            let failure = TaskFailure::new(ErrorKind::Internal, "not now");
            self.terminate(&id, failure_status(&id, TaskState::TaskFailed, failure));
            return;
        }
        if self.tasks.get(&id).is_some_and(|t| t.lease) {
            self.launch_lease(&id, data);
            return;
        }
        let spec = match data {
            Some(data) if !data.is_empty() => TaskSpec::decode(&data).map_err(|e| e.to_string()),
            _ => Err("TaskInfo.data is empty".to_owned()),
        };
        match spec {
            Ok(spec) => {
                // What the runtime checks first when it loads the module.
                let _ = spec.module.verify();
                self.queue.push(Queued { task_id: id, spec });
                self.dispatch();
            }
            Err(why) => {
                let failure = TaskFailure::new(ErrorKind::InvalidTaskSpec, why);
                self.terminate(&id, failure_status(&id, TaskState::TaskError, failure));
            }
        }
    }

    /// `closures.rs`'s `launch_lease`.
    fn launch_lease(&mut self, id: &str, data: Option<Bytes>) {
        let spec = match data {
            Some(data) if !data.is_empty() => LeaseSpec::decode(&data).map_err(|e| e.to_string()),
            _ => Err("TaskInfo.data is empty".to_owned()),
        };
        let spec = match spec {
            Ok(spec) => spec,
            Err(why) => {
                let failure = TaskFailure::new(ErrorKind::InvalidTaskSpec, why);
                self.terminate(id, failure_status(id, TaskState::TaskError, failure));
                return;
            }
        };
        let mem_mb = self.tasks.get(id).map_or(0.0, |t| t.resources.mem_mb);
        self.tasks.start(id, Instant::now());
        self.leases.add(id, mem_mb);
        self.send_status(StatusSpec::new(id, TaskState::TaskRunning));
        if self.lane.set_endpoint(spec.lane) {
            self.leases.connection_lost();
        }
    }

    /// `lifecycle.rs`'s `dispatch`, the worker pool left out.
    fn dispatch(&mut self) {
        loop {
            let Some(config) = &self.config else {
                return;
            };
            let delay = config.running_update_delay;
            let instances = usize::try_from(self.max_instances).unwrap_or(usize::MAX);
            let limit = self
                .tasks
                .concurrency(self.max_instances)
                .min(instances.saturating_sub(self.leases.running_count()));
            let Some(queued) = self.queue.next(self.tasks.running_count(), limit) else {
                return;
            };
            if !self.tasks.contains(&queued.task_id) {
                continue;
            }
            self.task_dir(&queued.task_id);
            self.tasks.start(&queued.task_id, Instant::now());
            if delay.is_zero() {
                self.send_status(StatusSpec::new(queued.task_id, TaskState::TaskRunning));
            }
        }
    }

    /// The task's output directory name (`sandbox/tasks/<name>`): one safe component,
    /// never shared by two task ids.
    fn task_dir(&mut self, id: &str) {
        let name = sanitize_task_id(id);
        assert!(
            !name.is_empty()
                && name != "."
                && name != ".."
                && name.len() <= 128 + 9
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "unsafe task directory {name:?} for {id:?}"
        );
        if let Some(other) = self.dirs.insert(name.clone(), id.to_owned()) {
            assert_eq!(other, id, "two task ids share the directory {name:?}");
        }
    }

    /// `lifecycle.rs`'s `on_task_done`.
    fn task_done(&mut self, id: &str, outcome: Result<Vec<u8>, TaskFailure>) {
        match self.tasks.get(id) {
            Some(entry) if !entry.is_terminal() => {}
            _ => return,
        }
        self.terminate(id, terminal_status(id, outcome));
    }

    /// `lifecycle.rs`'s `terminate` (no lane closures run here to dispatch).
    fn terminate(&mut self, id: &str, status: StatusSpec) {
        if !self.tasks.finish(id, status.state) {
            return;
        }
        self.send_status(status);
        self.dispatch();
        if self.tasks.active_count() == 0 && self.draining {
            self.begin_shutdown();
        }
    }

    /// `lifecycle.rs`'s `kill`; a running task's worker is taken to stop at once.
    fn kill(&mut self, id: &str) {
        let Some(entry) = self.tasks.get(id) else {
            return;
        };
        match (entry.phase, entry.lease) {
            (Phase::Terminal(_), _) => {}
            (_, true) => self.end_lease(id, End::Killed),
            (Phase::Running { .. }, false) => {
                entry.kill.kill();
                self.task_done(id, Err(TaskFailure::new(ErrorKind::Killed, "killed")));
            }
            (Phase::Queued, false) => {
                self.queue.remove(id);
                let failure = TaskFailure::new(ErrorKind::Killed, "killed before it started");
                let mut status = failure_status(id, TaskState::TaskKilled, failure);
                status.reason = Some(Reason::TaskKilledDuringLaunch);
                self.terminate(id, status);
            }
        }
    }

    /// `closures.rs`'s `end_lease` and `lease_ended` (no closures are queued here).
    fn end_lease(&mut self, id: &str, end: End) {
        let ending = self.leases.end(id, end);
        assert!(ending.refused.is_empty());
        if let Some(end) = ending.ended {
            self.lease_ended(id, end);
        }
    }

    fn lease_ended(&mut self, id: &str, end: End) {
        let status = match end {
            End::Released => {
                let mut status = StatusSpec::new(id, TaskState::TaskFinished);
                status.message = Some("lease released".into());
                status
            }
            End::Killed => failure_status(
                id,
                TaskState::TaskKilled,
                TaskFailure::new(ErrorKind::Killed, "lease killed"),
            ),
        };
        self.terminate(id, status);
    }

    /// `events.rs`'s `acknowledged`.
    fn acknowledged(&mut self, uuid: &[u8]) {
        let uuid = match uuid {
            [n] => self
                .updates
                .all()
                .get(usize::from(*n))
                .and_then(|u| u.status.uuid.clone())
                .unwrap_or_default(),
            _ => Bytes::copy_from_slice(uuid),
        };
        if let Some(task) = self.updates.acknowledge(&uuid) {
            let outstanding = self.updates.has_task(&task);
            self.tasks.acknowledge(&task, outstanding);
        }
    }

    /// `events.rs`'s `on_message`; a prefetch's compilation is left out.
    fn on_message(&mut self, data: &[u8]) {
        let Ok(message) = SchedulerMessage::decode(data) else {
            return;
        };
        if self.config.is_none() {
            return;
        }
        match message {
            SchedulerMessage::Prefetch { module } => {
                let _ = module.verify();
            }
            SchedulerMessage::Evict { .. } => {}
            SchedulerMessage::Drain => {
                self.draining = true;
                if self.tasks.active_count() == 0 {
                    self.begin_shutdown();
                }
            }
            SchedulerMessage::Lane(endpoint) => {
                if self.lane.set_endpoint(endpoint) {
                    self.leases.connection_lost();
                }
            }
        }
    }

    /// `shutdown.rs`'s `begin_shutdown` and `closures.rs`'s `shutdown_lane`; running
    /// tasks' workers are taken to stop at once.
    fn begin_shutdown(&mut self) {
        if self.shutdown {
            return;
        }
        self.shutdown = true;
        let queued: Vec<String> = self
            .tasks
            .active()
            .filter(|(_, t)| t.phase == Phase::Queued)
            .map(|(id, _)| id.to_owned())
            .collect();
        for id in queued {
            self.queue.remove(&id);
            let failure = TaskFailure::new(ErrorKind::Killed, "the executor is shutting down");
            self.terminate(&id, failure_status(&id, TaskState::TaskKilled, failure));
        }
        let running: Vec<String> = self
            .tasks
            .running()
            .map(|(id, task, _)| {
                task.kill.kill();
                id.to_owned()
            })
            .collect();
        let (queued, ended) = self.leases.end_all();
        assert!(queued.is_empty());
        for id in ended {
            self.lease_ended(&id, End::Killed);
        }
        for id in running {
            self.task_done(&id, Err(TaskFailure::new(ErrorKind::Killed, "shutdown")));
        }
    }

    /// The worker pool: the oldest running task ends (successfully, failed or killed,
    /// in turn); with none running, the oldest lease is released (a lane `Release`).
    fn end_one(&mut self) {
        let running = self.tasks.running().next().map(|(id, _, _)| id.to_owned());
        if let Some(id) = running {
            self.ends += 1;
            let outcome = match self.ends % 3 {
                0 => Ok(self.ends.to_le_bytes().to_vec()),
                1 => Err(TaskFailure::new(ErrorKind::GuestError, "failed")),
                _ => Err(TaskFailure::new(ErrorKind::Killed, "killed")),
            };
            self.task_done(&id, outcome);
            return;
        }
        let lease = self
            .tasks
            .active()
            .find(|(id, t)| t.lease && self.leases.holds(id))
            .map(|(id, _)| id.to_owned());
        if let Some(id) = lease {
            self.end_lease(&id, End::Released);
        }
    }

    /// `timers.rs`'s `send_heartbeat`.
    fn heartbeat(&mut self) {
        if self.config.is_none() {
            return;
        }
        let beat =
            self.heartbeats
                .next(&self.tasks, Vec::new(), self.leases.usage(), Instant::now());
        let data = beat.encode();
        let back = ExecutorMessage::decode(&data).expect("own heartbeat decodes");
        assert_eq!(back.encode(), data);
        let message = call(call::Type::Message, |c| {
            c.message = Some(call::Message { data: data.into() });
        });
        agent_accepts(&message).expect("the agent refuses a heartbeat");
    }

    /// `link.rs`'s `send_status`: recorded, and sent as the agent must accept it.
    fn send_status(&mut self, spec: StatusSpec) {
        let update = self
            .updates
            .record(spec, EXECUTOR_ID, self.agent_id.as_deref());
        let update = call(call::Type::Update, |c| c.update = Some(update));
        if let Err(e) = agent_accepts(&update) {
            panic!("the agent refuses an update the executor sends: {e}\n{update:?}");
        }
    }

    /// `link.rs`'s `start_subscription`, after a disconnection with checkpointing.
    fn resubscribe(&self) {
        let updates_only = call(call::Type::Subscribe, |c| {
            c.subscribe = Some(call::Subscribe {
                unacknowledged_tasks: Vec::new(),
                unacknowledged_updates: self.updates.all(),
            });
        });
        if let Err(e) = agent_accepts(&updates_only) {
            panic!("the agent refuses the unacknowledged updates: {e}");
        }
        // The tasks are the agent's own TaskInfos, sent back as they came (whether the
        // agent accepts them depends on what it sent).
        let full = call(call::Type::Subscribe, |c| {
            c.subscribe = Some(call::Subscribe {
                unacknowledged_tasks: self.tasks.unacknowledged(),
                unacknowledged_updates: self.updates.all(),
            });
        });
        let _ = agent_accepts(&full);
    }

    /// The stream ended or broke (`link.rs`'s `on_disconnected`, once subscribed).
    fn disconnected(&mut self) {
        if self.checkpoint {
            self.resubscribe();
        } else {
            self.begin_shutdown();
        }
    }

    fn check(&self) {
        let allocation = self.tasks.allocation();
        assert_eq!(allocation.tasks as usize, self.tasks.active_count());
        for value in [allocation.cpus, allocation.mem_mb, allocation.disk_mb] {
            assert!(value >= 0.0, "allocation {allocation:?}");
        }
        let concurrency = self.tasks.concurrency(self.max_instances);
        assert!((1..=self.max_instances.max(1) as usize).contains(&concurrency));
        let queued = self
            .tasks
            .active()
            .filter(|(_, t)| t.phase == Phase::Queued)
            .count();
        assert_eq!(queued, self.queue.len(), "queued tasks and the work queue");
        let leases = self
            .tasks
            .active()
            .filter(|(_, t)| t.lease && matches!(t.phase, Phase::Running { .. }))
            .count();
        assert_eq!(
            leases,
            self.leases.count(),
            "running leases and leases held"
        );
        assert_eq!(self.leases.running_count(), 0);
    }
}

/// The records of `stream` as the executor's event stream reads them: `Err` for a
/// broken frame (the stream ends there).
fn records(framed: bool, pattern: u8, stream: &[u8]) -> (Vec<Bytes>, Result<(), ()>) {
    let mut out = Vec::new();
    if framed {
        let mut rest = stream;
        while let [a, b, tail @ ..] = rest {
            let n = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
            let (record, tail) = tail.split_at(n);
            out.push(Bytes::copy_from_slice(record));
            rest = tail;
        }
        return (out, Ok(()));
    }
    let mut decoder = Decoder::new();
    let mut chunk_len = usize::from(pattern % 17) + 1;
    let mut at = 0;
    while at < stream.len() {
        let end = (at + chunk_len).min(stream.len());
        decoder.push(&stream[at..end]);
        at = end;
        chunk_len = chunk_len * 3 % 17 + 1;
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => out.push(record),
                Ok(None) => break,
                Err(_) => return (out, Err(())),
            }
        }
    }
    let end = decoder.finish().map_err(|_| ());
    (out, end)
}

fuzz_target!(|input: &[u8]| {
    let [flags, pattern, stream @ ..] = input else {
        return;
    };
    let content_type = if flags & 1 == 0 {
        ContentType::Protobuf
    } else {
        ContentType::Json
    };
    // Update uuids from a fixed seed: a crash replays.
    fastrand::seed(0x5eed);
    let mut executor = Executor::new(flags & 4 != 0);
    let (records, _end) = records(flags & 2 != 0, *pattern, stream);
    for record in records {
        // A record that does not decode is skipped (`link.rs`'s `read_subscription`).
        let Ok(event) = codec::decode_bytes::<Event>(content_type, record) else {
            continue;
        };
        if !executor.on_event(event) {
            return;
        }
    }
    // Clean end or broken frame, the executor is disconnected either way.
    executor.disconnected();
    executor.check();
});
