//! What the targets that post calls to the local master and agent share: the input layout
//! (a `Content-Type` selector, then the body) and the round-trip checks of an accepted
//! call.

use std::fmt::Debug;

use brine_proto::codec::{self, CodecError, ContentType, MesosMessage};

pub const PROTOBUF: &[u8] = b"application/x-protobuf";
pub const JSON: &[u8] = b"application/json";

/// Splits an input into the request's `Content-Type` and body. Byte 0 picks the header:
/// 0 protobuf, 1 JSON, 2 JSON with a charset parameter, 3 the next byte's count of bytes
/// that follow (arbitrary header bytes); the rest is the body.
pub fn request(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&selector, rest) = input.split_first()?;
    Some(match selector % 4 {
        0 => (PROTOBUF, rest),
        1 => (JSON, rest),
        2 => (b"application/json; charset=utf-8".as_slice(), rest),
        _ => {
            let (&n, rest) = rest.split_first()?;
            rest.split_at(usize::from(n).min(rest.len()))
        }
    })
}

/// Whether two messages are the same: the same protobuf bytes, or equal (maps encode
/// in any order), or the same JSON value (NaN is not equal to itself).
pub fn same<M: MesosMessage + PartialEq>(a: &M, b: &M) -> bool {
    let bytes = |m: &M| codec::encode(ContentType::Protobuf, m).ok();
    let json = |m: &M| {
        codec::encode(ContentType::Json, m)
            .ok()
            .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
    };
    bytes(a) == bytes(b) || a == b || json(a).is_some_and(|j| Some(j) == json(b))
}

/// A call the endpoint accepted is accepted again, unchanged, when its client re-sends
/// it as protobuf, and when it re-sends it as JSON (unless Mesos's JSON cannot carry it:
/// an unknown value in a required enum).
pub fn round_trips<M, E>(call: &M, check: impl Fn(&[u8], &[u8]) -> Result<M, E>)
where
    M: MesosMessage + PartialEq + Debug,
    E: Debug,
{
    let protobuf = codec::encode(ContentType::Protobuf, call).expect("protobuf encodes");
    let again = check(PROTOBUF, &protobuf)
        .unwrap_or_else(|e| panic!("its own protobuf is refused: {e:?}\n{call:?}"));
    assert!(
        same(&again, call),
        "protobuf changed it: {call:?} vs {again:?}"
    );

    let json = match codec::encode(ContentType::Json, call) {
        Ok(json) => json,
        Err(CodecError::JsonEncode { detail, .. }) if detail.starts_with("required field") => {
            return;
        }
        Err(error) => panic!("JSON encoding failed: {error}"),
    };
    let back = check(JSON, &json).unwrap_or_else(|e| {
        panic!(
            "its own JSON is refused: {e:?}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert!(same(&back, call), "JSON changed it: {call:?} vs {back:?}");
}
