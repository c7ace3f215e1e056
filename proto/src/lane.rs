//! The closure lane: how closures reach executors without a Mesos task each.
//!
//! Mesos schedules **leases**: a lease is a Mesos task (carrying a [`LeaseSpec`] in
//! `TaskInfo.data`, labelled [`LEASE_LABEL`]) that reserves one slot — the cpus and mem
//! of one closure — on the framework's resident executor. Closures then travel over the
//! **lane**, a TCP connection the executor opens to the scheduler, many in flight at
//! once, with no master on the path:
//!
//! ```text
//! executor ── Hello{secret, ids} ──────────────────────────► scheduler
//!          ◄─ Welcome{ping_interval} | Refused{reason} ─────
//!          ◄─ Run{closure, lease, spec} … Kill · Release · Ping
//!          ── Done{closure, outcome} … Progress · Pong ─────►
//! ```
//!
//! Framing: every frame is a 4-byte big-endian length, then that many bytes: one
//! [`PAYLOAD_VERSION`](crate::payload::PAYLOAD_VERSION) byte and the postcard encoding
//! of a [`ToExecutor`] or [`ToScheduler`]. A frame may not exceed the reader's limit
//! ([`MAX_FRAME_BYTES`] by default: module bytes may ride inline). [`FrameDecoder`] is
//! incremental and sans-IO: push bytes as they arrive, take frames as they complete.
//!
//! The lane is at-least-once: a closure whose lane is lost is dispatched again, and a
//! late [`ToScheduler::Done`] for a closure id the scheduler no longer waits for is
//! dropped. Closure ids are never reused within one scheduler process.
//!
//! ```
//! use brine_proto::lane::{FrameDecoder, ToExecutor, encode_frame};
//!
//! let mut wire = Vec::new();
//! encode_frame(&ToExecutor::Ping { nonce: 7 }, &mut wire);
//! let mut decoder = FrameDecoder::default();
//! decoder.push(&wire[..3]);
//! assert_eq!(decoder.next_frame::<ToExecutor>().unwrap(), None);
//! decoder.push(&wire[3..]);
//! assert_eq!(decoder.next_frame().unwrap(), Some(ToExecutor::Ping { nonce: 7 }));
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::payload::{LaneEndpoint, LeaseSpec, Secret};
use crate::payload::{Payload, PayloadError, TaskOutcome, TaskSpec};

/// The `TaskInfo.labels` entry (key, value) that marks a Mesos task as a lease; its
/// `data` is then a [`LeaseSpec`], not a [`TaskSpec`]. Operators see it in
/// `/master/state` too.
pub const LEASE_LABEL: (&str, &str) = ("brine.kind", "lease");

/// The largest frame a lane reader accepts by default (a module may ride inline).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// A closure's id on the lane: unique within one scheduler process, never reused.
pub type ClosureId = u64;

/// Scheduler → executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToExecutor {
    /// The [`ToScheduler::Hello`] was accepted. The scheduler pings at least this
    /// often; an executor that hears nothing for several intervals reconnects.
    Welcome { ping_interval: Duration },
    /// The hello was refused (wrong secret, unknown executor); the connection closes.
    Refused { reason: String },
    /// Run a closure in a slot of `lease` (a lease task id of this executor).
    Run {
        closure: ClosureId,
        lease: String,
        spec: TaskSpec,
    },
    /// Stop a closure; its [`ToScheduler::Done`] says `killed`.
    Kill { closure: ClosureId },
    /// End a lease: once no closure runs in it, the executor sends `TASK_FINISHED` for
    /// the lease task and its resources go back to Mesos.
    Release { lease: String },
    /// Liveness; answered with [`ToScheduler::Pong`].
    Ping { nonce: u64 },
}

impl Payload for ToExecutor {
    const NAME: &'static str = "lane frame (to executor)";
}

/// Executor → scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToScheduler {
    /// The first frame of every connection.
    Hello {
        secret: Secret,
        framework_id: String,
        executor_id: String,
        agent_id: String,
    },
    /// A closure ended: its result or why not.
    Done {
        closure: ClosureId,
        outcome: TaskOutcome,
    },
    /// A running closure's latest progress, `0.0..=1.0`.
    Progress { closure: ClosureId, progress: f64 },
    /// Answer to [`ToExecutor::Ping`].
    Pong { nonce: u64 },
}

impl Payload for ToScheduler {
    const NAME: &'static str = "lane frame (to scheduler)";
}

/// Appends one frame holding `message` to `out`.
pub fn encode_frame<P: Payload>(message: &P, out: &mut Vec<u8>) {
    let body = message.encode();
    // A frame over 4 GiB cannot be built from what Brine sends (modules are bounded by
    // the reader's limit long before); saturating keeps the length honest for the
    // reader, which then refuses it.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
}

/// Why the lane's byte stream cannot be read on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("lane frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Incremental frame reader. After an error the stream has lost its framing: drop the
/// connection.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    at: usize,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames over `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            at: 0,
            max,
        }
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > (64 << 10) && self.at * 2 > self.buf.len() {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame<P: Payload>(&mut self) -> Result<Option<P>, FrameError> {
        let rest = &self.buf[self.at..];
        let Some(head) = rest.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let Some(body) = rest.get(4..4 + len) else {
            return Ok(None);
        };
        let message = P::decode(body)?;
        self.at += 4 + len;
        Ok(Some(message))
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Encoding, ErrorKind, ModuleRef, TaskFailure};

    fn frames() -> (Vec<ToExecutor>, Vec<ToScheduler>) {
        let spec = TaskSpec {
            module: ModuleRef::inline(b"\0asm\x01\0\0\0".to_vec()),
            export: "sum".into(),
            args: b"\"1 2\"".to_vec(),
            encoding: Encoding::Json,
            deadline: Some(Duration::from_millis(250)),
        };
        let secret = Secret([7; 32]);
        (
            vec![
                ToExecutor::Welcome {
                    ping_interval: Duration::from_secs(1),
                },
                ToExecutor::Run {
                    closure: 1,
                    lease: "lease-1".into(),
                    spec,
                },
                ToExecutor::Kill { closure: 1 },
                ToExecutor::Release {
                    lease: "lease-1".into(),
                },
                ToExecutor::Ping { nonce: 9 },
                ToExecutor::Refused {
                    reason: "wrong secret".into(),
                },
            ],
            vec![
                ToScheduler::Hello {
                    secret,
                    framework_id: "f".into(),
                    executor_id: "e".into(),
                    agent_id: "a".into(),
                },
                ToScheduler::Done {
                    closure: 1,
                    outcome: TaskOutcome::Success { result: vec![3] },
                },
                ToScheduler::Done {
                    closure: 2,
                    outcome: TaskOutcome::Failure(TaskFailure::new(ErrorKind::Trap, "boom")),
                },
                ToScheduler::Progress {
                    closure: 1,
                    progress: 0.5,
                },
                ToScheduler::Pong { nonce: 9 },
            ],
        )
    }

    #[test]
    fn frames_round_trip_whatever_the_read_boundaries() {
        let (to_executor, to_scheduler) = frames();
        let mut wire = Vec::new();
        for f in &to_executor {
            encode_frame(f, &mut wire);
        }
        for step in [1, 2, 3, 5, 64, wire.len()] {
            let mut decoder = FrameDecoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame::<ToExecutor>().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, to_executor, "chunks of {step}");
            assert_eq!(decoder.buffered(), 0);
        }
        let mut wire = Vec::new();
        for f in &to_scheduler {
            encode_frame(f, &mut wire);
        }
        let mut decoder = FrameDecoder::default();
        decoder.push(&wire);
        for expected in &to_scheduler {
            assert_eq!(
                decoder.next_frame::<ToScheduler>().unwrap().as_ref(),
                Some(expected)
            );
        }
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors_not_panics() {
        let mut decoder = FrameDecoder::with_limit(16);
        decoder.push(&1000u32.to_be_bytes());
        assert_eq!(
            decoder.next_frame::<ToExecutor>(),
            Err(FrameError::TooLarge { len: 1000, max: 16 })
        );
        let mut decoder = FrameDecoder::default();
        decoder.push(&[0, 0, 0, 3, crate::payload::PAYLOAD_VERSION, 0xff, 0xff]);
        assert!(matches!(
            decoder.next_frame::<ToExecutor>(),
            Err(FrameError::Payload(_))
        ));
    }

    #[test]
    fn secrets_compare_by_value_and_never_print() {
        let a = Secret([1; 32]);
        let mut b = a.clone();
        assert!(a.matches(&b));
        b.0[31] = 2;
        assert!(!a.matches(&b));
        assert_eq!(format!("{a:?}"), "Secret(..)");
        let lease = LeaseSpec {
            lane: LaneEndpoint {
                addr: "127.0.0.1:1".into(),
                secret: a,
            },
        };
        assert_eq!(LeaseSpec::decode(&lease.encode()), Ok(lease));
    }
}
