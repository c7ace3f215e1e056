//! Decoding of Brine's own payloads (`brine_proto::payload`): never panics, and whatever
//! decodes re-encodes to bytes that decode to the same encoding.

#![no_main]

use brine_proto::payload::{
    ExecutorConfig, ExecutorMessage, Payload, SchedulerMessage, TaskOutcome, TaskSpec,
};
use libfuzzer_sys::fuzz_target;

fn check<P: Payload>(bytes: &[u8]) {
    let Ok(payload) = P::decode(bytes) else {
        return;
    };
    // Compared as bytes: payloads may hold NaN, which is not equal to itself.
    let encoded = payload.encode();
    let again = P::decode(&encoded).expect("own encoding decodes");
    assert_eq!(again.encode(), encoded);
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    match selector % 5 {
        0 => check::<TaskSpec>(bytes),
        1 => check::<ExecutorConfig>(bytes),
        2 => check::<TaskOutcome>(bytes),
        3 => check::<ExecutorMessage>(bytes),
        _ => check::<SchedulerMessage>(bytes),
    }
});
