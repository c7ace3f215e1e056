//! The resident Brine executor: a Mesos v1 HTTP executor that runs WebAssembly tasks.
//!
//! - [`runtime`]: the wasmtime runtime core (host side of the guest ABI, engine, module
//!   cache, shared dataset).
//! - [`env`]: the `MESOS_*` environment an agent gives the executor.
//! - [`agent`]: the HTTP link to the agent (SUBSCRIBE stream, calls).
//! - [`tasks`]: the task table and the executor's allocation.
//! - [`pool`]: the work queue and running tasks off the event loop.
//! - [`updates`]: unacknowledged status updates.
//! - [`heartbeat`]: heartbeat messages to the scheduler.
//! - [`backoff`]: re-subscription after a disconnection.
//! - [`leases`]: leases and the lane closures running in them (slots, release rule).
//! - [`lane`]: the closure lane's TCP connection to the scheduler.
//! - [`executor`]: the event loop tying them together.

pub mod agent;
pub mod backoff;
pub mod env;
pub mod executor;
pub mod heartbeat;
pub mod lane;
pub mod leases;
pub mod pool;
pub mod runtime;
pub mod tasks;
pub mod updates;
