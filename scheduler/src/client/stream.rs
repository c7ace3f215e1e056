//! SUBSCRIBE: the streaming POST, its redirects, and the event reader with its
//! heartbeat watch.

use std::time::Duration;

use brine_http::Connector;
use brine_proto::mesos::v1::scheduler::{Call, Event, event};
use brine_proto::recordio::Decoder;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::{Caller, ClientConfig, ClientError, Endpoint, STREAM_ID, ensure_tls, refusal};

/// A live subscription: the caller for other calls and the events, in order. After an
/// `Err` (dead connection) the channel ends.
#[derive(Debug)]
pub struct Subscription {
    /// Sends the subscription's other calls (with its stream id).
    pub caller: Caller,
    /// The master's events, in order; an `Err` is the last item.
    pub events: mpsc::UnboundedReceiver<Result<Event, ClientError>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Closes the stream: the master sees the scheduler disconnect.
        self.reader.abort();
    }
}

/// POSTs the SUBSCRIBE `call` to `endpoint`, following `307 Temporary Redirect`s to the
/// leading master (which may switch between `http` and `https`), and starts reading its
/// events. The TLS configuration is built here, at the first `https` endpoint, and
/// handed to the [`Caller`] with the connector.
pub async fn subscribe(
    endpoint: &Endpoint,
    call: &Call,
    config: &ClientConfig,
) -> Result<Subscription, ClientError> {
    let mut endpoint = endpoint.clone();
    let mut redirects = 0;
    let mut connector = Connector::plain();
    let credential = config.credential.as_ref();
    loop {
        ensure_tls(&endpoint, &mut connector, config)?;
        let (mut sender, connection) = endpoint.open(config.request_timeout, &connector).await?;
        let request = endpoint.request(call, None, credential)?;
        let response = tokio::time::timeout(config.request_timeout, sender.send_request(request))
            .await
            .map_err(|_| ClientError::Timeout(config.request_timeout))??;
        let status = response.status();
        if status == StatusCode::TEMPORARY_REDIRECT {
            connection.abort();
            redirects += 1;
            if redirects > config.max_redirects {
                return Err(ClientError::TooManyRedirects(config.max_redirects));
            }
            let next = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| endpoint.redirect(location))
                .ok_or(ClientError::BadRedirect)?;
            tracing::info!(from = %endpoint.base_url(), to = %next.base_url(), "following the leading master");
            endpoint = next;
            continue;
        }
        if status != StatusCode::OK {
            let error = refusal("SUBSCRIBE", response, credential).await;
            connection.abort();
            return Err(error);
        }
        let Some(stream_id) = response
            .headers()
            .get(STREAM_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            connection.abort();
            return Err(ClientError::NoStreamId);
        };
        let caller = Caller::new(endpoint, stream_id, config.clone(), connector);
        let (tx, events) = mpsc::unbounded_channel();
        let body = response.into_body();
        let config = config.clone();
        let reader = tokio::spawn(async move {
            if let Err(e) = read_events(body, &tx, &config).await {
                let _ = tx.send(Err(e));
            }
            connection.abort();
        });
        return Ok(Subscription {
            caller,
            events,
            reader,
        });
    }
}

/// Reads events until the stream fails, ends, or goes quiet for longer than the
/// allowed number of missed heartbeats.
async fn read_events(
    mut body: Incoming,
    tx: &mpsc::UnboundedSender<Result<Event, ClientError>>,
    config: &ClientConfig,
) -> Result<(), ClientError> {
    let mut decoder = Decoder::new();
    // Until SUBSCRIBED says how often the master beats, allow one request timeout.
    let mut quiet_limit = config.request_timeout;
    loop {
        let frame = match tokio::time::timeout(quiet_limit, body.frame()).await {
            Err(_) => {
                return Err(ClientError::HeartbeatsMissed(
                    quiet_limit,
                    config.missed_heartbeats,
                ));
            }
            Ok(None) => {
                decoder.finish()?;
                return Err(ClientError::StreamEnded);
            }
            Ok(Some(frame)) => frame?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        decoder.push(&data);
        while let Some(record) = decoder.next_record()? {
            let event: Event = prost::Message::decode(record)?;
            match event.r#type() {
                event::Type::Subscribed => {
                    let interval = event
                        .subscribed
                        .as_ref()
                        .and_then(|s| s.heartbeat_interval_seconds)
                        .filter(|s| s.is_finite() && *s > 0.0);
                    if let Some(seconds) = interval {
                        quiet_limit = Duration::from_secs_f64(
                            seconds * f64::from(config.missed_heartbeats.max(1)),
                        );
                    }
                }
                event::Type::Heartbeat => tracing::trace!("master heartbeat"),
                _ => {}
            }
            if tx.send(Ok(event)).is_err() {
                // Nobody listens any more.
                return Ok(());
            }
        }
    }
}
