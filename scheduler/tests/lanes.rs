//! Leases and the closure lane end to end, on a real local master and agents with real
//! `brine-executor` processes: a stranger on the lane, a closure over its slot's memory,
//! and idle leases given back to Mesos. (A lane cut mid-batch is a case of the fault
//! matrix, `faults.rs`.) Every wait is bounded.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use brine_proto::lane::{FrameDecoder, ToExecutor, ToScheduler, encode_frame};
use brine_proto::payload::{ErrorKind, Secret};
use brine_scheduler::{Cluster, ClusterConfig, Dispatch, TaskError};
use brine_tests::bounded;
use brine_tests::get_json;
use common::{fast_heartbeats, init, module, until};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Heartbeats every 50 ms; leases given back after 300 ms idle.
fn config() -> ClusterConfig {
    fast_heartbeats()
        .with_heartbeat_timeout(Duration::from_secs(5))
        .with_lease_idle_timeout(Duration::from_millis(300))
}

/// Sends `hello` (or raw bytes) to the lane and returns the first frame it answers.
async fn knock(addr: std::net::SocketAddr, bytes: Vec<u8>) -> Option<ToExecutor> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut decoder = FrameDecoder::default();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(frame) = decoder.next_frame().unwrap() {
            return Some(frame);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_connection_without_the_secret_is_refused_and_work_goes_on() {
    init();
    let cluster = bounded("connect", Cluster::connect_with("local:1", config()))
        .await
        .expect("connects");
    let sum = module("sum");
    assert_eq!(common::sum(&cluster, "1 2").await, 3);
    let status = cluster.status().await.unwrap();
    let executor = &status.executors[0];
    let addr = cluster.lane_addr();

    // The right ids with a wrong secret.
    let mut hello = Vec::new();
    encode_frame(
        &ToScheduler::Hello {
            secret: Secret([0; 32]),
            framework_id: status.framework_id.clone(),
            executor_id: executor.executor_id.clone(),
            agent_id: executor.agent_id.clone(),
        },
        &mut hello,
    );
    let answer = bounded("an answer to a wrong secret", knock(addr, hello)).await;
    assert!(
        matches!(&answer, Some(ToExecutor::Refused { reason }) if reason.contains("secret")),
        "{answer:?}"
    );
    // No hello at all: a result straight away.
    let mut done = Vec::new();
    encode_frame(
        &ToScheduler::Done {
            closure: 1,
            outcome: brine_proto::payload::TaskOutcome::Success { result: vec![] },
        },
        &mut done,
    );
    let answer = bounded("an answer to a frame before Hello", knock(addr, done)).await;
    assert!(
        matches!(&answer, Some(ToExecutor::Refused { .. })),
        "{answer:?}"
    );
    // Garbage.
    let answer = bounded(
        "an answer to garbage",
        knock(addr, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
    )
    .await;
    assert!(
        matches!(&answer, Some(ToExecutor::Refused { .. })),
        "{answer:?}"
    );

    // The executor's own lane was never disturbed.
    let results: Vec<(usize, Result<i64, TaskError>)> = bounded(
        "a batch after the strangers",
        cluster
            .map(&sum, "sum", (0..200).map(|i| format!("{i} 1")))
            .collect(),
    )
    .await;
    for (i, result) in results {
        assert_eq!(result.expect("succeeds"), i as i64 + 1);
    }
    let status = cluster.status().await.unwrap();
    assert_eq!(status.executors.len(), 1, "{status:?}");
    assert!(status.executors[0].lane_connected, "{status:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_over_its_slot_memory_fails_and_the_slot_serves_on() {
    init();
    let cluster = bounded(
        "connect",
        Cluster::connect_with(
            "local:1",
            // One slot of 64 MB: every closure below runs in it.
            config().with_max_leases(1).with_task_mem_mb(64.0),
        ),
    )
    .await
    .expect("connects");
    let failures = module("failures");
    let err = bounded(
        "allocate_forever",
        cluster.submit::<(), ()>(&failures, "allocate_forever", &()),
    )
    .await
    .expect_err("runs out of memory");
    match &err {
        TaskError::Guest { kind, message, .. } => {
            assert_eq!(*kind, ErrorKind::MemoryLimit, "{err}");
            assert!(message.contains("memory"), "{message}");
        }
        other => panic!("expected a memory-limit failure, got {other}"),
    }
    assert_eq!(common::sum(&cluster, "40 2").await, 42);
    let status = cluster.status().await.unwrap();
    assert_eq!(status.executors.len(), 1);
    assert_eq!(status.executors[0].leases, 1, "{status:?}");
    cluster.shutdown().await;
}

/// The agent's `used_resources.cpus` in the master's `/master/state` (ours is the
/// only framework).
fn used_cpus(master: &str) -> f64 {
    let state = get_json(master, "/master/state");
    state["slaves"][0]["used_resources"]["cpus"]
        .as_f64()
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_lease_goes_back_to_mesos() {
    init();
    let config = config();
    let (executor_cpus, slot_cpus) = (config.executor_cpus, config.task_cpus);
    let cluster = bounded("connect", Cluster::connect_with("local:1", config))
        .await
        .expect("connects");
    let master = cluster.master_url().to_owned();
    // A closure that outlasts a look at the master: its lease is in use meanwhile.
    let handle = cluster.submit::<u64, u64>(&module("failures"), "spin", &1_000);
    until("the lease to show in /master/state", || {
        used_cpus(&master) >= executor_cpus + slot_cpus - 1e-9
    })
    .await;
    assert!(bounded("the closure", handle).await.expect("spins") > 0);
    // Idle for 300 ms: released, and the master holds only the executor for us.
    until("the lease to be given back", || {
        (used_cpus(&master) - executor_cpus).abs() < 1e-9
    })
    .await;
    // The executor ended the lease TASK_FINISHED (released, not killed).
    let local = cluster.local().expect("local cluster");
    let leases: Vec<_> = local.agents()[0]
        .executors()
        .into_iter()
        .flat_map(|e| e.tasks)
        .filter(|(id, _)| id.value.starts_with("brine-lease-"))
        .collect();
    assert!(
        leases
            .iter()
            .any(|(_, state)| *state == brine_proto::mesos::v1::TaskState::TaskFinished),
        "{leases:?}"
    );
    // And work after that takes a new lease.
    assert_eq!(common::sum(&cluster, "1 1").await, 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_per_closure_still_works() {
    init();
    let cluster = bounded(
        "connect",
        Cluster::connect_with("local:1", config().with_dispatch(Dispatch::TaskPerClosure)),
    )
    .await
    .expect("connects");
    let results: Vec<(usize, Result<i64, TaskError>)> = bounded(
        "20 sums as tasks",
        cluster
            .map(&module("sum"), "sum", (0..20).map(|i| format!("{i} {i}")))
            .collect(),
    )
    .await;
    for (i, result) in results {
        assert_eq!(result.expect("succeeds"), 2 * i as i64);
    }
    let status = cluster.status().await.unwrap();
    assert_eq!(status.executors[0].leases, 0);
    cluster.shutdown().await;
}
