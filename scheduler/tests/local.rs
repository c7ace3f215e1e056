//! End to end through `Cluster::connect("local:2")`: a real local master and agents,
//! real `brine-executor` processes, real HTTP. Every wait is bounded.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::bounded;
use common::{init, module};
use std::collections::HashSet;

use brine_scheduler::{Cluster, ErrorKind, TaskError};

async fn cluster() -> Cluster {
    init();
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
    let config = brine_scheduler::ClusterConfig::default()
        .with_executor_uri(format!("{base}/releases/exe-1.0"))
        .with_dataset_uri(format!("{base}/data/corpus-v1.txt?rev=1"))
        // Never looked at: the URIs win.
        .with_executor_binary(dir.path().join("not-here"));
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

/// Dropping a `Cluster` without `shutdown()` stops it: a job still out resolves as
/// cancelled, and the status endpoint, the closure lane and the local master stop
/// accepting connections (their ports are released). The job asks for more CPUs than
/// the agent has, so it waits for an offer: no executor starts, and the test adds no
/// load to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_cluster_stops_it_and_releases_its_ports() {
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    init();
    let config = brine_scheduler::ClusterConfig::default()
        .with_status_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_task_cpus(100_000.0);
    let cluster = bounded("connect", Cluster::connect_with("local:1", config))
        .await
        .expect("connects to local:1");
    let status_addr = cluster
        .status_addr()
        .expect("the status endpoint was asked for");
    let lane_addr = cluster.lane_addr();
    let master_addr: SocketAddr = cluster
        .master_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the local master listens on an IP address");

    // Served while the cluster lives.
    let answer = bounded("GET /status", async {
        let mut stream = tokio::net::TcpStream::connect(status_addr).await.unwrap();
        stream
            .write_all(b"GET /status HTTP/1.0\r\nHost: brine\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    })
    .await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(cluster.framework_id()), "{answer}");

    // A job still waiting when the cluster goes.
    let handle = cluster.submit::<String, i64>(&module("sum"), "sum", &"1 2".to_owned());
    let status = cluster.status().await.expect("the scheduler runs");
    assert_eq!(status.jobs.pending, 1, "{status:?}");

    drop(cluster);
    let result = bounded("the handle resolves", handle).await;
    assert_eq!(result, Err(TaskError::Cancelled));
    for (what, addr) in [
        ("the status endpoint refuses", status_addr),
        ("the closure lane refuses", lane_addr),
        ("the local master refuses", master_addr),
    ] {
        bounded(what, refuses_connections(addr)).await;
    }
}

/// Returns once `addr` refuses a connection. A listener closes when its task next
/// runs after being told to stop, so this polls (within the caller's bound).
async fn refuses_connections(addr: std::net::SocketAddr) {
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connecting to {addr}: {e}"),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}
