//! [`Cluster`]: the user's entry point.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "local")]
use brine_local::{LocalCluster, LocalClusterConfig, LocalClusterError};
use brine_proto::mesos::v1::{FrameworkInfo, framework_info};
use brine_proto::payload::Encoding;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};

use crate::client::ClientError;
use crate::connection::{self, MasterAddr};
use crate::job::JobId;
use crate::scheduler::{Command, Job, Lane, Scheduler, Template};
use crate::status::{self, ClusterStatus};
use crate::store::{Record, Store, StoreError};
use crate::{ClusterConfig, Feature, JobStatus, Module, TaskError, TaskHandle};
use brine_proto::payload::Secret;

/// Why [`Cluster::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The master is none of the forms [`Cluster::connect_with`] understands.
    #[error(
        "unknown master {0:?}: expected local, local:N, http(s)://host:port or \
         zk://host:port/path"
    )]
    BadMaster(String),
    /// The master is well formed but needs a part this build leaves out (`local:N`
    /// without the `local` feature, `zk://` without `zk`, `https://` without `tls`).
    #[error(
        "the master {master:?} needs brine-scheduler's `{feature}` cargo feature, which \
         this build leaves out"
    )]
    FeatureDisabled {
        /// The master as given.
        master: String,
        /// The feature it needs.
        feature: Feature,
    },
    /// Talking to the master failed (connection, TLS, HTTP, authentication…).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No leading master could be read from ZooKeeper.
    #[cfg(feature = "zk")]
    #[error("cannot find the leading master: {0}")]
    Detect(#[from] crate::detector::DetectError),
    /// The in-process cluster did not start.
    #[cfg(feature = "local")]
    #[error("cannot start the local cluster: {0}")]
    Local(#[from] LocalClusterError),
    /// The local cluster's temporary work directory could not be made.
    #[error("cannot create the local cluster's work directory: {0}")]
    WorkDir(std::io::Error),
    /// No `brine-executor` binary where [`ClusterConfig::executor_binary`] (or its
    /// default) says.
    #[error(
        "brine-executor not found at {0}: build it (`cargo build -p brine-executor`) or set \
         BRINE_EXECUTOR"
    )]
    ExecutorNotFound(PathBuf),
    /// [`ClusterConfig::dataset`] is not a readable file.
    #[error("the dataset {0} is not a readable file")]
    DatasetNotFound(PathBuf),
    /// No user to run tasks as: set [`ClusterConfig::user`].
    #[error(
        "cannot tell the current user ($USER is unset and the user database has no name for this uid)"
    )]
    NoUser,
    /// The master answered SUBSCRIBE, but not with SUBSCRIBED.
    #[error("subscription refused: {0}")]
    Subscribe(SubscribeError),
    /// The state store ([`ClusterConfig::state_file`]) cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness for the closure lane's secret.
    #[error("cannot draw the closure lane's secret: {0}")]
    Randomness(std::io::Error),
    /// The closure lane cannot listen ([`ClusterConfig::lane_bind`]).
    #[error("cannot open the closure lane on {addr}: {source}")]
    Lane {
        /// Where it was to listen.
        addr: SocketAddr,
        /// Why it cannot.
        source: std::io::Error,
    },
    /// The status endpoint cannot listen ([`ClusterConfig::status_addr`]).
    #[error("cannot serve the status endpoint on {addr}: {source}")]
    StatusEndpoint {
        /// Where it was to listen.
        addr: SocketAddr,
        /// Why it cannot.
        source: std::io::Error,
    },
}

/// How the master answered SUBSCRIBE when it did not answer SUBSCRIBED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The first event was another one, usually `ERROR`: the master refused the
    /// framework, e.g. a stored FrameworkID it has removed (torn down, or past its
    /// failover timeout). Retrying will not help; [`Cluster::connect_with`] then
    /// subscribes afresh when the FrameworkID came from the state file.
    #[error("first event is {event}: {message}")]
    Refused {
        /// The event's type (`ERROR`).
        event: String,
        /// The master's message (`ERROR`'s `message`), possibly empty.
        message: String,
    },
    /// SUBSCRIBED arrived without its body (no FrameworkID).
    #[error("SUBSCRIBED without a body")]
    NoBody,
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
///
/// # Dropping it
///
/// End a cluster with [`Cluster::shutdown`] (tear the framework down) or
/// [`Cluster::abandon`] (leave it for a successor). Dropping it without either stops
/// it as `abandon` does, without waiting: the scheduler's loop ends, the
/// subscription is closed, the status endpoint and the closure lane stop listening
/// (their ports are released), jobs still out resolve to [`TaskError::Cancelled`], a
/// `local` cluster is stopped (its executors killed), and a state file stays for the
/// next scheduler. No TEARDOWN is sent (a drop cannot wait for the master): on a real
/// master the framework and its leases live on until
/// [`ClusterConfig::failover_timeout`], as after a crash.
pub struct Cluster {
    /// The only strong sender: the loop ends when it is dropped (the status
    /// endpoint's and the handles' senders are weak).
    commands: mpsc::UnboundedSender<Command>,
    scheduler: tokio::task::JoinHandle<()>,
    next_job: Arc<AtomicU64>,
    framework_id: String,
    master_url: String,
    max_in_flight: usize,
    lane_addr: SocketAddr,
    status_addr: Option<SocketAddr>,
    #[cfg(feature = "local")]
    local: Option<Local>,
}

/// A `local` master's cluster and its work directory.
#[cfg(feature = "local")]
struct Local {
    cluster: LocalCluster,
    // Dropped after `cluster`: the local agents' work directory.
    _work_dir: tempfile::TempDir,
}

impl Cluster {
    /// Connects with [`ClusterConfig::default`].
    pub async fn connect(master: &str) -> Result<Cluster, ClusterError> {
        Cluster::connect_with(master, ClusterConfig::default()).await
    }

    /// `http(s)://host:port` subscribes to that master (following redirects to the
    /// leader); `zk://host:port[,…]/path` reads the leader from ZooKeeper; `local` /
    /// `local:N` start an in-process master with N agents (default 1). `https://`,
    /// `zk://` and `local` need the features `tls`, `zk` and `local`: without,
    /// [`ClusterError::FeatureDisabled`].
    ///
    /// With a [`ClusterConfig::state_file`] that holds a FrameworkID, the scheduler
    /// re-subscribes as that framework, reconciles its tasks, and hands the jobs it
    /// had to the same submissions made again.
    pub async fn connect_with(
        master: &str,
        config: ClusterConfig,
    ) -> Result<Cluster, ClusterError> {
        let parsed = parse_master(master)?;
        parsed.check_features(master)?;
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
        let is_local = matches!(parsed, Master::Local(_));
        #[cfg(feature = "local")]
        let (local, addr) = match parsed {
            Master::Local(agents) => {
                let local = start_local(agents).await?;
                let url = local.cluster.master_url();
                (Some(local), MasterAddr::Http(url))
            }
            Master::Remote(addr) => (None, addr),
        };
        #[cfg(not(feature = "local"))]
        let addr = match parsed {
            // Refused by `check_features` above.
            Master::Local(_) => {
                return Err(ClusterError::FeatureDisabled {
                    master: master.to_owned(),
                    feature: Feature::Local,
                });
            }
            Master::Remote(addr) => addr,
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
                Some((listener, bound, status::webui_url(bound)))
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
            webui_url: webui.as_ref().map(|(_, _, url)| url.clone()),
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
            Err(ClusterError::Subscribe(why @ crate::SubscribeError::Refused { .. }))
                if framework.id.is_some() =>
            {
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
        // Dropped when the loop ends, however it ends (an aborted task drops it too):
        // what stops the status endpoint.
        let (running, stopped) = watch::channel(());
        let status_addr = webui.map(|(listener, bound, url)| {
            tracing::info!(%url, "status endpoint");
            let weak = commands.downgrade();
            let ask: status::AskStatus = Arc::new(move |reply| {
                weak.upgrade()
                    .is_some_and(|commands| commands.send(Command::Status(reply)).is_ok())
            });
            status::serve(listener, ask, stopped);
            bound
        });
        let max_in_flight = config.max_in_flight.max(1);
        let scheduler = Scheduler::new(config, addr, framework, template, subscribed, store, lane);
        let scheduler = tokio::spawn(async move {
            let _running = running;
            scheduler.run(rx).await;
        });
        Ok(Cluster {
            commands,
            scheduler,
            next_job: Arc::new(AtomicU64::new(0)),
            framework_id,
            master_url,
            max_in_flight,
            lane_addr,
            status_addr,
            #[cfg(feature = "local")]
            local,
        })
    }

    /// Where the closure lane listens (executors connect to it).
    pub fn lane_addr(&self) -> SocketAddr {
        self.lane_addr
    }

    /// Where `GET /status` is served, when [`ClusterConfig::status_addr`] asked for it
    /// (the port actually bound, if it asked for port 0).
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
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
        let weak = self.commands.downgrade();
        let cancel = Box::new(move || {
            if let Some(commands) = weak.upgrade() {
                let _ = commands.send(Command::Cancel(id));
            }
        });
        TaskHandle::new(rx, status_rx, cancel, encoding)
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

    /// The scheduler's jobs and executors now; `None` once the scheduler has stopped.
    pub async fn status(&self) -> Option<ClusterStatus> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Status(tx)).ok()?;
        rx.await.ok()
    }

    /// The FrameworkID the master gave this scheduler (the stored one, when it
    /// carried on from a state file).
    pub fn framework_id(&self) -> &str {
        &self.framework_id
    }

    /// The URL of the master first subscribed to (before redirects).
    pub fn master_url(&self) -> &str {
        &self.master_url
    }

    /// The in-process cluster, for `local` masters.
    #[cfg(feature = "local")]
    pub fn local(&self) -> Option<&LocalCluster> {
        self.local.as_ref().map(|local| &local.cluster)
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
        #[cfg(feature = "local")]
        if let Some(local) = self.local {
            local.cluster.shutdown().await;
        }
    }

    /// Stops this scheduler without tearing the framework down, as if its process
    /// died: the master keeps its tasks for `failover_timeout`, and a scheduler
    /// started with the same state file carries on. A `local` cluster stops with it
    /// (dropped).
    pub async fn abandon(self) {
        self.scheduler.abort();
        let _ = self.scheduler.await;
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Cluster");
        debug
            .field("framework_id", &self.framework_id)
            .field("master_url", &self.master_url);
        #[cfg(feature = "local")]
        debug.field("local", &self.local.is_some());
        debug.finish()
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
    getrandom::getrandom(&mut random)
        .map_err(|e| ClusterError::Randomness(std::io::Error::other(e.to_string())))?;
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
    /// `http(s)://…` or `zk://…`.
    Remote(MasterAddr),
}

impl Master {
    /// The feature this master needs, if any.
    fn feature(&self) -> Option<Feature> {
        match self {
            Master::Local(_) => Some(Feature::Local),
            Master::Remote(MasterAddr::Zk(_)) => Some(Feature::Zk),
            Master::Remote(MasterAddr::Http(url)) if url.starts_with("https:") => {
                Some(Feature::Tls)
            }
            Master::Remote(MasterAddr::Http(_)) => None,
        }
    }

    /// [`ClusterError::FeatureDisabled`] when this build cannot reach it.
    fn check_features(&self, master: &str) -> Result<(), ClusterError> {
        match self.feature() {
            Some(feature) if !feature.is_enabled() => Err(ClusterError::FeatureDisabled {
                master: master.to_owned(),
                feature,
            }),
            _ => Ok(()),
        }
    }
}

/// Starts an in-process cluster of `agents` agents in a fresh temporary directory.
#[cfg(feature = "local")]
async fn start_local(agents: usize) -> Result<Local, ClusterError> {
    let dir = tempfile::Builder::new()
        .prefix("brine-local-")
        .tempdir()
        .map_err(ClusterError::WorkDir)?;
    let cluster = LocalCluster::start(LocalClusterConfig::new(agents, dir.path())).await?;
    Ok(Local {
        cluster,
        _work_dir: dir,
    })
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

/// The user tasks run as: `$USER`, else the name of this process's user in the user
/// database (`getpwuid_r`).
fn current_user() -> Option<String> {
    if let Ok(user) = std::env::var("USER")
        && !user.trim().is_empty()
    {
        return Some(user.trim().to_owned());
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::current()).ok()??;
    (!user.name.is_empty()).then_some(user.name)
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
    fn masters_name_the_feature_they_need() {
        let needs = |master: &str| parse_master(master).ok().and_then(|m| m.feature());
        assert_eq!(needs("local:2"), Some(Feature::Local));
        assert_eq!(needs("zk://z:2181/mesos"), Some(Feature::Zk));
        assert_eq!(needs("https://m:5050"), Some(Feature::Tls));
        assert_eq!(needs("http://m:5050"), None);
        for master in [
            "local:2",
            "zk://z:2181/mesos",
            "https://m:5050",
            "http://m:5050",
        ] {
            let parsed = parse_master(master).expect("a master");
            let checked = parsed.check_features(master);
            match parsed.feature() {
                Some(feature) if !feature.is_enabled() => assert!(
                    matches!(
                        &checked,
                        Err(ClusterError::FeatureDisabled { master: m, feature: f })
                            if m == master && *f == feature
                    ),
                    "{checked:?}"
                ),
                _ => assert!(checked.is_ok(), "{checked:?}"),
            }
        }
    }

    /// Without `zk` and `tls` (`cargo test --no-default-features --lib`), `connect`
    /// refuses those masters before doing anything, naming the feature.
    #[cfg(not(all(feature = "zk", feature = "tls")))]
    #[tokio::test]
    async fn connect_refuses_a_master_whose_feature_is_off() {
        for (master, feature) in [
            ("zk://z:2181/mesos", Feature::Zk),
            ("https://m:5050", Feature::Tls),
        ] {
            if feature.is_enabled() {
                continue;
            }
            let error = Cluster::connect(master).await.expect_err("refused");
            assert!(
                matches!(&error, ClusterError::FeatureDisabled { feature: f, .. } if *f == feature),
                "{error:?}"
            );
            assert!(error.to_string().contains(feature.name()), "{error}");
        }
    }

    #[test]
    fn finds_a_user() {
        assert!(current_user().is_some_and(|u| !u.is_empty()));
    }
}
