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

    let failing = cluster.submit::<String, i64>(&sum, "sum", &"1 x 3".to_string());
    let watch = failing.watch().expect("a submitted handle has a status");
    let failed = bounded("a failing sum", failing).await;
    match failed {
        Err(TaskError::Guest { kind, message, .. }) => {
            assert_eq!(kind, ErrorKind::GuestError);
            assert!(message.contains("not an integer"), "{message}");
            assert!(message.contains('x'), "{message}");
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
    // Not retried: a deterministic guest error ends the job at its first attempt.
    assert_eq!(watch.borrow().attempts, 1, "{:?}", watch.borrow());
    let status = cluster.status().await.expect("status");
    assert_eq!((status.jobs.succeeded, status.jobs.failed), (4, 1));
    // Every Mesos task the agents were given is a lease: no closure was a task.
    let local = cluster.local().expect("a local cluster");
    let given: Vec<String> = local
        .agents()
        .iter()
        .flat_map(|a| a.executors())
        .flat_map(|e| e.tasks.into_iter().map(|(id, _)| id.value))
        .collect();
    assert!(
        !given.is_empty() && given.iter().all(|id| id.starts_with("brine-lease-")),
        "{given:?}"
    );
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

/// A file server for one test: GET `/<name>` answers the file registered under
/// `name`; the paths asked for are recorded.
async fn serve_files(
    files: Vec<(&'static str, std::path::PathBuf)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&asked);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let files = files.clone();
            let log = std::sync::Arc::clone(&log);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut request_line = String::new();
                stream.read_line(&mut request_line).await.unwrap();
                loop {
                    let mut header = String::new();
                    stream.read_line(&mut header).await.unwrap();
                    if header == "\r\n" || header.is_empty() {
                        break;
                    }
                }
                let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(path.clone());
                let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
                let stream = stream.get_mut();
                match files.iter().find(|(n, _)| *n == name) {
                    Some((_, file)) => {
                        let mut file = tokio::fs::File::open(file).await.unwrap();
                        let len = file.metadata().await.unwrap().len();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                        );
                        stream.write_all(head.as_bytes()).await.unwrap();
                        tokio::io::copy(&mut file, stream).await.unwrap();
                    }
                    None => {
                        let answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                        stream.write_all(answer.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    (base, asked)
}

/// Agents that do not share the scheduler's files: the executor and the dataset come
/// from `executor_uri` and `dataset_uri` over HTTP, under names of the URIs' choosing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_and_the_dataset_can_come_from_http_uris() {
    brine_tests::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let text = "one two three four five six seven ".repeat(1000);
    let dataset = dir.path().join("corpus-v1.txt");
    std::fs::write(&dataset, &text).unwrap();
    let (base, asked) = serve_files(vec![
        ("releases/exe-1.0", brine_tests::executor_binary()),
        ("data/corpus-v1.txt", dataset),
    ])
    .await;
    let config = brine_scheduler::ClusterConfig {
        executor_uri: Some(format!("{base}/releases/exe-1.0")),
        dataset_uri: Some(format!("{base}/data/corpus-v1.txt?rev=1")),
        // Never looked at: the URIs win.
        executor_binary: Some(dir.path().join("not-here")),
        ..Default::default()
    };
    let cluster = bounded("connect", Cluster::connect_with("local:1", config))
        .await
        .expect("connects to local:1");
    let counted = bounded(
        "wordcount",
        cluster.submit_json(
            &module("wordcount"),
            "wordcount",
            &serde_json::json!({"offset": 0, "len": text.len()}),
        ),
    )
    .await
    .expect("wordcount succeeds");
    assert_eq!(counted["words"], 7000);
    assert_eq!(counted["bytes"], text.len());
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked, ["/releases/exe-1.0", "/data/corpus-v1.txt?rev=1"]);
    cluster.shutdown().await;
}
