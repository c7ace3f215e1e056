//! End to end through `Cluster::connect("local:2")`: a real local master and agents,
//! real `brine-executor` processes, real HTTP. Every wait is bounded.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use brine_tests::bounded;
use std::collections::HashSet;

use brine_scheduler::{Cluster, ErrorKind, Module, TaskError};

fn module(name: &str) -> Module {
    Module::from_bytes(brine_tests::example(name))
}

async fn cluster() -> Cluster {
    brine_tests::init_tracing();
    // Fails with a clear message when the executor is not built.
    brine_tests::executor_binary();
    bounded("connect", Cluster::connect("local:2"))
        .await
        .expect("connects to local:2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_return_typed_results_and_guest_errors() {
    let cluster = cluster().await;
    let sum = module("sum");
    let hello = module("hello");

    let handles: Vec<_> = ["1 2 3", "4 5 6", "7 8 9"]
        .iter()
        .map(|s| cluster.submit::<String, i64>(&sum, "sum", &s.to_string()))
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(bounded("sum", h).await.expect("sum succeeds"));
    }
    assert_eq!(results, vec![6, 15, 24]);

    let greeting: String = bounded("hello", cluster.submit(&hello, "hello", &()))
        .await
        .expect("hello succeeds");
    assert_eq!(greeting, "hello world");

    let failed = bounded(
        "a failing sum",
        cluster.submit::<String, i64>(&sum, "sum", &"1 x 3".to_string()),
    )
    .await;
    match failed {
        Err(TaskError::Guest { kind, message, .. }) => {
            assert_eq!(kind, ErrorKind::GuestError);
            assert!(message.contains("not an integer"), "{message}");
            assert!(message.contains('x'), "{message}");
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
    // Not retried: the agents were given exactly the 5 tasks submitted.
    let local = cluster.local().expect("a local cluster");
    let given: usize = local
        .agents()
        .iter()
        .flat_map(|a| a.executors())
        .map(|e| e.tasks.len())
        .sum();
    assert_eq!(given, 5, "every task ran once");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_uses_one_executor_per_agent() {
    let cluster = cluster().await;
    let sum = module("sum");
    let inputs: Vec<String> = (0..200i64)
        .map(|i| format!("{i} {} {}", i + 1, i + 2))
        .collect();
    let handles: Vec<_> = inputs
        .iter()
        .map(|s| cluster.submit::<String, i64>(&sum, "sum", s))
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let i = i as i64;
        assert_eq!(
            bounded("a batch task", h).await.expect("sum succeeds"),
            3 * i + 3
        );
    }
    let local = cluster.local().expect("a local cluster");
    let mut used = 0;
    for agent in local.agents() {
        let executors = agent.executors();
        let ids: HashSet<_> = executors
            .iter()
            .chain(agent.completed_executors().iter())
            .map(|e| e.executor_id.value.clone())
            .collect();
        assert!(
            ids.len() <= 1,
            "more than one executor on an agent: {ids:?}"
        );
        used += ids.len();
    }
    assert!(used >= 1);
    cluster.shutdown().await;
}
