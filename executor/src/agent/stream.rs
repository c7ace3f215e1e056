//! The SUBSCRIBE response: a stream of RecordIO-framed protobuf events.

use std::collections::VecDeque;

use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::executor::{Call, Event};
use brine_proto::recordio::Decoder;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{AgentLink, LinkError, call_name, error_body};

/// The events of one subscription, in order.
pub struct EventStream {
    body: Incoming,
    decoder: Decoder,
    ready: VecDeque<Bytes>,
    // Keeps the connection task alive while the stream is read.
    _connection: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.decoder.buffered_len())
            .field("ready", &self.ready.len())
            .finish()
    }
}

pub(super) async fn subscribe(link: &AgentLink, call: &Call) -> Result<EventStream, LinkError> {
    let (mut sender, connection) = link.open().await?;
    let response = sender.send_request(link.request(call)?).await?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = error_body(response.into_body(), 4096).await;
        connection.abort();
        return Err(LinkError::Status {
            call: call_name(call),
            status,
            body,
        });
    }
    Ok(EventStream {
        body: response.into_body(),
        decoder: Decoder::new(),
        ready: VecDeque::new(),
        _connection: connection,
    })
}

impl EventStream {
    /// The next event; `Ok(None)` when the agent ended the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Event>, LinkError> {
        loop {
            if let Some(record) = self.ready.pop_front() {
                return Ok(Some(codec::decode_bytes(ContentType::Protobuf, record)?));
            }
            match self.body.frame().await {
                Some(frame) => {
                    let Ok(data) = frame?.into_data() else {
                        continue; // trailers
                    };
                    self.decoder.push(&data);
                    while let Some(record) = self.decoder.next_record()? {
                        self.ready.push_back(record);
                    }
                }
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self._connection.abort();
    }
}
