//! `https://` masters: a real TLS terminator (`brine_tests::tls`: tokio-rustls, a
//! certificate from a test CA made with rcgen) in front of a real `brine-local` master, and `Cluster::connect_with`
//! over it: SUBSCRIBE and every call through TLS, the CA given as an extra root; refused
//! without it; and a plain-HTTP master's `307` sending the scheduler to the `https` one.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::tls::{Pki, pki, terminator};
use brine_tests::{bounded, init_tracing};
use std::net::SocketAddr;

use brine_scheduler::client::ClientError;
use brine_scheduler::{Cluster, ClusterConfig, ClusterError, Module};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A plain-HTTP "master" that answers every request with a `307` to `location`, as a
/// non-leading Mesos master does.
async fn redirector(location: String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let location = location.clone();
            tokio::spawn(async move {
                // Read the request head; the body does not matter.
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, task)
}

async fn local_cluster(dir: &std::path::Path) -> brine_local::LocalCluster {
    brine_local::LocalCluster::start(brine_local::LocalClusterConfig::new(1, dir))
        .await
        .unwrap()
}

fn trusting(pki: &Pki) -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.client.extra_root_certificates = vec![pki.ca_pem.clone().into_bytes()];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_through_an_https_master() {
    init_tracing();
    brine_tests::executor_binary();
    let dir = tempfile::tempdir().unwrap();
    let local = local_cluster(dir.path()).await;
    let pki = pki();
    let tls = terminator(&pki, local.master().unwrap().endpoint()).await;

    let url = format!("https://127.0.0.1:{}", tls.addr.port());
    let cluster = bounded("connect", Cluster::connect_with(&url, trusting(&pki)))
        .await
        .expect("subscribes over TLS");
    assert_eq!(common::sum(&cluster, "1 2 3").await, 6);
    // SUBSCRIBE on one TLS connection, the calls (ACCEPT, ACKNOWLEDGE…) on a second,
    // kept one.
    let handshakes = tls.handshakes();
    assert_eq!(handshakes, 2, "{handshakes} TLS connections");
    bounded("cluster shutdown", cluster.shutdown()).await;
    bounded("local shutdown", local.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    init_tracing();
    let executor = brine_tests::executor_binary();
    let dir = tempfile::tempdir().unwrap();
    let local = local_cluster(dir.path()).await;
    let pki = pki();
    let tls = terminator(&pki, local.master().unwrap().endpoint()).await;
    let url = format!("https://localhost:{}", tls.addr.port());

    // Only the Mozilla roots: the test CA is unknown.
    let config = ClusterConfig::default().with_executor_binary(executor.clone());
    let err = bounded("connect", Cluster::connect_with(&url, config))
        .await
        .expect_err("an unknown CA");
    match &err {
        ClusterError::Client(ClientError::Tls { authority, source }) => {
            assert_eq!(authority, &format!("localhost:{}", tls.addr.port()));
            assert!(source.to_string().contains("UnknownIssuer"), "{source}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(err.to_string().contains("TLS handshake"), "{err}");

    // Garbage instead of a PEM certificate: said before connecting.
    let mut config = trusting(&pki);
    config.executor_binary = Some(executor);
    config.client.extra_root_certificates = vec![b"not a certificate".to_vec()];
    let err = bounded("connect", Cluster::connect_with(&url, config))
        .await
        .expect_err("no usable root");
    assert!(
        matches!(
            err,
            ClusterError::Client(ClientError::RootCertificate { index: 0, .. })
        ),
        "{err:?}"
    );
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_may_switch_to_https() {
    init_tracing();
    brine_tests::executor_binary();
    let dir = tempfile::tempdir().unwrap();
    let local = local_cluster(dir.path()).await;
    let pki = pki();
    let tls = terminator(&pki, local.master().unwrap().endpoint()).await;
    let (redirect, task) = redirector(format!(
        "https://localhost:{}/api/v1/scheduler",
        tls.addr.port()
    ))
    .await;

    let url = format!("http://{redirect}");
    let cluster = bounded("connect", Cluster::connect_with(&url, trusting(&pki)))
        .await
        .expect("follows the redirect to https");
    let hello = Module::from_bytes(brine_tests::example("hello"));
    let greeting: String = bounded("hello", cluster.submit(&hello, "hello", &()))
        .await
        .expect("hello succeeds");
    assert_eq!(greeting, "hello world");
    assert!(tls.handshakes() >= 2);
    bounded("cluster shutdown", cluster.shutdown()).await;
    task.abort();
    bounded("local shutdown", local.shutdown()).await;
}
