//! The job machinery end to end, on a real local master and agents with real
//! `brine-executor` processes: batches, cancellation, progress, executor babysitting,
//! executor crashes, re-subscription after a cut connection, and failover through the
//! state store. Every wait is bounded.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::bounded;
use common::Proxy;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use brine_local::{LocalCluster, LocalClusterConfig};
use brine_proto::payload::ExecutorConfig;
use brine_scheduler::{Cluster, ClusterConfig, Dispatch, JobState, Module, TaskError};
use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The tests here keep both cores busy (1,000 closures, spinning tasks, two agents
/// each) and presume an executor lost after 1 s without a heartbeat. Run side by side,
/// one test's load can starve another's executors past that (seen once: a healthy
/// executor presumed lost in the 1,000-closure test). So each test holds this for its
/// whole run, and the timeout measures the executor, not its neighbours.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[must_use = "hold it for the whole test"]
async fn init() -> tokio::sync::MutexGuard<'static, ()> {
    let turn = ONE_AT_A_TIME.lock().await;
    brine_tests::init_tracing();
    brine_tests::executor_binary();
    turn
}

fn module(name: &str) -> Module {
    Module::from_bytes(brine_tests::example(name))
}

/// Executors beat every 50 ms and are presumed lost after 1 s of silence.
fn fast_config() -> ClusterConfig {
    ClusterConfig {
        executor_config: ExecutorConfig {
            heartbeat_interval: Duration::from_millis(50),
            ..ExecutorConfig::default()
        },
        heartbeat_timeout: Duration::from_secs(1),
        ..ClusterConfig::default()
    }
}

async fn local(agents: usize, dir: &Path) -> LocalCluster {
    bounded(
        "the local cluster",
        LocalCluster::start(LocalClusterConfig::new(agents, dir)),
    )
    .await
    .expect("local cluster starts")
}

/// Pids of the live executors on every agent of `local`.
fn executor_pids(local: &LocalCluster) -> Vec<(String, u32)> {
    local
        .agents()
        .iter()
        .flat_map(|a| {
            a.executors()
                .into_iter()
                .filter_map(|e| e.pid.map(|pid| (e.executor_id.value, pid)))
        })
        .collect()
}

/// Waits until `check` holds, looking again each time the scheduler's status changes
/// or 20 ms pass (agent snapshots have no change notification).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    bounded(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_closures_through_map_one_executor_per_agent() {
    let _turn = init().await;
    let cluster = bounded("connect", Cluster::connect("local:2"))
        .await
        .expect("connects");
    let sum = module("sum");
    let inputs: Vec<String> = (0..1000).map(|i| format!("{i} {} 1", i * 2)).collect();
    let results: Vec<(usize, Result<i64, TaskError>)> = bounded(
        "1000 sums",
        cluster.map(&sum, "sum", inputs.clone()).collect(),
    )
    .await;
    assert_eq!(results.len(), 1000);
    let mut seen = HashSet::new();
    for (i, result) in results {
        assert!(seen.insert(i), "index {i} yielded twice");
        assert_eq!(result.expect("sum succeeds"), 3 * i as i64 + 1, "input {i}");
    }
    let local = cluster.local().expect("local cluster");
    for agent in local.agents() {
        let ours = agent.executors().len() + agent.completed_executors().len();
        assert!(
            ours <= 1,
            "agent {} ran {ours} executors",
            agent.agent_id().value
        );
    }
    let status = cluster.status().await.expect("status");
    assert_eq!(status.jobs.succeeded, 1000);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_on_the_handle_and_dropping_it_kills_the_task() {
    let _turn = init().await;
    // One Mesos task per closure: dropping the handle KILLs that task.
    let config = ClusterConfig {
        dispatch: Dispatch::TaskPerClosure,
        ..fast_config()
    };
    let cluster = bounded("connect", Cluster::connect_with("local:1", config))
        .await
        .expect("connects");
    let failures = module("failures");
    let handle = cluster.submit::<u64, u64>(&failures, "spin", &60_000);
    let mut watch = handle.watch().expect("a submitted handle has a status");
    let seen = bounded("progress from heartbeats", async {
        loop {
            watch.changed().await.expect("status sender lives");
            let status = watch.borrow().clone();
            if let Some(p) = status.progress
                && p > 0.0
            {
                return status;
            }
        }
    })
    .await;
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
    let _turn = init().await;
    let cluster = bounded("connect", Cluster::connect_with("local:1", fast_config()))
        .await
        .expect("connects");
    let failures = module("failures");
    let handle = cluster.submit::<u64, u64>(&failures, "spin", &60_000);
    let mut watch = handle.watch().expect("a submitted handle has a status");
    let seen = bounded("progress over the lane", async {
        loop {
            watch.changed().await.expect("status sender lives");
            let status = watch.borrow().clone();
            if let Some(p) = status.progress
                && p > 0.0
            {
                return status;
            }
        }
    })
    .await;
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
async fn a_killed_executor_costs_nothing_a_frozen_one_is_presumed_lost() {
    let _turn = init().await;
    // Both agents stay in use (none is set aside for the jobs it lost).
    let config = ClusterConfig {
        agent_failure_limit: 1000,
        ..fast_config()
    };
    let cluster = bounded("connect", Cluster::connect_with("local:2", config))
        .await
        .expect("connects");
    let failures = module("failures");
    let local = cluster.local().expect("local cluster");

    for signal in [Signal::SIGKILL, Signal::SIGSTOP] {
        // 40 tasks of 300 ms: both agents are busy when one executor is hit.
        let items: Vec<u64> = vec![300; 40];
        let mut batch = Box::pin(cluster.map::<u64, u64, _>(&failures, "spin", items));
        let mut results = HashMap::new();
        let (index, first) = bounded("the first result", batch.next())
            .await
            .expect("a result");
        results.insert(index, first);
        // The victim: an executor that has beaten and runs tasks of this batch.
        let victim =
            bounded("a busy executor that has beaten", async {
                loop {
                    let status = cluster.status().await.expect("status");
                    if let Some(e) = status.executors.iter().find(|e| {
                        !e.lost && !e.tasks.is_empty() && e.last_heartbeat_unix_ms.is_some()
                    }) {
                        return e.executor_id.clone();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
        let pid = executor_pids(local)
            .into_iter()
            .find(|(id, _)| *id == victim)
            .map(|(_, pid)| pid)
            .expect("the victim's pid");
        kill(Pid::from_raw(pid as i32), signal).expect("signal the executor");
        while let Some((index, result)) = bounded("the batch", batch.next()).await {
            assert!(
                results.insert(index, result).is_none(),
                "index {index} yielded twice"
            );
        }
        assert_eq!(results.len(), 40, "after {signal}: every job ended");
        for (index, result) in &results {
            assert!(
                result.as_ref().is_ok_and(|spins| *spins > 0),
                "after {signal}: job {index}: {result:?}"
            );
        }
        let status = cluster.status().await.expect("status");
        let gone = status
            .executors
            .iter()
            .find(|e| e.executor_id == victim)
            .unwrap_or_else(|| panic!("{victim} is not listed: {status:?}"));
        assert!(gone.tasks.is_empty(), "{gone:?}");
        if signal == Signal::SIGSTOP {
            assert!(gone.lost, "a frozen executor is presumed lost: {gone:?}");
            // Thaw it so the agent can finish shutting it down.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
        // The replacement on that agent is a new generation.
        assert!(
            status
                .executors
                .iter()
                .any(|e| e.agent_id == gone.agent_id && e.executor_id != victim && !e.lost),
            "no new executor on {}: {status:?}",
            gone.agent_id
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resubscribed_and_reconciled() {
    let _turn = init().await;
    let dir = tempfile::tempdir().unwrap();
    let local = local(1, dir.path()).await;
    let master = local.master().expect("a master").endpoint();
    let proxy = Proxy::start(master).await;
    let cluster = bounded("connect", Cluster::connect_with(&proxy.url, fast_config()))
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
    let _turn = init().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("scheduler.state");
    let local = local(2, &dir.path().join("cluster")).await;
    let url = local.master_url();
    // One Mesos task per closure: a restarted scheduler attaches to the tasks still
    // running (lane closures of the old process would run again instead).
    let config = ClusterConfig {
        state_file: Some(state.clone()),
        dispatch: Dispatch::TaskPerClosure,
        ..fast_config()
    };
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
    let _turn = init().await;
    let dir = tempfile::tempdir().unwrap();
    let local = local(2, dir.path()).await;
    let cluster = bounded(
        "connect",
        Cluster::connect_with(&local.master_url(), fast_config()),
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
