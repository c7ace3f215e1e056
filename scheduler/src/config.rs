//! [`ClusterConfig`]: every knob of the scheduler, with defaults for short closures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use brine_proto::payload::ExecutorConfig;

use crate::client::ClientConfig;

/// How closures reach executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dispatch {
    /// Leases (Mesos tasks reserving one closure slot each, of `task_cpus` and
    /// `task_mem_mb`) are taken from offers when work queues up and given back when
    /// idle; closures travel to executors over the closure lane, a direct TCP
    /// connection. Mesos pays one offer round per lease, not per closure.
    #[default]
    Leases,
    /// One Mesos task per closure: every closure pays an offer round, which on Apache
    /// Mesos means waiting for the allocator's tick. Kept for comparison and for
    /// clusters where executors cannot reach the scheduler.
    TaskPerClosure,
}

/// How the scheduler runs tasks. The defaults suit short closures.
///
/// Start from [`ClusterConfig::default`] and change what you need, with the `with_*`
/// methods or by assigning fields; new knobs can then be added without breaking
/// programs (the struct is `#[non_exhaustive]`, so it cannot be written as a literal
/// outside this crate).
///
/// ```
/// use std::time::Duration;
/// use brine_scheduler::ClusterConfig;
///
/// let config = ClusterConfig::default()
///     .with_task_mem_mb(128.0)
///     .with_task_deadline(Duration::from_secs(30))
///     .with_status_addr(([127, 0, 0, 1], 0));
/// assert_eq!(config.task_mem_mb, 128.0);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// How closures reach executors.
    pub dispatch: Dispatch,
    /// CPUs of each closure: of each lease's slot, or of each task.
    pub task_cpus: f64,
    /// Memory of each closure in MB (also its memory limit): of each lease's slot, or
    /// of each task.
    pub task_mem_mb: f64,
    /// Most leases held at once (lease mode).
    pub max_leases: usize,
    /// Most closures sent into one lease at once: one runs, the rest wait at the
    /// executor so that the slot never waits for a round trip.
    pub lane_depth: usize,
    /// A lease with no closure for this long is given back to Mesos.
    pub lease_idle_timeout: Duration,
    /// A lane silent for this long is presumed lost and its closures are dispatched
    /// again; the scheduler pings every quarter of it.
    pub lane_timeout: Duration,
    /// Where the lane listens; default `127.0.0.1:0` for `local` masters, else
    /// `0.0.0.0:0`.
    pub lane_bind: Option<SocketAddr>,
    /// Where executors are told to connect: `host` (the lane's port is added) or
    /// `host:port` (a proxy or NAT in front of the lane). Default `127.0.0.1` for
    /// `local` masters, else this machine's address on the route to the master.
    pub lane_advertise: Option<String>,
    /// CPUs of the executor itself (on top of its tasks').
    pub executor_cpus: f64,
    /// Memory of the executor itself in MB (on top of its tasks').
    pub executor_mem_mb: f64,
    /// Filter sent with every DECLINE, so unused offers do not come straight back.
    pub refuse_seconds: f64,
    /// How long the master keeps the framework's tasks after the scheduler disconnects.
    pub failover_timeout: Duration,
    /// Retries of a job after infrastructure failures (lost, executor or agent gone)
    /// before it fails. Deterministic guest errors are never retried.
    pub max_retries: u32,
    /// Guest deadline of every task; past it the task fails with
    /// [`crate::TaskError::Timeout`]. `None`: no deadline.
    pub task_deadline: Option<Duration>,
    /// Most jobs a [`crate::Cluster::map`] keeps submitted at once.
    pub max_in_flight: usize,
    /// An executor silent (no heartbeat message) for this long is presumed lost: its
    /// tasks are killed and retried elsewhere, and it is shut down. Keep it several
    /// times `executor_config.heartbeat_interval`.
    pub heartbeat_timeout: Duration,
    /// How often running tasks are reconciled with the master (also done on every
    /// (re)subscription).
    pub reconcile_interval: Duration,
    /// An agent on which this many jobs failed for infrastructure reasons within
    /// `agent_failure_window` is set aside (its offers declined) for `agent_cooldown`.
    pub agent_failure_limit: usize,
    /// The window in which `agent_failure_limit` failures set an agent aside.
    pub agent_failure_window: Duration,
    /// How long an agent stays set aside.
    pub agent_cooldown: Duration,
    /// Longest wait between two re-subscription attempts (the backoff doubles from
    /// 100 ms up to this).
    pub max_resubscribe_backoff: Duration,
    /// The state store: FrameworkID and the job table, so that a restarted scheduler
    /// re-subscribes as the same framework and carries on. `None`: nothing persists.
    pub state_file: Option<PathBuf>,
    /// A file shipped to every executor (a `file://` CommandInfo URI, fetched into the
    /// sandbox) and mapped read-only for all its tasks. It must be at this path on
    /// every agent, unless [`ClusterConfig::dataset_uri`] says where to fetch it.
    pub dataset: Option<PathBuf>,
    /// The `brine-executor` binary; default `$BRINE_EXECUTOR`, else next to the current
    /// executable (or its parent directory, for test binaries in `deps/`). It must be
    /// at this path on every agent, unless [`ClusterConfig::executor_uri`] is set.
    pub executor_binary: Option<PathBuf>,
    /// Where agents fetch the executor from instead of `executor_binary`: any URI their
    /// Mesos fetcher understands (`http://`, `https://`, `hdfs://`, an absolute path),
    /// passed on as it is, for clusters whose agents do not share the scheduler's files.
    /// The sandbox file is named `brine-executor` whatever the URI's name.
    pub executor_uri: Option<String>,
    /// Likewise for the dataset, instead of `dataset`; the sandbox file takes the URI's
    /// last path component as its name.
    pub dataset_uri: Option<String>,
    /// What every executor is told (in `ExecutorInfo.data`); `dataset` is filled in
    /// from [`ClusterConfig::dataset`].
    pub executor_config: ExecutorConfig,
    /// `FrameworkInfo.user`; default `$USER`, else the user database's name for this
    /// process's uid.
    pub user: Option<String>,
    /// `FrameworkInfo.name`.
    pub name: String,
    /// Where `GET /status` is served (advertised as the framework's `webui_url`, which
    /// `brine status` follows); port 0 picks a free one ([`crate::Cluster::status_addr`]
    /// tells which). Default `None`: not served, so a library user opens no port it
    /// did not ask for (the `brine` command line serves it on `127.0.0.1:0`).
    pub status_addr: Option<SocketAddr>,
    /// How the HTTP client talks to the master (timeouts, credential, TLS roots).
    pub client: ClientConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            dispatch: Dispatch::Leases,
            task_cpus: 0.1,
            task_mem_mb: 64.0,
            max_leases: 64,
            lane_depth: 8,
            lease_idle_timeout: Duration::from_secs(2),
            lane_timeout: Duration::from_secs(10),
            lane_bind: None,
            lane_advertise: None,
            executor_cpus: 0.1,
            executor_mem_mb: 32.0,
            refuse_seconds: 5.0,
            failover_timeout: Duration::from_secs(3600),
            max_retries: 3,
            task_deadline: None,
            max_in_flight: 1024,
            heartbeat_timeout: Duration::from_secs(15),
            reconcile_interval: Duration::from_secs(60),
            agent_failure_limit: 5,
            agent_failure_window: Duration::from_secs(60),
            agent_cooldown: Duration::from_secs(300),
            max_resubscribe_backoff: Duration::from_secs(10),
            state_file: None,
            dataset: None,
            executor_uri: None,
            dataset_uri: None,
            executor_binary: None,
            executor_config: ExecutorConfig::default(),
            user: None,
            name: "brine".into(),
            status_addr: None,
            client: ClientConfig::default(),
        }
    }
}

/// `with_<field>(value)` setters, each consuming and returning the config so that they
/// chain: `plain` ones take the field's type, `into` ones anything that converts to it
/// (`&str` for a `String`), and `opt` ones set an `Option` field to `Some(value)`.
macro_rules! setters {
    ($($name:ident => $field:ident: $kind:tt $ty:ty;)*) => {
        impl ClusterConfig {$(
            setters!(@one $name $field $kind $ty);
        )*}
    };
    (@one $name:ident $field:ident plain $ty:ty) => {
        #[doc = concat!("Sets [`ClusterConfig::", stringify!($field), "`].")]
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$field = value;
            self
        }
    };
    (@one $name:ident $field:ident into $ty:ty) => {
        #[doc = concat!("Sets [`ClusterConfig::", stringify!($field), "`].")]
        #[must_use]
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$field = value.into();
            self
        }
    };
    (@one $name:ident $field:ident opt $ty:ty) => {
        #[doc = concat!("Sets [`ClusterConfig::", stringify!($field), "`] to `Some(value)`.")]
        #[must_use]
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$field = Some(value.into());
            self
        }
    };
}

setters! {
    with_dispatch => dispatch: plain Dispatch;
    with_task_cpus => task_cpus: plain f64;
    with_task_mem_mb => task_mem_mb: plain f64;
    with_max_leases => max_leases: plain usize;
    with_lane_depth => lane_depth: plain usize;
    with_lease_idle_timeout => lease_idle_timeout: plain Duration;
    with_lane_timeout => lane_timeout: plain Duration;
    with_lane_bind => lane_bind: opt SocketAddr;
    with_lane_advertise => lane_advertise: opt String;
    with_executor_cpus => executor_cpus: plain f64;
    with_executor_mem_mb => executor_mem_mb: plain f64;
    with_refuse_seconds => refuse_seconds: plain f64;
    with_failover_timeout => failover_timeout: plain Duration;
    with_max_retries => max_retries: plain u32;
    with_task_deadline => task_deadline: opt Duration;
    with_max_in_flight => max_in_flight: plain usize;
    with_heartbeat_timeout => heartbeat_timeout: plain Duration;
    with_reconcile_interval => reconcile_interval: plain Duration;
    with_agent_failure_limit => agent_failure_limit: plain usize;
    with_agent_failure_window => agent_failure_window: plain Duration;
    with_agent_cooldown => agent_cooldown: plain Duration;
    with_max_resubscribe_backoff => max_resubscribe_backoff: plain Duration;
    with_state_file => state_file: opt PathBuf;
    with_dataset => dataset: opt PathBuf;
    with_executor_binary => executor_binary: opt PathBuf;
    with_executor_uri => executor_uri: opt String;
    with_dataset_uri => dataset_uri: opt String;
    with_executor_config => executor_config: plain ExecutorConfig;
    with_user => user: opt String;
    with_name => name: into String;
    with_status_addr => status_addr: opt SocketAddr;
    with_client => client: plain ClientConfig;
}
