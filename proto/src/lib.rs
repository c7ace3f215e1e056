//! Brine's wire formats.
//!
//! - [`mesos::v1`] (with [`mesos::v1::executor`] and [`mesos::v1::scheduler`]): the Mesos v1
//!   messages Brine uses, generated from our own `.proto` subset, wire-identical to Mesos.
//! - [`recordio`]: the framing of Mesos's streaming responses (`<length>\n<bytes>`).
//! - [`codec`]: content types and the protobuf / JSON encodings of those messages, with
//!   JSON following Mesos's conventions.
//! - [`reflect`]: the embedded descriptors of the Mesos messages (for JSON and validation).
//! - [`duration`]: Mesos duration strings (`5secs`, `100ms`), as agents and flags write them.
//! - [`fetcher`]: the name a fetched `CommandInfo.URI` gets in the sandbox (scheduler and
//!   agent must agree on it).
//! - [`payload`]: Brine's own postcard-encoded, versioned payloads that ride in Mesos `data`
//!   fields (executor configuration, task specs, outcomes, heartbeats and control messages).
//! - [`lane`]: the closure lane's frames (scheduler ↔ executor over TCP, no master on the
//!   path) and the lease label.

pub mod codec;
pub mod duration;
pub mod fetcher;
pub mod lane;
pub mod mesos;
mod message;
pub mod payload;
pub mod recordio;
pub mod reflect;
