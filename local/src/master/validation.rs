//! Validation of scheduler calls, offers and tasks with Mesos's texts
//! (`src/master/validation.cpp`: `scheduler::call::validate`, `offer::validate`,
//! `task::validate`, `task::group::validate`).

use std::collections::BTreeSet;

use brine_proto::mesos::v1::scheduler::{Call, call};
use brine_proto::mesos::v1::{
    ExecutorInfo, FrameworkId, FrameworkInfo, TaskInfo, executor_info, framework_info,
};

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

/// Whether the framework has the MULTI_ROLE capability
/// (`protobuf::frameworkHasCapability`; a capability without a type is `UNKNOWN`).
pub fn multi_role(info: &FrameworkInfo) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type() == framework_info::capability::Type::MultiRole)
}

/// `protobuf::framework::getRoles`: `roles` of a MULTI_ROLE framework, else `role`
/// (`*` when not set).
pub fn framework_roles(info: &FrameworkInfo) -> BTreeSet<String> {
    if multi_role(info) {
        info.roles.iter().cloned().collect()
    } else {
        BTreeSet::from([info.role().to_owned()])
    }
}

/// `roles::validate` (`src/common/roles.cpp`).
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.starts_with('/') {
        return Err(format!("Role '{role}' cannot start with a slash"));
    }
    if role.ends_with('/') {
        return Err(format!("Role '{role}' cannot end with a slash"));
    }
    if role.contains("//") {
        return Err(format!("Role '{role}' cannot contain two adjacent slashes"));
    }
    let components: Vec<&str> = role.split('/').filter(|c| !c.is_empty()).collect();
    if components.is_empty() {
        return Err("Role names cannot be the empty string".to_owned());
    }
    for component in components {
        match component {
            "." => return Err(format!("Role '{role}' cannot include '.' as a component")),
            ".." => return Err(format!("Role '{role}' cannot include '..' as a component")),
            "*" => return Err(format!("Role '{role}' cannot include '*' as a component")),
            _ => {}
        }
        if component.starts_with('-') {
            return Err(format!(
                "Role component '{component}' is invalid because it starts with a dash"
            ));
        }
        if component
            .bytes()
            .any(|b| matches!(b, 0x09..=0x0d | 0x20 | 0x7f))
        {
            return Err(format!(
                "Role component '{component}' is invalid because it contains backspace or \
                 whitespace"
            ));
        }
    }
    Ok(())
}

/// `validation::framework::validate` and what `Master::validateFramework` checks before
/// the completed-framework lookup: roles (`validateRoles`), the framework id, the
/// failover timeout. The remaining checks of `validateFramework` cannot fail here: the
/// local master has no `--roles` whitelist and allows `root` (`--root_submissions`), and
/// our `FrameworkInfo` has no `offer_filters`.
#[allow(deprecated)] // `FrameworkInfo.role`: Mesos still checks it.
pub fn validate_framework(info: &FrameworkInfo) -> Result<(), String> {
    let multi_role = multi_role(info);
    if multi_role && info.role.is_some() {
        return Err(
            "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
                .to_owned(),
        );
    }
    if !multi_role && !info.roles.is_empty() {
        return Err(
            "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
                .to_owned(),
        );
    }
    if multi_role {
        let mut seen: Vec<&str> = Vec::new();
        let mut duplicates: Vec<&str> = Vec::new();
        for role in &info.roles {
            if seen.contains(&role.as_str()) {
                if !duplicates.contains(&role.as_str()) {
                    duplicates.push(role);
                }
            } else {
                seen.push(role);
            }
        }
        if !duplicates.is_empty() {
            return Err(format!(
                "'FrameworkInfo.roles' contains duplicate items: {{ {} }}",
                duplicates.join(", ")
            ));
        }
        for role in &info.roles {
            validate_role(role)
                .map_err(|e| format!("'FrameworkInfo.roles' contains invalid role: {e}"))?;
        }
    } else {
        validate_role(info.role())
            .map_err(|e| format!("'FrameworkInfo.role' is not a valid role: {e}"))?;
    }
    if let Some(id) = &info.id
        && !id.value.is_empty()
    {
        validate_id(&id.value)?;
    }
    let timeout = info.failover_timeout.unwrap_or(0.0);
    // stout's `Duration::create`: the nanoseconds must fit in an int64 (NaN passes).
    let nanos = timeout * 1e9;
    if nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
        return Err(format!(
            "The framework failover_timeout ({}) is invalid",
            format_double(timeout)
        ));
    }
    Ok(())
}

/// `validateSuppressedRoles`, as `createAllocatorFrameworkOptions` runs it at SUBSCRIBE.
pub fn validate_suppressed_roles(
    info: &FrameworkInfo,
    suppressed: &[String],
) -> Result<(), String> {
    let roles = framework_roles(info);
    let invalid: BTreeSet<&str> = suppressed
        .iter()
        .filter(|r| !roles.contains(*r))
        .map(String::as_str)
        .collect();
    if invalid.is_empty() {
        return Ok(());
    }
    Err(format!(
        "Suppressed roles {{ {} }} are not contained in the set of roles",
        invalid.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

/// A double as C++'s `std::ostream << double` writes it (`%g`, 6 significant digits):
/// `60`, `0.5`, `1e+10`, `inf`.
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // The exponent after rounding to 6 significant digits decides the style.
    let scientific = format!("{v:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        trim(&format!("{v:.decimals$}"))
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

/// `common::validation::validateID` (task, executor, framework and agent ids): not
/// empty, at most `NAME_MAX` (255) bytes, not `.` or `..`, no control character
/// (`iscntrl` of each byte in the C locale) and no `/` or `\\`.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".to_owned());
    }
    if id.len() > 255 {
        return Err("ID must not be greater than 255 characters".to_owned());
    }
    if id == "." || id == ".." {
        return Err(format!("'{id}' is disallowed"));
    }
    if id
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == b'/' || b == b'\\')
    {
        return Err(format!("'{id}' contains invalid characters"));
    }
    Ok(())
}

/// `task::internal::validateTask`: id, uniqueness, agent id.
fn validate_task_fields(task: &TaskInfo, ctx: &TaskContext<'_>) -> Result<(), String> {
    let id = &task.task_id.value;
    validate_id(id)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::mesos::v1::framework_info::{Capability, capability};

    fn multi_role_info(roles: &[&str]) -> FrameworkInfo {
        FrameworkInfo {
            user: "root".into(),
            name: "t".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            capabilities: vec![Capability {
                r#type: Some(capability::Type::MultiRole as i32),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn doubles_print_as_cpp_streams_them() {
        for (v, text) in [
            (60.0, "60"),
            (0.5, "0.5"),
            (-1.0, "-1"),
            (1e10, "1e+10"),
            (9.3e9, "9.3e+09"),
            (-1e300, "-1e+300"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(format_double(v), text, "{v}");
        }
    }

    #[test]
    fn roles_as_mesos_validates_them() {
        for role in ["*", "a", "a/b", "dev-1", "a.b"] {
            assert_eq!(validate_role(role), Ok(()), "{role}");
        }
        for (role, error) in [
            ("", "Role names cannot be the empty string"),
            ("/a", "Role '/a' cannot start with a slash"),
            ("a/", "Role 'a/' cannot end with a slash"),
            ("a//b", "Role 'a//b' cannot contain two adjacent slashes"),
            ("a/./b", "Role 'a/./b' cannot include '.' as a component"),
            ("..", "Role '..' cannot include '..' as a component"),
            ("a/*", "Role 'a/*' cannot include '*' as a component"),
            (
                "-a",
                "Role component '-a' is invalid because it starts with a dash",
            ),
            (
                "a b",
                "Role component 'a b' is invalid because it contains backspace or whitespace",
            ),
        ] {
            assert_eq!(validate_role(role), Err(error.to_owned()), "{role:?}");
        }
    }

    #[test]
    #[allow(deprecated)] // `FrameworkInfo.role`
    fn framework_info_checks_in_mesos_order() {
        assert_eq!(validate_framework(&multi_role_info(&["*"])), Ok(()));
        assert_eq!(
            validate_framework(&multi_role_info(&["b", "a", "b", "a", "b"])),
            Err("'FrameworkInfo.roles' contains duplicate items: { b, a }".to_owned())
        );
        let mut info = multi_role_info(&["*"]);
        info.failover_timeout = Some(1e10);
        assert_eq!(
            validate_framework(&info),
            Err("The framework failover_timeout (1e+10) is invalid".to_owned())
        );
        info.failover_timeout = Some(9e9);
        assert_eq!(validate_framework(&info), Ok(()));
        info.failover_timeout = Some(f64::NAN);
        assert_eq!(validate_framework(&info), Ok(()));
        info.id = Some(FrameworkId { value: "..".into() });
        assert_eq!(
            validate_framework(&info),
            Err("'..' is disallowed".to_owned())
        );
        info.id = Some(FrameworkId {
            value: "a/b".into(),
        });
        assert_eq!(
            validate_framework(&info),
            Err("'a/b' contains invalid characters".to_owned())
        );
        let plain = FrameworkInfo {
            user: "root".into(),
            name: "t".into(),
            role: Some("/x".into()),
            ..Default::default()
        };
        assert_eq!(
            validate_framework(&plain),
            Err(
                "'FrameworkInfo.role' is not a valid role: Role '/x' cannot start with a slash"
                    .to_owned()
            )
        );
        assert_eq!(
            validate_suppressed_roles(
                &multi_role_info(&["a"]),
                &["b".into(), "a".into(), "*".into()]
            ),
            Err("Suppressed roles { *, b } are not contained in the set of roles".to_owned())
        );
        assert_eq!(validate_suppressed_roles(&plain, &["/x".into()]), Ok(()));
    }
}
