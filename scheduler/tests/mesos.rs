//! Against a real Apache Mesos master named by `BRINE_TEST_MESOS_MASTER`
//! (`http://host:5050` or `zk://host:2181/mesos`): `make test-mesos
//! MASTER=http://host:5050`. The `brine-executor` binary must be at the same path on
//! every agent (it is shipped as a `file://` URI), as `BRINE_EXECUTOR` or beside this
//! test binary, and the agents must reach this machine's closure lane (see
//! `ClusterConfig::lane_advertise`). Ignored by a plain `cargo test`: there is no Mesos
//! here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use brine_scheduler::{Cluster, ClusterConfig, ErrorKind, Module, TaskError};
use futures::StreamExt;

const VAR: &str = "BRINE_TEST_MESOS_MASTER";
const BOUND: Duration = Duration::from_secs(300);

/// Subscribes to the master `BRINE_TEST_MESOS_MASTER` names, within [`BOUND`].
async fn connect(config: ClusterConfig) -> Cluster {
    let master = std::env::var(VAR)
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| panic!("set {VAR}=http://host:5050 (or zk://…): make test-mesos"));
    tokio::time::timeout(BOUND, Cluster::connect_with(&master, config))
        .await
        .expect("connects in time")
        .unwrap_or_else(|e| panic!("cannot subscribe to {master}: {e}"))
}

/// This framework's entry in the master's `/master/state`.
fn our_framework(cluster: &Cluster) -> serde_json::Value {
    let state = brine_tests::get_json(cluster.master_url(), "/master/state");
    state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == cluster.framework_id())
        .expect("the framework is in /master/state")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Apache Mesos master: make test-mesos MASTER=http://host:5050"]
async fn closures_run_on_a_real_mesos_master() {
    let bound = BOUND;
    let cluster = connect(ClusterConfig::default()).await;
    let sum = Module::from_bytes(brine_tests::example("sum"));
    let hello = Module::from_bytes(brine_tests::example("hello"));

    let six: i64 = tokio::time::timeout(bound, cluster.submit(&sum, "sum", &"1 2 3".to_string()))
        .await
        .expect("in time")
        .expect("sum succeeds");
    assert_eq!(six, 6);
    let greeting: String = tokio::time::timeout(bound, cluster.submit(&hello, "hello", &()))
        .await
        .expect("in time")
        .expect("hello succeeds");
    assert_eq!(greeting, "hello world");
    let bad = tokio::time::timeout(
        bound,
        cluster.submit::<_, i64>(&sum, "sum", &"1 x".to_string()),
    )
    .await
    .expect("in time");
    assert!(matches!(
        bad,
        Err(TaskError::Guest {
            kind: ErrorKind::GuestError,
            ..
        })
    ));

    let inputs: Vec<String> = (0..200).map(|i| format!("{i} 1")).collect();
    let results: Vec<_> =
        tokio::time::timeout(bound, cluster.map(&sum, "sum", inputs).collect::<Vec<_>>())
            .await
            .expect("batch in time");
    assert_eq!(results.len(), 200);
    for (i, result) in results {
        let total: i64 = result.expect("sum succeeds");
        assert_eq!(total, i as i64 + 1);
    }
    // Leases, not a task per closure: the 200 closures (and the three before) ran in
    // a handful of Mesos tasks, every one a lease, on one executor per agent.
    let url = cluster.master_url().to_owned();
    let ours = our_framework(&cluster);
    let tasks: Vec<&serde_json::Value> = ours["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(ours["completed_tasks"].as_array().into_iter().flatten())
        .collect();
    assert!(
        !tasks.is_empty() && tasks.len() < 100,
        "{} Mesos tasks for 203 closures",
        tasks.len()
    );
    for task in &tasks {
        assert!(
            task["id"].as_str().unwrap().starts_with("brine-lease-"),
            "not a lease: {task}"
        );
    }
    let status = cluster.status().await.unwrap();
    let agents: HashSet<&str> = status
        .executors
        .iter()
        .map(|e| e.agent_id.as_str())
        .collect();
    assert_eq!(agents.len(), status.executors.len(), "{status:?}");
    // A second burst reuses leases still held or takes new ones; either way it works.
    let again: i64 = tokio::time::timeout(bound, cluster.submit(&sum, "sum", &"2 2".to_string()))
        .await
        .expect("in time")
        .expect("sum succeeds");
    assert_eq!(again, 4);
    let id = cluster.framework_id().to_owned();
    cluster.shutdown().await;
    // TEARDOWN leaves no framework behind.
    let state = brine_tests::get_json(&url, "/master/state");
    assert!(
        state["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != id.as_str()),
        "{id} still active after shutdown"
    );
}

/// The periodic reconciliation is implicit too in lease mode (so that leases no one uses
/// are found and killed): on a real master its answers for the leases in use must
/// leave them alone. Reconciling every second, a batch runs through, and no lease ends
/// `TASK_KILLED` (idle ones go back `TASK_FINISHED`, over the lane).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Apache Mesos master: make test-mesos MASTER=http://host:5050"]
async fn periodic_reconciliation_leaves_live_leases_alone() {
    let bound = BOUND;
    let config = ClusterConfig::default().with_reconcile_interval(Duration::from_secs(1));
    let cluster = connect(config).await;
    let failures = Module::from_bytes(brine_tests::example("failures"));
    // Long enough for several reconciliations to pass while leases are in use.
    let inputs: Vec<u64> = vec![50; 100];
    let results: Vec<_> = tokio::time::timeout(
        bound,
        cluster.map(&failures, "spin", inputs).collect::<Vec<_>>(),
    )
    .await
    .expect("batch in time");
    assert_eq!(results.len(), 100);
    for (_, result) in results {
        let _: u64 = result.expect("spin succeeds");
    }
    let ours = our_framework(&cluster);
    let killed: Vec<&serde_json::Value> = ours["completed_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["state"] == "TASK_KILLED")
        .collect();
    assert!(killed.is_empty(), "leases killed while in use: {killed:?}");
    cluster.shutdown().await;
}
