//! `brine-local`: a single-machine, Mesos-compatible master and agents.
//!
//! - [`agent`]: a local agent that speaks the Mesos v1 executor HTTP API, starts
//!   executors as child processes in Mesos-style sandboxes, relays status updates
//!   reliably and resizes each executor's cgroup as its tasks come and go.
//! - [`master`]: a local master that speaks the Mesos v1 scheduler HTTP API, offers the
//!   agents' free resources and relays calls and events between frameworks and agents.
//! - [`LocalCluster`]: a master and N agents in this process.
//! - [`serve`]: running one standalone until SIGINT/SIGTERM (`brine-local`, `brine local`).
//! - [`standalone`]: master and agents as separate processes (`brine-local master`,
//!   `brine-local agent`), the agent checkpointing and recovering; [`link`] is what
//!   they say to each other.
//!
//! See `local/README.md` for what they implement and how they differ from Mesos.

pub mod agent;
mod cluster;
pub mod link;
pub mod master;
pub mod serve;
pub mod standalone;
mod web;

pub use cluster::{LocalCluster, LocalClusterConfig, LocalClusterError};
