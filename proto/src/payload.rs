//! Brine's own payloads, carried in Mesos `data` fields.
//!
//! Every payload is one version byte ([`PAYLOAD_VERSION`]) followed by its postcard
//! encoding. Postcard is compact and has a documented, stable wire format, but it is not
//! self-describing, so the version byte is what lets an old executor refuse a new
//! scheduler's payload with a clear error instead of misreading it.
//!
//! | Mesos field | payload |
//! |---|---|
//! | `ExecutorInfo.data` | [`ExecutorConfig`] |
//! | `TaskInfo.data` | [`TaskSpec`]; [`LeaseSpec`] for a lease (see `crate::lane`) |
//! | `TaskStatus.data` | [`TaskOutcome`] |
//! | executor → scheduler `MESSAGE` | [`ExecutorMessage`] |
//! | scheduler → executor `MESSAGE` | [`SchedulerMessage`] |
//!
//! ```
//! use brine_proto::payload::{Encoding, ModuleRef, Payload, TaskSpec};
//!
//! let spec = TaskSpec {
//!     module: ModuleRef::inline(b"\0asm\x01\0\0\0".to_vec()),
//!     export: "sum".into(),
//!     args: br#""1 2 3""#.to_vec(),
//!     encoding: Encoding::Json,
//!     deadline: None,
//! };
//! let bytes = spec.encode();
//! assert_eq!(TaskSpec::decode(&bytes).unwrap(), spec);
//! assert!(TaskSpec::decode(b"garbage").is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version byte that starts every payload this build writes and reads.
/// 2: `ExecutorConfig::running_update_delay`. 3: leases and the closure lane
/// ([`LeaseSpec`], [`SchedulerMessage::Lane`], [`Heartbeat::lane`], `crate::lane`).
pub const PAYLOAD_VERSION: u8 = 3;

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("empty {what}: expected a version byte")]
    Empty { what: &'static str },
    #[error(
        "unsupported {what} version {found}; this build reads version {supported} \
         (are the scheduler and executor from different Brine releases?)"
    )]
    UnsupportedVersion {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("malformed {what}: {count} unexpected trailing bytes")]
    Trailing { what: &'static str, count: usize },
}

/// A versioned, postcard-encoded payload.
pub trait Payload: Serialize + DeserializeOwned {
    /// What the payload is called in error messages.
    const NAME: &'static str;

    /// The version byte followed by the postcard encoding.
    fn encode(&self) -> Vec<u8> {
        // Serializing these plain data types into a Vec cannot fail: postcard only errors
        // on unsupported serde features (none are used) or a full fixed-size buffer.
        let mut out = vec![PAYLOAD_VERSION];
        match postcard::to_extend(self, out) {
            Ok(v) => out = v,
            Err(e) => unreachable!("postcard cannot fail to encode {}: {e}", Self::NAME),
        }
        out
    }

    /// Decodes bytes written by [`Payload::encode`], refusing other versions, garbage and
    /// trailing bytes.
    fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let what = Self::NAME;
        let (&version, body) = bytes.split_first().ok_or(PayloadError::Empty { what })?;
        if version != PAYLOAD_VERSION {
            return Err(PayloadError::UnsupportedVersion {
                what,
                found: version,
                supported: PAYLOAD_VERSION,
            });
        }
        let (value, rest) =
            postcard::take_from_bytes(body).map_err(|e| PayloadError::Malformed {
                what,
                reason: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(PayloadError::Trailing {
                what,
                count: rest.len(),
            });
        }
        Ok(value)
    }
}

/// The SHA-256 of a module's bytes: how executors cache and schedulers name modules.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleHash(pub [u8; 32]);

impl ModuleHash {
    /// Hashes module bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleHash({self})")
    }
}

impl FromStr for ModuleHash {
    type Err = PayloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = |reason: String| PayloadError::Malformed {
            what: "module hash",
            reason,
        };
        let bytes = hex::decode(s).map_err(|e| malformed(e.to_string()))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| malformed(format!("{} bytes, expected 32", b.len())))?;
        Ok(Self(array))
    }
}

/// Configuration the scheduler gives every executor, in `ExecutorInfo.data`.
///
/// It is part of the `ExecutorInfo`, which Mesos requires to be identical for every task
/// sent to one executor, so it must not change while an executor is alive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorConfig {
    /// How often the executor sends a [`Heartbeat`].
    pub heartbeat_interval: Duration,
    /// How long the executor may hold no task before it shuts itself down; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// The shared read-only dataset, if any.
    pub dataset: Option<DatasetRef>,
    /// Compiled-module cache limits.
    pub cache: CacheLimits,
    /// Absolute path on the agent where compiled modules are kept, so that the next
    /// executor on that agent starts warm; `None`: inside the executor's sandbox (warm
    /// only for this executor).
    pub module_cache_dir: Option<String>,
    /// Deadline for tasks whose [`TaskSpec::deadline`] is `None`; `None`: no deadline.
    pub default_task_deadline: Option<Duration>,
    /// How many bytes of a failed task's stderr come back in its [`TaskFailure`].
    pub stderr_tail_bytes: u32,
    /// `TASK_RUNNING` is sent only for a task still running this long after it
    /// started; a task that ends sooner sends just its terminal update. Mesos allows
    /// that transition, and it saves a status update, its acknowledgement and one
    /// acknowledgement round trip before the result per short task. Zero: always.
    pub running_update_delay: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(300)),
            dataset: None,
            cache: CacheLimits::default(),
            module_cache_dir: None,
            default_task_deadline: None,
            stderr_tail_bytes: 4096,
            running_update_delay: Duration::from_millis(5),
        }
    }
}

impl Payload for ExecutorConfig {
    const NAME: &'static str = "ExecutorConfig";
}

/// Where the executor finds the dataset: a path relative to its sandbox, where the
/// Mesos fetcher put it (one of the `ExecutorInfo`'s `CommandInfo.uris`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub path: String,
}

/// Limits of the executor's compiled-module cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLimits {
    /// Most modules kept compiled in memory (least recently used go first).
    pub max_modules_in_memory: u32,
    /// Most bytes of serialized compiled modules kept on disk in the sandbox.
    pub max_disk_bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_modules_in_memory: 64,
            max_disk_bytes: 1 << 30,
        }
    }
}

/// One task, in `TaskInfo.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub module: ModuleRef,
    /// The guest export to call (see `guest-sdk/ABI.md`).
    pub export: String,
    /// Argument bytes, in `encoding`.
    pub args: Vec<u8>,
    /// How `args` and the result are encoded.
    pub encoding: Encoding,
    /// Wall-clock limit from the moment the task starts running; `None`: the executor's
    /// default.
    pub deadline: Option<Duration>,
}

impl Payload for TaskSpec {
    const NAME: &'static str = "TaskSpec";
}

/// A module named by its hash, with its bytes when the scheduler believes the executor
/// does not have them yet.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRef {
    pub hash: ModuleHash,
    pub bytes: Option<Vec<u8>>,
}

impl ModuleRef {
    /// A reference carrying the module's bytes.
    pub fn inline(bytes: Vec<u8>) -> Self {
        Self {
            hash: ModuleHash::of(&bytes),
            bytes: Some(bytes),
        }
    }

    /// A reference by hash only, for an executor that already holds the module.
    pub fn by_hash(hash: ModuleHash) -> Self {
        Self { hash, bytes: None }
    }

    /// Checks that inline bytes, if any, are the module the hash names.
    pub fn verify(&self) -> Result<(), PayloadError> {
        match &self.bytes {
            Some(bytes) if ModuleHash::of(bytes) != self.hash => Err(PayloadError::Malformed {
                what: "module reference",
                reason: format!(
                    "inline bytes hash to {}, not {}",
                    ModuleHash::of(bytes),
                    self.hash
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleRef")
            .field("hash", &self.hash)
            .field("inline_bytes", &self.bytes.as_ref().map(Vec::len))
            .finish()
    }
}

/// How a task's arguments and result are encoded (the ABI's `encoding` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// postcard: what the Rust scheduler library sends.
    Postcard,
    /// JSON: what the command line sends.
    Json,
}

impl Encoding {
    /// The value passed to a guest entry.
    pub fn abi_code(self) -> i32 {
        match self {
            Encoding::Postcard => 0,
            Encoding::Json => 1,
        }
    }
}

/// How a task ended, in the terminal `TaskStatus.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// `TASK_FINISHED`: the result bytes, in the task's encoding.
    Success { result: Vec<u8> },
    /// `TASK_FAILED`, `TASK_KILLED` or `TASK_ERROR`.
    Failure(TaskFailure),
}

impl Payload for TaskOutcome {
    const NAME: &'static str = "TaskOutcome";
}

/// Why a task did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TaskFailure {
    pub kind: ErrorKind,
    pub message: String,
    /// The last bytes the guest wrote to stderr (lossy UTF-8), possibly empty.
    pub stderr_tail: String,
}

impl TaskFailure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            stderr_tail: String::new(),
        }
    }
}

/// The kinds of task failure (see `guest-sdk/ABI.md`). New kinds are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// `TaskInfo.data` is not a TaskSpec this executor can read.
    InvalidTaskSpec,
    /// The TaskSpec names a module by hash only and the executor does not hold it.
    ModuleMissing,
    /// The module bytes are not a valid module, or import what the host does not offer.
    ModuleInvalid,
    /// The module does not speak an ABI version this executor supports.
    AbiMismatch,
    /// The export is missing or is not a task entry.
    ExportMissing,
    /// The guest could not decode the argument bytes.
    ArgumentDecode,
    /// The guest could not encode its result.
    ResultEncode,
    /// The task returned an error.
    GuestError,
    /// The guest panicked.
    GuestPanic,
    /// The guest trapped.
    Trap,
    /// The guest needed more memory than the task's limit.
    MemoryLimit,
    /// The task ran past its deadline.
    DeadlineExceeded,
    /// The task was killed from outside (KILL, SHUTDOWN).
    Killed,
    /// Something went wrong in the executor itself.
    Internal,
}

impl ErrorKind {
    /// The snake_case name used in logs, JSON and `ABI.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidTaskSpec => "invalid_task_spec",
            ErrorKind::ModuleMissing => "module_missing",
            ErrorKind::ModuleInvalid => "module_invalid",
            ErrorKind::AbiMismatch => "abi_mismatch",
            ErrorKind::ExportMissing => "export_missing",
            ErrorKind::ArgumentDecode => "argument_decode",
            ErrorKind::ResultEncode => "result_encode",
            ErrorKind::GuestError => "guest_error",
            ErrorKind::GuestPanic => "guest_panic",
            ErrorKind::Trap => "trap",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Killed => "killed",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether running the same task again would fail the same way, so a scheduler
    /// should fail the job instead of retrying it.
    pub fn is_deterministic(self) -> bool {
        !matches!(
            self,
            ErrorKind::ModuleMissing | ErrorKind::Killed | ErrorKind::Internal
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-framework secret an executor presents on the closure lane. Its `Debug`
/// does not print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub [u8; 32]);

impl Secret {
    /// Compares in time independent of where the secrets differ.
    pub fn matches(&self, other: &Secret) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where an executor finds its scheduler's closure lane, and how it proves it belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneEndpoint {
    /// `host:port` the scheduler's lane listens on, as the agents reach it.
    pub addr: String,
    pub secret: Secret,
}

/// A lease, in the lease task's `TaskInfo.data`. The slot's size is the task's own
/// `resources` (cpus and mem): every closure run in it gets that mem as its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSpec {
    pub lane: LaneEndpoint,
}

impl Payload for LeaseSpec {
    const NAME: &'static str = "LeaseSpec";
}

/// Executor → scheduler framework messages. Best effort: each supersedes the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExecutorMessage {
    Heartbeat(Heartbeat),
}

impl Payload for ExecutorMessage {
    const NAME: &'static str = "ExecutorMessage";
}

/// What an executor holds and does, sent every `heartbeat_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Increases by one with every heartbeat of this executor, so a late one can be
    /// recognised and dropped.
    pub seq: u64,
    /// Executor's wall clock at sending, milliseconds since the Unix epoch.
    pub sent_at_unix_ms: u64,
    pub running: Vec<RunningTask>,
    pub cached_modules: Vec<ModuleHash>,
    pub allocation: Allocation,
    /// The closure lane as the executor sees it.
    pub lane: LaneUse,
}

/// Leases and lane closures of an executor, for heartbeats and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LaneUse {
    /// Leases held (each one slot).
    pub leases: u32,
    /// Closures running in those slots.
    pub running: u32,
    /// Closures received and waiting for a slot.
    pub queued: u32,
    /// Whether a lane connection is up.
    pub connected: bool,
}

/// A task the executor is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningTask {
    /// The Mesos `TaskID` value.
    pub task_id: String,
    /// The guest's latest progress report, `0.0..=1.0`.
    pub progress: Option<f64>,
    /// Milliseconds since the task started running.
    pub elapsed_ms: u64,
}

/// The executor's container size: its own resources plus those of its non-terminal tasks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Allocation {
    pub cpus: f64,
    pub mem_mb: f64,
    pub disk_mb: f64,
    /// Non-terminal tasks counted in the figures above.
    pub tasks: u32,
}

/// Scheduler → executor framework messages (control). Best effort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SchedulerMessage {
    /// Compile and cache this module ahead of its tasks.
    Prefetch { module: ModuleRef },
    /// Drop this module from the caches.
    Evict { hash: ModuleHash },
    /// Accept no more tasks; shut down once the running ones end.
    Drain,
    /// The lane is (now) here: connect to it. Sent to executors a restarted scheduler
    /// adopts, whose leases name the old address.
    Lane(LaneEndpoint),
}

impl Payload for SchedulerMessage {
    const NAME: &'static str = "SchedulerMessage";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_spec() -> TaskSpec {
        TaskSpec {
            module: ModuleRef::inline(vec![0, 97, 115, 109, 1, 0, 0, 0]),
            export: "sum".into(),
            args: vec![1, 2, 3],
            encoding: Encoding::Postcard,
            deadline: Some(Duration::from_millis(1500)),
        }
    }

    #[test]
    fn every_payload_round_trips() {
        let spec = sample_spec();
        assert_eq!(TaskSpec::decode(&spec.encode()), Ok(spec.clone()));

        let config = ExecutorConfig {
            dataset: Some(DatasetRef {
                path: "data.txt".into(),
            }),
            ..ExecutorConfig::default()
        };
        assert_eq!(ExecutorConfig::decode(&config.encode()), Ok(config));

        for outcome in [
            TaskOutcome::Success { result: vec![6] },
            TaskOutcome::Failure(TaskFailure {
                kind: ErrorKind::GuestPanic,
                message: "deliberate panic".into(),
                stderr_tail: "panicked at".into(),
            }),
        ] {
            assert_eq!(TaskOutcome::decode(&outcome.encode()), Ok(outcome.clone()));
        }

        let beat = ExecutorMessage::Heartbeat(Heartbeat {
            seq: 7,
            sent_at_unix_ms: 1_700_000_000_000,
            running: vec![RunningTask {
                task_id: "t-1".into(),
                progress: Some(0.5),
                elapsed_ms: 12,
            }],
            cached_modules: vec![spec.module.hash],
            allocation: Allocation {
                cpus: 1.5,
                mem_mb: 256.0,
                disk_mb: 0.0,
                tasks: 1,
            },
            lane: LaneUse {
                leases: 2,
                running: 1,
                queued: 0,
                connected: true,
            },
        });
        assert_eq!(ExecutorMessage::decode(&beat.encode()), Ok(beat));

        for message in [
            SchedulerMessage::Prefetch {
                module: spec.module.clone(),
            },
            SchedulerMessage::Evict {
                hash: spec.module.hash,
            },
            SchedulerMessage::Drain,
            SchedulerMessage::Lane(LaneEndpoint {
                addr: "10.0.0.1:4000".into(),
                secret: Secret([3; 32]),
            }),
        ] {
            assert_eq!(
                SchedulerMessage::decode(&message.encode()),
                Ok(message.clone())
            );
        }
    }

    #[test]
    fn bad_bytes_give_clear_errors() {
        assert_eq!(
            TaskSpec::decode(&[]),
            Err(PayloadError::Empty { what: "TaskSpec" })
        );
        let mut future = sample_spec().encode();
        future[0] = 9;
        let err = TaskSpec::decode(&future).unwrap_err();
        assert!(matches!(
            err,
            PayloadError::UnsupportedVersion { found: 9, .. }
        ));
        assert!(err.to_string().contains("version 9"), "{err}");

        let truncated = &sample_spec().encode()[..5];
        assert!(matches!(
            TaskSpec::decode(truncated),
            Err(PayloadError::Malformed {
                what: "TaskSpec",
                ..
            })
        ));

        let mut trailing = sample_spec().encode();
        trailing.push(0);
        assert_eq!(
            TaskSpec::decode(&trailing),
            Err(PayloadError::Trailing {
                what: "TaskSpec",
                count: 1
            })
        );
    }

    #[test]
    fn module_refs_verify_their_bytes() {
        let mut module = ModuleRef::inline(b"module".to_vec());
        assert!(module.verify().is_ok());
        assert!(ModuleRef::by_hash(module.hash).verify().is_ok());
        module.bytes = Some(b"other".to_vec());
        assert!(module.verify().is_err());
    }

    #[test]
    fn module_hashes_print_and_parse_as_hex() {
        let hash = ModuleHash::of(b"abc");
        let text = hash.to_string();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<ModuleHash>(), Ok(hash));
        assert!("abcd".parse::<ModuleHash>().is_err());
        assert!("zz".parse::<ModuleHash>().is_err());
    }

    #[test]
    fn only_infrastructure_failures_are_retryable() {
        assert!(!ErrorKind::ModuleMissing.is_deterministic());
        assert!(!ErrorKind::Killed.is_deterministic());
        assert!(!ErrorKind::Internal.is_deterministic());
        assert!(ErrorKind::GuestError.is_deterministic());
        assert!(ErrorKind::Trap.is_deterministic());
    }
}
