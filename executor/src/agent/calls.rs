//! Non-SUBSCRIBE calls: one POST each, on a kept-alive connection of their own.

use brine_proto::mesos::v1::executor::Call;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use super::{AgentLink, LinkError, call_name, error_body};

/// Sends calls one after another (so the agent sees a task's updates in order).
pub struct CallSender {
    link: AgentLink,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for CallSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSender")
            .field("link", &self.link)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl CallSender {
    pub(super) fn new(link: AgentLink) -> Self {
        Self {
            link,
            connection: None,
        }
    }

    /// POSTs `call` and waits for `202 Accepted`. A kept-alive connection the agent
    /// closed in the meantime is re-opened once.
    pub async fn send(&mut self, call: &Call) -> Result<(), LinkError> {
        let name = call_name(call);
        let mut reopened = false;
        loop {
            let usable = match &mut self.connection {
                Some(sender) => sender.ready().await.is_ok(),
                None => false,
            };
            if !usable {
                reopened = true;
                self.connection = Some(self.open().await?);
            }
            let Some(sender) = self.connection.as_mut() else {
                continue;
            };
            match sender.send_request(self.link.request(call)?).await {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::ACCEPTED {
                        return Ok(());
                    }
                    let body = error_body(response.into_body(), 4096).await;
                    return Err(LinkError::Status {
                        call: name,
                        status,
                        body,
                    });
                }
                // The request never left (the agent had closed an idle connection):
                // safe to try once more on a fresh one.
                Err(e) if e.is_canceled() && !reopened => {
                    self.connection = None;
                }
                Err(e) => {
                    self.connection = None;
                    return Err(e.into());
                }
            }
        }
    }

    /// A new call connection; it lives as long as its sender.
    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, LinkError> {
        let (sender, _driver) = self.link.open().await?;
        Ok(sender)
    }
}
