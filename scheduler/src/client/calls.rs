//! Every call but SUBSCRIBE: one POST each, answered `202 Accepted`.

use std::sync::Arc;

use brine_proto::mesos::v1::scheduler::Call;
use http::StatusCode;
use tokio_rustls::TlsConnector;

use super::{ClientConfig, ClientError, Endpoint, call_name, refusal};

/// Sends calls on behalf of one subscription (its stream id goes on every call).
#[derive(Debug, Clone)]
pub struct Caller {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    stream_id: String,
    config: ClientConfig,
    /// Built by SUBSCRIBE when the master is `https`.
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("endpoint", &self.endpoint)
            .field("stream_id", &self.stream_id)
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Caller {
    pub(super) fn new(
        endpoint: Endpoint,
        stream_id: String,
        config: ClientConfig,
        tls: Option<TlsConnector>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint,
                stream_id,
                config,
                tls,
            }),
        }
    }

    /// The master the subscription ended up on (after redirects).
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub fn stream_id(&self) -> &str {
        &self.inner.stream_id
    }

    /// POSTs `call` on a connection of its own and waits for `202 Accepted`; `401` is a
    /// [`ClientError::Unauthorized`], any other answer a [`ClientError::Status`]
    /// carrying the master's message.
    pub async fn call(&self, call: &Call) -> Result<(), ClientError> {
        let timeout = self.inner.config.request_timeout;
        tokio::time::timeout(timeout, self.send(call))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn send(&self, call: &Call) -> Result<(), ClientError> {
        let endpoint = &self.inner.endpoint;
        let config = &self.inner.config;
        let io = endpoint
            .connect(config.request_timeout, self.inner.tls.as_ref())
            .await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "call connection ended");
            }
        });
        let credential = config.credential.as_ref();
        let request = endpoint.request(call, Some(&self.inner.stream_id), credential)?;
        let result = match sender.send_request(request).await {
            Ok(response) if response.status() == StatusCode::ACCEPTED => Ok(()),
            Ok(response) => Err(refusal(call_name(call), response, credential).await),
            Err(e) => Err(e.into()),
        };
        connection.abort();
        result
    }
}
