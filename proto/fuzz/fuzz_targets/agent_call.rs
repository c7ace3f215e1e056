//! `POST /api/v1/executor` of the local agent (`brine_local::agent`), up to where the
//! call needs the agent's state: the `Content-Type`, the `Call` decoded as the endpoint
//! decodes it (protobuf, or JSON walked as stout walks it, with Mesos's error texts) and
//! `validateExecutorCall` (`brine_local::agent::check_executor_call`). Never panics, only
//! refuses; what it accepts it accepts again, unchanged, re-sent as protobuf and as JSON.
//!
//! Input: byte 0 picks the `Content-Type` (see `common::request`), the rest is the body.

#![no_main]

mod common;

use brine_local::agent::check_executor_call;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((content_type, body)) = common::request(input) else {
        return;
    };
    let Ok(call) = check_executor_call(content_type, body) else {
        return;
    };
    common::round_trips(&call, check_executor_call);
});
