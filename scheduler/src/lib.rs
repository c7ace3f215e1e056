//! The Brine scheduler library: submit WebAssembly closures to a Mesos master and await
//! typed results.
//!
//! - [`Cluster`]: connect (`local`, `local:N`, `http(s)://host:port`, `zk://…`),
//!   [`Cluster::submit`], [`Cluster::map`], [`Cluster::status`].
//! - [`Module`]: a task module, named by its SHA-256.
//! - [`TaskHandle`]: a `Future` of `Result<R, TaskError>` that shows the job's
//!   [`JobStatus`] and cancels the job when dropped.
//! - [`client`]: the Mesos v1 scheduler HTTP client underneath.
//!
//! See `README.md` for what the scheduler does on the wire.

pub mod client;
mod cluster;
mod config;
mod connection;
pub mod detector;
mod job;
mod lane;
mod module;
mod scheduler;
mod status;
mod store;
mod task;

pub use brine_proto::payload::ErrorKind;
pub use cluster::{Cluster, ClusterError};
pub use config::{ClusterConfig, Dispatch};
pub use job::{JobState, JobStatus};
pub use module::Module;
pub use status::{ClusterStatus, ExecutorStatus, JobCounts};
pub use store::StoreError;
pub use task::{TaskError, TaskHandle};
