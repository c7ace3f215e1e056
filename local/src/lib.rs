//! `brine-local`: a single-machine, Mesos-compatible master and agents.
//!
//! - [`agent`]: a local agent that speaks the Mesos v1 executor HTTP API, starts
//!   executors as child processes in Mesos-style sandboxes, relays status updates
//!   reliably and resizes each executor's cgroup as its tasks come and go. See
//!   `local/README.md` for what it implements and how it differs from Mesos.
//! - The local master arrives with the scheduler issue.

pub mod agent;
