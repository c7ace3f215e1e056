//! The Brine scheduler library: submit WebAssembly closures to a Mesos master and await
//! typed results.
//!
//! - [`Cluster`]: connect (`local`, `local:N`, `http://host:port`), [`Cluster::submit`].
//! - [`Module`]: a task module, named by its SHA-256.
//! - [`TaskHandle`]: a `Future` of `Result<R, TaskError>`.
//! - [`client`]: the Mesos v1 scheduler HTTP client underneath.
//!
//! See `README.md` for what this first slice does and does not do yet.

pub mod client;
mod cluster;
mod module;
mod scheduler;
mod task;

pub use brine_proto::payload::ErrorKind;
pub use cluster::{Cluster, ClusterConfig, ClusterError};
pub use module::Module;
pub use task::{TaskError, TaskHandle};
