//! Connections to targets: TCP, then TLS for `https`, then an HTTP/1.1 handshake.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::url::{Scheme, Target};

/// Why a [`Connector`] could not be set up for `https`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// This build leaves out brine-http's `tls` feature.
    #[error("TLS is not part of this build (brine-http's `tls` feature)")]
    Disabled,
    /// An extra root certificate (a PEM text) holds no usable certificate.
    #[error("extra root certificate #{index} is unusable: {reason}")]
    RootCertificate {
        /// Its index among the extra roots given.
        index: usize,
        /// Why it was refused.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// Why no connection to a target could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No TCP connection.
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// `host:port` of the target.
        authority: String,
        /// The connection's error.
        source: io::Error,
    },
    /// An `https` target and a connector without TLS (built with
    /// [`Connector::plain`], or a build without the `tls` feature).
    #[error("https://{authority}: {}", tls_unavailable())]
    TlsUnavailable {
        /// `host:port` of the target.
        authority: String,
    },
    /// The host cannot be checked against a certificate.
    #[error("{host} is not a valid TLS server name: {reason}")]
    ServerName {
        /// `host:port` of the target.
        authority: String,
        /// The host as in the URL.
        host: String,
        /// Why rustls refused it.
        reason: String,
    },
    /// The TLS handshake failed (an unknown issuer, a certificate for another name…).
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        /// `host:port` of the target.
        authority: String,
        /// The handshake's error, as rustls reports it.
        source: io::Error,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake with {authority} failed: {source}")]
    Http {
        /// `host:port` of the target.
        authority: String,
        /// hyper's error.
        source: hyper::Error,
    },
}

fn tls_unavailable() -> &'static str {
    if cfg!(feature = "tls") {
        "this client is not set up for TLS"
    } else {
        "TLS is not part of this build (brine-http's `tls` feature)"
    }
}

/// Opens connections to `http` targets, and with TLS set up ([`Connector::with_tls`])
/// to `https` ones. Cheap to clone (the TLS configuration is shared).
#[derive(Clone, Default)]
pub struct Connector {
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.has_tls())
            .finish()
    }
}

impl Connector {
    /// `http` only: an `https` target is [`ConnectError::TlsUnavailable`].
    pub fn plain() -> Connector {
        Connector::default()
    }

    /// `http` and `https`. Trusted roots are the Mozilla set (`webpki-roots`, so the
    /// result does not depend on the machine's CA store) plus `extra_roots`, each a PEM
    /// text of one or more `CERTIFICATE` blocks (a server with a self-signed
    /// certificate, or one from a private CA). There is no way to skip verification.
    /// Building this parses the roots: build it once and clone it.
    ///
    /// Without the `tls` feature: [`TlsError::Disabled`].
    pub fn with_tls<R: AsRef<[u8]>>(extra_roots: &[R]) -> Result<Connector, TlsError> {
        #[cfg(feature = "tls")]
        {
            Ok(Connector {
                tls: Some(crate::tls::connector(extra_roots)?),
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = extra_roots;
            Err(TlsError::Disabled)
        }
    }

    /// Whether `https` targets can be reached.
    pub fn has_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// A connection to `target`: TCP (`TCP_NODELAY`: requests are small and
    /// latency-bound), then for `https` the TLS handshake, checking the certificate
    /// against the target's host (a DNS name or an IP address). No time bound: callers
    /// put their own around it.
    pub async fn connect(&self, target: &Target) -> Result<Stream, ConnectError> {
        let authority = target.authority();
        if target.scheme() == Scheme::Https && !self.has_tls() {
            return Err(ConnectError::TlsUnavailable { authority });
        }
        let tcp = TcpStream::connect(authority.as_str())
            .await
            .map_err(|source| ConnectError::Connect {
                authority: authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        match target.scheme() {
            Scheme::Http => Ok(Stream(Inner::Plain(tcp))),
            #[cfg(feature = "tls")]
            Scheme::Https => match &self.tls {
                Some(tls) => {
                    let stream = crate::tls::handshake(tls, target.host(), &authority, tcp).await?;
                    Ok(Stream(Inner::Tls(Box::new(stream))))
                }
                None => Err(ConnectError::TlsUnavailable { authority }),
            },
            #[cfg(not(feature = "tls"))]
            Scheme::Https => Err(ConnectError::TlsUnavailable { authority }),
        }
    }

    /// [`Connector::connect`], then an HTTP/1.1 handshake: the sender for requests, and
    /// the spawned task driving the connection (it ends when the sender is dropped and
    /// the last answer is read, or when the peer closes; aborting it closes the
    /// connection at once).
    pub async fn open<B>(
        &self,
        target: &Target,
    ) -> Result<(SendRequest<B>, JoinHandle<()>), ConnectError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = self.connect(target).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Http {
                authority: target.authority(),
                source,
            })?;
        let authority = target.authority();
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%authority, error = %e, "HTTP connection ended");
            }
        });
        Ok((sender, driver))
    }
}

/// One connection's byte stream, plain or TLS, behind one type so hyper's connection
/// type does not depend on the scheme.
#[derive(Debug)]
pub struct Stream(Inner);

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.0 {
            Inner::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_without_tls_is_a_typed_error() {
        let target = Target::parse("https://127.0.0.1:1/").ok();
        let Some(target) = target else {
            panic!("a valid URL")
        };
        let err = Connector::plain().connect(&target).await.err();
        assert!(
            matches!(&err, Some(ConnectError::TlsUnavailable { authority }) if authority == "127.0.0.1:1"),
            "{err:?}"
        );
        assert_eq!(
            Connector::with_tls::<&[u8]>(&[]).is_ok(),
            cfg!(feature = "tls")
        );
    }

    #[tokio::test]
    async fn open_speaks_http1_to_a_plain_target() {
        use bytes::Bytes;
        use http_body_util::Empty;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("bind")
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("addr")
        };
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        let Ok(target) = Target::parse(&format!("http://{addr}/x")) else {
            panic!("target")
        };
        let opened = Connector::plain().open::<Empty<Bytes>>(&target).await;
        let Ok((mut sender, _driver)) = opened else {
            panic!("open: {:?}", opened.err())
        };
        let request = http::Request::get(target.path())
            .header(http::header::HOST, target.authority())
            .body(Empty::<Bytes>::new());
        let Ok(request) = request else {
            panic!("request")
        };
        let status = sender.send_request(request).await.map(|r| r.status());
        assert_eq!(status.ok(), Some(http::StatusCode::NO_CONTENT));
    }
}
