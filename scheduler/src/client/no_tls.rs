//! `https://` without the `tls` feature: no TLS connector can exist, so `ensure_tls`
//! refuses an `https` endpoint with [`ClientError::TlsDisabled`] before connecting.

use tokio::net::TcpStream;

use super::ClientError;

/// Stands in for rustls's connector: it has no values.
pub(super) enum TlsConnector {}

/// Never called: there is no connector to call it with.
pub(super) async fn handshake(
    connector: &TlsConnector,
    _host: &str,
    _authority: &str,
    _stream: TcpStream,
) -> Result<TcpStream, ClientError> {
    match *connector {}
}
