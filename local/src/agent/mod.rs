//! A Mesos-compatible local agent: serves the v1 executor HTTP API on loopback, runs
//! executors as child processes in Mesos-style sandboxes, and relays their status
//! updates reliably to the layer above (the test harness now, the local master later).
//!
//! ```no_run
//! # async fn demo() -> Result<(), brine_local::agent::AgentError> {
//! use brine_local::agent::{Agent, AgentConfig};
//! let mut agent = Agent::start(AgentConfig::new("/tmp/brine-agent")).await?;
//! let mut events = agent.take_events().expect("first call");
//! println!("executor API at http://{}/api/v1/executor", agent.endpoint());
//! # let _ = &mut events; agent.shutdown().await; Ok(()) }
//! ```
//!
//! See `local/README.md` for the behaviour and every known difference from Mesos.

mod call;
pub mod cgroups;
mod checkpoint;
mod config;
mod container;
mod executor_api;
pub mod fetcher;
mod gc;
mod http;
mod inner;
mod launch;
mod launcher;
mod metrics;
mod recovery;
mod relay;
pub mod sandbox;
mod state;
pub mod status_updates;
mod termination;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use brine_proto::mesos::v1::{
    AgentId, AgentInfo, ContainerId, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo,
    Resource, TaskId, TaskInfo, TaskState, TaskStatus,
};
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

pub use cgroups::{CgroupPaths, CgroupVersion};
pub use config::{AgentConfig, AgentResources, CgroupsMode};
pub use gc::GcCounts;
pub use http::check_executor_call;
pub use recovery::ExecutorReport;
pub use state::ExecutorState;
pub use status_updates::AckError;

use inner::Inner;

/// What the agent tells the layer above.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // the API's shape: `status` by value
pub enum AgentEvent {
    /// A status update to forward to the scheduler. When `status.uuid` is set it is
    /// re-sent until [`Agent::acknowledge`] names that uuid, and the task's next update
    /// waits until then. Updates without a uuid (only the master-style `TASK_ERROR` for
    /// an incompatible ExecutorInfo) must not be acknowledged.
    StatusUpdate {
        framework_id: FrameworkId,
        status: TaskStatus,
    },
    /// A framework message from an executor (best effort, as in Mesos).
    ExecutorMessage {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Bytes,
    },
    /// The executor's process is gone (Mesos's `ExitedExecutorMessage` / scheduler
    /// `FAILURE`). `status` is the raw wait status (e.g. 9 for SIGKILL, 0 for exit 0,
    /// 256 for exit 1), `None` when the executor never ran (launch failure).
    ExecutorTerminated {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: Option<i32>,
    },
}

/// A view of one executor.
#[derive(Debug, Clone)]
pub struct ExecutorSnapshot {
    pub framework_id: FrameworkId,
    pub executor_id: ExecutorId,
    pub container_id: ContainerId,
    /// The process started for the executor (`sh` for a shell command).
    pub pid: Option<u32>,
    pub sandbox: PathBuf,
    /// Whether a SUBSCRIBE connection is open now.
    pub subscribed: bool,
    pub state: ExecutorState,
    /// Executor resources + Σ resources of its non-terminal (queued or launched) tasks.
    pub allocation: AgentResources,
    pub cgroup: Option<CgroupPaths>,
    /// Every task the executor was given, with its latest state (queued ones as
    /// `TASK_STAGING`; terminal ones stay listed).
    pub tasks: Vec<(TaskId, TaskState)>,
}

/// Errors of the agent's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid launch: {0}")]
    InvalidLaunch(String),
    #[error("not supported by the local agent: {0}")]
    Unsupported(String),
    #[error("framework {0} is unknown to this agent")]
    UnknownFramework(String),
    #[error("executor {executor} of framework {framework} is unknown to this agent")]
    UnknownExecutor { framework: String, executor: String },
    #[error("executor {0} has no SUBSCRIBE connection")]
    NotConnected(String),
    #[error("acknowledgement refused: {0}")]
    Acknowledgement(#[from] AckError),
}

/// A running local agent. Dropping it kills its executors (SIGKILL) and stops serving;
/// [`Agent::shutdown`] does it gracefully.
pub struct Agent {
    inner: Arc<Inner>,
    addr: SocketAddr,
    recovered: bool,
    events: Option<mpsc::UnboundedReceiver<AgentEvent>>,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Binds the executor API and starts serving.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| AgentError::Bind {
                addr: config.listen,
                source,
            })?;
        Agent::start_on(listener, config).await
    }

    /// Starts serving on `listener` (its address is the agent's endpoint). With
    /// [`AgentConfig::recover`] and a checkpoint under `<work_dir>/meta`, the agent takes
    /// the checkpointed agent id and recovers its executors (see `local/README.md`).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        mut config: AgentConfig,
    ) -> Result<Agent, AgentError> {
        for dir in [&config.work_dir, &config.fetcher_cache_dir] {
            std::fs::create_dir_all(dir).map_err(|source| AgentError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let addr = listener.local_addr().map_err(|source| AgentError::Bind {
            addr: config.listen,
            source,
        })?;
        let recovering = if config.recover {
            checkpoint::latest_agent_id(&config.work_dir)
        } else {
            None
        };
        if let Some(id) = &recovering {
            if *id != config.agent_id {
                tracing::info!(agent_id = %id, "recovering the checkpointed agent id");
            }
            config.agent_id = id.clone();
        }
        let cgroups = match config.cgroups {
            CgroupsMode::Off => cgroups::Cgroups::disabled(),
            CgroupsMode::Auto => cgroups::Cgroups::detect(
                &config.cgroups_hierarchy,
                &config.cgroups_root,
                config.cgroups_enable_cfs,
            ),
        };
        let agent_id = AgentId {
            value: config.agent_id.clone(),
        };
        let info = AgentInfo {
            hostname: config.hostname.clone(),
            port: Some(i32::from(addr.port())),
            id: Some(agent_id.clone()),
            resources: vec![
                Resource::scalar("cpus", config.resources.cpus),
                Resource::scalar("mem", config.resources.mem_mb),
                Resource::scalar("disk", config.resources.disk_mb),
            ],
            ..Default::default()
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner::new(config, agent_id, info, cgroups, events_tx));
        inner.checkpointed("slave.info", inner.meta.checkpoint_agent(&inner.info));
        let recovered = match recovering {
            Some(_) => {
                let state = inner.meta.recover();
                if let Some(info) = &state.info
                    && info.resources != inner.info.resources
                {
                    tracing::warn!("the agent's resources changed since the checkpoint");
                }
                if state.rebooted {
                    tracing::info!(
                        "the machine rebooted since the checkpoint: no executor survived"
                    );
                }
                let awaited = inner.recover(state);
                tracing::info!(executors = awaited, "recovered the checkpointed state");
                true
            }
            None => false,
        };
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(Arc::clone(&inner.gc).run(
            inner.config.work_dir.clone(),
            inner.config.disk_watch_interval,
            stop_rx.clone(),
        ));
        let server = tokio::spawn(http::serve(listener, Arc::clone(&inner), stop_rx));
        tracing::info!(%addr, agent_id = %inner.agent_id.value, "local agent started");
        Ok(Agent {
            inner,
            addr,
            recovered,
            events: Some(events_rx),
            stop,
            server: Some(server),
        })
    }

    /// The agent id checkpointed under `<work_dir>/meta` (`meta/slaves/latest`), if any:
    /// what an agent started there with [`AgentConfig::recover`] will recover.
    pub fn checkpointed_id(work_dir: &std::path::Path) -> Option<String> {
        checkpoint::latest_agent_id(work_dir)
    }

    /// Whether this agent recovered a checkpoint (and should re-register with its
    /// master rather than register).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Its executors and their live tasks, as it reports them when it re-registers.
    pub fn report(&self) -> Vec<ExecutorReport> {
        self.inner.report()
    }

    /// Forwards every unacknowledged status update again (the head of each task's
    /// stream), as an agent does once it has (re-)registered with a master.
    pub fn resend_pending_updates(&self) {
        self.inner.resend_pending();
    }

    /// Where the executor API is served (`MESOS_AGENT_ENDPOINT`).
    pub fn endpoint(&self) -> SocketAddr {
        self.addr
    }

    pub fn agent_id(&self) -> &AgentId {
        &self.inner.agent_id
    }

    /// hostname, port, id and resources (cpus, mem, disk).
    pub fn info(&self) -> AgentInfo {
        self.inner.info.clone()
    }

    /// The configuration the agent runs with.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    /// Events for the layer above; `Some` on the first call only.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<AgentEvent>> {
        self.events.take()
    }

    /// RunTask: starts the executor if it is not running (sandbox, fetch, spawn; the
    /// task waits in its queue until the executor subscribes), else sends LAUNCH at
    /// once. `task.executor`, when set, wins over `executor`. Returns once the task is
    /// queued or sent; failures after that arrive as status updates.
    pub async fn launch(
        &self,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        task: TaskInfo,
    ) -> Result<(), AgentError> {
        self.inner.launch(framework, executor, task).await
    }

    /// KILL: sent to the executor for a launched task; a task still queued is killed
    /// by the agent (`TASK_KILLED`, `REASON_TASK_KILLED_DURING_LAUNCH`); a task no
    /// executor holds gets `TASK_LOST` ("Cannot find executor"). Unknown frameworks are
    /// ignored, as in Mesos.
    pub async fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
    ) -> Result<(), AgentError> {
        self.inner.kill_task(framework_id, task_id);
        Ok(())
    }

    /// SHUTDOWN, then SIGKILL of the process group after the grace period.
    pub async fn shutdown_executor(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Result<(), AgentError> {
        self.inner.shutdown_executor(framework_id, executor_id)
    }

    /// The scheduler's ACKNOWLEDGE of the update with `uuid`: stops its re-sending and
    /// forwards the task's next update.
    pub async fn acknowledge(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        uuid: &[u8],
    ) -> Result<(), AgentError> {
        self.inner.acknowledge(framework_id, task_id, uuid)
    }

    /// A framework message to the executor (dropped, as in Mesos, unless it is
    /// subscribed).
    pub async fn send_message(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        data: Bytes,
    ) -> Result<(), AgentError> {
        self.inner.send_message(framework_id, executor_id, data)
    }

    /// Test hook: drop the executor's SUBSCRIBE connection (as a network failure would:
    /// the chunked body is cut, not ended).
    pub async fn disconnect_executor(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Result<(), AgentError> {
        self.inner.disconnect(framework_id, executor_id)
    }

    /// Executors not yet terminated.
    pub fn executors(&self) -> Vec<ExecutorSnapshot> {
        self.inner.executors()
    }

    /// The last terminated executors (at most 150), oldest first.
    pub fn completed_executors(&self) -> Vec<ExecutorSnapshot> {
        self.inner.completed_executors()
    }

    /// Status updates not yet acknowledged upstream.
    pub fn pending_status_updates(&self) -> usize {
        self.inner.pending_updates()
    }

    /// Sandbox removals by the garbage collector so far (`gc/path_removals_*`); a
    /// receiver, so a caller can wait for the next one.
    pub fn gc_removals(&self) -> watch::Receiver<GcCounts> {
        self.inner.gc.counts()
    }

    /// Whether executors are put in cgroups.
    pub fn cgroups_enabled(&self) -> bool {
        self.inner.cgroups.enabled()
    }

    /// Shuts every executor down (SHUTDOWN, grace period, SIGKILL) and waits for them
    /// (bounded), still serving.
    pub async fn shutdown_executors(&self) {
        self.inner.shutdown_all().await;
    }

    /// Shuts every executor down (SHUTDOWN, grace period, SIGKILL), waits for them,
    /// and stops serving.
    pub async fn shutdown(mut self) {
        self.inner.shutdown_all().await;
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.inner.kill_all_now();
        let _ = self.stop.send(true);
    }
}
