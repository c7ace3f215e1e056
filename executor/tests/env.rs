//! The executor's environment: parsing (no agent needed) and the real binary started
//! without one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use brine_executor::env::{self, EnvProblem, MesosEnv};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The environment a real Mesos 1.12 agent gave an executor (captured), checkpointing on.
fn captured() -> Vec<(String, String)> {
    vars(&[
        ("LIBPROCESS_IP", "127.0.0.1"),
        ("LIBPROCESS_PORT", "0"),
        ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
        ("MESOS_CHECKPOINT", "1"),
        (
            "MESOS_DIRECTORY",
            "/var/lib/mesos/agent/slaves/s/frameworks/f/executors/e/runs/c",
        ),
        (
            "MESOS_SANDBOX",
            "/var/lib/mesos/agent/slaves/s/frameworks/f/executors/e/runs/c",
        ),
        ("MESOS_EXECUTOR_ID", "e"),
        ("MESOS_FRAMEWORK_ID", "f"),
        ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"),
        ("MESOS_HTTP_COMMAND_EXECUTOR", "0"),
        ("MESOS_RECOVERY_TIMEOUT", "15mins"),
        ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"),
        ("MESOS_SLAVE_ID", "s"),
        ("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:5051"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ])
}

#[test]
fn a_real_agents_environment_parses() {
    let env = MesosEnv::from_vars(captured()).unwrap();
    assert_eq!(env.agent_endpoint, "127.0.0.1:5051");
    assert_eq!(env.framework_id, "f");
    assert_eq!(env.executor_id, "e");
    assert!(env.sandbox.ends_with("runs/c"));
    assert_eq!(env.shutdown_grace_period, Duration::from_secs(5));
    let recovery = env.checkpoint.unwrap();
    assert_eq!(recovery.recovery_timeout, Duration::from_secs(15 * 60));
    assert_eq!(recovery.backoff_max, Duration::from_secs(2));
    assert_eq!(env.authentication_token, None);
}

#[test]
fn checkpointing_is_on_only_for_1_and_then_needs_its_durations() {
    let mut v = captured();
    v.retain(|(k, _)| k != env::RECOVERY_TIMEOUT && k != env::SUBSCRIPTION_BACKOFF_MAX);
    let err = MesosEnv::from_vars(v.clone()).unwrap_err();
    assert_eq!(
        err.missing(),
        [env::RECOVERY_TIMEOUT, env::SUBSCRIPTION_BACKOFF_MAX]
    );
    for off in ["0", "true", ""] {
        let mut v = v.clone();
        v.retain(|(k, _)| k != env::CHECKPOINT);
        v.push((env::CHECKPOINT.into(), off.into()));
        let env = MesosEnv::from_vars(v).unwrap();
        assert_eq!(env.checkpoint, None, "MESOS_CHECKPOINT={off}");
    }
}

#[test]
fn every_missing_variable_is_named() {
    let err = MesosEnv::from_vars(vars(&[("PATH", "/bin")])).unwrap_err();
    assert_eq!(
        err.missing(),
        [
            env::AGENT_ENDPOINT,
            env::FRAMEWORK_ID,
            env::EXECUTOR_ID,
            env::SANDBOX,
            env::SHUTDOWN_GRACE_PERIOD
        ]
    );
    let text = err.to_string();
    for name in [
        "MESOS_AGENT_ENDPOINT",
        "MESOS_FRAMEWORK_ID",
        "MESOS_EXECUTOR_ID",
        "MESOS_SANDBOX (or MESOS_DIRECTORY)",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
    ] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn sandbox_falls_back_to_directory_and_token_is_read() {
    let mut v = captured();
    v.retain(|(k, _)| k != env::SANDBOX);
    v.push((env::AUTHENTICATION_TOKEN.into(), "jwt".into()));
    let env = MesosEnv::from_vars(v).unwrap();
    assert!(env.sandbox.ends_with("runs/c"));
    assert_eq!(env.authentication_token.as_deref(), Some("jwt"));
}

#[test]
fn malformed_values_are_reported_with_the_reason() {
    let mut v = captured();
    v.retain(|(k, _)| k != env::SHUTDOWN_GRACE_PERIOD && k != env::AGENT_ENDPOINT);
    v.push((env::SHUTDOWN_GRACE_PERIOD.into(), "5 seconds".into()));
    v.push((env::AGENT_ENDPOINT.into(), "localhost".into()));
    let err = MesosEnv::from_vars(v).unwrap_err();
    assert!(err.missing().is_empty());
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(err.problems.iter().any(|p| matches!(
        p,
        EnvProblem::Invalid { name, .. } if *name == env::SHUTDOWN_GRACE_PERIOD
    )));
    let text = err.to_string();
    assert!(
        text.contains("'5 seconds'") && text.contains("expected host:port"),
        "{text}"
    );
}

#[test]
fn durations_use_mesos_units() {
    let mut v = captured();
    v.retain(|(k, _)| k != env::SHUTDOWN_GRACE_PERIOD && k != env::SUBSCRIPTION_BACKOFF_MAX);
    v.push((env::SHUTDOWN_GRACE_PERIOD.into(), "1.5mins".into()));
    v.push((env::SUBSCRIPTION_BACKOFF_MAX.into(), "250ms".into()));
    let env = MesosEnv::from_vars(v).unwrap();
    assert_eq!(env.shutdown_grace_period, Duration::from_secs(90));
    assert_eq!(
        env.checkpoint.unwrap().backoff_max,
        Duration::from_millis(250)
    );
}

#[test]
fn the_binary_without_an_environment_names_what_is_missing() {
    let output = Command::new(env!("CARGO_BIN_EXE_brine-executor"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing environment variables"), "{stderr}");
    for name in [
        "MESOS_AGENT_ENDPOINT",
        "MESOS_FRAMEWORK_ID",
        "MESOS_EXECUTOR_ID",
        "MESOS_SANDBOX",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
    ] {
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn the_binary_with_an_unreachable_agent_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_brine-executor"))
        .env_clear()
        .env("MESOS_AGENT_ENDPOINT", format!("127.0.0.1:{port}"))
        .env("MESOS_FRAMEWORK_ID", "f")
        .env("MESOS_EXECUTOR_ID", "e")
        .env("MESOS_SANDBOX", dir.path())
        .env("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot subscribe to the agent"), "{stderr}");
}

#[test]
fn help_and_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_brine-executor"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("brine-executor"));
    let output = Command::new(env!("CARGO_BIN_EXE_brine-executor"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("MESOS_AGENT_ENDPOINT"));
}
