//! A Mesos v1 scheduler HTTP client (protobuf over HTTP/1.1, hyper 1).
//!
//! Mesos uses two kinds of connection: SUBSCRIBE is a POST whose response never ends
//! (a RecordIO stream of events), and every other call is a POST of its own answered
//! `202 Accepted`. [`subscribe`] opens the first (following a non-leading master's
//! `307` to the leader) and hands back a [`Caller`] for the second, which sends the
//! `Mesos-Stream-Id` the master gave the subscription.
//!
//! Masters are `http://` or `https://` (`https://` needs the `tls` feature, without it
//! [`ClientError::TlsDisabled`]); with a [`Credential`] every request carries
//! `Authorization: Basic …`, as Mesos's HTTP basic authenticatee does for a master run
//! with `--authenticate_http_frameworks`. Connections, TLS (rustls; the trusted roots
//! are the Mozilla set plus [`ClientConfig::extra_root_certificates`], with no option to
//! skip verification), the resolution of redirects and the `Basic` header are
//! `brine-http`'s.

mod calls;
mod stream;

use std::time::Duration;

use brine_http::{ConnectError, Connector, Target, UrlError, UrlProblem};
use brine_proto::mesos::v1::scheduler::{Call, call};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::task::JoinHandle;

pub use calls::Caller;
pub use stream::{Subscription, subscribe};

/// The scheduler API's path on a master.
pub const SCHEDULER_PATH: &str = "/api/v1/scheduler";
const PROTOBUF: &str = "application/x-protobuf";
const STREAM_ID: &str = "Mesos-Stream-Id";
/// Most error-body bytes kept in a [`ClientError::Status`].
const MAX_ERROR_BODY: usize = 4096;

/// How the client talks to a master. Start from [`ClientConfig::default`] and change
/// fields or use the `with_*` methods (the struct is `#[non_exhaustive]`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Bound on connecting and on the answer to one call.
    pub request_timeout: Duration,
    /// Master HEARTBEATs that may be missed before the connection is reported dead.
    pub missed_heartbeats: u32,
    /// Most `307` redirects followed for one SUBSCRIBE.
    pub max_redirects: u32,
    /// HTTP basic authentication (Mesos `--authenticate_http_frameworks` with the
    /// `basic` authenticator): sent on SUBSCRIBE and every call. Set
    /// `FrameworkInfo.principal` to the same principal (Mesos refuses a mismatch).
    pub credential: Option<Credential>,
    /// PEM texts (each one or more `CERTIFICATE` blocks) trusted as roots for
    /// `https://` masters on top of the Mozilla set: a master with a self-signed
    /// certificate, or one from a private CA. Unused without the `tls` feature.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl ClientConfig {
    /// Sets [`ClientConfig::request_timeout`].
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::missed_heartbeats`].
    #[must_use]
    pub fn with_missed_heartbeats(mut self, missed: u32) -> Self {
        self.missed_heartbeats = missed;
        self
    }

    /// Sets [`ClientConfig::max_redirects`].
    #[must_use]
    pub fn with_max_redirects(mut self, redirects: u32) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// Sets [`ClientConfig::credential`] to `Some(credential)`.
    #[must_use]
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Adds a PEM text to [`ClientConfig::extra_root_certificates`].
    #[must_use]
    pub fn with_extra_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_root_certificates.push(pem.into());
        self
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            missed_heartbeats: 5,
            max_redirects: 5,
            credential: None,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// A principal and its secret, as in Mesos's `Credential` (and its credentials files).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Who the framework authenticates as (also its `FrameworkInfo.principal`).
    pub principal: String,
    /// The principal's secret; never logged nor shown in errors.
    pub secret: String,
}

/// The secret never reaches a log or an error message.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// A credential for `principal` with `secret`.
    pub fn new(principal: impl Into<String>, secret: impl Into<String>) -> Credential {
        Credential {
            principal: principal.into(),
            secret: secret.into(),
        }
    }

    /// The `Authorization` header value: `Basic base64(principal:secret)`. Mesos's
    /// basic authenticator splits the decoded text on `:` and wants exactly two parts,
    /// so a principal or secret holding `:` can never authenticate.
    fn authorization(&self) -> Result<HeaderValue, ClientError> {
        brine_http::basic_authorization(&self.principal, &self.secret)
            .map_err(|e| ClientError::Request(e.into()))
    }
}

/// Why talking to a master failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The master's URL cannot be used.
    #[error("invalid master address {address:?}: {reason}")]
    Address {
        /// The URL as given (or as redirected to).
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No TCP connection to the master.
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// `host:port` of the master.
        authority: String,
        /// The connection's error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (an unknown issuer, a certificate for another name…).
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        /// `host:port` of the master.
        authority: String,
        /// The handshake's error, as rustls reports it.
        source: std::io::Error,
    },
    /// An `https://` master (named, or redirected to) in a build without the `tls`
    /// feature.
    #[error(
        "https://{authority} needs brine-scheduler's `tls` feature, which this build leaves \
         out"
    )]
    TlsDisabled {
        /// `host:port` of the master.
        authority: String,
    },
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    /// A PEM text of [`ClientConfig::extra_root_certificates`] holds no usable
    /// certificate.
    #[error("extra root certificate #{index} is unusable: {reason}")]
    RootCertificate {
        /// Its index in `extra_root_certificates`.
        index: usize,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP connection failed.
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built.
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    /// `401`: no credential was configured, or the master refused it. Names the
    /// principal, never the secret.
    #[error("{}", unauthorized_message(call, principal.as_deref(), challenge))]
    Unauthorized {
        /// The call refused (`SUBSCRIBE`, `ACCEPT`…).
        call: &'static str,
        /// The principal sent, if any.
        principal: Option<String>,
        /// The master's `WWW-Authenticate` header (e.g. `Basic realm="mesos-master-scheduler"`).
        challenge: String,
    },
    /// Any other answer than the one expected (`200` to SUBSCRIBE, `202` to a call).
    #[error("{call} answered {status}: {body}")]
    Status {
        /// The call answered.
        call: &'static str,
        /// The answer's status.
        status: StatusCode,
        /// The start of its body (Mesos's error text).
        body: String,
    },
    /// A `307` without a `Location` this client can follow.
    #[error("SUBSCRIBE redirected without a usable Location header")]
    BadRedirect,
    /// More than [`ClientConfig::max_redirects`] redirects.
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    /// SUBSCRIBE was answered without the stream id every call must carry.
    #[error("the SUBSCRIBE answer has no Mesos-Stream-Id header")]
    NoStreamId,
    /// No answer within [`ClientConfig::request_timeout`].
    #[error("no answer from the master within {0:?}")]
    Timeout(Duration),
    /// The event stream's RecordIO framing broke.
    #[error("the event stream lost its framing: {0}")]
    RecordIo(#[from] brine_proto::recordio::RecordIoError),
    /// An event that is not a Mesos scheduler `Event`.
    #[error("undecodable event: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The master ended the event stream.
    #[error("the master closed the event stream")]
    StreamEnded,
    /// The stream went quiet for this long, this many master heartbeats.
    #[error("no event from the master for {0:?} ({1} heartbeats missed)")]
    HeartbeatsMissed(Duration, u32),
}

fn unauthorized_message(call: &str, principal: Option<&str>, challenge: &str) -> String {
    let challenge = if challenge.is_empty() {
        String::new()
    } else {
        format!(", {challenge}")
    };
    match principal {
        Some(principal) => format!(
            "the master refused {call} from principal {principal:?} (401 Unauthorized{challenge}): \
             wrong principal or secret"
        ),
        None => format!(
            "the master requires authentication for {call} (401 Unauthorized{challenge}) and no \
             credential is configured"
        ),
    }
}

/// `http` or `https` (`brine-http`'s).
pub use brine_http::Scheme;

/// Where a master's scheduler API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`, as sent in `Host`.
    pub authority: String,
    /// The host alone (what the TLS certificate must name).
    pub host: String,
    /// Path and query of the scheduler API.
    pub path: String,
}

impl Endpoint {
    /// Parses `http(s)://host:port[/path]`; an empty path means [`SCHEDULER_PATH`].
    pub fn parse(address: &str) -> Result<Endpoint, ClientError> {
        let target = Target::parse(address).map_err(|e| address_error(address, e))?;
        Ok(Endpoint::from_target(&target))
    }

    fn from_target(target: &Target) -> Endpoint {
        let path = match target.path() {
            "" | "/" => SCHEDULER_PATH,
            path => path,
        };
        Endpoint {
            scheme: target.scheme(),
            authority: target.authority(),
            host: target.host().to_owned(),
            path: path.to_owned(),
        }
    }

    /// The endpoint as `brine-http` reaches it.
    fn target(&self) -> Result<Target, ClientError> {
        let url = format!("{}://{}{}", self.scheme, self.authority, self.path);
        Target::parse(&url).map_err(|e| address_error(&url, e))
    }

    /// `scheme://host:port` (no path).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority)
    }

    /// Resolves a `Location` header against this endpoint (`brine-http`'s
    /// [`Target::redirect`]). Mesos sends `//host:port/path` (scheme-relative: the
    /// scheme stays, so an `https` master's redirect stays `https`); an absolute
    /// `http(s)://` location may change it.
    fn redirect(&self, location: &str) -> Option<Endpoint> {
        let next = self.target().ok()?.redirect(location).ok()?;
        Some(Endpoint::from_target(&next))
    }

    /// A connection to the master (TCP, then TLS for `https` with `connector`, which
    /// the caller sets up once: [`ensure_tls`]) with HTTP/1.1 on it: the sender, and
    /// the task driving the connection.
    async fn open(
        &self,
        timeout: Duration,
        connector: &Connector,
    ) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), ClientError> {
        let target = self.target()?;
        tokio::time::timeout(timeout, connector.open(&target))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(ClientError::from)
    }

    fn request(
        &self,
        call: &Call,
        stream_id: Option<&str>,
        credential: Option<&Credential>,
    ) -> Result<http::Request<Full<Bytes>>, ClientError> {
        let body = prost::Message::encode_to_vec(call);
        let mut builder = http::Request::post(self.path.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, PROTOBUF)
            .header(http::header::ACCEPT, PROTOBUF);
        if let Some(id) = stream_id {
            builder = builder.header(STREAM_ID, id);
        }
        if let Some(credential) = credential {
            builder = builder.header(http::header::AUTHORIZATION, credential.authorization()?);
        }
        Ok(builder.body(Full::new(Bytes::from(body)))?)
    }
}

/// An address that is no usable URL, in the client's words.
fn address_error(address: &str, e: UrlError) -> ClientError {
    let reason = match e.problem {
        // Credentials have their own place.
        UrlProblem::UserInfo => {
            "user:password@ in the URL is not supported (use a credential)".to_owned()
        }
        problem => problem.to_string(),
    };
    ClientError::Address {
        address: address.to_owned(),
        reason,
    }
}

impl From<ConnectError> for ClientError {
    fn from(e: ConnectError) -> ClientError {
        match e {
            ConnectError::Connect { authority, source } => {
                ClientError::Connect { authority, source }
            }
            ConnectError::TlsUnavailable { authority } => ClientError::TlsDisabled { authority },
            ConnectError::ServerName {
                authority,
                host,
                reason,
            } => ClientError::Address {
                address: authority,
                reason: format!("{host} is not a valid TLS server name: {reason}"),
            },
            ConnectError::Tls { authority, source } => ClientError::Tls { authority, source },
            ConnectError::Http { source, .. } => ClientError::Http(source),
        }
    }
}

/// Sets `connector` up for TLS if `endpoint` is `https` and it is not yet (the roots
/// are parsed once per subscription). Whether `https` is possible is this crate's
/// `tls` feature, whatever features `brine-http` has in the build.
fn ensure_tls(
    endpoint: &Endpoint,
    connector: &mut Connector,
    config: &ClientConfig,
) -> Result<(), ClientError> {
    if endpoint.scheme == Scheme::Https && !connector.has_tls() {
        #[cfg(feature = "tls")]
        {
            *connector =
                Connector::with_tls(&config.extra_root_certificates).map_err(|e| match e {
                    brine_http::TlsError::RootCertificate { index, reason } => {
                        ClientError::RootCertificate { index, reason }
                    }
                    brine_http::TlsError::Setup(reason) => ClientError::TlsSetup(reason),
                    brine_http::TlsError::Disabled => ClientError::TlsDisabled {
                        authority: endpoint.authority.clone(),
                    },
                })?;
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = config;
            return Err(ClientError::TlsDisabled {
                authority: endpoint.authority.clone(),
            });
        }
    }
    Ok(())
}

/// A non-2xx answer as an error: `401` as [`ClientError::Unauthorized`], anything else
/// as [`ClientError::Status`] with the start of the body.
async fn refusal(
    call: &'static str,
    response: http::Response<hyper::body::Incoming>,
    credential: Option<&Credential>,
) -> ClientError {
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        return ClientError::Unauthorized {
            call,
            principal: credential.map(|c| c.principal.clone()),
            challenge,
        };
    }
    let body = error_body(response.into_body()).await;
    ClientError::Status { call, status, body }
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
                scheme: Scheme::Http,
                authority: "127.0.0.1:5050".into(),
                host: "127.0.0.1".into(),
                path: SCHEDULER_PATH.into()
            })
        );
        let tls = Endpoint::parse("https://m").ok();
        assert_eq!(
            tls.map(|e| (e.scheme, e.authority, e.host)),
            Some((Scheme::Https, "m:443".into(), "m".into()))
        );
        assert!(Endpoint::parse("ftp://m:5050").is_err());
        assert!(Endpoint::parse("http://u:p@m:5050").is_err());
        assert!(Endpoint::parse("m:5050").is_err());
    }

    #[test]
    fn follows_scheme_relative_redirects() {
        let e = Endpoint {
            scheme: Scheme::Https,
            authority: "a:1".into(),
            host: "a".into(),
            path: SCHEDULER_PATH.into(),
        };
        assert_eq!(
            e.redirect("//b:2/api/v1/scheduler")
                .map(|e| (e.scheme, e.authority, e.host)),
            Some((Scheme::Https, "b:2".into(), "b".into()))
        );
        assert_eq!(
            e.redirect("/elsewhere").map(|e| (e.authority, e.path)),
            Some(("a:1".into(), "/elsewhere".into()))
        );
        assert_eq!(
            e.redirect("http://c:3/api/v1/scheduler").map(|e| e.scheme),
            Some(Scheme::Http)
        );
    }

    #[test]
    fn credentials_are_basic_and_never_shown() {
        let c = Credential {
            principal: "fw".into(),
            secret: "s3cret".into(),
        };
        assert_eq!(
            c.authorization()
                .ok()
                .as_ref()
                .and_then(|v| v.to_str().ok()),
            Some("Basic Znc6czNjcmV0")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = ClientError::Unauthorized {
            call: "SUBSCRIBE",
            principal: Some("fw".into()),
            challenge: "Basic realm=\"mesos-master-scheduler\"".into(),
        };
        assert!(e.to_string().contains("\"fw\""), "{e}");
    }
}
