//! Every call but SUBSCRIBE: one POST each, answered `202 Accepted`.

use std::sync::Arc;

use brine_proto::mesos::v1::scheduler::Call;
use http::StatusCode;

use super::{ClientConfig, ClientError, Endpoint, call_name, error_body};

/// Sends calls on behalf of one subscription (its stream id goes on every call).
#[derive(Debug, Clone)]
pub struct Caller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    stream_id: String,
    config: ClientConfig,
}

impl Caller {
    pub(super) fn new(endpoint: Endpoint, stream_id: String, config: ClientConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint,
                stream_id,
                config,
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

    /// POSTs `call` on a connection of its own and waits for `202 Accepted`; any other
    /// answer is a [`ClientError::Status`] carrying the master's message.
    pub async fn call(&self, call: &Call) -> Result<(), ClientError> {
        let timeout = self.inner.config.request_timeout;
        tokio::time::timeout(timeout, self.send(call))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn send(&self, call: &Call) -> Result<(), ClientError> {
        let endpoint = &self.inner.endpoint;
        let io = endpoint.connect(self.inner.config.request_timeout).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "call connection ended");
            }
        });
        let request = endpoint.request(call, Some(&self.inner.stream_id))?;
        let result = match sender.send_request(request).await {
            Ok(response) if response.status() == StatusCode::ACCEPTED => Ok(()),
            Ok(response) => {
                let status = response.status();
                let body = error_body(response.into_body()).await;
                Err(ClientError::Status {
                    call: call_name(call),
                    status,
                    body,
                })
            }
            Err(e) => Err(e.into()),
        };
        connection.abort();
        result
    }
}
