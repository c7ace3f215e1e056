//! Every call but SUBSCRIBE: one POST each, answered `202 Accepted`, on a second,
//! persistent connection (Mesos's scheduler API docs ask schedulers to keep it open;
//! a connection per call costs a TCP handshake, and a TLS one for `https`, each time).

use std::sync::Arc;

use brine_http::Connector;
use brine_proto::mesos::v1::scheduler::Call;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::Mutex;

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
    /// Set up by SUBSCRIBE (with TLS when the master is `https`).
    connector: Connector,
    /// The open call connection, if any; calls take turns on it.
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("endpoint", &self.endpoint)
            .field("stream_id", &self.stream_id)
            .field("config", &self.config)
            .field("tls", &self.connector.has_tls())
            .finish()
    }
}

impl Caller {
    pub(super) fn new(
        endpoint: Endpoint,
        stream_id: String,
        config: ClientConfig,
        connector: Connector,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint,
                stream_id,
                config,
                connector,
                connection: Mutex::new(None),
            }),
        }
    }

    /// The master the subscription ended up on (after redirects).
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The `Mesos-Stream-Id` the master gave the subscription, sent on every call.
    pub fn stream_id(&self) -> &str {
        &self.inner.stream_id
    }

    /// POSTs `call` and waits for `202 Accepted`; `401` is a
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
        let credential = self.inner.config.credential.as_ref();
        let request = endpoint.request(call, Some(&self.inner.stream_id), credential)?;
        let mut slot = self.inner.connection.lock().await;
        // A kept connection the master closed meanwhile is replaced before anything is
        // sent on it, so no call is ever sent twice.
        let kept = match slot.take() {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match kept {
            Some(sender) => sender,
            None => self.open().await?,
        };
        let result = match sender.send_request(request).await {
            Ok(response) if response.status() == StatusCode::ACCEPTED => {
                // Read the (empty) body to the end so the connection can carry the next.
                let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                Ok(())
            }
            Ok(response) => Err(refusal(call_name(call), response, credential).await),
            Err(e) => return Err(e.into()),
        };
        *slot = Some(sender);
        result
    }

    /// A new call connection; it lives as long as its sender.
    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let (sender, _driver) = self
            .inner
            .endpoint
            .open(timeout, &self.inner.connector)
            .await?;
        Ok(sender)
    }
}
