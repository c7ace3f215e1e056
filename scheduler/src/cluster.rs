//! [`Cluster`]: the user's entry point.

use std::path::PathBuf;
use std::time::Duration;

use brine_local::{LocalCluster, LocalClusterConfig, LocalClusterError};
use brine_proto::mesos::v1::scheduler::{Call, call, event};
use brine_proto::mesos::v1::{FrameworkId, FrameworkInfo};
use brine_proto::payload::ExecutorConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::client::{self, ClientConfig, ClientError, Endpoint};
use crate::scheduler::{Command, Job, Scheduler};
use crate::{Module, TaskError, TaskHandle};

/// How the scheduler runs tasks. The defaults suit short closures.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Resources of each task.
    pub task_cpus: f64,
    pub task_mem_mb: f64,
    /// Resources of the executor itself (on top of its tasks').
    pub executor_cpus: f64,
    pub executor_mem_mb: f64,
    /// Filter sent with every DECLINE, so unused offers do not come straight back.
    pub refuse_seconds: f64,
    /// How long the master keeps the framework's tasks after the scheduler disconnects.
    pub failover_timeout: Duration,
    /// Retries of a task Mesos lost (executor died, agent gone…) before giving up.
    pub max_retries: u32,
    /// The `brine-executor` binary; default `$BRINE_EXECUTOR`, else next to the current
    /// executable (or its parent directory, for test binaries in `deps/`).
    pub executor_binary: Option<PathBuf>,
    /// What every executor is told (in `ExecutorInfo.data`).
    pub executor_config: ExecutorConfig,
    /// `FrameworkInfo.user`; default `$USER`, else `id -un`.
    pub user: Option<String>,
    pub client: ClientConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            task_cpus: 0.1,
            task_mem_mb: 64.0,
            executor_cpus: 0.1,
            executor_mem_mb: 32.0,
            refuse_seconds: 5.0,
            failover_timeout: Duration::from_secs(3600),
            max_retries: 3,
            executor_binary: None,
            executor_config: ExecutorConfig::default(),
            user: None,
            client: ClientConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("unknown master {0:?}: expected local, local:N or http://host:port")]
    BadMaster(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot start the local cluster: {0}")]
    Local(#[from] LocalClusterError),
    #[error("cannot create the local cluster's work directory: {0}")]
    WorkDir(std::io::Error),
    #[error(
        "brine-executor not found at {0}: build it (`cargo build -p brine-executor`) or set \
         BRINE_EXECUTOR"
    )]
    ExecutorNotFound(PathBuf),
    #[error("cannot tell the current user ($USER is unset and `id -un` failed)")]
    NoUser,
    #[error("subscription refused: {0}")]
    Subscribe(String),
}

/// A connection to a Mesos master (or an in-process local one) that runs closures.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use brine_scheduler::{Cluster, Module};
///
/// let cluster = Cluster::connect("local:2").await?;
/// let module = Module::from_file("example_sum.wasm")?;
/// let total: i64 = cluster.submit(&module, "sum", &"1 2 3".to_string()).await?;
/// assert_eq!(total, 6);
/// cluster.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Cluster {
    commands: mpsc::UnboundedSender<Command>,
    scheduler: tokio::task::JoinHandle<()>,
    framework_id: FrameworkId,
    master_url: String,
    local: Option<LocalCluster>,
    // Dropped after `local`: the local agents' work directory.
    _work_dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Connects with [`ClusterConfig::default`].
    pub async fn connect(master: &str) -> Result<Cluster, ClusterError> {
        Cluster::connect_with(master, ClusterConfig::default()).await
    }

    /// `local` / `local:N` start an in-process master with N agents (default 1);
    /// `http://host:port` subscribes to that master (following redirects to the
    /// leader).
    pub async fn connect_with(
        master: &str,
        config: ClusterConfig,
    ) -> Result<Cluster, ClusterError> {
        let executor_binary = match &config.executor_binary {
            Some(path) => path.clone(),
            None => default_executor_binary(),
        };
        if !executor_binary.is_file() {
            return Err(ClusterError::ExecutorNotFound(executor_binary));
        }
        let user = match &config.user {
            Some(user) if !user.is_empty() => user.clone(),
            _ => current_user().ok_or(ClusterError::NoUser)?,
        };
        let (local, work_dir, url) = match local_agents(master)? {
            Some(agents) => {
                let dir = tempfile::Builder::new()
                    .prefix("brine-local-")
                    .tempdir()
                    .map_err(ClusterError::WorkDir)?;
                let local =
                    LocalCluster::start(LocalClusterConfig::new(agents, dir.path())).await?;
                let url = local.master_url();
                (Some(local), Some(dir), url)
            }
            None => (None, None, master.to_owned()),
        };
        let endpoint = Endpoint::parse(&url)?;
        let framework = FrameworkInfo {
            // Never empty: over the v1 HTTP API Mesos does not fill it in, and agents
            // then answer launches with TASK_LOST.
            user,
            name: "brine".into(),
            failover_timeout: Some(config.failover_timeout.as_secs_f64()),
            checkpoint: Some(true),
            roles: vec!["*".into()],
            ..Default::default()
        };
        let subscribe = Call {
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                framework_info: framework.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut subscription = client::subscribe(&endpoint, &subscribe, &config.client).await?;
        let timeout = config.client.request_timeout;
        let first = tokio::time::timeout(timeout, subscription.events.recv())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?;
        let framework_id = match first {
            Some(Ok(e)) if e.r#type() == event::Type::Subscribed => e
                .subscribed
                .map(|s| s.framework_id)
                .ok_or_else(|| ClusterError::Subscribe("SUBSCRIBED without a body".into()))?,
            Some(Ok(e)) => {
                let message = e
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                return Err(ClusterError::Subscribe(format!(
                    "first event is {} {message}",
                    e.r#type().as_str_name()
                )));
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ClientError::StreamEnded.into()),
        };
        tracing::info!(framework_id = %framework_id.value, master = %endpoint.authority, "subscribed");
        let (commands, rx) = mpsc::unbounded_channel();
        let scheduler =
            Scheduler::new(config, framework_id.clone(), &executor_binary, subscription);
        let scheduler = tokio::spawn(scheduler.run(rx));
        Ok(Cluster {
            commands,
            scheduler,
            framework_id,
            master_url: url,
            local,
            _work_dir: work_dir,
        })
    }

    /// Runs `entry` of `module` on `args` (postcard-encoded) somewhere in the cluster.
    pub fn submit<A, R>(&self, module: &Module, entry: &str, args: &A) -> TaskHandle<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let args = match postcard::to_allocvec(args) {
            Ok(args) => args,
            Err(e) => return TaskHandle::failed(TaskError::Encode(e.to_string())),
        };
        let (result, rx) = oneshot::channel();
        let job = Job::new(module.clone(), entry.to_owned(), args, result);
        if self.commands.send(Command::Submit(job)).is_err() {
            return TaskHandle::failed(TaskError::Cancelled);
        }
        TaskHandle::new(rx)
    }

    pub fn framework_id(&self) -> &str {
        &self.framework_id.value
    }

    /// `http://ip:port` of the master subscribed to (before redirects).
    pub fn master_url(&self) -> &str {
        &self.master_url
    }

    /// The in-process cluster, for `local` masters.
    pub fn local(&self) -> Option<&LocalCluster> {
        self.local.as_ref()
    }

    /// Tears the framework down (its executors are shut down), fails what is still
    /// pending with [`TaskError::Cancelled`], and stops a local cluster.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
        let _ = self.scheduler.await;
        if let Some(local) = self.local {
            local.shutdown().await;
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("framework_id", &self.framework_id.value)
            .field("master_url", &self.master_url)
            .field("local", &self.local.is_some())
            .finish()
    }
}

/// `Some(N)` for `local` / `local:N`, `None` for an HTTP master.
fn local_agents(master: &str) -> Result<Option<usize>, ClusterError> {
    let bad = || ClusterError::BadMaster(master.to_owned());
    match master.split_once(':') {
        None if master == "local" => Ok(Some(1)),
        Some(("local", n)) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(bad()),
        },
        Some(("http", _)) => Ok(None),
        _ => Err(bad()),
    }
}

/// `$BRINE_EXECUTOR`, else `brine-executor` beside the current executable, else one
/// directory up (cargo puts test binaries in `target/<profile>/deps/`).
fn default_executor_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BRINE_EXECUTOR") {
        return PathBuf::from(path);
    }
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
    else {
        return PathBuf::from("brine-executor");
    };
    let beside = dir.join("brine-executor");
    if !beside.is_file()
        && dir.file_name().is_some_and(|n| n == "deps")
        && let Some(parent) = dir.parent()
    {
        return parent.join("brine-executor");
    }
    beside
}

/// The user tasks run as: `$USER`, else `id -un`.
fn current_user() -> Option<String> {
    if let Ok(user) = std::env::var("USER")
        && !user.trim().is_empty()
    {
        return Some(user.trim().to_owned());
    }
    let out = std::process::Command::new("id").arg("-un").output().ok()?;
    let user = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masters() {
        assert_eq!(local_agents("local").ok(), Some(Some(1)));
        assert_eq!(local_agents("local:3").ok(), Some(Some(3)));
        assert_eq!(local_agents("http://m:5050").ok(), Some(None));
        assert!(local_agents("local:0").is_err());
        assert!(local_agents("zk://z:2181/mesos").is_err());
    }

    #[test]
    fn finds_a_user() {
        assert!(current_user().is_some_and(|u| !u.is_empty()));
    }
}
