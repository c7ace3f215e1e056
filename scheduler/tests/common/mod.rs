//! What several scheduler tests share.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

pub mod matrix;

use std::time::Duration;

use brine_proto::payload::ExecutorConfig;
use brine_scheduler::{Cluster, ClusterConfig, Module};
use brine_tests::bounded;
use tokio::net::{TcpListener, TcpStream};

/// Tracing, and a clear failure when `brine-executor` is not built.
pub fn init() {
    brine_tests::init_tracing();
    brine_tests::executor_binary();
}

/// The example module `name` (built by `make examples`).
pub fn module(name: &str) -> Module {
    Module::from_bytes(brine_tests::example(name))
}

/// Executors beat every 50 ms, so that progress and liveness show quickly.
pub fn fast_heartbeats() -> ClusterConfig {
    ClusterConfig::default().with_executor_config(ExecutorConfig {
        heartbeat_interval: Duration::from_millis(50),
        ..ExecutorConfig::default()
    })
}

/// Polls `check` every 20 ms until it holds (agent snapshots and the master's state
/// have no change notification), within the bound.
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    bounded(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Runs the `sum` example over `numbers` on `cluster`, within the bound, and returns
/// its total.
pub async fn sum(cluster: &Cluster, numbers: &str) -> i64 {
    bounded(
        "sum",
        cluster.submit::<String, i64>(&module("sum"), "sum", &numbers.to_owned()),
    )
    .await
    .expect("sum succeeds")
}

/// A TCP proxy whose connections can all be cut at once, as a network blip would.
pub struct Proxy {
    /// `http://` + the address it listens on.
    pub url: String,
    pub addr: std::net::SocketAddr,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let gen_tx = generation.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = gen_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Proxy {
            url,
            addr,
            generation,
        }
    }

    /// Closes every connection open now.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}
