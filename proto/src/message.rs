//! What the codec and the reflection both speak of: a generated Mesos message
//! ([`MesosMessage`]) and why one could not be encoded, decoded or described
//! ([`CodecError`]).
//!
//! A leaf, so that dependencies point one way: `codec` uses `reflect` (for JSON and the
//! `required` check), and both use this. The public names are `codec::MesosMessage` and
//! `codec::CodecError` (re-exported there).

/// A generated Mesos message: anything the codec can encode and decode.
///
/// Implemented for every type in [`crate::mesos::v1`] and its sub-modules.
pub trait MesosMessage: prost::Message + prost::Name + Default {}

impl<T: prost::Message + prost::Name + Default> MesosMessage for T {}

/// Why a message could not be encoded or decoded, or a content type not agreed on.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The `Content-Type` is not exactly one of the two Mesos media types. Mesos compares
    /// the whole header value, so `application/json; charset=utf-8` is refused too.
    #[error(
        "unsupported content type {0:?}: expected exactly \"application/x-protobuf\" \
         or \"application/json\""
    )]
    UnsupportedContentType(String),
    /// The `Accept` header allows neither media type.
    #[error(
        "Accept header {0:?} allows neither \"application/json\" nor \"application/x-protobuf\""
    )]
    NotAcceptable(String),
    #[error("failed to decode {message} from protobuf: {source}")]
    Protobuf {
        message: String,
        #[source]
        source: prost::DecodeError,
    },
    /// Malformed JSON, or a value of the wrong JSON type for its field.
    #[error("failed to decode {message} from JSON: {source}")]
    Json {
        message: String,
        #[source]
        source: serde_json::Error,
    },
    /// Well-formed JSON that Mesos would refuse to convert (e.g. an enum given as a number).
    #[error("failed to convert JSON into {message}: {detail}")]
    JsonSchema { message: String, detail: String },
    #[error("failed to encode {message} as JSON: {detail}")]
    JsonEncode { message: String, detail: String },
    /// Only from the `*_checked` functions: proto2 `required` fields are absent.
    #[error("{message} is missing required fields: {}", .fields.join(", "))]
    MissingRequiredFields {
        message: String,
        fields: Vec<String>,
    },
    #[error("no descriptor for message type {0} in the embedded descriptor set")]
    UnknownMessageType(String),
    #[error("the embedded descriptor set is invalid: {0}")]
    Descriptor(String),
}
