//! TLS to `https://` masters (rustls with the ring provider).
//!
//! Trusted roots are the Mozilla set (`webpki-roots`, so the result does not depend on
//! the machine's CA store) plus any PEM certificates in
//! [`ClientConfig::extra_root_certificates`](super::ClientConfig): that is how a master
//! with a self-signed certificate or a private CA is trusted. There is no option to skip
//! verification.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
pub(super) use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{ClientConfig, ClientError};

/// The rustls configuration for `config`: built once per subscription (parsing the root
/// set is not free) and shared by its calls.
pub(super) fn connector(config: &ClientConfig) -> Result<TlsConnector, ClientError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (index, pem) in config.extra_root_certificates.iter().enumerate() {
        let bad = |reason: String| ClientError::RootCertificate { index, reason };
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(bad("no CERTIFICATE block in the PEM text".to_owned()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::TlsSetup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1 only, as the rest of the client; Mesos's libprocess speaks nothing else.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// The TLS handshake on `stream`, checking the certificate against `host` (a DNS name or
/// an IP address, as in the URL).
pub(super) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    authority: &str,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| ClientError::Address {
        address: authority.to_owned(),
        reason: format!("{host} is not a valid TLS server name: {e}"),
    })?;
    connector
        .connect(name, stream)
        .await
        .map_err(|source| ClientError::Tls {
            authority: authority.to_owned(),
            source,
        })
}
