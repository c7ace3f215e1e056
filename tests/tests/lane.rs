//! Leases and the closure lane: the real `brine-executor` under the real local agent,
//! the test playing the framework (leases through the agent's API) and the scheduler's
//! end of the lane (a TCP listener speaking `brine_proto::lane`).
//!
//! Needs the executor binary (`cargo build -p brine-executor`, or `BRINE_EXECUTOR`) and
//! the example modules (`make examples`, or `BRINE_EXAMPLES_DIR`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::HashMap;
use std::time::{Duration, Instant};

use brine_proto::lane::{ClosureId, ToExecutor, ToScheduler};
use brine_proto::mesos::v1::TaskState;
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::payload::{
    ErrorKind, ModuleRef, Payload, SchedulerMessage, TaskFailure, TaskOutcome, TaskSpec,
};
use brine_tests::{
    Harness, HarnessOptions, LaneConn, LaneServer, WAIT, config, example, executor_info,
    lease_task, result, spec, task, task_with_data,
};
use bytes::Bytes;

const BEAT: Duration = Duration::from_millis(200);
/// Long enough that the executor never reconnects for silence during a test.
const PING: Duration = Duration::from_secs(60);

fn run(closure: ClosureId, lease: &str, spec: TaskSpec) -> ToExecutor {
    ToExecutor::Run {
        closure,
        lease: lease.into(),
        spec,
    }
}

fn sum(module: &ModuleRef, a: u64, b: u64) -> TaskSpec {
    spec(module.clone(), "sum", &format!("\"{a} {b}\""))
}

fn success(outcome: TaskOutcome) -> Vec<u8> {
    match outcome {
        TaskOutcome::Success { result } => result,
        TaskOutcome::Failure(f) => panic!("closure failed: {f}"),
    }
}

fn failure(outcome: TaskOutcome) -> TaskFailure {
    match outcome {
        TaskOutcome::Failure(f) => f,
        TaskOutcome::Success { result } => {
            panic!("closure succeeded: {}", String::from_utf8_lossy(&result))
        }
    }
}

/// Runs one closure and returns its outcome (the next `Done` must be its own).
async fn one(conn: &mut LaneConn, closure: ClosureId, lease: &str, spec: TaskSpec) -> TaskOutcome {
    conn.send(&run(closure, lease, spec)).await;
    let (id, outcome) = conn.done().await;
    assert_eq!(id, closure);
    outcome
}

/// `sum` once with its bytes (it is then cached); returns it by hash.
async fn warm_sum(conn: &mut LaneConn, lease: &str) -> ModuleRef {
    let module = ModuleRef::inline(example("sum"));
    let result = success(one(conn, 0, lease, sum(&module, 1, 2)).await);
    assert_eq!(result, b"3");
    ModuleRef::by_hash(module.hash)
}

/// The agent's view of the executor's allocation (cpus, mem), once `pred` holds.
async fn agent_allocation(h: &Harness, executor: &str, pred: impl Fn(f64) -> bool) -> (f64, f64) {
    h.wait_for(WAIT, "the agent's allocation", |_| {
        let alloc = h.executor(executor)?.allocation;
        pred(alloc.mem_mb).then_some((alloc.cpus, alloc.mem_mb))
    })
    .await
}

/// A lease is RUNNING at once and grows the container; closures sent over the lane
/// return their results; Release ends it TASK_FINISHED, the container shrinks back
/// and, with no lease left, the executor closes the lane (and keeps serving tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_grows_the_container_serves_closures_and_is_released() {
    let h = Harness::start(HarnessOptions::default()).await;
    let lane = LaneServer::bind(1).await;
    let exec = executor_info("leaser", &config(BEAT), &[]);
    h.launch(&exec, lease_task("lease-1", &lane.lease(), 1.0, 64.0))
        .await;
    h.status("lease-1", TaskState::TaskRunning).await;
    let (mut conn, hello) = lane.accept_welcomed(PING).await;
    assert_eq!(hello.framework_id, h.framework_id().value);
    assert_eq!(hello.executor_id, "leaser");
    assert_eq!(hello.agent_id, h.agent.agent_id().value);

    // Executor 0.1 cpus / 32 MB + the lease's 1 cpu / 64 MB.
    let beat = h
        .heartbeat("leaser", WAIT, |b| b.lane.leases == 1 && b.lane.connected)
        .await;
    assert!((beat.allocation.cpus - 1.1).abs() < 1e-9, "{beat:?}");
    assert!((beat.allocation.mem_mb - 96.0).abs() < 1e-9, "{beat:?}");
    assert_eq!(beat.allocation.tasks, 1);
    assert!(beat.running.is_empty(), "a lease is not a running task");
    let (cpus, mem) = agent_allocation(&h, "leaser", |mem| mem == 96.0).await;
    assert!((cpus - 1.1).abs() < 1e-9);
    assert_eq!(mem, 96.0);

    let module = ModuleRef::inline(example("sum"));
    let result = success(one(&mut conn, 1, "lease-1", sum(&module, 40, 2)).await);
    assert_eq!(result, b"42");
    let by_hash = ModuleRef::by_hash(module.hash);
    let result = success(one(&mut conn, 2, "lease-1", sum(&by_hash, 5, 6)).await);
    assert_eq!(result, b"11");
    // Quick closures that wrote nothing leave no output files.
    assert!(!h.sandbox("leaser").join("closures/1").exists());

    conn.send(&ToExecutor::Release {
        lease: "lease-1".into(),
    })
    .await;
    let done = h.terminal("lease-1").await;
    assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
    let (_, mem) = agent_allocation(&h, "leaser", |mem| mem == 32.0).await;
    assert_eq!(mem, 32.0, "the container shrank back");
    h.heartbeat("leaser", WAIT, |b| {
        b.lane.leases == 0 && b.allocation.tasks == 0 && b.allocation.mem_mb == 32.0
    })
    .await;
    conn.closed().await;

    // The executor serves Mesos tasks as before.
    let status = h
        .run(&exec, task("task", &sum(&by_hash, 2, 2), 0.5, 64.0))
        .await;
    assert_eq!(result_of(&status), b"4");
    let states: Vec<TaskState> = h
        .log()
        .statuses_of("lease-1")
        .iter()
        .map(|s| s.state())
        .collect();
    assert_eq!(states, [TaskState::TaskRunning, TaskState::TaskFinished]);
}

fn result_of(status: &brine_proto::mesos::v1::TaskStatus) -> Vec<u8> {
    assert_eq!(
        status.state(),
        TaskState::TaskFinished,
        "{}",
        status.message()
    );
    result(status)
}

/// 500 closures pipelined in one write over two leases: every closure id is answered
/// exactly once, with its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pipelined_closures_are_each_answered_once() {
    let h = Harness::start(HarnessOptions::default()).await;
    let lane = LaneServer::bind(2).await;
    let exec = executor_info("pipeline", &config(BEAT), &[]);
    for id in ["a", "b"] {
        h.launch(&exec, lease_task(id, &lane.lease(), 1.0, 64.0))
            .await;
    }
    let (mut conn, _) = lane.accept_welcomed(PING).await;
    let module = warm_sum(&mut conn, "a").await;
    h.heartbeat("pipeline", WAIT, |b| b.lane.leases == 2).await;

    const N: u64 = 500;
    let frames: Vec<ToExecutor> = (1..=N)
        .map(|i| {
            run(
                i,
                if i.is_multiple_of(2) { "a" } else { "b" },
                sum(&module, i, 1000),
            )
        })
        .collect();
    conn.send_all(&frames).await;
    let mut results: HashMap<ClosureId, Vec<u8>> = HashMap::new();
    while results.len() < N as usize {
        let (id, outcome) = conn.done().await;
        let value = success(outcome);
        assert!(
            results.insert(id, value).is_none(),
            "closure {id} answered twice"
        );
    }
    for i in 1..=N {
        assert_eq!(
            results[&i],
            (i + 1000).to_string().into_bytes(),
            "closure {i}"
        );
    }
    let beat = h
        .heartbeat_since("pipeline", Instant::now(), |b| {
            b.lane.running == 0 && b.lane.queued == 0
        })
        .await;
    assert_eq!(beat.lane.leases, 2);
}

/// Failures come back as Failure outcomes, exactly as a Mesos task's would; a closure
/// over its slot's memory fails `memory_limit` and the next one in the slot succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_come_back_as_outcomes_and_the_slot_carries_on() {
    let h = Harness::start(HarnessOptions::default()).await;
    let lane = LaneServer::bind(3).await;
    let exec = executor_info("failing", &config(BEAT), &[]);
    h.launch(&exec, lease_task("slot", &lane.lease(), 1.0, 64.0))
        .await;
    let (mut conn, _) = lane.accept_welcomed(PING).await;
    let sum_module = warm_sum(&mut conn, "slot").await;
    let failures = ModuleRef::inline(example("failures"));

    let f = failure(
        one(
            &mut conn,
            1,
            "slot",
            spec(failures.clone(), "allocate_forever", ""),
        )
        .await,
    );
    assert_eq!(f.kind, ErrorKind::MemoryLimit, "{f}");
    let ok = success(one(&mut conn, 2, "slot", sum(&sum_module, 2, 3)).await);
    assert_eq!(ok, b"5", "the same slot serves the next closure");

    let by_hash = ModuleRef::by_hash(failures.hash);
    let mut looping = spec(by_hash.clone(), "loop_forever", "");
    looping.deadline = Some(Duration::from_millis(300));
    let cases = [
        (spec(by_hash.clone(), "fail", ""), ErrorKind::GuestError),
        (spec(by_hash.clone(), "panic", ""), ErrorKind::GuestPanic),
        (spec(by_hash.clone(), "trap", ""), ErrorKind::Trap),
        (
            spec(by_hash.clone(), "no_such_task", ""),
            ErrorKind::ExportMissing,
        ),
        (
            spec(sum_module.clone(), "sum", "not json"),
            ErrorKind::ArgumentDecode,
        ),
        (looping, ErrorKind::DeadlineExceeded),
    ];
    for (i, (closure_spec, kind)) in cases.into_iter().enumerate() {
        let id = 10 + i as u64;
        let f = failure(one(&mut conn, id, "slot", closure_spec).await);
        assert_eq!(f.kind, kind, "closure {id}: {f}");
        if kind == ErrorKind::GuestPanic {
            assert!(f.message.contains("deliberate panic"), "{f}");
            assert!(f.stderr_tail.contains("deliberate panic"), "{f:?}");
        }
    }
    // A lease this executor does not hold: `internal`, which the scheduler retries.
    let f = failure(one(&mut conn, 20, "no-such-lease", sum(&sum_module, 1, 1)).await);
    assert_eq!(f.kind, ErrorKind::Internal);
    assert_eq!(
        f.message,
        "lease no-such-lease is not held by this executor"
    );
    let ok = success(one(&mut conn, 21, "slot", sum(&sum_module, 1, 1)).await);
    assert_eq!(ok, b"2");
    // The panicking closure's stderr went to its own file in the sandbox.
    let stderr = h.sandbox("failing").join("closures/11/stderr");
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert!(text.contains("deliberate panic"), "{text}");
}

/// The scheduler's side drops the connection mid-batch: the executor abandons that
/// connection's closures, reconnects with the same secret, and serves what is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_lane_is_reconnected_and_resent_closures_are_served() {
    let h = Harness::start(HarnessOptions::default()).await;
    let lane = LaneServer::bind(4).await;
    let exec = executor_info("redial", &config(BEAT), &[]);
    for id in ["a", "b"] {
        h.launch(&exec, lease_task(id, &lane.lease(), 1.0, 64.0))
            .await;
    }
    let (mut conn, hello) = lane.accept_welcomed(PING).await;
    let sum_module = warm_sum(&mut conn, "a").await;
    let failures = ModuleRef::inline(example("failures"));
    let spin = success(one(&mut conn, 1, "a", spec(failures.clone(), "spin", "1")).await);
    assert!(!spin.is_empty());
    let failures = ModuleRef::by_hash(failures.hash);

    // Even ids spin 5 ms (so the batch takes a while), odd ids add up.
    const N: u64 = 300;
    let closure = |i: u64| {
        let lease = if i.is_multiple_of(2) { "a" } else { "b" };
        if i.is_multiple_of(2) {
            run(i, lease, spec(failures.clone(), "spin", "5"))
        } else {
            run(i, lease, sum(&sum_module, i, 7))
        }
    };
    let mut answered: HashMap<ClosureId, TaskOutcome> = HashMap::new();
    conn.send_all(&(100..100 + N).map(closure).collect::<Vec<_>>())
        .await;
    while answered.len() < 20 {
        let (id, outcome) = conn.done().await;
        assert!(answered.insert(id, outcome).is_none(), "{id} twice");
    }
    drop(conn);

    let (mut conn, again) = lane.accept_welcomed(PING).await;
    assert_eq!(again, hello, "the same Hello (and secret) again");
    let resend: Vec<ToExecutor> = (100..100 + N)
        .filter(|i| !answered.contains_key(i))
        .map(closure)
        .collect();
    assert!(!resend.is_empty(), "the connection was dropped mid-batch");
    let resent = resend.len();
    conn.send_all(&resend).await;
    let mut second: HashMap<ClosureId, TaskOutcome> = HashMap::new();
    while answered.len() + second.len() < N as usize {
        let (id, outcome) = conn.done().await;
        assert!(
            !answered.contains_key(&id),
            "{id} was answered on the first connection and not sent again"
        );
        assert!(second.insert(id, outcome).is_none(), "{id} twice");
    }
    answered.extend(second);
    for i in 100..100 + N {
        let value = success(answered.remove(&i).unwrap());
        if !i.is_multiple_of(2) {
            assert_eq!(value, (i + 7).to_string().into_bytes(), "closure {i}");
        }
    }
    println!("dropped after 20 of {N}; {resent} sent again and served");
    let beat = h
        .heartbeat_since("redial", Instant::now(), |b| {
            b.lane.connected && b.lane.running == 0 && b.lane.queued == 0
        })
        .await;
    assert_eq!(beat.lane.leases, 2);
}

/// Kill of a running closure and of a queued one: each answered `killed`; progress
/// of a running closure comes over the lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_closures_are_answered_killed_and_progress_is_reported() {
    let h = Harness::start(HarnessOptions::default()).await;
    let lane = LaneServer::bind(5).await;
    let exec = executor_info("killer", &config(BEAT), &[]);
    h.launch(&exec, lease_task("only", &lane.lease(), 1.0, 64.0))
        .await;
    let (mut conn, _) = lane.accept_welcomed(PING).await;
    let failures = ModuleRef::inline(example("failures"));
    success(one(&mut conn, 1, "only", spec(failures.clone(), "spin", "1")).await);
    let failures = ModuleRef::by_hash(failures.hash);

    // Progress: spin reports every 1%.
    conn.send(&run(2, "only", spec(failures.clone(), "spin", "1500")))
        .await;
    let mut progress = Vec::new();
    let outcome = loop {
        match conn.recv().await {
            Some(ToScheduler::Progress {
                closure,
                progress: p,
            }) => {
                assert_eq!(closure, 2);
                progress.push(p);
            }
            Some(ToScheduler::Done { closure, outcome }) => {
                assert_eq!(closure, 2);
                break outcome;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    success(outcome);
    assert!(
        progress.iter().any(|p| *p > 0.0 && *p < 1.0),
        "progress while it ran: {progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[1] > w[0]), "{progress:?}");
    assert!(progress.len() <= 20, "at most every 100 ms: {progress:?}");

    // One running (one slot), one queued behind it.
    conn.send_all(&[
        run(3, "only", spec(failures.clone(), "loop_forever", "")),
        run(4, "only", spec(failures.clone(), "loop_forever", "")),
    ])
    .await;
    h.heartbeat("killer", WAIT, |b| {
        b.lane.running == 1 && b.lane.queued == 1
    })
    .await;
    conn.send(&ToExecutor::Kill { closure: 4 }).await;
    let (id, outcome) = conn.done().await;
    assert_eq!(id, 4);
    let f = failure(outcome);
    assert_eq!(f.kind, ErrorKind::Killed);
    assert!(f.message.contains("before it started"), "{f}");
    conn.send(&ToExecutor::Kill { closure: 3 }).await;
    let (id, outcome) = conn.done().await;
    assert_eq!(id, 3);
    assert_eq!(failure(outcome).kind, ErrorKind::Killed);
    let sum_module = ModuleRef::inline(example("sum"));
    assert_eq!(
        success(one(&mut conn, 5, "only", sum(&sum_module, 3, 4)).await),
        b"7"
    );
}

/// A Mesos KILL of a lease kills its closure and ends it TASK_KILLED; SHUTDOWN kills
/// the rest (Done frames for running and queued closures), ends every lease
/// TASK_KILLED, and the executor exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leases_and_shutdown() {
    let h = Harness::start(HarnessOptions::default()).await;
    let lane = LaneServer::bind(6).await;
    let exec = executor_info("ender", &config(BEAT), &[]);
    for id in ["a", "b"] {
        h.launch(&exec, lease_task(id, &lane.lease(), 1.0, 64.0))
            .await;
    }
    let (mut conn, _) = lane.accept_welcomed(PING).await;
    let failures = ModuleRef::inline(example("failures"));
    success(one(&mut conn, 1, "a", spec(failures.clone(), "spin", "1")).await);
    let looping = spec(ModuleRef::by_hash(failures.hash), "loop_forever", "");
    conn.send_all(&[
        run(2, "a", looping.clone()),
        run(3, "b", looping.clone()),
        run(4, "b", looping.clone()),
    ])
    .await;
    h.heartbeat("ender", WAIT, |b| b.lane.running == 2 && b.lane.queued == 1)
        .await;

    h.kill("a").await;
    let (id, outcome) = conn.done().await;
    assert_eq!(id, 2, "the closure running in the killed lease");
    assert_eq!(failure(outcome).kind, ErrorKind::Killed);
    let status = h.terminal("a").await;
    assert_eq!(
        status.state(),
        TaskState::TaskKilled,
        "{}",
        status.message()
    );
    agent_allocation(&h, "ender", |mem| mem == 96.0).await;

    h.agent
        .shutdown_executor(&h.framework_id(), &exec.executor_id)
        .await
        .unwrap();
    let mut ended = vec![conn.done().await, conn.done().await];
    ended.sort_by_key(|(id, _)| *id);
    let ids: Vec<ClosureId> = ended.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [3, 4]);
    for (_, outcome) in ended {
        assert_eq!(failure(outcome).kind, ErrorKind::Killed);
    }
    let status = h.terminal("b").await;
    assert_eq!(
        status.state(),
        TaskState::TaskKilled,
        "{}",
        status.message()
    );
    assert_eq!(h.terminated("ender", WAIT).await, Some(0));
    conn.closed().await;
}

/// A lease whose data is not a LeaseSpec is a TASK_ERROR; a `SchedulerMessage::Lane`
/// moves the executor to a new lane (a restarted scheduler's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_leases_fail_and_the_lane_can_move() {
    let h = Harness::start(HarnessOptions::default()).await;
    let old = LaneServer::bind(7).await;
    let exec = executor_info("mover", &config(BEAT), &[]);
    let mut bad = task_with_data("bad", Bytes::from_static(b"\x03garbage"), 1.0, 64.0);
    bad.labels = lease_task("x", &old.lease(), 1.0, 1.0).labels;
    h.launch(&exec, bad).await;
    let status = h.terminal("bad").await;
    assert_eq!(status.state(), TaskState::TaskError);
    assert_eq!(status.reason(), Reason::TaskInvalid);
    assert!(
        status.message().contains("invalid LeaseSpec"),
        "{}",
        status.message()
    );

    h.launch(&exec, lease_task("l", &old.lease(), 1.0, 64.0))
        .await;
    let (mut old_conn, _) = old.accept_welcomed(PING).await;
    let sum_module = warm_sum(&mut old_conn, "l").await;

    let new = LaneServer::bind(8).await;
    h.agent
        .send_message(
            &h.framework_id(),
            &exec.executor_id,
            SchedulerMessage::Lane(new.endpoint()).encode().into(),
        )
        .await
        .unwrap();
    let (mut conn, hello) = new.accept_welcomed(PING).await;
    assert_eq!(hello.executor_id, "mover");
    old_conn.closed().await;
    let ok = success(one(&mut conn, 1, "l", sum(&sum_module, 8, 9)).await);
    assert_eq!(ok, b"17");
}
