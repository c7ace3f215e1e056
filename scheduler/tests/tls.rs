//! `https://` masters: a real TLS terminator (tokio-rustls, a certificate from a test CA
//! made with rcgen) in front of a real `brine-local` master, and `Cluster::connect_with`
//! over it: SUBSCRIBE and every call through TLS, the CA given as an extra root; refused
//! without it; and a plain-HTTP master's `307` sending the scheduler to the `https` one.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::{bounded, init_tracing};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brine_scheduler::client::ClientError;
use brine_scheduler::{Cluster, ClusterConfig, ClusterError, Module};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "brine test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A TLS terminator: accepts TLS on a loopback port and relays the bytes to
/// `upstream`, counting completed handshakes.
struct Terminator {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Terminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn terminator(pki: &Pki, upstream: SocketAddr) -> Terminator {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handshakes);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Terminator {
        addr,
        handshakes,
        task,
    }
}

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
    let handshakes = tls.handshakes.load(Ordering::SeqCst);
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
    assert!(tls.handshakes.load(Ordering::SeqCst) >= 2);
    bounded("cluster shutdown", cluster.shutdown()).await;
    task.abort();
    bounded("local shutdown", local.shutdown()).await;
}
