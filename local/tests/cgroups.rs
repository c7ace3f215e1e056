//! Executor cgroups follow "executor + Σ non-terminal tasks" (read back from the
//! cgroup files).
//!
//! Needs root and the cgroup `cpu` and `memory` controllers (v1 hierarchies or v2), so
//! it is `#[ignore]`d: `make test` runs it (through `make test-cgroups`) when run as
//! root, as CI is; by hand, `sudo make test-cgroups`. Where cgroups cannot be used it
//! fails, saying why, rather than passing without having checked anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use brine_local::agent::{Agent, CgroupVersion, CgroupsMode};
use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::TaskState;
use brine_proto::mesos::v1::executor::event;
use common::*;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and writable cgroup cpu and memory controllers: `sudo make test-cgroups` (`make test` runs it as root)"]
async fn limits_follow_the_tasks() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.cgroups = CgroupsMode::Auto;
    // The CFS quota is off by default, as in Mesos; this test checks it too.
    config.cgroups_enable_cfs = true;
    config.cgroups_root = format!("brine-test-{}", std::process::id());
    let agent = Agent::start(config).await.unwrap();
    assert!(
        agent.cgroups_enabled(),
        "cgroups are not available or not writable here (the agent's warning says why; \
         RUST_LOG=warn shows it): this test needs root and the cpu and memory \
         controllers"
    );
    let fw = framework("fw", false);
    let exec = executor_info("e", "exec sleep 600"); // cpus 0.1, mem 32
    agent
        .launch(fw.clone(), exec.clone(), task("t1", 0.2, 64.0))
        .await
        .unwrap();
    wait_for_executor(&agent).await;
    let snap = agent.executors().remove(0);
    let cg = snap.cgroup.clone().expect("executor cgroup");
    let pid = snap.pid.unwrap();
    // The process is in its cgroup from the start.
    let procs = std::fs::read_to_string(cg.memory.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "pid {pid} in {procs}"
    );
    assert_eq!(cg.memory_limit_bytes(), Some(96 * MIB));
    let shares = |cg: &brine_local::agent::CgroupPaths| match cg.version {
        CgroupVersion::V1 => std::fs::read_to_string(cg.cpu.join("cpu.shares"))
            .unwrap()
            .trim()
            .to_owned(),
        CgroupVersion::V2 => std::fs::read_to_string(cg.cpu.join("cpu.max"))
            .unwrap()
            .trim()
            .to_owned(),
    };
    if cg.version == CgroupVersion::V1 {
        assert_eq!(shares(&cg), "307"); // 1024 × 0.3
        assert_eq!(
            std::fs::read_to_string(cg.cpu.join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "30000"
        );
    }

    let mut stream = subscribe(&agent, &subscribe_call("fw", "e"), ContentType::Protobuf).await;
    assert_eq!(stream.next().await.r#type(), event::Type::Subscribed);
    assert_eq!(stream.next().await.r#type(), event::Type::Launch);
    // Grows on launch…
    agent
        .launch(fw.clone(), exec.clone(), task("t2", 0.5, 128.0))
        .await
        .unwrap();
    assert_eq!(stream.next().await.r#type(), event::Type::Launch);
    assert_eq!(cg.memory_limit_bytes(), Some(224 * MIB));
    if cg.version == CgroupVersion::V1 {
        assert_eq!(shares(&cg), "819"); // 1024 × 0.8
    }
    // …and its soft limit shrinks on a terminal update, while the hard limit stays
    // (Mesos only raises it: lowering it could OOM-kill the container).
    let (finished, _) = update_call("fw", "e", "t2", TaskState::TaskFinished);
    assert_eq!(post_call(&agent, &finished).await, 202);
    assert_eq!(stream.next().await.r#type(), event::Type::Acknowledged);
    assert_eq!(cg.memory_soft_limit_bytes(), Some(96 * MIB));
    assert_eq!(cg.memory_limit_bytes(), Some(224 * MIB));
    assert_eq!(agent.executors()[0].allocation.mem_mb, 96.0);

    agent.shutdown().await;
    // Cleaned up when the executor is gone.
    assert!(!cg.memory.exists());
    assert!(!cg.cpu.exists());
    let _ = std::fs::remove_dir(cg.cpu.parent().unwrap());
    let _ = std::fs::remove_dir(cg.memory.parent().unwrap());
}
