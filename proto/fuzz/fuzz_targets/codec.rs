//! `codec::decode` of executor and scheduler events and calls, in both content types:
//! never panics, and whatever decodes re-encodes stably (JSON of the decoded message reads
//! back to the same JSON; protobuf reads back to the same message).

#![no_main]

use brine_proto::codec::{self, CodecError, ContentType, MesosMessage};
use brine_proto::mesos::v1::{executor, scheduler};
use libfuzzer_sys::fuzz_target;

fn check<M: MesosMessage + std::fmt::Debug + PartialEq>(content_type: ContentType, body: &[u8]) {
    let _ = codec::decode_checked::<M>(content_type, body);
    let Ok(message) = codec::decode::<M>(content_type, body) else {
        return;
    };
    let protobuf = codec::encode(ContentType::Protobuf, &message).expect("protobuf encodes");
    let back: M = codec::decode(ContentType::Protobuf, &protobuf).expect("own protobuf decodes");
    assert_eq!(back, message);

    let json = match codec::encode(ContentType::Json, &message) {
        Ok(json) => json,
        // An unknown value in a required enum: not representable in Mesos's JSON.
        Err(CodecError::JsonEncode { detail, .. }) if detail.starts_with("required field") => {
            return;
        }
        Err(error) => panic!("JSON encoding failed: {error}"),
    };
    let back: M = codec::decode(ContentType::Json, &json).expect("own JSON decodes");
    let again = codec::encode(ContentType::Json, &back).expect("JSON encodes");
    assert_eq!(
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&again),
        "JSON is not stable"
    );
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let content_type = if selector & 1 == 0 {
        ContentType::Protobuf
    } else {
        ContentType::Json
    };
    match (selector >> 1) % 4 {
        0 => check::<executor::Event>(content_type, body),
        1 => check::<executor::Call>(content_type, body),
        2 => check::<scheduler::Event>(content_type, body),
        _ => check::<scheduler::Call>(content_type, body),
    }
});
