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
//! `Authorization: Bearer <token>` when the agent gave one.

mod calls;
mod stream;

use std::time::Duration;

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::Call;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;

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
    /// A link to the agent at `endpoint` (`host:port`). A token that cannot be an
    /// HTTP header value is refused.
    pub fn new(endpoint: impl Into<String>, token: Option<&str>) -> Result<Self, LinkError> {
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
            endpoint: endpoint.into(),
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

    async fn connect(&self) -> Result<hyper_util::rt::TokioIo<tokio::net::TcpStream>, LinkError> {
        let connect = tokio::net::TcpStream::connect(self.endpoint.as_str());
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| LinkError::ConnectTimeout(self.endpoint.clone()))?
            .map_err(|source| LinkError::Connect {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        // Small requests and events: send them at once.
        let _ = stream.set_nodelay(true);
        Ok(hyper_util::rt::TokioIo::new(stream))
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
