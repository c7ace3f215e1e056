//! The real `brine-executor` binary under the real local agent (`brine_local::agent`):
//! real processes, real HTTP, real wasm.
//!
//! Needs the executor binary (`cargo test --workspace` builds it, or `BRINE_EXECUTOR`)
//! and the example modules (`make examples`, or `BRINE_EXAMPLES_DIR`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use brine_proto::mesos::v1::task_status::{Reason, Source};
use brine_proto::mesos::v1::{ExecutorInfo, TaskState};
use brine_proto::payload::{
    DatasetRef, Encoding, ErrorKind, ExecutorConfig, ModuleHash, ModuleRef, Payload,
    SchedulerMessage, TaskOutcome,
};
use brine_tests::{
    Harness, HarnessOptions, WAIT, config, example, executor_info, executor_info_with_data,
    init_tracing, outcome, result, spec, task, task_with_data,
};
use bytes::Bytes;

const BEAT: Duration = Duration::from_millis(200);

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON result")
}

fn failure_kind(status: &brine_proto::mesos::v1::TaskStatus) -> ErrorKind {
    match outcome(status) {
        TaskOutcome::Failure(f) => f.kind,
        TaskOutcome::Success { .. } => panic!("{} succeeded", status.task_id.value),
    }
}

/// Every example returns its expected result, on one executor, in both encodings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_returns_its_result() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("examples", &config(BEAT), &[]);

    let sum = ModuleRef::inline(example("sum"));
    let done = h
        .run(
            &exec,
            task("sum", &spec(sum.clone(), "sum", r#""1 2 3""#), 0.5, 64.0),
        )
        .await;
    assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
    assert_eq!(json(&result(&done)), serde_json::json!(6));
    assert_eq!(done.source(), Source::Executor);

    // Postcard, as the Rust scheduler library sends it.
    let mut postcard = spec(ModuleRef::by_hash(sum.hash), "sum", "");
    postcard.encoding = Encoding::Postcard;
    postcard.args = postcard::to_stdvec(&"4 5 6".to_owned()).unwrap();
    let done = h
        .run(&exec, task("sum-postcard", &postcard, 0.5, 64.0))
        .await;
    assert_eq!(postcard::from_bytes::<i64>(&result(&done)).unwrap(), 15);

    let hello = ModuleRef::inline(example("hello"));
    let done = h
        .run(&exec, task("hello", &spec(hello, "hello", ""), 0.5, 64.0))
        .await;
    assert_eq!(json(&result(&done)), serde_json::json!("hello world"));
    // The guest's stdout went to the task's own file in the sandbox.
    let stdout = h.sandbox("examples").join("tasks/hello/stdout");
    assert_eq!(std::fs::read_to_string(&stdout).unwrap(), "hello world\n");

    let pi = ModuleRef::inline(example("pi"));
    let args = r#"{"samples": 200000, "seed": 7}"#;
    let done = h
        .run(&exec, task("pi", &spec(pi, "pi", args), 0.5, 64.0))
        .await;
    let value = json(&result(&done));
    assert_eq!(value["samples"], 200000);
    let estimate = value["estimate"].as_f64().unwrap();
    assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{estimate}");

    let evolve = ModuleRef::inline(example("evolve"));
    let args = r#"{"population": [[1,2,3,4,5],[50,50,50,50,31],[99,0,0,0,0]],
                   "seed": 3, "offspring": 4, "mutation_rate": 0.1}"#;
    let done = h
        .run(
            &exec,
            task("evolve", &spec(evolve, "evolve", args), 0.5, 64.0),
        )
        .await;
    let value = json(&result(&done));
    assert_eq!(value["scored"].as_array().unwrap().len(), 3);
    assert_eq!(value["offspring"].as_array().unwrap().len(), 4);
    // [50,50,50,50,31] sums to the target 231: the fittest.
    let best = value["scored"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["fitness"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["fitness"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(best["genome"], serde_json::json!([50, 50, 50, 50, 31]));
}

/// wordcount over a generated dataset shipped through a CommandInfo URI, mapped once
/// and read by several tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordcount_reads_the_dataset_fetched_from_a_uri() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().join("corpus.txt");
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("word{i} and\tsome  more\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let words = text.split_ascii_whitespace().count() as u64;

    let h = Harness::start(HarnessOptions::default()).await;
    let cfg = ExecutorConfig {
        dataset: Some(DatasetRef {
            path: "corpus.txt".into(),
        }),
        ..config(BEAT)
    };
    let exec = executor_info("wc", &cfg, &[path.as_path()]);
    let module = ModuleRef::inline(example("wordcount"));
    let len = text.len() as u64;
    let half = len / 2;
    for (id, offset, count) in [
        ("whole", 0, len),
        ("first", 0, half),
        ("second", half, len - half),
    ] {
        let args = format!(r#"{{"offset": {offset}, "len": {count}}}"#);
        h.launch(
            &exec,
            task(id, &spec(module.clone(), "wordcount", &args), 1.0, 64.0),
        )
        .await;
    }
    let whole = json(&result(&h.terminal("whole").await));
    assert_eq!(whole["words"].as_u64(), Some(words));
    assert_eq!(whole["bytes"].as_u64(), Some(len));
    let first = json(&result(&h.terminal("first").await));
    let second = json(&result(&h.terminal("second").await));
    assert_eq!(
        first["words"].as_u64().unwrap() + second["words"].as_u64().unwrap(),
        words,
        "a split in the middle of a word is counted once"
    );
}

/// Tasks run side by side up to ceil(Σ cpus) and one after another beyond it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_side_by_side_and_one_after_another() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("pool", &config(BEAT), &[]);
    // Warm the module first so all timing below is about running.
    let by_hash = warm_failures(&h, &exec, 1.0).await;

    // Three tasks of 1 cpu each: three workers, all running at once.
    for id in ["wide-1", "wide-2", "wide-3"] {
        h.launch(
            &exec,
            task(id, &spec(by_hash.clone(), "spin", "400"), 1.0, 64.0),
        )
        .await;
    }
    let mut running = Vec::new();
    let mut finished = Vec::new();
    for id in ["wide-1", "wide-2", "wide-3"] {
        running.push(h.status(id, TaskState::TaskRunning).await.timestamp());
        let done = h.terminal(id).await;
        assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
        finished.push(done.timestamp());
    }
    let last_start = running.iter().copied().fold(f64::MIN, f64::max);
    let first_end = finished.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "all three started ({running:?}) before any finished ({finished:?})"
    );

    // Two tasks of 0.5 cpus: ceil(1.0) = one worker, so the second waits.
    for id in ["narrow-1", "narrow-2"] {
        h.launch(
            &exec,
            task(id, &spec(by_hash.clone(), "spin", "300"), 0.5, 64.0),
        )
        .await;
    }
    let first_done = h.terminal("narrow-1").await.timestamp();
    let second_start = h
        .status("narrow-2", TaskState::TaskRunning)
        .await
        .timestamp();
    assert!(
        second_start >= first_done,
        "narrow-2 started at {second_start}, before narrow-1 ended at {first_done}"
    );
    assert_eq!(
        h.terminal("narrow-2").await.state(),
        TaskState::TaskFinished
    );
}

/// A second task goes to the running executor (same process) and finds its module warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_task_reuses_the_executor_and_its_warm_module() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("reuse", &config(BEAT), &[]);
    let sum = ModuleRef::inline(example("sum"));
    h.launch(
        &exec,
        task("first", &spec(sum.clone(), "sum", r#""1 2""#), 0.5, 64.0),
    )
    .await;
    assert_eq!(
        json(&result(&h.terminal("first").await)),
        serde_json::json!(3)
    );
    let pid = h.pid("reuse");

    // The heartbeat says the module is cached.
    h.heartbeat("reuse", Duration::from_secs(10), |b| {
        b.cached_modules.contains(&sum.hash)
    })
    .await;
    // By hash only: works only because the executor holds it.
    let by_hash = spec(ModuleRef::by_hash(sum.hash), "sum", r#""40 2""#);
    h.launch(&exec, task("second", &by_hash, 0.5, 64.0)).await;
    assert_eq!(
        json(&result(&h.terminal("second").await)),
        serde_json::json!(42)
    );
    assert_eq!(h.pid("reuse"), pid, "the same executor process ran both");
    assert_eq!(h.agent.executors().len(), 1);
}

/// `TASK_RUNNING` goes out only for a task still running `running_update_delay` after
/// it started: a quick task reports just `TASK_FINISHED`, a slower one both; with no
/// delay every task reports both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_is_reported_only_for_tasks_that_outlast_the_delay() {
    let h = Harness::start(HarnessOptions::default()).await;
    let sum = ModuleRef::inline(example("sum"));
    let failures = ModuleRef::inline(example("failures"));
    for (executor, delay) in [("delayed", 200), ("at-once", 0)] {
        let cfg = ExecutorConfig {
            running_update_delay: Duration::from_millis(delay),
            ..config(BEAT)
        };
        let exec = executor_info(executor, &cfg, &[]);
        // Compiling the module can take longer than the delay: warm it first.
        for id in ["warm", "quick"] {
            let id = format!("{executor}-{id}");
            h.launch(
                &exec,
                task(&id, &spec(sum.clone(), "sum", r#""1 2""#), 0.5, 64.0),
            )
            .await;
            assert_eq!(json(&result(&h.terminal(&id).await)), serde_json::json!(3));
        }
        let slow = format!("{executor}-slow");
        h.launch(
            &exec,
            task(&slow, &spec(failures.clone(), "spin", "600"), 0.5, 64.0),
        )
        .await;
        h.terminal(&slow).await;
    }
    let log = h.log();
    let states =
        |id: &str| -> Vec<TaskState> { log.statuses_of(id).iter().map(|s| s.state()).collect() };
    let (running, finished) = (TaskState::TaskRunning, TaskState::TaskFinished);
    assert_eq!(states("delayed-quick"), [finished]);
    assert_eq!(states("delayed-slow"), [running, finished]);
    assert_eq!(states("at-once-quick"), [running, finished]);
    assert_eq!(states("at-once-slow"), [running, finished]);
}

/// Every failure fails its task with the right kind, and the executor carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_fail_their_task_and_the_executor_keeps_serving() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("failures", &config(BEAT), &[]);
    let failures = ModuleRef::inline(example("failures"));
    let sum = ModuleRef::inline(example("sum"));

    let mut looping = spec(failures.clone(), "loop_forever", "");
    looping.deadline = Some(Duration::from_millis(300));
    let cases = [
        (
            "deadline",
            looping,
            ErrorKind::DeadlineExceeded,
            Some(Reason::MaxCompletionTimeReached),
        ),
        (
            "memory",
            spec(failures.clone(), "allocate_forever", ""),
            ErrorKind::MemoryLimit,
            Some(Reason::ContainerLimitationMemory),
        ),
        (
            "panic",
            spec(failures.clone(), "panic", ""),
            ErrorKind::GuestPanic,
            None,
        ),
        (
            "trap",
            spec(failures.clone(), "trap", ""),
            ErrorKind::Trap,
            None,
        ),
        (
            "fail",
            spec(failures.clone(), "fail", ""),
            ErrorKind::GuestError,
            None,
        ),
        (
            "no-export",
            spec(failures.clone(), "no_such_task", ""),
            ErrorKind::ExportMissing,
            Some(Reason::TaskInvalid),
        ),
        (
            "missing-module",
            spec(ModuleRef::by_hash(ModuleHash::of(b"never sent")), "x", ""),
            ErrorKind::ModuleMissing,
            None,
        ),
        (
            "bad-args",
            spec(sum.clone(), "sum", "not json"),
            ErrorKind::ArgumentDecode,
            None,
        ),
    ];
    let pid = {
        h.run(
            &exec,
            task("ok-0", &spec(sum.clone(), "sum", r#""1""#), 0.5, 64.0),
        )
        .await;
        h.pid("failures")
    };
    for (i, (id, spec_, kind, reason)) in cases.into_iter().enumerate() {
        let status = h.run(&exec, task(id, &spec_, 0.5, 64.0)).await;
        assert_eq!(
            status.state(),
            TaskState::TaskFailed,
            "{id}: {}",
            status.message()
        );
        assert_eq!(failure_kind(&status), kind, "{id}: {}", status.message());
        assert_eq!(status.reason.map(|_| status.reason()), reason, "{id}");
        assert!(
            status.message().starts_with(kind.as_str()),
            "{}",
            status.message()
        );
        // The executor keeps serving.
        let ok = format!("ok-{}", i + 1);
        let by_hash = spec(ModuleRef::by_hash(sum.hash), "sum", r#""2 2""#);
        h.launch(&exec, task(&ok, &by_hash, 0.5, 64.0)).await;
        assert_eq!(json(&result(&h.terminal(&ok).await)), serde_json::json!(4));
    }
    let panic = h.log().terminal_of("panic").cloned().unwrap();
    let TaskOutcome::Failure(f) = outcome(&panic) else {
        unreachable!()
    };
    assert!(f.message.contains("deliberate panic"), "{}", f.message);
    assert!(
        f.stderr_tail.contains("deliberate panic"),
        "{}",
        f.stderr_tail
    );
    assert_eq!(h.pid("failures"), pid, "no executor restart");
}

/// A TaskInfo.data that is not a TaskSpec: TASK_ERROR, and the executor carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_task_spec_is_a_task_error() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("badspec", &config(BEAT), &[]);
    h.launch(
        &exec,
        task_with_data("garbage", Bytes::from_static(b"\x01garbage"), 0.5, 64.0),
    )
    .await;
    let status = h.terminal("garbage").await;
    assert_eq!(status.state(), TaskState::TaskError);
    assert_eq!(status.reason(), Reason::TaskInvalid);
    assert!(
        status.message().contains("invalid TaskSpec"),
        "{}",
        status.message()
    );
    assert_eq!(failure_kind(&status), ErrorKind::InvalidTaskSpec);

    h.launch(&exec, task_with_data("empty", Bytes::new(), 0.5, 64.0))
        .await;
    assert_eq!(h.terminal("empty").await.state(), TaskState::TaskError);

    let sum = ModuleRef::inline(example("sum"));
    h.launch(
        &exec,
        task("after", &spec(sum, "sum", r#""5 5""#), 0.5, 64.0),
    )
    .await;
    assert_eq!(
        json(&result(&h.terminal("after").await)),
        serde_json::json!(10)
    );
}

/// Runs one short `spin` (a task named "warm" of `cpus` cpus) of the `failures`
/// module so the executor has compiled it; returns the module by hash for the launches
/// that follow, which then time running, not compiling.
async fn warm_failures(h: &Harness, exec: &ExecutorInfo, cpus: f64) -> ModuleRef {
    let failures = ModuleRef::inline(example("failures"));
    h.run(
        exec,
        task("warm", &spec(failures.clone(), "spin", "1"), cpus, 64.0),
    )
    .await;
    ModuleRef::by_hash(failures.hash)
}

/// An ExecutorInfo.data that is not an ExecutorConfig: the executor says why in its
/// log and exits 2; the agent fails its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_executor_config_exits_with_a_clear_error() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info_with_data("badconfig", Bytes::from_static(b"\x01nope"), &[]);
    let sum = ModuleRef::inline(example("sum"));
    h.launch(
        &exec,
        task("victim", &spec(sum, "sum", r#""1""#), 0.5, 64.0),
    )
    .await;
    let status = h.terminated("badconfig", Duration::from_secs(20)).await;
    assert_eq!(status, Some(2 << 8), "exit code 2");
    let done = h.terminal("victim").await;
    assert_eq!(done.state(), TaskState::TaskFailed);
    assert_eq!(done.reason(), Reason::ExecutorTerminated);
    let stderr = std::fs::read_to_string(h.sandbox("badconfig").join("stderr")).unwrap();
    assert!(
        stderr.contains("bad executor configuration") && stderr.contains("ExecutorConfig"),
        "{stderr}"
    );
}

/// A dataset that was never fetched fails the tasks that need it, clearly; the
/// executor keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_dataset_fails_tasks_clearly() {
    let h = Harness::start(HarnessOptions::default()).await;
    let cfg = ExecutorConfig {
        dataset: Some(DatasetRef {
            path: "not-fetched.txt".into(),
        }),
        ..config(BEAT)
    };
    let exec = executor_info("nodata", &cfg, &[]);
    let wc = ModuleRef::inline(example("wordcount"));
    let args = r#"{"offset": 0, "len": 10}"#;
    let status = h
        .run(
            &exec,
            task("wc", &spec(wc.clone(), "wordcount", args), 0.5, 64.0),
        )
        .await;
    assert_eq!(status.state(), TaskState::TaskFailed);
    assert_eq!(failure_kind(&status), ErrorKind::Internal);
    assert!(
        status.message().contains("not-fetched.txt"),
        "{}",
        status.message()
    );
    let pid = h.pid("nodata");
    // Once the file is there, the next task maps it and runs.
    std::fs::write(h.sandbox("nodata").join("not-fetched.txt"), "one two three").unwrap();
    let args = r#"{"offset": 0, "len": 100}"#;
    let done = h
        .run(
            &exec,
            task(
                "wc-again",
                &spec(ModuleRef::by_hash(wc.hash), "wordcount", args),
                0.5,
                64.0,
            ),
        )
        .await;
    assert_eq!(json(&result(&done))["words"], 3);
    assert_eq!(h.pid("nodata"), pid, "the executor kept serving");
}

/// KILL of a task that never ends by itself ends it with TASK_KILLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_stops_a_looping_task() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("kill", &config(BEAT), &[]);
    // Compile the module first: compilation itself is not interruptible.
    let looping = spec(warm_failures(&h, &exec, 0.5).await, "loop_forever", "");
    h.launch(&exec, task("loop", &looping, 0.5, 64.0)).await;
    h.status("loop", TaskState::TaskRunning).await;
    h.kill("loop").await;
    let status = h.terminal("loop").await;
    assert_eq!(status.state(), TaskState::TaskKilled);
    assert_eq!(failure_kind(&status), ErrorKind::Killed);
}

/// SHUTDOWN with tasks running: TASK_KILLED for each, and the executor exits (0)
/// within the grace period: by itself, before the agent's SIGKILL at its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_every_task_and_exits_in_time() {
    let grace = Duration::from_secs(5);
    let h = Harness::start(HarnessOptions {
        grace,
        ..HarnessOptions::default()
    })
    .await;
    let exec = executor_info("shut", &config(BEAT), &[]);
    let failures = warm_failures(&h, &exec, 0.5).await;
    for id in ["a", "b"] {
        h.launch(
            &exec,
            task(id, &spec(failures.clone(), "loop_forever", ""), 1.0, 64.0),
        )
        .await;
    }
    // And one queued behind them (0.5 more cpus: ceil(2.5) = 3 workers, so make it
    // wait by giving the running ones all the cpus it could use).
    h.launch(
        &exec,
        task(
            "queued",
            &spec(failures.clone(), "loop_forever", ""),
            0.0,
            64.0,
        ),
    )
    .await;
    h.status("a", TaskState::TaskRunning).await;
    h.status("b", TaskState::TaskRunning).await;
    h.agent
        .shutdown_executor(&h.framework_id(), &exec.executor_id)
        .await
        .unwrap();
    for id in ["a", "b", "queued"] {
        let status = h.terminal(id).await;
        assert_eq!(
            status.state(),
            TaskState::TaskKilled,
            "{id}: {}",
            status.message()
        );
        assert_eq!(status.source(), Source::Executor);
    }
    // The agent SIGKILLs an executor still there when the grace period ends (its wait
    // status is then 9): 0 means it left by itself, in time.
    let exit = h.terminated("shut", WAIT).await;
    assert_eq!(exit, Some(0), "exited by itself, not SIGKILLed");
}

/// With checkpointing, a dropped connection is survived: the executor re-subscribes
/// and the task's updates arrive exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_checkpointing_a_dropped_connection_is_survived() {
    let h = Harness::start(HarnessOptions {
        checkpoint: true,
        ..HarnessOptions::default()
    })
    .await;
    let exec = executor_info("ckpt", &config(BEAT), &[]);
    let failures = ModuleRef::inline(example("failures"));
    h.launch(
        &exec,
        task("spin", &spec(failures.clone(), "spin", "1500"), 0.5, 64.0),
    )
    .await;
    h.status("spin", TaskState::TaskRunning).await;
    let pid = h.pid("ckpt");
    h.agent
        .disconnect_executor(&h.framework_id(), &exec.executor_id)
        .await
        .unwrap();
    let done = h.terminal("spin").await;
    assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
    h.wait_for(Duration::from_secs(10), "re-subscription", |_| {
        h.executor("ckpt").filter(|e| e.subscribed).map(|_| ())
    })
    .await;
    assert_eq!(h.pid("ckpt"), pid);
    let sum = ModuleRef::inline(example("sum"));
    h.launch(
        &exec,
        task("after", &spec(sum, "sum", r#""3 3""#), 0.5, 64.0),
    )
    .await;
    assert_eq!(
        json(&result(&h.terminal("after").await)),
        serde_json::json!(6)
    );

    let log = h.log();
    let states: Vec<TaskState> = log.statuses_of("spin").iter().map(|s| s.state()).collect();
    assert_eq!(states, [TaskState::TaskRunning, TaskState::TaskFinished]);
    let mut uuids: Vec<Bytes> = log
        .statuses
        .iter()
        .filter_map(|(_, s)| s.uuid.clone())
        .collect();
    let n = uuids.len();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), n, "no update arrived twice");
}

/// Without checkpointing, a dropped connection ends the executor, and the agent
/// settles its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_checkpointing_a_dropped_connection_ends_the_executor() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("nockpt", &config(BEAT), &[]);
    let failures = ModuleRef::inline(example("failures"));
    h.launch(
        &exec,
        task("loop", &spec(failures, "loop_forever", ""), 0.5, 64.0),
    )
    .await;
    h.status("loop", TaskState::TaskRunning).await;
    h.agent
        .disconnect_executor(&h.framework_id(), &exec.executor_id)
        .await
        .unwrap();
    let exit = h.terminated("nockpt", Duration::from_secs(10)).await;
    assert_eq!(exit, Some(0));
    let status = h.terminal("loop").await;
    assert!(
        matches!(status.state(), TaskState::TaskFailed | TaskState::TaskLost),
        "{status:?}"
    );
}

/// SIGKILL of the executor mid-task: the agent reports its tasks terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_executor_has_its_tasks_reported_terminal() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("victim", &config(BEAT), &[]);
    let failures = ModuleRef::inline(example("failures"));
    for id in ["x", "y"] {
        h.launch(
            &exec,
            task(id, &spec(failures.clone(), "loop_forever", ""), 1.0, 64.0),
        )
        .await;
        h.status(id, TaskState::TaskRunning).await;
    }
    let pid = h.pid("victim");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(
        h.terminated("victim", Duration::from_secs(10)).await,
        Some(9)
    );
    for id in ["x", "y"] {
        let status = h.terminal(id).await;
        assert_eq!(status.state(), TaskState::TaskFailed);
        assert_eq!(status.reason(), Reason::ExecutorTerminated);
        assert_eq!(status.source(), Source::Agent);
    }
}

/// Heartbeats follow each executor's configured interval and carry `pi`'s progress.
///
/// No clock is read: the executors' own heartbeat counts are compared. An executor with
/// a one-hour interval sends its first heartbeat (at SUBSCRIBED) and no other while one
/// with a 100 ms interval, started after it, sends 25.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_follow_the_interval_and_carry_progress() {
    let h = Harness::start(HarnessOptions::default()).await;
    let sum = ModuleRef::inline(example("sum"));
    let rare = executor_info("rare", &config(Duration::from_secs(3600)), &[]);
    let done = h
        .run(
            &rare,
            task("rare-sum", &spec(sum, "sum", r#""1 2""#), 0.5, 64.0),
        )
        .await;
    assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
    let first = h.heartbeat("rare", WAIT, |_| true).await;
    assert_eq!(first.seq, 1);

    let exec = executor_info("beats", &config(Duration::from_millis(100)), &[]);
    let pi = ModuleRef::inline(example("pi"));
    let args = r#"{"samples": 60000000, "seed": 1}"#;
    h.launch(&exec, task("pi", &spec(pi, "pi", args), 1.0, 64.0))
        .await;
    let beat = h
        .heartbeat("beats", WAIT, |b| {
            b.running
                .iter()
                .any(|r| r.task_id == "pi" && r.progress.is_some_and(|p| p > 0.0 && p < 1.0))
        })
        .await;
    assert_eq!(beat.allocation.tasks, 1);
    assert!((beat.allocation.cpus - 1.1).abs() < 1e-9);
    assert!((beat.allocation.mem_mb - 96.0).abs() < 1e-9);
    let done = h.terminal("pi").await;
    assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
    // The executor's 25th heartbeat, 24 of its intervals after its first (sequence
    // numbers count heartbeats sent, even when a backlog is collapsed to the newest).
    h.heartbeat("beats", WAIT, |b| b.seq >= 25).await;

    let log = h.log();
    let seqs = |executor: &str| -> Vec<u64> {
        log.heartbeats
            .iter()
            .filter(|(_, id, _)| id == executor)
            .map(|(_, _, b)| b.seq)
            .collect()
    };
    assert_eq!(
        seqs("rare"),
        [1],
        "an executor with a one-hour interval beat again"
    );
    let beats = seqs("beats");
    assert!(
        beats.windows(2).all(|w| w[1] > w[0]),
        "sequence numbers only grow: {beats:?}"
    );
    let progress: Vec<f64> = log
        .heartbeats
        .iter()
        .filter(|(_, id, _)| id == "beats")
        .flat_map(|(_, _, b)| b.running.iter().filter_map(|r| r.progress))
        .collect();
    assert!(
        progress.windows(2).all(|w| w[1] >= w[0]),
        "progress never goes back: {progress:?}"
    );
}

/// Control messages: Prefetch warms a module (a hash-only task then runs), Evict drops
/// it, garbage is ignored, Drain shuts the executor down once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_messages_prefetch_evict_and_drain() {
    let h = Harness::start(HarnessOptions::default()).await;
    let exec = executor_info("ctl", &config(BEAT), &[]);
    let sum = ModuleRef::inline(example("sum"));
    let hello = ModuleRef::inline(example("hello"));
    h.run(&exec, task("first", &spec(hello, "hello", ""), 0.5, 64.0))
        .await;
    let fid = h.framework_id();
    let send = |m: Bytes| {
        let agent = h.agent.clone();
        let fid = fid.clone();
        let eid = exec.executor_id.clone();
        async move { agent.send_message(&fid, &eid, m).await.unwrap() }
    };
    send(Bytes::from_static(b"garbage")).await;
    send(
        SchedulerMessage::Prefetch {
            module: sum.clone(),
        }
        .encode()
        .into(),
    )
    .await;
    h.heartbeat("ctl", Duration::from_secs(10), |b| {
        b.cached_modules.contains(&sum.hash)
    })
    .await;
    h.launch(
        &exec,
        task(
            "by-hash",
            &spec(ModuleRef::by_hash(sum.hash), "sum", r#""7""#),
            0.5,
            64.0,
        ),
    )
    .await;
    assert_eq!(
        json(&result(&h.terminal("by-hash").await)),
        serde_json::json!(7)
    );
    send(SchedulerMessage::Evict { hash: sum.hash }.encode().into()).await;
    h.heartbeat("ctl", Duration::from_secs(10), |b| {
        !b.cached_modules.contains(&sum.hash)
    })
    .await;
    send(SchedulerMessage::Drain.encode().into()).await;
    assert_eq!(h.terminated("ctl", Duration::from_secs(10)).await, Some(0));
}

/// An executor with nothing to do for longer than its idle timeout leaves by itself;
/// time spent running a task is not idle time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_executor_shuts_itself_down() {
    let h = Harness::start(HarnessOptions::default()).await;
    let cfg = ExecutorConfig {
        idle_timeout: Some(Duration::from_millis(500)),
        ..config(BEAT)
    };
    let exec = executor_info("idle", &cfg, &[]);
    // Busy for three idle timeouts (the guest's own clock): an executor that counted
    // them from its start rather than from its last task would kill this task.
    let failures = ModuleRef::inline(example("failures"));
    let done = h
        .run(
            &exec,
            task("busy", &spec(failures, "spin", "1500"), 0.5, 64.0),
        )
        .await;
    assert_eq!(done.state(), TaskState::TaskFinished, "{}", done.message());
    assert_eq!(h.terminated("idle", WAIT).await, Some(0));
}

/// The executor's cgroup memory soft limit follows its tasks, and its hard limit only
/// rises (as in Mesos, so that a smaller share never OOM-kills it). Needs root and the cgroup cpu
/// and memory controllers: `make test` runs it (through `make test-cgroups`) when run
/// as root, as CI is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and writable cgroup cpu and memory controllers: `sudo make test-cgroups` (`make test` runs it as root)"]
async fn cgroup_memory_soft_limit_follows_tasks_and_the_hard_limit_only_rises() {
    init_tracing();
    let h = Harness::start(HarnessOptions {
        cgroups: true,
        ..HarnessOptions::default()
    })
    .await;
    assert!(
        h.agent.cgroups_enabled(),
        "cgroups are not available or not writable here (the agent's warning says why; \
         BRINE_TEST_LOG=warn shows it): this test needs root and the cpu and memory \
         controllers"
    );
    let exec = executor_info("cg", &config(BEAT), &[]);
    let failures = ModuleRef::inline(example("failures"));
    h.launch(
        &exec,
        task("big", &spec(failures, "loop_forever", ""), 0.5, 256.0),
    )
    .await;
    h.status("big", TaskState::TaskRunning).await;
    let cgroup = h
        .executor("cg")
        .and_then(|e| e.cgroup)
        .expect("the executor's cgroup");
    let want = (32 + 256) << 20;
    assert_eq!(cgroup.memory_limit_bytes(), Some(want), "{cgroup:?}");
    assert_eq!(cgroup.memory_soft_limit_bytes(), Some(want), "{cgroup:?}");
    h.kill("big").await;
    h.terminal("big").await;
    h.wait_for(
        Duration::from_secs(10),
        "the soft limit to fall back",
        |_| (cgroup.memory_soft_limit_bytes() == Some(32 << 20)).then_some(()),
    )
    .await;
    // The hard limit is only ever raised, as Mesos does.
    assert_eq!(cgroup.memory_limit_bytes(), Some(want), "{cgroup:?}");
}
