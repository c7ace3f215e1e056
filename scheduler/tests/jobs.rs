//! The job machinery end to end, on a real local master and agents with real
//! `brine-executor` processes: batches, cancellation, progress, re-subscription after a
//! cut connection, and failover through the state store. (Executor crashes and
//! freezes are cases of the fault matrix, `faults.rs`.) Every wait is bounded.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::bounded;
use common::{Proxy, fast_heartbeats, init, module, until};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use brine_local::{LocalCluster, LocalClusterConfig};
use brine_scheduler::{Cluster, Dispatch, JobState, JobStatus, TaskError, TaskHandle};
use futures::StreamExt;

async fn local(agents: usize, dir: &Path) -> LocalCluster {
    bounded(
        "the local cluster",
        LocalCluster::start(LocalClusterConfig::new(agents, dir)),
    )
    .await
    .expect("local cluster starts")
}

/// The handle's status once it first shows progress above 0.
async fn first_progress(handle: &TaskHandle<u64>, what: &str) -> JobStatus {
    let mut watch = handle.watch().expect("a submitted handle has a status");
    bounded(what, async {
        loop {
            watch.changed().await.expect("status sender lives");
            let status = watch.borrow().clone();
            if status.progress.is_some_and(|p| p > 0.0) {
                return status;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_on_the_handle_and_dropping_it_kills_the_task() {
    init();
    // One Mesos task per closure: dropping the handle KILLs that task.
    let config = fast_heartbeats().with_dispatch(Dispatch::TaskPerClosure);
    let cluster = bounded("connect", Cluster::connect_with("local:1", config))
        .await
        .expect("connects");
    let failures = module("failures");
    let handle = cluster.submit::<u64, u64>(&failures, "spin", &60_000);
    let seen = first_progress(&handle, "progress from heartbeats").await;
    assert_eq!(seen.state, JobState::Running);
    assert_eq!(seen.attempts, 1);
    let task_id = seen.task_id.clone().expect("a running job has a task");
    assert!(seen.progress.is_some_and(|p| p < 1.0));

    drop(handle);
    let local = cluster.local().expect("local cluster");
    until("the cancelled task to be killed", || {
        local.agents().iter().any(|a| {
            a.executors()
                .iter()
                .chain(a.completed_executors().iter())
                .flat_map(|e| e.tasks.iter())
                .any(|(id, state)| {
                    id.value == task_id && *state == brine_proto::mesos::v1::TaskState::TaskKilled
                })
        })
    })
    .await;
    let status = cluster.status().await.expect("status");
    assert_eq!(status.jobs.running + status.jobs.staging, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_on_the_handle_and_dropping_it_kills_the_closure() {
    init();
    let cluster = bounded(
        "connect",
        Cluster::connect_with("local:1", fast_heartbeats()),
    )
    .await
    .expect("connects");
    let failures = module("failures");
    let handle = cluster.submit::<u64, u64>(&failures, "spin", &60_000);
    let seen = first_progress(&handle, "progress over the lane").await;
    assert_eq!(seen.state, JobState::Running);
    assert_eq!(seen.attempts, 1);
    let lease = seen
        .task_id
        .clone()
        .expect("a running closure names its lease");
    assert!(lease.starts_with("brine-lease-"), "{lease}");
    let running = || async {
        let status = cluster.status().await.expect("status");
        status.executors[0].lane_running
    };
    bounded("a heartbeat counting the closure", async {
        while running().await != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(handle);
    // The executor stops it: its heartbeats count no lane closure running any more,
    // while the lease itself stays (idle until given back).
    bounded("the cancelled closure to stop", async {
        loop {
            let status = cluster.status().await.expect("status");
            let executor = &status.executors[0];
            if status.jobs.running + status.jobs.staging == 0
                && executor.lane_running == 0
                && executor.last_heartbeat_unix_ms.is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resubscribed_and_reconciled() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let local = local(1, dir.path()).await;
    let master = local.master().expect("a master").endpoint();
    let proxy = Proxy::start(master).await;
    let cluster = bounded(
        "connect",
        Cluster::connect_with(&proxy.url, fast_heartbeats()),
    )
    .await
    .expect("connects through the proxy");
    let failures = module("failures");
    let sum = module("sum");
    let slow = cluster.submit::<u64, u64>(&failures, "spin", &1_500);
    let mut watch = slow.watch().unwrap();
    bounded(
        "the slow job to run",
        watch.wait_for(|s| s.state == JobState::Running),
    )
    .await
    .unwrap();
    proxy.cut();
    // The job launched before the cut finishes; one submitted after it runs.
    let after: i64 = bounded(
        "a job after the cut",
        cluster.submit(&sum, "sum", &"2 2".to_string()),
    )
    .await
    .expect("runs after re-subscription");
    assert_eq!(after, 4);
    let spins = bounded("the job across the cut", slow)
        .await
        .expect("finishes");
    assert!(spins > 0);
    let status = cluster.status().await.unwrap();
    assert!(status.connected);
    cluster.shutdown().await;
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_carries_on_as_the_same_framework() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("scheduler.state");
    let local = local(2, &dir.path().join("cluster")).await;
    let url = local.master_url();
    // One Mesos task per closure: a restarted scheduler attaches to the tasks still
    // running (lane closures of the old process would run again instead).
    let config = fast_heartbeats()
        .with_state_file(state.clone())
        .with_dispatch(Dispatch::TaskPerClosure);
    let failures = module("failures");
    let items: Vec<u64> = (0..12).map(|i| 200 + 10 * i).collect();

    let first = bounded("connect", Cluster::connect_with(&url, config.clone()))
        .await
        .expect("connects");
    let framework_id = first.framework_id().to_owned();
    let done_before: Vec<(usize, Result<u64, TaskError>)> = {
        let mut batch = Box::pin(first.map::<u64, u64, _>(&failures, "spin", items.clone()));
        let mut done = Vec::new();
        while done.len() < 3 {
            done.push(
                bounded("part of the batch", batch.next())
                    .await
                    .expect("a result"),
            );
        }
        // A dying process cancels nothing: leak the handles instead of dropping them.
        std::mem::forget(batch);
        done
    };
    assert_eq!(done_before.len(), 3);
    // The process "dies": no TEARDOWN, the master keeps the tasks.
    first.abandon().await;

    let second = bounded("reconnect", Cluster::connect_with(&url, config))
        .await
        .expect("re-subscribes");
    assert_eq!(second.framework_id(), framework_id, "same FrameworkID");
    let results: Vec<(usize, Result<u64, TaskError>)> = bounded(
        "the whole batch again",
        second.map(&failures, "spin", items.clone()).collect(),
    )
    .await;
    assert_eq!(results.len(), items.len());
    for (i, result) in &results {
        assert!(result.as_ref().is_ok_and(|s| *s > 0), "job {i}: {result:?}");
    }
    // Every job ran once: the master saw one task per job.
    let launched: HashSet<String> = local
        .agents()
        .iter()
        .flat_map(|a| {
            a.executors()
                .into_iter()
                .chain(a.completed_executors())
                .flat_map(|e| e.tasks.into_iter().map(|(id, _)| id.value))
        })
        .collect();
    assert_eq!(launched.len(), items.len(), "tasks launched: {launched:?}");
    second.shutdown().await;
    assert!(
        !state.exists(),
        "a torn-down framework leaves no state behind"
    );
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_removed_agent_is_retried_on_another() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let local = local(2, dir.path()).await;
    let cluster = bounded(
        "connect",
        Cluster::connect_with(&local.master_url(), fast_heartbeats()),
    )
    .await
    .expect("connects");
    let failures = module("failures");
    let handle = cluster.submit::<u64, u64>(&failures, "spin", &1_000);
    let mut watch = handle.watch().unwrap();
    let first = bounded(
        "the job to run",
        watch.wait_for(|s| s.state == JobState::Running),
    )
    .await
    .unwrap()
    .clone();
    let gone = first.agent.clone().expect("a running job has an agent");
    // The master loses the agent: TASK_LOST (REASON_AGENT_REMOVED) and a FAILURE.
    assert!(local.master().unwrap().remove_agent(&gone).await);
    let spins = bounded("the job, retried", handle).await.expect("succeeds");
    assert!(spins > 0);
    let last = watch.borrow().clone();
    assert_eq!(last.state, JobState::Succeeded);
    assert_eq!(last.attempts, 2, "{last:?}");
    assert_ne!(last.agent.as_deref(), Some(gone.as_str()), "{last:?}");
    cluster.shutdown().await;
    local.shutdown().await;
}
