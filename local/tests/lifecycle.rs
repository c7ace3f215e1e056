//! Executor lifecycle against real processes and real HTTP: sandbox and environment,
//! registration timeout, executor exit, shutdown, status update ordering and retries,
//! re-subscription after a dropped connection, fetch failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use brine_local::agent::{Agent, AgentEvent};
use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::executor::{call, event};
use brine_proto::mesos::v1::{
    CommandInfo, Environment, ExecutorId, FrameworkId, TaskId, TaskState, command_info,
    environment, task_status,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_layout_and_exact_environment() {
    init_tracing();
    for (fixture, checkpoint) in [
        ("executor-env.protobuf-run.json", false),
        ("executor-env.json-run.json", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        // The capture's --executor_environment_variables.
        for (k, v) in [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("MESOS_NATIVE_LIBRARY", "/opt/mesos/lib/libmesos-1.12.0.so"),
            (
                "MESOS_NATIVE_JAVA_LIBRARY",
                "/opt/mesos/lib/libmesos-1.12.0.so",
            ),
        ] {
            config.executor_environment.insert(k.into(), v.into());
        }
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var("BRINE_AGENT_SECRET_SHOULD_NOT_LEAK", "1") };
        let agent = Agent::start(config).await.unwrap();
        let mut executor = executor_info("env-executor", "sleep 600; true");
        executor.command.as_mut().unwrap().environment = Some(Environment {
            variables: vec![environment::Variable {
                name: "CAPTURE_ENCODING".into(),
                value: Some("json".into()),
                ..Default::default()
            }],
        });
        agent
            .launch(
                framework("fw-env", checkpoint),
                executor,
                task("t1", 0.1, 16.0),
            )
            .await
            .unwrap();
        wait_for_executor(&agent).await;
        let snap = agent.executors().remove(0);
        let pid = snap.pid.unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let env: std::collections::BTreeMap<String, String> = environ
            .split(|b| *b == 0)
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixtures().join(fixture)).unwrap()).unwrap();
        let expected_keys: BTreeSet<String> = expected["exec_environ"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let keys: BTreeSet<String> = env.keys().cloned().collect();
        assert_eq!(keys, expected_keys, "{fixture}");
        let sandbox = snap.sandbox.display().to_string();
        assert_eq!(env["MESOS_SANDBOX"], sandbox);
        assert_eq!(env["MESOS_DIRECTORY"], sandbox);
        assert_eq!(env["MESOS_AGENT_ENDPOINT"], agent.endpoint().to_string());
        assert_eq!(
            env["MESOS_SLAVE_PID"],
            format!("slave(1)@{}", agent.endpoint())
        );
        assert_eq!(env["MESOS_SLAVE_ID"], agent.agent_id().value);
        assert_eq!(env["MESOS_FRAMEWORK_ID"], "fw-env");
        assert_eq!(env["MESOS_EXECUTOR_ID"], "env-executor");
        assert_eq!(env["MESOS_CHECKPOINT"], if checkpoint { "1" } else { "0" });
        assert_eq!(env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"], "5secs");
        assert_eq!(env["LIBPROCESS_PORT"], "0");
        if checkpoint {
            assert_eq!(env["MESOS_RECOVERY_TIMEOUT"], "15mins");
            assert_eq!(env["MESOS_SUBSCRIPTION_BACKOFF_MAX"], "2secs");
        }
        assert_eq!(env["CAPTURE_ENCODING"], "json");
        // Layout: …/slaves/<agent>/frameworks/<fw>/executors/<eid>/runs/<cid>, latest link.
        let expected_path = dir
            .path()
            .join("work/slaves")
            .join(&agent.agent_id().value)
            .join("frameworks/fw-env/executors/env-executor/runs")
            .join(&snap.container_id.value);
        assert_eq!(snap.sandbox, expected_path);
        assert_eq!(
            std::fs::read_link(expected_path.parent().unwrap().join("latest")).unwrap(),
            expected_path
        );
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
            expected_path
        );
        let mut files: Vec<String> = std::fs::read_dir(&expected_path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["stderr", "stdout"]);
        for f in ["stdout", "stderr"] {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(expected_path.join(f)).unwrap();
            assert_eq!(meta.len(), 0);
            assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        }
        // Its own session and process group.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = stat.rsplit_once(')').unwrap().1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        assert_eq!(fields[2], pid.to_string(), "pgid");
        assert_eq!(fields[3], pid.to_string(), "sid");
        agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_timeout_destroys_the_executor() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |c| {
        c.executor_registration_timeout = Duration::from_millis(500);
    })
    .await;
    launch_one(&agent, "silent", "exec sleep 600").await;
    let terminated = next_event(&mut events, |e| {
        matches!(e, AgentEvent::ExecutorTerminated { .. })
    })
    .await;
    let AgentEvent::ExecutorTerminated {
        status,
        executor_id,
        ..
    } = terminated
    else {
        unreachable!()
    };
    assert_eq!(executor_id.value, "silent");
    assert_eq!(status, Some(9), "SIGKILL");
    let update = next_event(&mut events, |e| status_of(e).is_some()).await;
    let status = status_of(&update).unwrap();
    assert_eq!(status.task_id.value, "t1");
    assert_eq!(status.state(), TaskState::TaskFailed);
    assert_eq!(status.source(), task_status::Source::Agent);
    assert_eq!(
        status.reason(),
        task_status::Reason::ExecutorRegistrationTimeout
    );
    assert_eq!(status.message(), "Executor did not register within 500ms");
    assert!(status.uuid.is_some());
    assert!(agent.executors().is_empty());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_killed_fails_its_tasks_and_updates_are_ordered_and_retried() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |c| {
        c.status_update_retry_interval = Duration::from_millis(300);
    })
    .await;
    let fw = framework("fw", false);
    let exec = executor_info("exec", "exec sleep 600");
    agent
        .launch(fw.clone(), exec.clone(), task("t1", 0.1, 16.0))
        .await
        .unwrap();
    wait_for_executor(&agent).await;
    let mut stream = subscribe(&agent, &subscribe_call("fw", "exec"), ContentType::Protobuf).await;
    assert_eq!(stream.next().await.r#type(), event::Type::Subscribed);
    assert_eq!(stream.next().await.r#type(), event::Type::Launch);

    // RUNNING then FINISHED: both ACKNOWLEDGED to the executor at once.
    let (running, running_uuid) = update_call("fw", "exec", "t1", TaskState::TaskRunning);
    let (finished, finished_uuid) = update_call("fw", "exec", "t1", TaskState::TaskFinished);
    assert_eq!(post_call(&agent, &running).await, 202);
    assert_eq!(post_call(&agent, &finished).await, 202);
    for uuid in [&running_uuid, &finished_uuid] {
        let ack = stream.next().await;
        assert_eq!(ack.r#type(), event::Type::Acknowledged);
        assert_eq!(&ack.acknowledged.unwrap().uuid, uuid);
    }
    // Upstream sees RUNNING, and RUNNING again (retry), never FINISHED before its ack.
    for _ in 0..2 {
        let e = next_event(&mut events, |e| status_of(e).is_some()).await;
        let s = status_of(&e).unwrap();
        assert_eq!(s.state(), TaskState::TaskRunning);
        assert_eq!(s.uuid.as_ref(), Some(&running_uuid));
        assert_eq!(s.agent_id.as_ref(), Some(agent.agent_id()));
    }
    let fid = FrameworkId { value: "fw".into() };
    let tid = TaskId { value: "t1".into() };
    assert!(
        agent.acknowledge(&fid, &tid, &finished_uuid).await.is_err(),
        "not the head"
    );
    agent.acknowledge(&fid, &tid, &running_uuid).await.unwrap();
    let e = next_event(&mut events, |e| status_of(e).is_some()).await;
    assert_eq!(status_of(&e).unwrap().state(), TaskState::TaskFinished);
    agent.acknowledge(&fid, &tid, &finished_uuid).await.unwrap();
    assert_eq!(agent.pending_status_updates(), 0);

    // A second task on the running executor: LAUNCH at once, same process.
    let pid = agent.executors()[0].pid.unwrap();
    agent
        .launch(fw.clone(), exec.clone(), task("t2", 0.1, 16.0))
        .await
        .unwrap();
    let launch = stream.next().await;
    assert_eq!(launch.launch.unwrap().task.task_id.value, "t2");
    // KILL reaches the executor.
    agent.kill_task(&fid, &tid_of("t2")).await.unwrap();
    let kill = stream.next().await;
    assert_eq!(kill.r#type(), event::Type::Kill);
    // A different ExecutorInfo under the same id: TASK_ERROR, no uuid.
    let mut other = exec.clone();
    other.command.as_mut().unwrap().value = Some("exec sleep 1".into());
    agent
        .launch(fw.clone(), other, task("t3", 0.1, 16.0))
        .await
        .unwrap();
    let e = next_event(&mut events, |e| {
        status_of(e).is_some_and(|s| s.task_id.value == "t3")
    })
    .await;
    let s = status_of(&e).unwrap();
    assert_eq!(s.state(), TaskState::TaskError);
    assert_eq!(s.reason(), task_status::Reason::TaskInvalid);
    assert!(s.uuid.is_none());

    // SIGKILL the executor: FAILURE (status 9), then TASK_FAILED for t2.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let e = next_event(&mut events, |e| {
        matches!(e, AgentEvent::ExecutorTerminated { .. })
    })
    .await;
    assert!(matches!(
        e,
        AgentEvent::ExecutorTerminated {
            status: Some(9),
            ..
        }
    ));
    let e = next_event(&mut events, |e| {
        status_of(e).is_some_and(|s| s.task_id.value == "t2")
    })
    .await;
    let s = status_of(&e).unwrap();
    assert_eq!(s.state(), TaskState::TaskFailed);
    assert_eq!(s.source(), task_status::Source::Agent);
    assert_eq!(s.reason(), task_status::Reason::ExecutorTerminated);
    assert_eq!(s.message(), "Executor terminated");
    assert_eq!(s.executor_id.as_ref().unwrap().value, "exec");
    // The stream ends with the executor.
    assert!(
        tokio::time::timeout(WAIT, &mut stream.ended)
            .await
            .unwrap()
            .unwrap()
    );
    agent.shutdown().await;
}

fn tid_of(id: &str) -> TaskId {
    TaskId { value: id.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_shutdown_then_kills_after_grace() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |c| {
        c.executor_shutdown_grace_period = Duration::from_millis(400);
    })
    .await;
    launch_one(&agent, "stubborn", "exec sleep 600").await;
    wait_for_executor(&agent).await;
    let mut stream = subscribe(&agent, &subscribe_call("fw", "stubborn"), ContentType::Json).await;
    assert_eq!(stream.next().await.r#type(), event::Type::Subscribed);
    assert_eq!(stream.next().await.r#type(), event::Type::Launch);
    let started = std::time::Instant::now();
    agent
        .shutdown_executor(
            &FrameworkId { value: "fw".into() },
            &ExecutorId {
                value: "stubborn".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(stream.next().await.r#type(), event::Type::Shutdown);
    let e = next_event(&mut events, |e| {
        matches!(e, AgentEvent::ExecutorTerminated { .. })
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(matches!(
        e,
        AgentEvent::ExecutorTerminated {
            status: Some(9),
            ..
        }
    ));
    let e = next_event(&mut events, |e| status_of(e).is_some()).await;
    assert_eq!(status_of(&e).unwrap().state(), TaskState::TaskFailed);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscription_after_a_dropped_connection() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |_| {}).await;
    agent
        .launch(
            framework("fw", true),
            executor_info("e", "exec sleep 600"),
            task("t1", 0.1, 16.0),
        )
        .await
        .unwrap();
    agent
        .launch(
            framework("fw", true),
            executor_info("e", "exec sleep 600"),
            task("t2", 0.1, 16.0),
        )
        .await
        .unwrap();
    wait_for_executor(&agent).await;
    let mut stream = subscribe(&agent, &subscribe_call("fw", "e"), ContentType::Protobuf).await;
    assert_eq!(stream.next().await.r#type(), event::Type::Subscribed);
    let mut launched = Vec::new();
    for _ in 0..2 {
        launched.push(stream.next().await.launch.unwrap().task);
    }
    agent
        .disconnect_executor(
            &FrameworkId { value: "fw".into() },
            &ExecutorId { value: "e".into() },
        )
        .await
        .unwrap();
    assert!(
        !tokio::time::timeout(WAIT, &mut stream.ended)
            .await
            .unwrap()
            .unwrap(),
        "cut, not ended"
    );
    wait_until("the agent forgot the connection", || {
        !agent.executors()[0].subscribed
    })
    .await;

    // Re-subscribe with an unacknowledged update for t1 and t1 as unacknowledged
    // task; t2 is not mentioned: it is lost.
    let (update, uuid) = update_call("fw", "e", "t1", TaskState::TaskRunning);
    let mut resubscribe = subscribe_call("fw", "e");
    resubscribe.subscribe = Some(call::Subscribe {
        unacknowledged_tasks: vec![launched[0].clone()],
        unacknowledged_updates: vec![update.update.clone().unwrap()],
    });
    let mut stream = subscribe(&agent, &resubscribe, ContentType::Protobuf).await;
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let e = stream.next().await;
        if e.r#type() == event::Type::Acknowledged {
            assert_eq!(e.acknowledged.as_ref().unwrap().uuid, uuid);
        }
        kinds.push(e.r#type());
    }
    assert!(
        kinds.contains(&event::Type::Subscribed) && kinds.contains(&event::Type::Acknowledged),
        "{kinds:?}"
    );
    let mut seen = BTreeSet::new();
    while seen.len() < 2 {
        let e = next_event(&mut events, |e| status_of(e).is_some()).await;
        let s = status_of(&e).unwrap();
        seen.insert((s.task_id.value.clone(), s.state()));
    }
    assert!(seen.contains(&("t1".to_owned(), TaskState::TaskRunning)));
    assert!(seen.contains(&("t2".to_owned(), TaskState::TaskLost)));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_failure_fails_the_task() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |_| {}).await;
    let mut exec = executor_info("e", "exec sleep 600");
    let missing = dir.path().join("no-such-file.tar.gz").display().to_string();
    exec.command = Some(CommandInfo {
        uris: vec![command_info::Uri {
            value: missing.clone(),
            ..Default::default()
        }],
        ..exec.command.unwrap()
    });
    agent
        .launch(framework("fw", false), exec, task("t1", 0.1, 16.0))
        .await
        .unwrap();
    let e = next_event(&mut events, |e| {
        matches!(e, AgentEvent::ExecutorTerminated { .. })
    })
    .await;
    assert!(matches!(
        e,
        AgentEvent::ExecutorTerminated { status: None, .. }
    ));
    let e = next_event(&mut events, |e| status_of(e).is_some()).await;
    let s = status_of(&e).unwrap();
    assert_eq!(s.state(), TaskState::TaskFailed);
    assert_eq!(s.reason(), task_status::Reason::ContainerLaunchFailed);
    assert!(s.message().contains(&missing), "{}", s.message());
    agent.shutdown().await;
}
