//! Validation of scheduler calls, offers and tasks with Mesos's texts
//! (`src/master/validation.cpp`: `scheduler::call::validate`, `offer::validate`,
//! `task::validate`, `task::group::validate`).

use brine_proto::mesos::v1::scheduler::{Call, call};
use brine_proto::mesos::v1::{ExecutorInfo, FrameworkId, TaskInfo, executor_info};

use super::resources::{self, Resources};

/// `scheduler::call::validate`: the text after "Failed to validate scheduler::Call: ".
pub fn validate_call(call: &Call) -> Result<(), String> {
    let Some(kind) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    if kind == call::Type::Subscribe {
        let Some(subscribe) = &call.subscribe else {
            return Err("Expecting 'subscribe' to be present".to_owned());
        };
        if subscribe.framework_info.id != call.framework_id {
            return Err("'framework_id' differs from 'subscribe.framework_info.id'".to_owned());
        }
        return Ok(());
    }
    if call.framework_id.is_none() {
        return Err("Expecting 'framework_id' to be present".to_owned());
    }
    let missing = |name: &str| Err(format!("Expecting '{name}' to be present"));
    match kind {
        call::Type::Accept if call.accept.is_none() => missing("accept"),
        call::Type::Decline if call.decline.is_none() => missing("decline"),
        call::Type::AcceptInverseOffers if call.accept_inverse_offers.is_none() => {
            missing("accept_inverse_offers")
        }
        call::Type::DeclineInverseOffers if call.decline_inverse_offers.is_none() => {
            missing("decline_inverse_offers")
        }
        call::Type::Kill if call.kill.is_none() => missing("kill"),
        call::Type::Shutdown if call.shutdown.is_none() => missing("shutdown"),
        call::Type::Acknowledge => match &call.acknowledge {
            None => missing("acknowledge"),
            Some(ack) if ack.uuid.len() != 16 => Err("Not a valid UUID".to_owned()),
            Some(_) => Ok(()),
        },
        call::Type::Reconcile if call.reconcile.is_none() => missing("reconcile"),
        call::Type::Message if call.message.is_none() => missing("message"),
        call::Type::Request if call.request.is_none() => missing("request"),
        call::Type::UpdateFramework => match &call.update_framework {
            None => missing("update_framework"),
            Some(update) if update.framework_info.id != call.framework_id => {
                Err("'framework_id' differs from 'update_framework.framework_info.id'".to_owned())
            }
            Some(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// What task validation needs to know about the framework and the agent.
pub struct TaskContext<'a> {
    pub framework_id: &'a FrameworkId,
    pub agent_id: &'a str,
    /// Whether the framework already has a task with this id.
    pub task_exists: &'a dyn Fn(&str) -> bool,
    /// The ExecutorInfo of a running executor with this id on the agent.
    pub running_executor: &'a dyn Fn(&str) -> Option<ExecutorInfo>,
}

/// `task::internal::validateTask`: id, uniqueness, agent id.
fn validate_task_fields(task: &TaskInfo, ctx: &TaskContext<'_>) -> Result<(), String> {
    let id = &task.task_id.value;
    if id.is_empty() {
        return Err("ID must not be empty".to_owned());
    }
    if id.len() > 255 {
        return Err("ID must not be greater than 255 characters".to_owned());
    }
    if id == "." || id == ".." {
        return Err("'.' and '..' are reserved".to_owned());
    }
    if id
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control() || c.is_whitespace())
    {
        return Err(format!("'{id}' contains invalid characters"));
    }
    if (ctx.task_exists)(id) {
        return Err(format!("Task has duplicate ID: {id}"));
    }
    if task.agent_id.value != ctx.agent_id {
        return Err(format!(
            "Task uses invalid agent {} while agent {} is expected",
            task.agent_id.value, ctx.agent_id
        ));
    }
    Ok(())
}

/// `executor::internal::validate` and the compatibility check with the running one.
fn validate_executor(executor: &ExecutorInfo, ctx: &TaskContext<'_>) -> Result<(), String> {
    if let Some(fid) = &executor.framework_id
        && fid != ctx.framework_id
    {
        return Err(format!(
            "ExecutorInfo has an invalid FrameworkID (Actual: {} vs Expected: {})",
            fid.value, ctx.framework_id.value
        ));
    }
    if let Some(running) = (ctx.running_executor)(&executor.executor_id.value) {
        let mut normalized = executor.clone();
        normalized.framework_id = Some(ctx.framework_id.clone());
        if normalized != running {
            return Err(format!(
                "ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.\n\
                 ------------------------------------------------------------\n\
                 Existing ExecutorInfo:\n{running:?}\n\
                 ------------------------------------------------------------\n\
                 ExecutorInfo:\n{normalized:?}\n\
                 ------------------------------------------------------------\n"
            ));
        }
    }
    Ok(())
}

/// `task::validate` for a LAUNCH: returns the resources the task (and its executor,
/// when it is not running yet) take from `offered`.
pub fn validate_task(
    task: &TaskInfo,
    ctx: &TaskContext<'_>,
    offered: &Resources,
    offered_proto: &[brine_proto::mesos::v1::Resource],
) -> Result<Resources, String> {
    validate_task_fields(task, ctx)?;
    if task.executor.is_some() == task.command.is_some() {
        return Err(
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
                .to_owned(),
        );
    }
    let mut total_proto = task.resources.clone();
    if let Some(executor) = &task.executor {
        validate_executor(executor, ctx)?;
        if executor.r#type.is_some() && executor.r#type() != executor_info::Type::Custom {
            return Err("'ExecutorInfo.type' must be 'CUSTOM'".to_owned());
        }
        if executor.command.is_none() {
            return Err("'ExecutorInfo.command' must be set".to_owned());
        }
        if (ctx.running_executor)(&executor.executor_id.value).is_none() {
            total_proto.extend(executor.resources.iter().cloned());
        }
    }
    let total = Resources::from_proto(&total_proto);
    if !offered.contains(&total) {
        return Err(format!(
            "Total resources {} required by task and its executor is more than available {}",
            resources::describe(&with_allocation(&total_proto)),
            resources::describe(offered_proto)
        ));
    }
    Ok(total)
}

/// `task::group::validate` for a LAUNCH_GROUP.
pub fn validate_group(
    executor: &ExecutorInfo,
    tasks: &[TaskInfo],
    ctx: &TaskContext<'_>,
    offered: &Resources,
    offered_proto: &[brine_proto::mesos::v1::Resource],
) -> Result<Resources, String> {
    for task in tasks {
        validate_task_fields(task, ctx)
            .map_err(|e| format!("Task '{}' is invalid: {e}", task.task_id.value))?;
    }
    if tasks.is_empty() {
        return Err("Task group is empty".to_owned());
    }
    for task in tasks {
        if task.executor.is_some() {
            return Err(format!(
                "The `ExecutorInfo` of task '{}' is set, but it should not be",
                task.task_id.value
            ));
        }
        if task.command.is_none() {
            return Err(format!(
                "'CommandInfo' is not set for task '{}'",
                task.task_id.value
            ));
        }
    }
    if executor.r#type.is_none() {
        return Err("'ExecutorInfo.type' must be set".to_owned());
    }
    validate_executor(executor, ctx)?;
    let mut total_proto: Vec<_> = tasks.iter().flat_map(|t| t.resources.clone()).collect();
    if (ctx.running_executor)(&executor.executor_id.value).is_none() {
        total_proto.extend(executor.resources.iter().cloned());
    }
    let total = Resources::from_proto(&total_proto);
    if !offered.contains(&total) {
        return Err(format!(
            "Total resources {} required by task group and its executor are more than available {}",
            resources::describe(&with_allocation(&total_proto)),
            resources::describe(offered_proto)
        ));
    }
    Ok(total)
}

/// The master injects `allocation_info` into a MULTI_ROLE framework's task resources.
#[allow(deprecated)]
fn with_allocation(
    resources: &[brine_proto::mesos::v1::Resource],
) -> Vec<brine_proto::mesos::v1::Resource> {
    resources
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.allocation_info.is_none() {
                r.allocation_info = Some(brine_proto::mesos::v1::resource::AllocationInfo {
                    role: Some(r.role.clone().unwrap_or_else(|| "*".to_owned())),
                });
            }
            r
        })
        .collect()
}
