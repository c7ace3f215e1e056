//! The fault matrix: in every case a batch of closures is in flight when one fault
//! strikes, and the same things are checked: every job resolved exactly once and right
//! (none lost, none failed), and the scheduler's books balance. Each case also reports
//! what it cost: how many jobs ran again, how many answers came for work already done
//! elsewhere (a closure that ran to completion twice), and how long after the fault
//! the last re-run job resolved.
//!
//! Here the cases on `local:2` (master and agents in this process, executors as
//! processes of their own); `faults_deployed.rs` has those where the master and agents
//! are processes of their own. Each case writes its row to `target/tmp/fault-matrix/`
//! and renders the table from every row there (`FAULTS.md` beside them); `make
//! fault-matrix` runs the cases and copies the table into `docs/FAULTS.md`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use brine_proto::mesos::v1::{ExecutorId, FrameworkId};
use brine_scheduler::{Cluster, ClusterConfig, Module, TaskError};
use brine_tests::bounded;
use common::matrix::{ONE_AT_A_TIME, batch_with_fault, settle};
use common::{Proxy, fast_heartbeats, init};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

async fn connect(config: ClusterConfig) -> Cluster {
    bounded("connect", Cluster::connect_with("local:2", config))
        .await
        .expect("connects to local:2")
}

/// An executor running closures of the batch now: (agent index, executor id, pid).
async fn busy_executor(cluster: &Cluster) -> (usize, String, u32) {
    let local = cluster.local().expect("a local cluster");
    bounded("a busy executor", async {
        loop {
            let status = cluster.status().await.expect("status");
            let busy = status
                .executors
                .iter()
                .find(|e| !e.lost && e.lane_running > 0);
            if let Some(busy) = busy {
                for (i, agent) in local.agents().iter().enumerate() {
                    let found = agent
                        .executors()
                        .into_iter()
                        .find(|e| e.executor_id.value == busy.executor_id && e.pid.is_some());
                    if let Some(e) = found {
                        return (i, busy.executor_id.clone(), e.pid.unwrap());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// `victim` is listed as gone with no tasks left, and its agent runs a new
/// generation that serves.
async fn assert_replaced(cluster: &Cluster, victim: &str) {
    let status = cluster.status().await.unwrap();
    let gone = status
        .executors
        .iter()
        .find(|e| e.executor_id == victim)
        .unwrap_or_else(|| panic!("{victim} is not listed: {status:?}"));
    assert!(gone.tasks.is_empty(), "{gone:?}");
    assert!(
        status
            .executors
            .iter()
            .any(|e| e.agent_id == gone.agent_id && e.executor_id != victim && !e.lost),
        "no new executor on {}: {status:?}",
        gone.agent_id
    );
}

fn signal(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).expect("signal the executor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_sigkill() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    let cluster = connect(fast_heartbeats()).await;
    let mut victim = None;
    let outcome = batch_with_fault(&cluster, || async {
        let (_, id, pid) = busy_executor(&cluster).await;
        signal(pid, Signal::SIGKILL);
        victim = Some(id);
    })
    .await;
    let victim = victim.unwrap();
    let row = settle(
        &cluster,
        "executor SIGKILL",
        "its lane closed at once: its closures re-sent to the other executor; its leases \
         ended with it and a new executor took leases on that agent"
            .into(),
        outcome,
    )
    .await;
    assert!(
        row.ran_again > 0,
        "the victim was running closures: {row:?}"
    );
    assert_replaced(&cluster, &victim).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_sigstop_then_sigcont() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    // Frozen: the lane goes silent (lost after 2 s), then the heartbeats (presumed
    // lost after 3 s). The margins leave room for a loaded machine to delay a
    // healthy executor without it being presumed lost.
    let config = fast_heartbeats()
        .with_lane_timeout(Duration::from_secs(2))
        .with_heartbeat_timeout(Duration::from_secs(3))
        .with_agent_failure_limit(1000);
    let cluster = connect(config).await;
    let mut victim = None;
    let outcome = batch_with_fault(&cluster, || async {
        let (_, id, pid) = busy_executor(&cluster).await;
        signal(pid, Signal::SIGSTOP);
        victim = Some((id, pid));
    })
    .await;
    let (victim, pid) = victim.unwrap();
    // Presumed lost, then thawed: it finds itself shut down, and whatever it still
    // answers is for work written off.
    bounded("the frozen executor presumed lost", async {
        loop {
            let status = cluster.status().await.unwrap();
            if status
                .executors
                .iter()
                .any(|e| e.executor_id == victim && e.lost)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    signal(pid, Signal::SIGCONT);
    let status = cluster.status().await.unwrap();
    let gone = status.executors.iter().find(|e| e.executor_id == victim);
    assert!(gone.is_some_and(|e| e.tasks.is_empty()), "{status:?}");
    settle(
        &cluster,
        "executor SIGSTOP, SIGCONT once presumed lost",
        "lane silent past its 2 s timeout: closures re-sent elsewhere; no heartbeat for 3 s: \
         presumed lost, SHUTDOWN and its leases killed; thawed, it is shut down"
            .into(),
        outcome,
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lane_cut() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    // The executors reach the lane through a proxy that can cut every connection.
    let lane = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lane_addr = lane.local_addr().unwrap();
    drop(lane);
    let proxy = Proxy::start(lane_addr).await;
    let cluster = connect(
        fast_heartbeats()
            .with_lane_bind(lane_addr)
            .with_lane_advertise(proxy.addr.to_string()),
    )
    .await;
    let outcome = batch_with_fault(&cluster, || async { proxy.cut() }).await;
    let row = settle(
        &cluster,
        "lane connections cut",
        "both executors' lanes closed: their closures re-sent (not blamed on the agents); \
         the executors reconnected with backoff and took them"
            .into(),
        outcome,
    )
    .await;
    assert!(row.ran_again > 0, "{row:?}");
    // The executors reconnected: closures after the cut run over new connections.
    assert_eq!(common::sum(&cluster, "2 3").await, 5);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_executor_connection_cut() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    let cluster = connect(fast_heartbeats()).await;
    let framework = FrameworkId {
        value: cluster.framework_id().to_owned(),
    };
    let outcome = batch_with_fault(&cluster, || async {
        let (agent, id, _) = busy_executor(&cluster).await;
        let local = cluster.local().unwrap();
        local.agents()[agent]
            .disconnect_executor(&framework, &ExecutorId { value: id })
            .await
            .expect("the agent drops the executor's connection");
    })
    .await;
    let row = settle(
        &cluster,
        "agent–executor connection cut",
        "the executor re-subscribed to its agent; closures went on over the lane meanwhile".into(),
        outcome,
    )
    .await;
    assert_eq!(row.ran_again, 0, "nothing needed to run again: {row:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_compiling_past_the_deadline() {
    let _turn = ONE_AT_A_TIME.lock().await;
    init();
    // The deadline covers compiling a module the executor does not hold yet: the
    // example modules compile in about 3 s in a debug build on a loaded 2-core
    // machine, 100 000 functions take over a minute (seconds in a release build).
    let deadline = Duration::from_secs(10);
    // The compilation goes on after its task gave up (using a core and ~550 MB for
    // this module in a debug build), and the executor keeps the closure's slot, and so
    // its lease and the memory the container holds for it, until the compilation
    // ends. The other leases go back once idle (300 ms here), so the container shrinks
    // to the executor's own share and that one lease, sized for the compilation: the
    // compilation of a module is charged to the slot of the closure that needs it.
    // (Before, the slot was freed with the answer and the lease went back while the
    // compilation still ran: with the cgroup memory limit enforced, as root, the
    // kernel killed the executor.)
    let cluster = connect(
        fast_heartbeats()
            .with_task_deadline(deadline)
            .with_task_mem_mb(768.0)
            .with_lease_idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let slow = Module::from_bytes(brine_tests::wasm::many_functions(100_000));
    let mut slow_outcome = None;
    let outcome = batch_with_fault(&cluster, || async {
        let started = Instant::now();
        let result = bounded("the slow module's closure", async {
            cluster.submit::<u64, u64>(&slow, "spin", &1).await
        })
        .await;
        slow_outcome = Some((result, started.elapsed()));
    })
    .await;
    let (result, took) = slow_outcome.unwrap();
    match &result {
        Err(TaskError::Timeout { message }) => assert!(
            message.contains("did not compile within the task's deadline of 10s"),
            "{message}"
        ),
        other => panic!("the slow module's closure: {other:?}"),
    }
    let executors: Vec<String> = cluster
        .status()
        .await
        .unwrap()
        .executors
        .into_iter()
        .filter(|e| !e.lost)
        .map(|e| e.executor_id)
        .collect();
    // The compilation ends with the module in its executor's cache (the batch's
    // module is the first there, this one the second), unless the executor died
    // first.
    let gone = bounded("the compilation's end", async {
        loop {
            let status = cluster.status().await.unwrap();
            let live: Vec<_> = status.executors.iter().filter(|e| !e.lost).collect();
            let gone: Vec<String> = executors
                .iter()
                .filter(|id| !live.iter().any(|e| &e.executor_id == *id))
                .cloned()
                .collect();
            if !gone.is_empty() || live.iter().any(|e| e.modules >= 2) {
                break gone;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_empty(), "executors died while compiling: {gone:?}");
    settle(
        &cluster,
        "a module whose compilation outlasts the task deadline (10 s)",
        format!(
            "its closure failed deadline_exceeded {:.2} s after it was submitted; the \
             compilation went on on a thread of its own, holding its closure's slot (and \
             lease) until it ended while the batch ran on and the idle leases went back; \
             no executor died",
            took.as_secs_f64()
        ),
        outcome,
    )
    .await;
    cluster.shutdown().await;
}
