//! Reading and validating an executor `Call` exactly as the Mesos agent does
//! (`src/slave/http.cpp` `Http::executor`, `validateExecutorCall`), with Mesos's error
//! texts. JSON is checked the way stout's `protobuf::parse` walks it, so type errors
//! get Mesos's wording.

use brine_proto::mesos::v1::executor::{Call, call};
use brine_proto::mesos::v1::{TaskState, task_status};

/// `validateExecutorCall`: the text after "Failed to validate Executor::Call: ".
pub fn validate(call: &Call) -> Result<(), String> {
    let Some(kind) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    let eid = &call.executor_id.value;
    let fid = &call.framework_id.value;
    match kind {
        call::Type::Subscribe if call.subscribe.is_none() => {
            Err("Expecting 'subscribe' to be present".to_owned())
        }
        call::Type::Update => {
            let Some(update) = &call.update else {
                return Err("Expecting 'update' to be present".to_owned());
            };
            let status = &update.status;
            let Some(uuid) = &status.uuid else {
                return Err("Expecting 'uuid' to be present".to_owned());
            };
            if uuid.len() != 16 {
                return Err("Not a valid UUID".to_owned());
            }
            if let Some(status_eid) = &status.executor_id
                && status_eid.value != *eid
            {
                return Err(format!(
                    "ExecutorID in Call: {eid} does not match ExecutorID in TaskStatus: {}",
                    status_eid.value
                ));
            }
            if status.source() != task_status::Source::Executor {
                return Err(format!(
                    "Received Call from executor {eid} of framework {fid} with invalid source, \
                     expecting 'SOURCE_EXECUTOR'"
                ));
            }
            if status.state() == TaskState::TaskStaging {
                return Err(format!(
                    "Received TASK_STAGING from executor {eid} of framework {fid} which is not allowed"
                ));
            }
            Ok(())
        }
        call::Type::Message if call.message.is_none() => {
            Err("Expecting 'message' to be present".to_owned())
        }
        _ => Ok(()),
    }
}
