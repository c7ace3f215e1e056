//! [`Cluster`]: the user's entry point.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use brine_local::{LocalCluster, LocalClusterConfig, LocalClusterError};
use brine_proto::mesos::v1::{FrameworkInfo, framework_info};
use brine_proto::payload::Encoding;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};

use crate::client::ClientError;
use crate::connection::{self, MasterAddr};
use crate::scheduler::{Command, Job, JobId, Lane, Scheduler, Template};
use crate::status::{self, ClusterStatus};
use crate::store::{Record, Store, StoreError};
use crate::{ClusterConfig, JobStatus, Module, TaskError, TaskHandle};
use brine_proto::payload::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "unknown master {0:?}: expected local, local:N, http(s)://host:port or \
         zk://host:port/path"
    )]
    BadMaster(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot find the leading master: {0}")]
    Detect(#[from] crate::detector::DetectError),
    #[error("cannot start the local cluster: {0}")]
    Local(#[from] LocalClusterError),
    #[error("cannot create the local cluster's work directory: {0}")]
    WorkDir(std::io::Error),
    #[error(
        "brine-executor not found at {0}: build it (`cargo build -p brine-executor`) or set \
         BRINE_EXECUTOR"
    )]
    ExecutorNotFound(PathBuf),
    #[error("the dataset {0} is not a readable file")]
    DatasetNotFound(PathBuf),
    #[error("cannot tell the current user ($USER is unset and `id -un` failed)")]
    NoUser,
    #[error("subscription refused: {0}")]
    Subscribe(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the closure lane on {addr}: {source}")]
    Lane {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve the status endpoint on {addr}: {source}")]
    StatusEndpoint {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
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
    next_job: Arc<AtomicU64>,
    framework_id: String,
    master_url: String,
    max_in_flight: usize,
    lane_addr: std::net::SocketAddr,
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
    /// `http(s)://host:port` subscribes to that master (following redirects to the
    /// leader); `zk://host:port[,…]/path` reads the leader from ZooKeeper.
    ///
    /// With a [`ClusterConfig::state_file`] that holds a FrameworkID, the scheduler
    /// re-subscribes as that framework, reconciles its tasks, and hands the jobs it
    /// had to the same submissions made again.
    pub async fn connect_with(
        master: &str,
        config: ClusterConfig,
    ) -> Result<Cluster, ClusterError> {
        let executor_uri = match &config.executor_uri {
            Some(uri) => uri.clone(),
            None => {
                let executor_binary = match &config.executor_binary {
                    Some(path) => path.clone(),
                    None => default_executor_binary(),
                };
                if !executor_binary.is_file() {
                    return Err(ClusterError::ExecutorNotFound(executor_binary));
                }
                let executor_binary = std::path::absolute(&executor_binary)
                    .map_err(|_| ClusterError::ExecutorNotFound(executor_binary.clone()))?;
                format!("file://{}", executor_binary.display())
            }
        };
        let mut config = config;
        if let Some(dataset) = config
            .dataset
            .as_ref()
            .filter(|_| config.dataset_uri.is_none())
        {
            match std::path::absolute(dataset) {
                Ok(path) if path.is_file() => config.dataset = Some(path),
                _ => return Err(ClusterError::DatasetNotFound(dataset.clone())),
            }
        }
        let user = match &config.user {
            Some(user) if !user.is_empty() => user.clone(),
            _ => current_user().ok_or(ClusterError::NoUser)?,
        };
        let parsed = parse_master(master)?;
        let is_local = matches!(parsed, Master::Local(_));
        let (local, work_dir, addr) = match parsed {
            Master::Local(agents) => {
                let dir = tempfile::Builder::new()
                    .prefix("brine-local-")
                    .tempdir()
                    .map_err(ClusterError::WorkDir)?;
                let local =
                    LocalCluster::start(LocalClusterConfig::new(agents, dir.path())).await?;
                let url = local.master_url();
                (Some(local), Some(dir), MasterAddr::Http(url))
            }
            Master::Remote(addr) => (None, None, addr),
        };
        let mut store = match &config.state_file {
            Some(path) => Some(Store::open(path)?),
            None => None,
        };
        let webui = match config.status_addr {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ClusterError::StatusEndpoint { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| ClusterError::StatusEndpoint { addr, source })?;
                Some((listener, status::webui_url(bound)))
            }
            None => None,
        };
        let mut framework = FrameworkInfo {
            // Never empty: over the v1 HTTP API Mesos does not fill it in, and agents
            // then answer launches with TASK_LOST.
            user,
            name: config.name.clone(),
            failover_timeout: Some(config.failover_timeout.as_secs_f64()),
            checkpoint: Some(true),
            // `roles` needs MULTI_ROLE: without it Mesos refuses the SUBSCRIBE ("must not
            // be set when the framework is not MULTI_ROLE capable", validation.cpp). No
            // other capability: we handle TASK_LOST, not PARTITION_AWARE's states.
            roles: vec!["*".into()],
            capabilities: vec![framework_info::Capability {
                r#type: Some(framework_info::capability::Type::MultiRole as i32),
            }],
            webui_url: webui.as_ref().map(|(_, url)| url.clone()),
            principal: config
                .client
                .credential
                .as_ref()
                .map(|c| c.principal.clone()),
            id: store
                .as_ref()
                .and_then(|(_, state)| state.framework_id.clone())
                .map(|value| brine_proto::mesos::v1::FrameworkId { value }),
            ..Default::default()
        };
        let subscribed = match connection::subscribe(&addr, &framework, &config.client).await {
            Err(ClusterError::Subscribe(why)) if framework.id.is_some() => {
                // The stored framework is gone (failover timeout passed, torn down):
                // its tasks were killed; start afresh.
                tracing::warn!(
                    framework_id = ?framework.id,
                    reason = %why,
                    "the stored framework is gone: subscribing as a new one"
                );
                framework.id = None;
                if let Some(path) = &config.state_file {
                    if let Some((old, _)) = store.take() {
                        old.remove();
                    }
                    store = Some(Store::open(path)?);
                }
                connection::subscribe(&addr, &framework, &config.client).await?
            }
            other => other?,
        };
        framework.id = Some(subscribed.framework_id.clone());
        let framework_id = subscribed.framework_id.value.clone();
        if let Some((store, _)) = &mut store {
            store.append(&Record::Framework {
                id: framework_id.clone(),
            });
            store.flush();
        }
        let master_url = subscribed.url.clone();
        let template = Template::new(&config, subscribed.framework_id.clone(), executor_uri);
        let (lane, lane_addr) = open_lane(&config, is_local, &master_url).await?;
        let (commands, rx) = mpsc::unbounded_channel();
        if let Some((listener, url)) = webui {
            tracing::info!(%url, "status endpoint");
            status::serve(listener, commands.clone());
        }
        let max_in_flight = config.max_in_flight.max(1);
        let scheduler = Scheduler::new(config, addr, framework, template, subscribed, store, lane);
        let scheduler = tokio::spawn(scheduler.run(rx));
        Ok(Cluster {
            commands,
            scheduler,
            next_job: Arc::new(AtomicU64::new(0)),
            framework_id,
            master_url,
            max_in_flight,
            lane_addr,
            local,
            _work_dir: work_dir,
        })
    }

    /// Where the closure lane listens (executors connect to it).
    pub fn lane_addr(&self) -> std::net::SocketAddr {
        self.lane_addr
    }

    /// Runs `entry` of `module` on `args` somewhere in the cluster; arguments and result
    /// travel as postcard (the guest's `#[task]` types).
    pub fn submit<A, R>(&self, module: &Module, entry: &str, args: &A) -> TaskHandle<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        match postcard::to_allocvec(args) {
            Ok(args) => self.submit_encoded(module, entry, args, Encoding::Postcard),
            Err(e) => TaskHandle::failed(TaskError::Encode(e.to_string())),
        }
    }

    /// [`Cluster::submit`] with JSON arguments and result (what the `brine` command
    /// line sends).
    pub fn submit_json(
        &self,
        module: &Module,
        entry: &str,
        args: &serde_json::Value,
    ) -> TaskHandle<serde_json::Value> {
        match serde_json::to_vec(args) {
            Ok(args) => self.submit_encoded(module, entry, args, Encoding::Json),
            Err(e) => TaskHandle::failed(TaskError::Encode(e.to_string())),
        }
    }

    fn submit_encoded<R>(
        &self,
        module: &Module,
        entry: &str,
        args: Vec<u8>,
        encoding: Encoding,
    ) -> TaskHandle<R> {
        let id = JobId(self.next_job.fetch_add(1, Ordering::Relaxed));
        let (result, rx) = oneshot::channel();
        let (status, status_rx) = watch::channel(JobStatus::pending());
        let job = Job::new(
            id,
            module.clone(),
            entry.to_owned(),
            args,
            encoding,
            result,
            status,
        );
        if self.commands.send(Command::Submit(Box::new(job))).is_err() {
            return TaskHandle::failed(TaskError::Cancelled);
        }
        TaskHandle::new(rx, status_rx, (id, self.commands.clone()), encoding)
    }

    /// Runs `entry` on every item, keeping at most [`ClusterConfig::max_in_flight`]
    /// jobs submitted at once, and yields `(index, result)` as each completes.
    /// Dropping the stream cancels the jobs still running.
    pub fn map<'a, A, R, I>(
        &'a self,
        module: &Module,
        entry: &str,
        items: I,
    ) -> impl Stream<Item = (usize, Result<R, TaskError>)> + 'a
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
        A: Serialize + 'a,
        R: DeserializeOwned + 'a,
    {
        let module = module.clone();
        let entry = entry.to_owned();
        futures::stream::iter(items.into_iter().enumerate())
            .map(move |(i, item)| {
                let handle = self.submit::<A, R>(&module, &entry, &item);
                async move { (i, handle.await) }
            })
            .buffer_unordered(self.max_in_flight)
    }

    /// [`Cluster::map`] with JSON arguments and results.
    pub fn map_json<'a, I>(
        &'a self,
        module: &Module,
        entry: &str,
        items: I,
    ) -> impl Stream<Item = (usize, Result<serde_json::Value, TaskError>)> + 'a
    where
        I: IntoIterator<Item = serde_json::Value>,
        I::IntoIter: 'a,
    {
        let module = module.clone();
        let entry = entry.to_owned();
        futures::stream::iter(items.into_iter().enumerate())
            .map(move |(i, item)| {
                let handle = self.submit_json(&module, &entry, &item);
                async move { (i, handle.await) }
            })
            .buffer_unordered(self.max_in_flight)
    }

    /// The scheduler's jobs and executors now.
    pub async fn status(&self) -> Option<ClusterStatus> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Status(tx)).ok()?;
        rx.await.ok()
    }

    pub fn framework_id(&self) -> &str {
        &self.framework_id
    }

    /// The URL of the master first subscribed to (before redirects).
    pub fn master_url(&self) -> &str {
        &self.master_url
    }

    /// The in-process cluster, for `local` masters.
    pub fn local(&self) -> Option<&LocalCluster> {
        self.local.as_ref()
    }

    /// Tears the framework down (its executors are shut down), fails what is still
    /// pending with [`TaskError::Cancelled`], removes the state file, and stops a
    /// local cluster.
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

    /// Stops this scheduler without tearing the framework down, as if its process
    /// died: the master keeps its tasks for `failover_timeout`, and a scheduler
    /// started with the same state file carries on.
    pub async fn abandon(self) {
        self.scheduler.abort();
        let _ = self.scheduler.await;
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("framework_id", &self.framework_id)
            .field("master_url", &self.master_url)
            .field("local", &self.local.is_some())
            .finish()
    }
}

/// Binds the closure lane with a fresh secret. Lease ids get a prefix from the same
/// randomness, so that no two scheduler processes use the same lease id.
async fn open_lane(
    config: &ClusterConfig,
    local: bool,
    master_url: &str,
) -> Result<(Lane, std::net::SocketAddr), ClusterError> {
    let mut random = [0u8; 36];
    getrandom::getrandom(&mut random).map_err(|e| ClusterError::Lane {
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&random[..32]);
    let lease_prefix = hex::encode(&random[32..]);
    let bind = config.lane_bind.unwrap_or(if local {
        std::net::SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        std::net::SocketAddr::from(([0, 0, 0, 0], 0))
    });
    let host = match &config.lane_advertise {
        Some(host) => host.clone(),
        None if local || bind.ip().is_loopback() => "127.0.0.1".into(),
        None => route_address(master_url)
            .or_else(|| (!bind.ip().is_unspecified()).then(|| bind.ip().to_string()))
            .unwrap_or_else(|| "127.0.0.1".into()),
    };
    let (events_tx, events) = mpsc::unbounded_channel();
    let (endpoint, bound) = crate::lane::bind(bind, &host, Secret(secret), events_tx)
        .await
        .map_err(|source| ClusterError::Lane { addr: bind, source })?;
    tracing::info!(lane = %endpoint.addr, "closure lane listening");
    Ok((
        Lane {
            endpoint,
            events,
            lease_prefix,
        },
        bound,
    ))
}

/// This machine's address on the route to the master at `url` (a UDP socket
/// "connected" there sends nothing, but the kernel picks the source address).
fn route_address(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    let target = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

#[derive(Debug, PartialEq)]
enum Master {
    /// `local` / `local:N`.
    Local(usize),
    Remote(MasterAddr),
}

fn parse_master(master: &str) -> Result<Master, ClusterError> {
    let bad = || ClusterError::BadMaster(master.to_owned());
    match master.split_once(':') {
        None if master == "local" => Ok(Master::Local(1)),
        Some(("local", n)) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Master::Local(n)),
            _ => Err(bad()),
        },
        Some(("http" | "https", _)) => Ok(Master::Remote(MasterAddr::Http(master.to_owned()))),
        Some(("zk", _)) => Ok(Master::Remote(MasterAddr::Zk(master.to_owned()))),
        _ => Err(bad()),
    }
}

/// `$BRINE_EXECUTOR`, else `brine-executor` beside the current executable, else one
/// directory up (cargo puts test binaries in `target/<profile>/deps/` and examples in
/// `target/<profile>/examples/`).
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
        && dir
            .file_name()
            .is_some_and(|n| n == "deps" || n == "examples")
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
        assert_eq!(parse_master("local").ok(), Some(Master::Local(1)));
        assert_eq!(parse_master("local:3").ok(), Some(Master::Local(3)));
        assert_eq!(
            parse_master("http://m:5050").ok(),
            Some(Master::Remote(MasterAddr::Http("http://m:5050".into())))
        );
        assert_eq!(
            parse_master("zk://z:2181/mesos").ok(),
            Some(Master::Remote(MasterAddr::Zk("zk://z:2181/mesos".into())))
        );
        assert!(parse_master("local:0").is_err());
        assert!(parse_master("ftp://m").is_err());
    }

    #[test]
    fn finds_a_user() {
        assert!(current_user().is_some_and(|u| !u.is_empty()));
    }
}
