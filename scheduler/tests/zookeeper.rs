//! `zk://` master detection against a REAL ZooKeeper server (Debian's `zookeeper`
//! 3.8, started here as a child process on a free loopback port), with the znodes a
//! Mesos master creates: ephemeral sequential `json.info_<seq>` under the group path,
//! holding its MasterInfo as JSON (the real one captured from Mesos 1.12, re-pointed).
//! Then end to end: a `brine-local` master registered in ZooKeeper, found through
//! `zk://`, running a task.
//!
//! Needs ZooKeeper installed: `make zookeeper` (which `make test` runs first).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use brine_tests::process::free_port;
use brine_tests::{bounded, init_tracing};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brine_scheduler::detector::{self, DetectError};
use brine_scheduler::{Cluster, ClusterConfig, ClusterError};
use zookeeper_client::{Acls, Client, CreateMode};

/// Where the Debian package puts the server (its manifest names its dependencies).
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// A standalone ZooKeeper server in a temporary data directory, killed on drop.
struct ZooKeeper {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// Starts one and waits (bounded) until it answers `ruok` with `imok`.
    fn start() -> ZooKeeper {
        let java = which("java");
        assert!(
            Path::new(ZOOKEEPER_JAR).is_file() && java.is_some(),
            "ZooKeeper is not installed ({ZOOKEEPER_JAR} or java is missing): run `make \
             zookeeper` (it installs the Debian package `zookeeper`), then run the tests again"
        );
        let dir = tempfile::Builder::new()
            .prefix("brine-zk-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let config = dir.path().join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=500\n\
                 dataDir={}\n\
                 clientPort={port}\n\
                 clientPortAddress=127.0.0.1\n\
                 maxSessionTimeout=20000\n\
                 admin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,wchp\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(java.unwrap())
            .arg("-Xmx256m")
            .arg("-cp")
            .arg(ZOOKEEPER_JAR)
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starts java");
        let mut zk = ZooKeeper { child, port, dir };
        zk.wait_ready();
        zk
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ZooKeeper exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            if ruok(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not answer ruok within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (bounded) until some session watches `path`: ZooKeeper's `wchp` lists every
    /// watched path, each followed by the sessions watching it. ZooKeeper has no way to
    /// announce a new watch, so this asks every 20 ms.
    async fn watched(&self, path: &str) {
        let port = self.port;
        bounded(&format!("a watch on {path}"), async {
            loop {
                let listing = tokio::task::spawn_blocking(move || four_letter(port, b"wchp"))
                    .await
                    .unwrap();
                if listing.lines().any(|line| line == path) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// A session of its own: what one Mesos master holds.
    async fn session(&self) -> Client {
        Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&self.servers())
            .await
            .expect("a ZooKeeper session")
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ZooKeeper's four-letter health check.
fn ruok(port: u16) -> bool {
    four_letter(port, b"ruok") == "imok"
}

/// The answer to one of ZooKeeper's four-letter commands (empty if there is none).
fn four_letter(port: u16, command: &[u8; 4]) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(command).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

fn fixtures() -> PathBuf {
    std::env::var_os("BRINE_MESOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mesos-1.12")
        })
}

/// The MasterInfo JSON of the real Mesos 1.12 master in the captures (the SUBSCRIBED
/// event carries the very MasterInfo the master writes to ZooKeeper), re-pointed at
/// `127.0.0.1:port` with id `id`: what a Mesos master puts in its `json.info_` node.
fn master_info_json(id: &str, port: u16) -> Vec<u8> {
    let stream = std::fs::read(fixtures().join("scheduler-stream.json.bin"))
        .expect("the Mesos 1.12 captures (tests/fixtures/mesos-1.12)");
    let mut decoder = brine_proto::recordio::Decoder::new();
    decoder.push(&stream);
    let first = decoder.next_record().unwrap().expect("a first record");
    let event: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let mut info = event["subscribed"]["master_info"].clone();
    assert!(info.is_object(), "SUBSCRIBED carries master_info");
    info["id"] = id.into();
    info["port"] = port.into();
    info["pid"] = format!("master@127.0.0.1:{port}").into();
    info["address"]["port"] = port.into();
    serde_json::to_vec(&info).unwrap()
}

/// What `Group::join` does for a contending master: the group's path (created if
/// missing), then an ephemeral sequential `json.info_` child. Returns its path.
async fn join(session: &Client, group: &str, data: &[u8]) -> String {
    match session
        .mkdir(group, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
        .await
    {
        Ok(()) | Err(zookeeper_client::Error::NodeExists) => {}
        Err(e) => panic!("cannot create {group}: {e}"),
    }
    let prefix = format!("{group}/json.info_");
    let (_, sequence) = session
        .create(
            &prefix,
            data,
            &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("creates the member node");
    format!("{prefix}{sequence}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lowest_sequence_leads_and_the_next_takes_over() {
    init_tracing();
    let zk = ZooKeeper::start();
    let wait = Duration::from_secs(20);
    // Two masters, each with its own session, as in a Mesos HA setup; the first to
    // join (lowest sequence) leads. A replicated log's `log_replicas` sits beside them.
    let first = zk.session().await;
    let second = zk.session().await;
    let leader = join(&first, "/mesos", &master_info_json("m1", 5050)).await;
    let follower = join(&second, "/mesos", &master_info_json("m2", 5051)).await;
    assert!(leader.ends_with("json.info_0000000000"), "{leader}");
    assert!(follower.ends_with("json.info_0000000001"), "{follower}");
    first
        .create(
            "/mesos/log_replicas",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();

    let url = zk.url("/mesos");
    let found = bounded("detection", detector::leading_master(&url, wait)).await;
    assert_eq!(found.unwrap(), "http://127.0.0.1:5050");
    let (node, info) = detector::leading_master_info(&url, wait).await.unwrap();
    assert_eq!((node.as_str(), info.id.as_str()), (leader.as_str(), "m1"));

    // The leader goes away: the next in line is found.
    first.delete(&leader, None).await.unwrap();
    let found = bounded("detection", detector::leading_master(&url, wait)).await;
    assert_eq!(found.unwrap(), "http://127.0.0.1:5051");

    // A leader's session ending removes its ephemeral node the same way.
    drop(first);
    let third = zk.session().await;
    join(&third, "/mesos", &master_info_json("m3", 5052)).await;
    second.delete(&follower, None).await.unwrap();
    let found = bounded("detection", detector::leading_master(&url, wait)).await;
    assert_eq!(found.unwrap(), "http://127.0.0.1:5052");

    // A detection started before any master is there returns once one joins. It is
    // waiting once it watches the group's znode (which does not exist yet).
    let late = zk.url("/late");
    let waiting = tokio::spawn({
        let late = late.clone();
        async move { detector::leading_master(&late, Duration::from_secs(3600)).await }
    });
    zk.watched("/late").await;
    assert!(!waiting.is_finished(), "the detection did not wait");
    join(&third, "/late", &master_info_json("m4", 5053)).await;
    let found = bounded("late detection", waiting).await.unwrap();
    assert_eq!(found.unwrap(), "http://127.0.0.1:5053");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_errors_are_clear() {
    init_tracing();
    let zk = ZooKeeper::start();
    let session = zk.session().await;

    // An empty group, and a path that does not exist: no leader within the timeout.
    session
        .mkdir(
            "/empty",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    for path in ["/empty", "/absent"] {
        let err = bounded(
            "detection to give up",
            detector::leading_master(&zk.url(path), Duration::from_millis(700)),
        )
        .await
        .expect_err("no leader");
        assert!(matches!(err, DetectError::NoLeader { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(path) && text.contains("no leading Mesos master"),
            "{text}"
        );
    }

    // A member whose data is not a MasterInfo.
    join(&session, "/garbage", b"{\"not\": \"a master\"}").await;
    let err = detector::leading_master(&zk.url("/garbage"), Duration::from_secs(5))
        .await
        .expect_err("undecodable");
    assert!(matches!(err, DetectError::Undecodable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/garbage/json.info_0000000000"),
        "{err}"
    );

    // Nothing listening: a clear error, from the refused connection rather than from
    // the timeout running out.
    let port = free_port();
    let err = bounded(
        "detection to fail",
        detector::leading_master(
            &format!("zk://127.0.0.1:{port}/mesos"),
            Duration::from_secs(3600),
        ),
    )
    .await
    .expect_err("unreachable");
    assert!(matches!(err, DetectError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("cannot reach ZooKeeper"), "{text}");
    assert!(!text.contains("no session within"), "{text}");

    // A malformed URL, through Cluster::connect_with too.
    let err = detector::leading_master("zk://", Duration::from_secs(1))
        .await
        .expect_err("bad url");
    assert!(matches!(err, DetectError::BadUrl { .. }), "{err:?}");
    let mut config = ClusterConfig::default().with_executor_binary(brine_tests::executor_binary());
    config.client.request_timeout = Duration::from_millis(700);
    let err = Cluster::connect_with(&zk.url("/empty"), config)
        .await
        .expect_err("no master");
    assert!(
        matches!(err, ClusterError::Detect(DetectError::NoLeader { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_found_through_zookeeper_runs_tasks() {
    init_tracing();
    brine_tests::executor_binary();
    let zk = ZooKeeper::start();
    let dir = tempfile::tempdir().unwrap();
    let local =
        brine_local::LocalCluster::start(brine_local::LocalClusterConfig::new(1, dir.path()))
            .await
            .unwrap();
    let port = local.master().unwrap().endpoint().port();
    // The local master leads; a second member (a master that is not running) follows.
    let session = zk.session().await;
    join(&session, "/mesos", &master_info_json("local", port)).await;
    join(
        &session,
        "/mesos",
        &master_info_json("standby", free_port()),
    )
    .await;

    let cluster = bounded(
        "connect through zk://",
        Cluster::connect_with(&zk.url("/mesos"), ClusterConfig::default()),
    )
    .await
    .expect("connects through ZooKeeper");
    assert_eq!(cluster.master_url(), local.master_url());
    assert_eq!(common::sum(&cluster, "1 2 3").await, 6);
    bounded("cluster shutdown", cluster.shutdown()).await;
    bounded("local shutdown", local.shutdown()).await;
}
