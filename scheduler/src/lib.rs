//! The Brine scheduler library: submit WebAssembly closures to a Mesos master and await
//! typed results.
//!
//! - [`Cluster`]: connect (`http(s)://host:port`; with the `zk` feature `zk://…`, with
//!   `local` `local` / `local:N`), [`Cluster::submit`], [`Cluster::map`],
//!   [`Cluster::status`], [`Cluster::shutdown`].
//! - [`ClusterConfig`]: every knob, with defaults for short closures.
//! - [`Module`]: a task module, named by its SHA-256.
//! - [`TaskHandle`]: a `Future` of `Result<R, TaskError>` that shows the job's
//!   [`JobStatus`] and cancels the job when dropped.
//! - [`client`]: the Mesos v1 scheduler HTTP client underneath; `detector` (feature
//!   `zk`): the leading master from ZooKeeper.
//!
//! # Cargo features
//!
//! - `tls` (default): `https://` masters (rustls).
//! - `zk`: `zk://` masters, the leader read from ZooKeeper at every (re)subscription,
//!   so that a scheduler follows a failover between masters.
//! - `local`: `local` / `local:N` masters, an in-process master and agents
//!   (`brine-local`); for development and tests, e.g. in `[dev-dependencies]`.
//!
//! A master whose feature is off is refused with [`ClusterError::FeatureDisabled`].
//!
//! See `README.md` for what the scheduler does on the wire.

#![warn(missing_docs)]

pub mod client;
mod cluster;
mod config;
mod connection;
#[cfg(feature = "zk")]
pub mod detector;
mod feature;
mod job;
mod lane;
mod module;
mod scheduler;
mod status;
mod store;
mod task;

/// The in-process cluster a `local` master runs on ([`Cluster::local`]).
#[cfg(feature = "local")]
pub use brine_local::LocalCluster;
pub use brine_proto::payload::ErrorKind;
pub use cluster::{Cluster, ClusterError, SubscribeError};
pub use config::{ClusterConfig, Dispatch};
pub use feature::Feature;
pub use job::{JobState, JobStatus};
pub use module::Module;
pub use status::{ClusterStatus, ExecutorStatus, JobCounts};
pub use store::StoreError;
pub use task::{TaskError, TaskHandle};
