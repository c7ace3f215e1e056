//! The generated Mesos v1 message types, one module per protobuf package.
//!
//! The types come from `proto/mesos/v1/**.proto` (Brine's subset of Mesos's own files,
//! with the same names, numbers and types), compiled by `build.rs`. Protobuf `bytes`
//! fields are [`bytes::Bytes`]; proto2 `optional` fields are `Option`s, with accessors
//! (e.g. `TaskStatus::source()`) that return the proto2 default when unset.

/// Package `mesos.v1`: identifiers, resources, offers, tasks, statuses.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

    /// Package `mesos.v1.executor`: the executor API's `Call` and `Event`.
    pub mod executor {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.executor.rs"));
    }

    /// Package `mesos.v1.scheduler`: the scheduler API's `Call` and `Event`.
    pub mod scheduler {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
    }
}

impl v1::TaskState {
    /// Whether a task in this state is over, as Mesos's `protobuf::isTerminalState`
    /// decides (`src/common/protobuf_utils.cpp`): `TASK_UNREACHABLE` and `TASK_UNKNOWN`
    /// are not, since the task may still be running. The match is exhaustive so a new
    /// state cannot be classified by accident.
    pub fn is_terminal(self) -> bool {
        use v1::TaskState::*;
        match self {
            TaskFinished | TaskFailed | TaskKilled | TaskLost | TaskError | TaskDropped
            | TaskGone | TaskGoneByOperator => true,
            TaskStaging | TaskStarting | TaskRunning | TaskKilling | TaskUnreachable
            | TaskUnknown => false,
        }
    }
}

impl v1::Resource {
    /// An unreserved scalar resource (`cpus`, `mem`, `disk`, …) with no role or
    /// allocation set: the shape of every resource Brine asks for.
    ///
    /// ```
    /// use brine_proto::mesos::v1::Resource;
    /// let cpus = Resource::scalar("cpus", 0.5);
    /// assert_eq!(cpus.scalar.map(|s| s.value), Some(0.5));
    /// ```
    pub fn scalar(name: &str, value: f64) -> Self {
        v1::Resource {
            name: name.to_owned(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(v1::value::Scalar { value }),
            ..Default::default()
        }
    }
}

/// The encoded `FileDescriptorSet` of the three packages (without source info), for
/// reflection: see [`crate::reflect::descriptor_pool`].
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mesos_v1_descriptor_set.bin"));

#[cfg(test)]
mod tests {
    use super::v1::TaskState;

    #[test]
    fn terminal_states_are_mesos_s() {
        let terminal: Vec<_> = (0..=13)
            .filter_map(|n| TaskState::try_from(n).ok())
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str_name())
            .collect();
        assert_eq!(
            terminal,
            [
                "TASK_FINISHED",
                "TASK_FAILED",
                "TASK_KILLED",
                "TASK_LOST",
                "TASK_ERROR",
                "TASK_DROPPED",
                "TASK_GONE",
                "TASK_GONE_BY_OPERATOR"
            ]
        );
        assert!(!TaskState::TaskUnreachable.is_terminal());
        assert!(!TaskState::TaskUnknown.is_terminal());
    }
}
