//! How a task's outcome is printed: one JSON value per result, so the output of
//! `brine run` can be piped into `jq` or read back line by line.

use brine_scheduler::TaskError;
use serde_json::{Value, json};

/// `{"kind": …, "message": …}`, plus what else the error knows. `kind` is the
/// `ErrorKind` name (`guest_error`, `trap`…) for failures inside the guest, and names
/// the infrastructure failure otherwise (`lost`, `killed`, `cancelled`…).
pub fn error_json(error: &TaskError) -> Value {
    let message = error.to_string();
    match error {
        TaskError::Guest {
            kind,
            message,
            stderr_tail,
        } => {
            let mut value = json!({"kind": kind.as_str(), "message": message});
            if !stderr_tail.is_empty() {
                value["stderr_tail"] = json!(stderr_tail);
            }
            value
        }
        TaskError::Timeout { .. } => json!({"kind": "timeout", "message": message}),
        TaskError::Killed { .. } => json!({"kind": "killed", "message": message}),
        TaskError::Lost {
            state,
            reason,
            attempts,
            ..
        } => json!({
            "kind": "lost",
            "message": message,
            "state": state,
            "reason": reason,
            "attempts": attempts,
        }),
        TaskError::Cancelled => json!({"kind": "cancelled", "message": message}),
        TaskError::Connection(_) => json!({"kind": "connection", "message": message}),
        TaskError::Encode(_) => json!({"kind": "encode", "message": message}),
        TaskError::Decode(_) => json!({"kind": "decode", "message": message}),
        TaskError::Protocol(_) => json!({"kind": "protocol", "message": message}),
        // A kind of error this `brine` does not know yet (TaskError is non-exhaustive).
        _ => json!({"kind": "other", "message": message}),
    }
}

/// A line of `--map` output.
pub fn map_line(line: usize, result: &Result<Value, TaskError>) -> Value {
    match result {
        Ok(value) => json!({"line": line, "ok": value}),
        Err(error) => json!({"line": line, "error": error_json(error)}),
    }
}

#[cfg(test)]
mod tests {
    use brine_scheduler::ErrorKind;

    use super::*;

    #[test]
    fn guest_errors_keep_their_kind() {
        let error = TaskError::Guest {
            kind: ErrorKind::GuestError,
            message: "not an integer: \"x\"".into(),
            stderr_tail: String::new(),
        };
        assert_eq!(
            map_line(3, &Err(error)),
            json!({"line": 3, "error": {"kind": "guest_error", "message": "not an integer: \"x\""}})
        );
        assert_eq!(map_line(1, &Ok(json!(6))), json!({"line": 1, "ok": 6}));
    }
}
