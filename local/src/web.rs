//! HTTP pieces shared by the local agent and the local master: Mesos-style plain-text
//! error answers, `202 Accepted`, JSON answers, request bodies, the RecordIO event
//! stream body, the connection loop, and reading a `Call` the way Mesos reads it
//! (protobuf, or JSON walked as stout's `protobuf::parse` walks it, with its wording).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use brine_proto::codec::{self, CodecError, ContentType, MesosMessage};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub(crate) type ResponseBody = BoxBody<Bytes, io::Error>;

/// Largest request body accepted (inline modules and task results ride in calls).
pub(crate) const MAX_BODY: usize = 256 << 20;

/// Serves HTTP/1.1 connections on `listener` with `handler` until `stop` changes.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        // Events go out as many small writes (one RecordIO chunk each): without this,
        // Nagle holds each behind the peer's delayed ACK of the one before.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let handler = handler.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = handler(req);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An error answer as Mesos gives it: `text/plain; charset=utf-8` and the message.
pub(crate) fn plain(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(full(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `202 Accepted` with `Content-Length: 0`.
pub(crate) fn accepted() -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

pub(crate) fn json_response(value: serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(full(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// libprocess's 405: the message and `Allow: POST`.
pub(crate) fn post_only(method: &Method) -> Response<ResponseBody> {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{method}'."),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// The request body, up to [`MAX_BODY`].
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, Response<ResponseBody>> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(plain(
            StatusCode::BAD_REQUEST,
            &format!("Failed to read request body: {e}"),
        )),
    }
}

/// The checks both `Call` endpoints (executor and scheduler) make before looking at
/// the call itself, in Mesos's order: POST only, a `Content-Type` present, a readable
/// body, a known content type, a decodable `Call`. Returns the call and the request
/// headers (for `Accept` and `Mesos-Stream-Id`), or the answer to give.
pub(crate) async fn read_call<M: MesosMessage>(
    req: Request<Incoming>,
) -> Result<(M, HeaderMap), Response<ResponseBody>> {
    if req.method() != Method::POST {
        return Err(post_only(req.method()));
    }
    let (parts, body) = req.into_parts();
    let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) else {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        ));
    };
    let body = read_body(body).await?;
    let Ok(content_type) = ContentType::from_content_type(content_type.as_bytes()) else {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        ));
    };
    let call = decode_call::<M>(content_type, &body)
        .map_err(|message| plain(StatusCode::BAD_REQUEST, &message))?;
    Ok((call, parts.headers))
}

/// The content type of a subscription's event stream, from the request's `Accept`;
/// Mesos's 406 when neither protobuf nor JSON is acceptable.
// The error is the answer, returned at once (as `read_body`'s); boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn stream_type(headers: &HeaderMap) -> Result<ContentType, Response<ResponseBody>> {
    let accept = headers.get(header::ACCEPT).map(HeaderValue::as_bytes);
    ContentType::from_accept(accept).map_err(|_| {
        plain(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
        )
    })
}

/// A `200` whose body is the RecordIO event stream `rx` in `content_type`; `guard` is
/// dropped when the client goes away.
pub(crate) fn stream_response<G: Unpin + Send + Sync + 'static>(
    rx: mpsc::UnboundedReceiver<Result<Bytes, io::Error>>,
    guard: G,
    content_type: ContentType,
) -> Response<ResponseBody> {
    let mut response = Response::new(BoxBody::new(RecordStream { rx, _guard: guard }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type.as_str()),
    );
    response
}

/// A streaming response: one RecordIO record per data frame (so per HTTP chunk); ends
/// (terminating chunk) when every sender is dropped; an error item aborts the
/// connection. `guard` is dropped with the body (when the client goes away).
pub(crate) struct RecordStream<G> {
    pub(crate) rx: mpsc::UnboundedReceiver<Result<Bytes, io::Error>>,
    pub(crate) _guard: G,
}

impl<G: Unpin> Body for RecordStream<G> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

/// Decodes a `Call` body that the caller has already matched to `content_type`, with
/// Mesos's error texts (`Failed to parse body into Call protobuf`, picojson's syntax
/// errors, stout's conversion errors).
pub(crate) fn decode_call<M: MesosMessage>(
    content_type: ContentType,
    body: &[u8],
) -> Result<M, String> {
    match content_type {
        ContentType::Protobuf => codec::decode_checked::<M>(ContentType::Protobuf, body)
            .map_err(|_| "Failed to parse body into Call protobuf".to_owned()),
        ContentType::Json => {
            let mut value: Value = serde_json::from_slice(body).map_err(|e| {
                format!(
                    "Failed to parse body into JSON: {}",
                    picojson_error(body, &e)
                )
            })?;
            let convert =
                |detail: String| format!("Failed to convert JSON into Call protobuf: {detail}");
            let descriptor =
                brine_proto::reflect::descriptor::<M>().map_err(|e| convert(e.to_string()))?;
            match &mut value {
                Value::Object(_) => stout_check(&mut value, &descriptor).map_err(convert)?,
                _ => return Err(convert("Expecting a JSON object".to_owned())),
            }
            let normalized = serde_json::to_vec(&value).map_err(|e| convert(e.to_string()))?;
            codec::decode_checked::<M>(ContentType::Json, &normalized).map_err(|e| {
                convert(match e {
                    CodecError::MissingRequiredFields { fields, .. } => {
                        format!("Missing required fields: {}", fields.join(", "))
                    }
                    CodecError::JsonSchema { detail, .. } => detail,
                    other => other.to_string(),
                })
            })
        }
    }
}

/// picojson's message: the line of the error, then the rest of that line from where
/// parsing stopped (empty when the input just ended).
fn picojson_error(body: &[u8], error: &serde_json::Error) -> String {
    let line = error.line().max(1);
    let rest = if error.is_eof() {
        String::new()
    } else {
        let text = String::from_utf8_lossy(body);
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        let column = error.column().saturating_sub(1);
        line_text
            .chars()
            .skip(column)
            .filter(|c| *c >= ' ')
            .collect()
    };
    format!("syntax error at line {line} near: {rest}")
}

/// Walks a JSON object against a message descriptor as stout does (keys in sorted
/// order, which is what `serde_json::Map` gives), returning stout's first error, and
/// rewrites `bytes` fields into canonical base64 (stout skips whitespace and stops at
/// '=').
fn stout_check(value: &mut Value, descriptor: &MessageDescriptor) -> Result<(), String> {
    let Value::Object(object) = value else {
        return Ok(());
    };
    for (key, item) in object.iter_mut() {
        let Some(field) = descriptor.get_field_by_name(key) else {
            continue;
        };
        if field.is_map() {
            continue;
        }
        match item {
            Value::Array(items) => {
                if !field.is_list() {
                    return Err(format!("Not expecting a JSON array for field '{key}'"));
                }
                for element in items {
                    check_single(element, &field)?;
                }
            }
            other => check_single(other, &field)?,
        }
    }
    Ok(())
}

fn check_single(value: &mut Value, field: &prost_reflect::FieldDescriptor) -> Result<(), String> {
    let name = field.name();
    match (value, field.kind()) {
        (Value::Null, _) => Ok(()),
        (value @ Value::Object(_), Kind::Message(message)) => stout_check(value, &message),
        (Value::Object(_), _) => Err(format!("Not expecting a JSON object for field '{name}'")),
        (Value::String(text), Kind::Bytes) => {
            let decoded = stout_base64_decode(text)
                .map_err(|e| format!("Failed to base64 decode bytes field '{name}': {e}"))?;
            *text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, decoded);
            Ok(())
        }
        (Value::String(_), Kind::String | Kind::Enum(_)) => Ok(()),
        (Value::String(_), Kind::Message(_)) => {
            Err(format!("Not expecting a JSON string for field '{name}'"))
        }
        (Value::String(text), Kind::Bool) => match text.as_str() {
            "true" | "false" => Ok(()),
            _ => Err(format!(
                "Failed to parse '{text}' as a JSON boolean for field '{name}': syntax error at line 1 near: {text}"
            )),
        },
        (Value::String(text), _) => {
            if matches!(text.as_str(), "Infinity" | "-Infinity") || text.parse::<f64>().is_ok() {
                Ok(())
            } else {
                Err(format!(
                    "Failed to parse '{text}' as a JSON number for field '{name}': syntax error at line 1 near: {text}"
                ))
            }
        }
        (
            Value::Number(_),
            Kind::Bool | Kind::String | Kind::Bytes | Kind::Enum(_) | Kind::Message(_),
        ) => Err(format!("Not expecting a JSON number for field '{name}'")),
        (Value::Number(_), _) => Ok(()),
        (Value::Bool(_), Kind::Bool) => Ok(()),
        (Value::Bool(_), _) => Err(format!("Not expecting a JSON boolean for field '{name}'")),
        (Value::Array(_), _) => Err(format!("Not expecting a JSON array for field '{name}'")),
    }
}

/// stout's `base64::decode`: whitespace skipped, stops at the first '=', any other
/// character outside the alphabet is an error.
fn stout_base64_decode(text: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut quad = [0u8; 4];
    let mut n = 0;
    for c in text.bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let Some(index) = ALPHABET.iter().position(|a| *a == c) else {
            return Err(format!("Invalid character '{}'", c as char));
        };
        quad[n] = index as u8;
        n += 1;
        if n == 4 {
            out.push((quad[0] << 2) | (quad[1] >> 4));
            out.push((quad[1] << 4) | (quad[2] >> 2));
            out.push((quad[2] << 6) | quad[3]);
            n = 0;
        }
    }
    if n > 1 {
        out.push((quad[0] << 2) | (quad[1] >> 4));
    }
    if n > 2 {
        out.push((quad[1] << 4) | (quad[2] >> 2));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_like_stout() {
        assert_eq!(stout_base64_decode("aGk=").unwrap_or_default(), b"hi");
        assert_eq!(stout_base64_decode("aG k").unwrap_or_default(), b"hi");
        assert_eq!(
            stout_base64_decode("not base64 !!").err().as_deref(),
            Some("Invalid character '!'")
        );
    }
}
