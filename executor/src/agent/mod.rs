//! The HTTP link to the agent's `/api/v1/executor` endpoint (HTTP/1.1, protobuf).
//!
//! - [`AgentLink::subscribe`] sends SUBSCRIBE on a connection of its own and returns
//!   the never-ending `200 OK` response as an [`EventStream`] of RecordIO-framed
//!   [`Event`]s.
//! - [`CallSender::send`] POSTs any other call (UPDATE, MESSAGE) as its own request on
//!   a second, kept-alive connection (re-opened when the agent closes it) and expects
//!   `202 Accepted`.
//!
//! Requests carry `Content-Type` and `Accept: application/x-protobuf`, and
//! `Authorization: Bearer <token>` when the agent gave one. Connections are
//! `brine-http`'s (plain `http://`: the agent's executor API has no TLS here).

mod calls;
mod stream;

use std::time::Duration;

use brine_http::{ConnectError, Connector, Target};
use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::Call;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use tokio::task::JoinHandle;

pub use self::calls::CallSender;
pub use self::stream::EventStream;

/// The agent's executor API path.
pub const EXECUTOR_API_PATH: &str = "/api/v1/executor";

/// How long opening a TCP connection to the agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to the agent at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to the agent at {0}")]
    ConnectTimeout(String),
    #[error("HTTP error talking to the agent: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(String),
    #[error("the agent answered {status} to {call}: {body}")]
    Status {
        call: &'static str,
        status: http::StatusCode,
        body: String,
    },
    #[error("the agent's event stream is broken: {0}")]
    Framing(#[from] brine_proto::recordio::RecordIoError),
    #[error("cannot decode an event from the agent: {0}")]
    Decode(#[from] codec::CodecError),
}

impl LinkError {
    /// Whether the agent answered with an HTTP status (as opposed to the connection
    /// failing).
    pub fn is_status(&self) -> bool {
        matches!(self, LinkError::Status { .. })
    }
}

/// Where the agent is and how to authenticate to it.
#[derive(Clone)]
pub struct AgentLink {
    endpoint: String,
    /// `http://<endpoint>/api/v1/executor`.
    target: Target,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for AgentLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLink")
            .field("endpoint", &self.endpoint)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AgentLink {
    /// A link to the agent at `endpoint` (`host:port`). An endpoint that is no
    /// `host:port`, or a token that cannot be an HTTP header value, is refused.
    pub fn new(endpoint: impl Into<String>, token: Option<&str>) -> Result<Self, LinkError> {
        let endpoint = endpoint.into();
        let target = Target::parse(&format!("http://{endpoint}{EXECUTOR_API_PATH}"))
            .map_err(|e| LinkError::Request(format!("MESOS_AGENT_ENDPOINT {endpoint:?}: {e}")))?;
        let authorization = match token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        LinkError::Request(
                            "MESOS_EXECUTOR_AUTHENTICATION_TOKEN is not a valid header value"
                                .into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            endpoint,
            target,
            authorization,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends SUBSCRIBE and returns the event stream once the agent answered `200 OK`.
    pub async fn subscribe(&self, call: &Call) -> Result<EventStream, LinkError> {
        stream::subscribe(self, call).await
    }

    /// A sender for the other calls.
    pub fn sender(&self) -> CallSender {
        CallSender::new(self.clone())
    }

    fn request(&self, call: &Call) -> Result<Request<Full<Bytes>>, LinkError> {
        let body = codec::encode(ContentType::Protobuf, call)
            .map_err(|e| LinkError::Request(e.to_string()))?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(EXECUTOR_API_PATH)
            .header(header::HOST, &self.endpoint)
            .header(header::CONTENT_TYPE, ContentType::Protobuf.as_str())
            .header(header::ACCEPT, ContentType::Protobuf.as_str());
        if let Some(auth) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| LinkError::Request(e.to_string()))
    }

    /// A new HTTP/1.1 connection to the agent: the sender, and the task driving the
    /// connection (aborting it closes the connection).
    async fn open(&self) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), LinkError> {
        let connector = Connector::plain();
        tokio::time::timeout(CONNECT_TIMEOUT, connector.open(&self.target))
            .await
            .map_err(|_| LinkError::ConnectTimeout(self.endpoint.clone()))?
            .map_err(|e| match e {
                ConnectError::Connect { source, .. } => LinkError::Connect {
                    endpoint: self.endpoint.clone(),
                    source,
                },
                ConnectError::Http { source, .. } => LinkError::Http(source),
                // TLS cases: never for an `http://` target.
                e @ (ConnectError::TlsUnavailable { .. }
                | ConnectError::ServerName { .. }
                | ConnectError::Tls { .. }) => LinkError::Request(e.to_string()),
            })
    }
}

/// The name of a call's type, for messages.
pub fn call_name(call: &Call) -> &'static str {
    use brine_proto::mesos::v1::executor::call::Type;
    match call.r#type() {
        Type::Subscribe => "SUBSCRIBE",
        Type::Update => "UPDATE",
        Type::Message => "MESSAGE",
        Type::Heartbeat => "HEARTBEAT",
        Type::Unknown => "UNKNOWN",
    }
}

/// Reads at most `limit` bytes of an error body, as text.
async fn error_body(body: hyper::body::Incoming, limit: usize) -> String {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = Vec::new();
    while out.len() < limit {
        match tokio::time::timeout(Duration::from_secs(2), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    out.truncate(limit);
    String::from_utf8_lossy(&out).trim().to_owned()
}
