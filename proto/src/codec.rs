//! The two encodings Mesos speaks on its v1 HTTP APIs, and how to pick one.
//!
//! - Protobuf (`application/x-protobuf`): the generated types' own encoding.
//! - JSON (`application/json`), as Mesos reads and writes it — see [`json`] for the rules.
//!
//! ```
//! use brine_proto::codec::{self, ContentType};
//! use brine_proto::mesos::v1::scheduler::{Event, event};
//!
//! let heartbeat = Event { r#type: Some(event::Type::Heartbeat as i32), ..Default::default() };
//! assert_eq!(codec::encode(ContentType::Json, &heartbeat)?, br#"{"type":"HEARTBEAT"}"#);
//! assert_eq!(codec::encode(ContentType::Protobuf, &heartbeat)?, b"\x08\x08");
//!
//! let content_type = ContentType::from_content_type(b"application/json")?;
//! let event: Event = codec::decode(content_type, br#"{"type":"HEARTBEAT","extra":1}"#)?;
//! assert_eq!(event, heartbeat);
//! # Ok::<(), codec::CodecError>(())
//! ```

pub mod json;

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use prost_reflect::DynamicMessage;

pub use crate::message::{CodecError, MesosMessage};
use crate::reflect;

/// The media types of the Mesos v1 HTTP APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`
    Json,
}

impl ContentType {
    /// The media type string, as sent in `Content-Type` and `Accept`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentType::Protobuf => "application/x-protobuf",
            ContentType::Json => "application/json",
        }
    }

    /// Reads a `Content-Type` header value as Mesos does: the whole value must equal one
    /// of the two media types, byte for byte (no parameters, no case folding).
    pub fn from_content_type(value: &[u8]) -> Result<Self, CodecError> {
        match value {
            b"application/x-protobuf" => Ok(ContentType::Protobuf),
            b"application/json" => Ok(ContentType::Json),
            other => Err(CodecError::UnsupportedContentType(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// Chooses the encoding of a response from the request's `Accept` header as Mesos
    /// does: JSON if it is acceptable, else protobuf. No header accepts everything, so
    /// it means JSON (a real master answered such a SUBSCRIBE with a JSON stream).
    pub fn from_accept(accept: Option<&[u8]>) -> Result<Self, CodecError> {
        let Some(accept) = accept else {
            return Ok(ContentType::Json);
        };
        let accept = String::from_utf8_lossy(accept);
        [ContentType::Json, ContentType::Protobuf]
            .into_iter()
            .find(|candidate| accepts(&accept, candidate.as_str()))
            .ok_or_else(|| CodecError::NotAcceptable(accept.into_owned()))
    }

    /// [`encode`] in this content type.
    pub fn encode<M: MesosMessage>(self, message: &M) -> Result<Vec<u8>, CodecError> {
        encode(self, message)
    }

    /// [`decode`] from this content type.
    pub fn decode<M: MesosMessage>(self, body: &[u8]) -> Result<M, CodecError> {
        decode(self, body)
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContentType {
    type Err = CodecError;

    /// Same exact match as [`ContentType::from_content_type`].
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::from_content_type(value.as_bytes())
    }
}

/// Whether an `Accept` value allows `media_type`, following libprocess's
/// `Request::acceptsMediaType`: whitespace is ignored; an exact entry wins over
/// `type/*`, which wins over `*/*`; the first entry matching decides, and it accepts
/// unless it carries exactly one `q` parameter that is not a number above zero.
fn accepts(accept: &str, media_type: &str) -> bool {
    let accept: String = accept
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\n'))
        .collect();
    let Some((kind, _)) = media_type.split_once('/') else {
        return false;
    };
    let candidates = [media_type.to_owned(), format!("{kind}/*"), "*/*".to_owned()];
    for candidate in &candidates {
        for entry in accept.split(',').filter(|e| !e.is_empty()) {
            let mut tokens = entry.split(';').filter(|t| !t.is_empty());
            let Some(range) = tokens.next() else {
                continue;
            };
            if !range.eq_ignore_ascii_case(candidate) {
                continue;
            }
            let q: Vec<&str> = entry
                .split(';')
                .filter_map(|param| param.split_once('='))
                .filter(|(name, value)| *name == "q" && !value.contains('='))
                .map(|(_, value)| value)
                .collect();
            return match q.as_slice() {
                [q] => q.parse::<f64>().is_ok_and(|q| q > 0.0),
                _ => true,
            };
        }
    }
    false
}

/// Encodes `message` for a request or response body (or a RecordIO record).
pub fn encode<M: MesosMessage>(
    content_type: ContentType,
    message: &M,
) -> Result<Vec<u8>, CodecError> {
    match content_type {
        ContentType::Protobuf => Ok(message.encode_to_vec()),
        ContentType::Json => json::to_vec(message),
    }
}

/// Decodes a body (or a RecordIO record). Like Mesos, unknown fields are skipped in both
/// encodings; unlike Mesos, absent `required` fields are not an error here (they read as
/// their defaults) — use [`decode_checked`] to refuse them.
pub fn decode<M: MesosMessage>(content_type: ContentType, body: &[u8]) -> Result<M, CodecError> {
    match content_type {
        ContentType::Protobuf => M::decode(body).map_err(|source| CodecError::Protobuf {
            message: M::full_name(),
            source,
        }),
        ContentType::Json => json::from_slice(body),
    }
}

/// [`decode`] from a shared buffer (such as a record from [`crate::recordio::Decoder`]):
/// with protobuf, the `bytes` fields of the result (task data, inline modules) point into
/// `body` instead of being copied.
pub fn decode_bytes<M: MesosMessage>(
    content_type: ContentType,
    body: Bytes,
) -> Result<M, CodecError> {
    match content_type {
        ContentType::Protobuf => M::decode(body).map_err(|source| CodecError::Protobuf {
            message: M::full_name(),
            source,
        }),
        ContentType::Json => json::from_slice(&body),
    }
}

/// [`decode`], and also refuse a message whose `required` fields (at any depth) are
/// absent, as Mesos does when it parses a call.
pub fn decode_checked<M: MesosMessage>(
    content_type: ContentType,
    body: &[u8],
) -> Result<M, CodecError> {
    let descriptor = reflect::descriptor::<M>()?;
    let dynamic = match content_type {
        ContentType::Protobuf => {
            DynamicMessage::decode(descriptor, body).map_err(|source| CodecError::Protobuf {
                message: M::full_name(),
                source,
            })?
        }
        ContentType::Json => json::dynamic_from_slice(descriptor, body)?,
    };
    let fields = reflect::missing_required_fields(&dynamic);
    if !fields.is_empty() {
        return Err(CodecError::MissingRequiredFields {
            message: M::full_name(),
            fields,
        });
    }
    match content_type {
        ContentType::Protobuf => decode(content_type, body),
        ContentType::Json => json::transcode(&dynamic),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_follows_libprocess() {
        let pick = |accept: &str| ContentType::from_accept(Some(accept.as_bytes())).ok();
        assert_eq!(ContentType::from_accept(None).ok(), Some(ContentType::Json));
        assert_eq!(pick("application/json"), Some(ContentType::Json));
        assert_eq!(pick("application/x-protobuf"), Some(ContentType::Protobuf));
        assert_eq!(pick("*/*"), Some(ContentType::Json));
        assert_eq!(pick("application/*"), Some(ContentType::Json));
        assert_eq!(pick("Application/JSON"), Some(ContentType::Json));
        assert_eq!(pick("text/plain"), None);
        assert_eq!(pick(""), None);
        assert_eq!(
            pick("application/json;q=0, application/x-protobuf"),
            Some(ContentType::Protobuf)
        );
        assert_eq!(
            pick("application/x-protobuf;q=0.5, text/html"),
            Some(ContentType::Protobuf)
        );
        // The first matching entry decides, even when a later one would accept.
        assert_eq!(
            pick("application/json;q=0,*/*"),
            Some(ContentType::Protobuf)
        );
        assert_eq!(pick("text/plain, */*;q=0"), None);
        assert_eq!(pick("application/json; q = 1"), Some(ContentType::Json));
        assert_eq!(pick("application/json;q=zero"), None);
    }
}
