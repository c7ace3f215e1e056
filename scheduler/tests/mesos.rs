//! Against a real Apache Mesos master, when `BRINE_TEST_MESOS_MASTER` names one
//! (`http://host:5050` or `zk://host:2181/mesos`). The `brine-executor` binary must be
//! at the same path on every agent (it is shipped as a `file://` URI), as
//! `BRINE_EXECUTOR` or beside this test binary. Skipped, saying so, when unset.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use brine_scheduler::{Cluster, ErrorKind, Module, TaskError};
use futures::StreamExt;

const VAR: &str = "BRINE_TEST_MESOS_MASTER";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_run_on_a_real_mesos_master() {
    let Some(master) = std::env::var(VAR).ok().filter(|m| !m.is_empty()) else {
        eprintln!("skipped: set {VAR}=http://host:5050 (or zk://…) to run against real Mesos");
        return;
    };
    let bound = Duration::from_secs(300);
    let cluster = tokio::time::timeout(bound, Cluster::connect(&master))
        .await
        .expect("connects in time")
        .unwrap_or_else(|e| panic!("cannot subscribe to {master}: {e}"));
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
    cluster.shutdown().await;
}
