//! A Mesos v1 scheduler HTTP client (protobuf over HTTP/1.1, hyper 1).
//!
//! Mesos uses two kinds of connection: SUBSCRIBE is a POST whose response never ends
//! (a RecordIO stream of events), and every other call is a POST of its own answered
//! `202 Accepted`. [`subscribe`] opens the first (following a non-leading master's
//! `307` to the leader) and hands back a [`Caller`] for the second, which sends the
//! `Mesos-Stream-Id` the master gave the subscription.

mod calls;
mod stream;

use std::time::Duration;

use brine_proto::mesos::v1::scheduler::{Call, call};
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use calls::Caller;
pub use stream::{Subscription, subscribe};

/// The scheduler API's path on a master.
pub const SCHEDULER_PATH: &str = "/api/v1/scheduler";
const PROTOBUF: &str = "application/x-protobuf";
const STREAM_ID: &str = "Mesos-Stream-Id";
/// Most error-body bytes kept in a [`ClientError::Status`].
const MAX_ERROR_BODY: usize = 4096;

/// How the client talks to a master.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on connecting and on the answer to one call.
    pub request_timeout: Duration,
    /// Master HEARTBEATs that may be missed before the connection is reported dead.
    pub missed_heartbeats: u32,
    /// Most `307` redirects followed for one SUBSCRIBE.
    pub max_redirects: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            missed_heartbeats: 5,
            max_redirects: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid master address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    #[error("{call} answered {status}: {body}")]
    Status {
        call: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("SUBSCRIBE redirected without a usable Location header")]
    BadRedirect,
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    #[error("the SUBSCRIBE answer has no Mesos-Stream-Id header")]
    NoStreamId,
    #[error("no answer from the master within {0:?}")]
    Timeout(Duration),
    #[error("the event stream lost its framing: {0}")]
    RecordIo(#[from] brine_proto::recordio::RecordIoError),
    #[error("undecodable event: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the master closed the event stream")]
    StreamEnded,
    #[error("no event from the master for {0:?} ({1} heartbeats missed)")]
    HeartbeatsMissed(Duration, u32),
}

/// Where a master's scheduler API is: plain HTTP only (TLS is not built yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, as sent in `Host`.
    pub authority: String,
    /// Path and query of the scheduler API.
    pub path: String,
}

impl Endpoint {
    /// Parses `http://host:port[/path]`; an empty path means [`SCHEDULER_PATH`].
    pub fn parse(address: &str) -> Result<Endpoint, ClientError> {
        let bad = |reason: &str| ClientError::Address {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = address
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(&format!("scheme {other} is not supported"))),
            None => return Err(bad("no scheme (expected http://host:port)")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") | Some("/") => SCHEDULER_PATH.to_owned(),
            Some(p) => p.to_owned(),
        };
        Ok(Endpoint {
            authority: format!("{}:{port}", authority.host()),
            path,
        })
    }

    /// Resolves a `Location` header against this endpoint. Mesos sends
    /// `//host:port/path` (scheme-relative).
    fn redirect(&self, location: &str) -> Option<Endpoint> {
        if let Some(rest) = location.strip_prefix("//") {
            Endpoint::parse(&format!("http://{rest}")).ok()
        } else if location.starts_with('/') {
            Some(Endpoint {
                authority: self.authority.clone(),
                path: location.to_owned(),
            })
        } else {
            Endpoint::parse(location).ok()
        }
    }

    async fn connect(&self, timeout: Duration) -> Result<TokioIo<TcpStream>, ClientError> {
        let connect = TcpStream::connect(self.authority.as_str());
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|source| ClientError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        // Calls are small and latency-bound.
        let _ = stream.set_nodelay(true);
        Ok(TokioIo::new(stream))
    }

    fn request(
        &self,
        call: &Call,
        stream_id: Option<&str>,
    ) -> Result<http::Request<Full<Bytes>>, ClientError> {
        let body = prost::Message::encode_to_vec(call);
        let mut builder = http::Request::post(self.path.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, PROTOBUF)
            .header(http::header::ACCEPT, PROTOBUF);
        if let Some(id) = stream_id {
            builder = builder.header(STREAM_ID, id);
        }
        Ok(builder.body(Full::new(Bytes::from(body)))?)
    }
}

/// The call's type name, for errors and logs.
fn call_name(call: &Call) -> &'static str {
    match call.r#type() {
        call::Type::Subscribe => "SUBSCRIBE",
        call::Type::Teardown => "TEARDOWN",
        call::Type::Accept => "ACCEPT",
        call::Type::Decline => "DECLINE",
        call::Type::Revive => "REVIVE",
        call::Type::Kill => "KILL",
        call::Type::Shutdown => "SHUTDOWN",
        call::Type::Acknowledge => "ACKNOWLEDGE",
        call::Type::Reconcile => "RECONCILE",
        call::Type::Message => "MESSAGE",
        call::Type::Suppress => "SUPPRESS",
        _ => "call",
    }
}

/// The start of an error answer's body, as text (Mesos's error bodies are plain text).
async fn error_body(body: hyper::body::Incoming) -> String {
    let mut out = Vec::new();
    let mut body = body;
    while out.len() < MAX_ERROR_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    out.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&out).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_master_addresses() {
        let e = Endpoint::parse("http://127.0.0.1:5050").ok();
        assert_eq!(
            e,
            Some(Endpoint {
                authority: "127.0.0.1:5050".into(),
                path: SCHEDULER_PATH.into()
            })
        );
        assert!(Endpoint::parse("https://m:5050").is_err());
        assert!(Endpoint::parse("m:5050").is_err());
    }

    #[test]
    fn follows_scheme_relative_redirects() {
        let e = Endpoint {
            authority: "a:1".into(),
            path: SCHEDULER_PATH.into(),
        };
        assert_eq!(
            e.redirect("//b:2/api/v1/scheduler").map(|e| e.authority),
            Some("b:2".into())
        );
        assert_eq!(
            e.redirect("/elsewhere").map(|e| (e.authority, e.path)),
            Some(("a:1".into(), "/elsewhere".into()))
        );
    }
}
