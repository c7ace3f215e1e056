//! Sandbox garbage collection: a terminated executor's directories go after
//! `gc_delay`, at once when the disk is short, and never from under a new run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use brine_local::agent::{Agent, AgentEvent, GcCounts};
use common::*;
use tokio::sync::mpsc;

/// Launches executor `id` as a command that exits at once, and waits for it to end.
async fn run_to_exit(
    agent: &Agent,
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    id: &str,
) -> PathBuf {
    launch_one(agent, id, "exit 3").await;
    next_event(events, |e| {
        matches!(e, AgentEvent::ExecutorTerminated { .. })
    })
    .await;
    let sandbox = agent
        .completed_executors()
        .into_iter()
        .rev()
        .find(|e| e.executor_id.value == id)
        .unwrap()
        .sandbox;
    assert!(sandbox.join("stdout").is_file());
    sandbox
}

async fn removals(agent: &Agent, at_least: u64) -> GcCounts {
    let mut counts = agent.gc_removals();
    let got = tokio::time::timeout(
        WAIT,
        counts.wait_for(|c| c.succeeded + c.failed >= at_least),
    )
    .await
    .expect("timed out waiting for the garbage collector")
    .unwrap();
    *got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_executors_directories_go_after_gc_delay() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) =
        start_agent(dir.path(), |c| c.gc_delay = Duration::from_millis(300)).await;
    let sandbox = run_to_exit(&agent, &mut events, "short-lived").await;
    let executor_dir = sandbox.parent().unwrap().parent().unwrap();
    let framework_dir = executor_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(framework_dir.ends_with("frameworks/fw"));

    // The run, the executor and (its last executor gone) the framework directory.
    let counts = removals(&agent, 3).await;
    assert_eq!(
        counts,
        GcCounts {
            succeeded: 3,
            failed: 0
        }
    );
    assert!(
        !framework_dir.exists(),
        "{} is still there",
        framework_dir.display()
    );
    assert!(
        framework_dir.parent().unwrap().is_dir(),
        "only the framework's directory goes"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_removes_sandboxes_without_waiting_for_gc_delay() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    // A week's delay, but a headroom of 1.0 makes any disk count as full: the maximum
    // age is zero, so the next disk check removes everything scheduled.
    let (agent, mut events) = start_agent(dir.path(), |c| {
        c.gc_delay = Duration::from_secs(7 * 24 * 3600);
        c.gc_disk_headroom = 1.0;
        c.disk_watch_interval = Duration::from_millis(100);
    })
    .await;
    let sandbox = run_to_exit(&agent, &mut events, "on-a-full-disk").await;
    removals(&agent, 3).await;
    assert!(!sandbox.exists());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_of_the_executor_keeps_its_directories() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |c| {
        c.gc_delay = Duration::from_millis(500);
        // The second run never subscribes: shutting it down is SIGKILL after this.
        c.executor_shutdown_grace_period = Duration::from_millis(100);
    })
    .await;
    let old_run = run_to_exit(&agent, &mut events, "again").await;
    // The same executor id again, before the old run's directories fall due: the
    // executor and framework directories are unscheduled, the old run is not.
    agent
        .launch(
            framework("fw", false),
            executor_info("again", "exec sleep 600"),
            task("t2", 0.1, 16.0),
        )
        .await
        .unwrap();
    wait_for_executor(&agent).await;
    let new_run = agent.executors().remove(0).sandbox;
    assert_ne!(new_run, old_run);

    let counts = removals(&agent, 1).await;
    assert_eq!(
        counts,
        GcCounts {
            succeeded: 1,
            failed: 0
        }
    );
    assert!(!old_run.exists());
    assert!(
        new_run.join("stdout").is_file(),
        "the new run's sandbox was removed"
    );
    agent.shutdown().await;
}
