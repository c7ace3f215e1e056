//! The environment a Mesos agent gives an executor, read the way Mesos's reference v1
//! executor library (`src/executor/executor.cpp`) and default executor read it.
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `MESOS_AGENT_ENDPOINT` | yes | `host:port` of the agent's `/api/v1/executor` |
//! | `MESOS_FRAMEWORK_ID` | yes | the framework's id, sent in every call |
//! | `MESOS_EXECUTOR_ID` | yes | this executor's id, sent in every call |
//! | `MESOS_SANDBOX` (else `MESOS_DIRECTORY`) | yes | the sandbox directory |
//! | `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD` | yes | how long SHUTDOWN may take (a Mesos duration) |
//! | `MESOS_CHECKPOINT` | no | `1`: the framework checkpoints, so reconnect after a disconnection |
//! | `MESOS_RECOVERY_TIMEOUT` | when checkpointing | how long to keep trying to re-subscribe |
//! | `MESOS_SUBSCRIPTION_BACKOFF_MAX` | when checkpointing | the longest wait between two attempts |
//! | `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` | no | sent as `Authorization: Bearer <token>` |
//!
//! Unlike the reference library, which stops at the first missing variable, every
//! missing or malformed variable is reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use brine_proto::duration;

pub const AGENT_ENDPOINT: &str = "MESOS_AGENT_ENDPOINT";
pub const FRAMEWORK_ID: &str = "MESOS_FRAMEWORK_ID";
pub const EXECUTOR_ID: &str = "MESOS_EXECUTOR_ID";
pub const SANDBOX: &str = "MESOS_SANDBOX";
pub const DIRECTORY: &str = "MESOS_DIRECTORY";
pub const CHECKPOINT: &str = "MESOS_CHECKPOINT";
pub const RECOVERY_TIMEOUT: &str = "MESOS_RECOVERY_TIMEOUT";
pub const SUBSCRIPTION_BACKOFF_MAX: &str = "MESOS_SUBSCRIPTION_BACKOFF_MAX";
pub const SHUTDOWN_GRACE_PERIOD: &str = "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD";
pub const AUTHENTICATION_TOKEN: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// What the executor learned from its environment.
#[derive(Clone, PartialEq, Eq)]
pub struct MesosEnv {
    /// `host:port` of the agent.
    pub agent_endpoint: String,
    pub framework_id: String,
    pub executor_id: String,
    pub sandbox: PathBuf,
    /// `Some` when the framework checkpoints: then the executor re-subscribes after a
    /// disconnection instead of shutting down.
    pub checkpoint: Option<Recovery>,
    pub shutdown_grace_period: Duration,
    /// Sent as `Authorization: Bearer <token>`.
    pub authentication_token: Option<String>,
}

/// How to recover from a disconnection (checkpointing frameworks only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// How long after the disconnection to keep trying before shutting down.
    pub recovery_timeout: Duration,
    /// Each wait between two attempts is a random duration in `0..=backoff_max`.
    pub backoff_max: Duration,
}

impl fmt::Debug for MesosEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MesosEnv")
            .field("agent_endpoint", &self.agent_endpoint)
            .field("framework_id", &self.framework_id)
            .field("executor_id", &self.executor_id)
            .field("sandbox", &self.sandbox)
            .field("checkpoint", &self.checkpoint)
            .field("shutdown_grace_period", &self.shutdown_grace_period)
            .field(
                "authentication_token",
                &self.authentication_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvProblem {
    Missing(&'static str),
    /// The variable is set but its value cannot be used.
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl fmt::Display for EnvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvProblem::Missing(name) => write!(f, "{name} is not set"),
            EnvProblem::Invalid {
                name,
                value,
                reason,
            } => write!(f, "{name}='{value}' is invalid: {reason}"),
        }
    }
}

/// Every problem found in the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EnvError {
    pub problems: Vec<EnvProblem>,
}

impl EnvError {
    /// The names of the variables that are missing.
    pub fn missing(&self) -> Vec<&'static str> {
        self.problems
            .iter()
            .filter_map(|p| match p {
                EnvProblem::Missing(name) => Some(*name),
                EnvProblem::Invalid { .. } => None,
            })
            .collect()
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = self.missing();
        if !missing.is_empty() {
            write!(
                f,
                "missing environment variable{}: {}",
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|name| if *name == SANDBOX {
                        "MESOS_SANDBOX (or MESOS_DIRECTORY)"
                    } else {
                        name
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        let invalid: Vec<String> = self
            .problems
            .iter()
            .filter(|p| matches!(p, EnvProblem::Invalid { .. }))
            .map(ToString::to_string)
            .collect();
        if !invalid.is_empty() {
            if !missing.is_empty() {
                f.write_str("; ")?;
            }
            f.write_str(&invalid.join("; "))?;
        }
        f.write_str(" (brine-executor is meant to be started by a Mesos agent, which sets these)")
    }
}

impl MesosEnv {
    /// Reads the process environment.
    pub fn from_process() -> Result<Self, EnvError> {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads the given variables (only `MESOS_*` ones matter).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, EnvError> {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("MESOS_"))
            .collect();
        let mut problems = Vec::new();
        let required = |name: &'static str, problems: &mut Vec<EnvProblem>| match vars.get(name) {
            Some(value) if !value.is_empty() => Some(value.clone()),
            _ => {
                problems.push(EnvProblem::Missing(name));
                None
            }
        };
        let agent_endpoint = required(AGENT_ENDPOINT, &mut problems);
        let framework_id = required(FRAMEWORK_ID, &mut problems);
        let executor_id = required(EXECUTOR_ID, &mut problems);
        let sandbox = match (vars.get(SANDBOX), vars.get(DIRECTORY)) {
            (Some(s), _) if !s.is_empty() => Some(PathBuf::from(s)),
            (_, Some(d)) if !d.is_empty() => Some(PathBuf::from(d)),
            _ => {
                problems.push(EnvProblem::Missing(SANDBOX));
                None
            }
        };
        let grace = required(SHUTDOWN_GRACE_PERIOD, &mut problems);
        // As in executor.cpp: checkpointing is on exactly when the value is "1".
        let checkpoint = vars.get(CHECKPOINT).is_some_and(|v| v == "1");
        let (recovery, backoff) = if checkpoint {
            (
                required(RECOVERY_TIMEOUT, &mut problems),
                required(SUBSCRIPTION_BACKOFF_MAX, &mut problems),
            )
        } else {
            (None, None)
        };

        let mut duration_of = |name: &'static str, value: Option<String>| {
            let value = value?;
            match duration::parse(&value) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(EnvProblem::Invalid {
                        name,
                        value,
                        reason: e.to_string(),
                    });
                    None
                }
            }
        };
        let grace = duration_of(SHUTDOWN_GRACE_PERIOD, grace);
        let recovery = duration_of(RECOVERY_TIMEOUT, recovery);
        let backoff = duration_of(SUBSCRIPTION_BACKOFF_MAX, backoff);
        if let Some(endpoint) = &agent_endpoint
            && !valid_endpoint(endpoint)
        {
            problems.push(EnvProblem::Invalid {
                name: AGENT_ENDPOINT,
                value: endpoint.clone(),
                reason: "expected host:port".into(),
            });
        }

        match (agent_endpoint, framework_id, executor_id, sandbox, grace) {
            (
                Some(agent_endpoint),
                Some(framework_id),
                Some(executor_id),
                Some(sandbox),
                Some(grace),
            ) if problems.is_empty() => {
                let checkpoint = match (recovery, backoff) {
                    (Some(recovery_timeout), Some(backoff_max)) => Some(Recovery {
                        recovery_timeout,
                        backoff_max,
                    }),
                    _ => None,
                };
                Ok(Self {
                    agent_endpoint,
                    framework_id,
                    executor_id,
                    sandbox,
                    checkpoint,
                    shutdown_grace_period: grace,
                    authentication_token: vars.get(AUTHENTICATION_TOKEN).cloned(),
                })
            }
            _ => Err(EnvError { problems }),
        }
    }
}

/// `host:port` with a numeric port and a non-empty host.
fn valid_endpoint(endpoint: &str) -> bool {
    match endpoint.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Removes the authentication token from this process's environment so other processes
/// in the same PID namespace cannot read it, as the reference library does.
///
/// # Safety
///
/// Must be called before any other thread exists (it edits the process environment).
pub unsafe fn erase_token_from_process_env() {
    // SAFETY: the caller guarantees no other thread reads or writes the environment.
    unsafe { std::env::remove_var(AUTHENTICATION_TOKEN) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn endpoint_validation() {
        assert!(valid_endpoint("127.0.0.1:5051"));
        assert!(valid_endpoint("agent.example:1"));
        assert!(!valid_endpoint("127.0.0.1"));
        assert!(!valid_endpoint(":5051"));
        assert!(!valid_endpoint("host:port"));
    }

    #[test]
    fn token_is_not_debug_printed() {
        let env = MesosEnv::from_vars(vars(&[
            (AGENT_ENDPOINT, "127.0.0.1:1"),
            (FRAMEWORK_ID, "f"),
            (EXECUTOR_ID, "e"),
            (DIRECTORY, "/tmp"),
            (SHUTDOWN_GRACE_PERIOD, "5secs"),
            (AUTHENTICATION_TOKEN, "secret"),
        ]));
        let env = env.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.sandbox, PathBuf::from("/tmp"));
        assert!(!format!("{env:?}").contains("secret"));
    }
}
