//! HTTP basic authentication against a real `brine-local` master run with credentials
//! (as a Mesos master with `--authenticate_http_frameworks
//! --http_framework_authenticators=basic`): the right credential runs a task; a wrong
//! or missing one is a clear error naming the principal, never the secret.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::bounded;

use brine_local::master::Credentials;
use brine_local::{LocalCluster, LocalClusterConfig};
use brine_scheduler::client::{ClientError, Credential};
use brine_scheduler::{Cluster, ClusterConfig, ClusterError};

async fn authenticating_cluster(dir: &std::path::Path) -> LocalCluster {
    brine_tests::init_tracing();
    let mut config = LocalClusterConfig::new(1, dir);
    config.credentials = Some(Credentials::new([(
        "brine-fw".to_owned(),
        "correct horse".to_owned(),
    )]));
    LocalCluster::start(config).await.unwrap()
}

fn with_credential(principal: &str, secret: &str) -> ClusterConfig {
    let mut config = ClusterConfig::default().with_executor_binary(brine_tests::executor_binary());
    config.client.credential = Some(Credential::new(principal, secret));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_credential_runs_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let local = authenticating_cluster(dir.path()).await;
    let cluster = bounded(
        "connect",
        Cluster::connect_with(
            &local.master_url(),
            with_credential("brine-fw", "correct horse"),
        ),
    )
    .await
    .expect("subscribes with the credential");
    // Every call (ACCEPT, ACKNOWLEDGE, …) carries the credential too, or the task
    // would never be launched and acknowledged.
    assert_eq!(common::sum(&cluster, "40 2").await, 42);
    bounded("cluster shutdown", cluster.shutdown()).await;
    bounded("local shutdown", local.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_credential_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let local = authenticating_cluster(dir.path()).await;

    let err = bounded(
        "connect",
        Cluster::connect_with(
            &local.master_url(),
            with_credential("brine-fw", "Tr0ub4dor&3"),
        ),
    )
    .await
    .expect_err("a wrong secret");
    match &err {
        ClusterError::Client(ClientError::Unauthorized {
            call,
            principal,
            challenge,
        }) => {
            assert_eq!(*call, "SUBSCRIBE");
            assert_eq!(principal.as_deref(), Some("brine-fw"));
            assert_eq!(challenge, "Basic realm=\"mesos-master-scheduler\"");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("\"brine-fw\"") && text.contains("401"),
        "{text}"
    );
    assert!(!text.contains("Tr0ub4dor"), "the secret leaked: {text}");

    let mut config = with_credential("x", "y");
    config.client.credential = None;
    let err = bounded(
        "connect",
        Cluster::connect_with(&local.master_url(), config),
    )
    .await
    .expect_err("no credential");
    assert!(
        matches!(
            err,
            ClusterError::Client(ClientError::Unauthorized {
                principal: None,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no credential is configured"),
        "{err}"
    );
    bounded("local shutdown", local.shutdown()).await;
}
