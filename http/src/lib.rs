//! Brine's one HTTP/1.1 client toolkit, shared by every client in the workspace (the
//! executor's link to its agent, the scheduler's link to the master, the `brine`
//! command line and `brine-local`'s fetcher and agent link):
//!
//! - [`Target`]: an `http://` or `https://` URL, parsed once, and
//!   [`Target::redirect`], the resolution of a `Location` header (absolute,
//!   scheme-relative `//host:port/path` as Mesos sends it, or path-only).
//! - [`Connector`]: a connection to a [`Target`] (TCP, then TLS for `https` with the
//!   `tls` feature) and an HTTP/1.1 handshake on it ([`Connector::open`]).
//! - [`basic_authorization`]: the `Authorization: Basic …` header value.
//! - [`Backoff`]: the exponential backoff every reconnecting loop uses.
//!
//! Requests, answers and their bodies stay with the callers: each speaks its own
//! protocol (protobuf calls, RecordIO streams, JSON, file downloads) over this.
//!
//! The error enums are exhaustive on purpose: every client maps each case to its own
//! error, and a new case should make them say how.
//!
//! # Cargo features
//!
//! - `tls`: `https://` (rustls with ring; the Mozilla roots of `webpki-roots` plus any
//!   extra PEM roots, see [`Connector::with_tls`]). Without it an `https` target is
//!   refused with [`ConnectError::TlsUnavailable`].

#![warn(missing_docs)]

mod auth;
mod backoff;
mod connect;
#[cfg(feature = "tls")]
mod tls;
mod url;

pub use auth::basic_authorization;
pub use backoff::Backoff;
pub use connect::{ConnectError, Connector, Stream, TlsError};
pub use url::{Scheme, Target, UrlError, UrlProblem};
