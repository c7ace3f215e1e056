//! TLS with rustls (the ring provider): the client configuration and the handshake.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::connect::{ConnectError, TlsError};

/// The Mozilla roots plus `extra_roots` (PEM texts), HTTP/1.1 by ALPN.
pub(crate) fn connector<R: AsRef<[u8]>>(extra_roots: &[R]) -> Result<TlsConnector, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (index, pem) in extra_roots.iter().enumerate() {
        let bad = |reason: String| TlsError::RootCertificate { index, reason };
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_ref()) {
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
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1 only, as every client here; Mesos's libprocess speaks nothing else.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// The TLS handshake on `stream`, checking the certificate against `host` (a DNS name
/// or an IP address, as in the URL).
pub(crate) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    authority: &str,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| ConnectError::ServerName {
        authority: authority.to_owned(),
        host: host.to_owned(),
        reason: e.to_string(),
    })?;
    connector
        .connect(name, stream)
        .await
        .map_err(|source| ConnectError::Tls {
            authority: authority.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        assert!(connector::<&[u8]>(&[]).is_ok());
        let err = connector(&[b"not a certificate".as_slice()]).err();
        assert!(
            matches!(err, Some(TlsError::RootCertificate { index: 0, .. })),
            "{err:?}"
        );
    }
}
