//! How a task's end becomes its terminal status update: the Mesos state, the reason, the
//! message, and the `TaskOutcome` in `data`. Pure functions, for Mesos tasks and leases
//! alike.

use brine_proto::mesos::v1::TaskState;
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::payload::{ErrorKind, Payload, TaskFailure, TaskOutcome};

use crate::updates::StatusSpec;

/// The Mesos reason that best describes a failure kind (`None`: no reason fits).
pub fn reason_for(kind: ErrorKind) -> Option<Reason> {
    match kind {
        ErrorKind::InvalidTaskSpec
        | ErrorKind::ModuleInvalid
        | ErrorKind::AbiMismatch
        | ErrorKind::ExportMissing => Some(Reason::TaskInvalid),
        ErrorKind::MemoryLimit => Some(Reason::ContainerLimitationMemory),
        ErrorKind::DeadlineExceeded => Some(Reason::MaxCompletionTimeReached),
        ErrorKind::ModuleMissing
        | ErrorKind::ArgumentDecode
        | ErrorKind::ResultEncode
        | ErrorKind::GuestError
        | ErrorKind::GuestPanic
        | ErrorKind::Trap
        | ErrorKind::Killed
        | ErrorKind::Internal => None,
    }
}

/// The terminal update for a task's outcome.
pub fn terminal_status(task_id: &str, outcome: Result<Vec<u8>, TaskFailure>) -> StatusSpec {
    match outcome {
        Ok(result) => {
            let mut s = StatusSpec::new(task_id, TaskState::TaskFinished);
            s.data = Some(TaskOutcome::Success { result }.encode());
            s
        }
        Err(failure) => {
            let state = if failure.kind == ErrorKind::Killed {
                TaskState::TaskKilled
            } else {
                TaskState::TaskFailed
            };
            failure_status(task_id, state, failure)
        }
    }
}

pub(super) fn failure_status(task_id: &str, state: TaskState, failure: TaskFailure) -> StatusSpec {
    let mut s = StatusSpec::new(task_id, state);
    s.message = Some(failure.to_string());
    s.reason = reason_for(failure.kind);
    s.data = Some(TaskOutcome::Failure(failure).encode());
    s
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn outcomes_map_to_states_reasons_and_data() {
        let ok = terminal_status("t", Ok(b"6".to_vec()));
        assert_eq!(ok.state, TaskState::TaskFinished);
        assert_eq!(
            TaskOutcome::decode(ok.data.as_deref().unwrap_or_default()),
            Ok(TaskOutcome::Success {
                result: b"6".to_vec()
            })
        );
        let mem = terminal_status(
            "t",
            Err(TaskFailure::new(ErrorKind::MemoryLimit, "too big")),
        );
        assert_eq!(mem.state, TaskState::TaskFailed);
        assert_eq!(mem.reason, Some(Reason::ContainerLimitationMemory));
        assert_eq!(mem.message.as_deref(), Some("memory_limit: too big"));
        let killed = terminal_status("t", Err(TaskFailure::new(ErrorKind::Killed, "k")));
        assert_eq!(killed.state, TaskState::TaskKilled);
        assert_eq!(reason_for(ErrorKind::GuestPanic), None);
        assert_eq!(
            reason_for(ErrorKind::DeadlineExceeded),
            Some(Reason::MaxCompletionTimeReached)
        );
    }
}
