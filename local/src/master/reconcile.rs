//! RECONCILE answers, as `Master::reconcile` gives them: `SOURCE_MASTER`,
//! `REASON_RECONCILIATION`, no uuid; unknown tasks as `TASK_LOST` (PARTITION_AWARE
//! frameworks: `TASK_GONE` on a known agent, `TASK_UNKNOWN` otherwise).

use brine_proto::mesos::v1::scheduler::call::Reconcile;
use brine_proto::mesos::v1::{TaskState, TaskStatus, task_status};

use super::frameworks::Framework;
use super::tasks::{Task, master_status};

fn latest(task: &Task) -> TaskStatus {
    let mut status = master_status(
        &task.info.task_id,
        task.state,
        task_status::Reason::Reconciliation,
        "Reconciliation: Latest task state".to_owned(),
        Some(task.agent_id.clone()),
    );
    status.executor_id = task.executor_id.clone();
    if let Some(latest) = &task.latest {
        status.container_status = latest.container_status.clone();
        status.healthy = latest.healthy;
    }
    status
}

/// The statuses to send for `reconcile`; `agent_known` says whether an agent id names
/// a registered agent.
pub fn answers(
    framework: &Framework,
    reconcile: &Reconcile,
    agent_known: impl Fn(&str) -> bool,
) -> Vec<TaskStatus> {
    if reconcile.tasks.is_empty() {
        return framework.tasks.values().map(latest).collect();
    }
    let partition_aware = framework.partition_aware();
    reconcile
        .tasks
        .iter()
        .map(|t| {
            if let Some(task) = framework.task(&t.task_id) {
                return latest(task);
            }
            let on_known_agent = t.agent_id.as_ref().is_some_and(|a| agent_known(&a.value));
            let (state, message) = match (on_known_agent, partition_aware) {
                (true, false) => (
                    TaskState::TaskLost,
                    "Reconciliation: Task is unknown to the agent",
                ),
                (true, true) => (
                    TaskState::TaskGone,
                    "Reconciliation: Task is unknown to the agent",
                ),
                (false, false) => (TaskState::TaskLost, "Reconciliation: Task is unknown"),
                (false, true) => (TaskState::TaskUnknown, "Reconciliation: Task is unknown"),
            };
            master_status(
                &t.task_id,
                state,
                task_status::Reason::Reconciliation,
                message.to_owned(),
                t.agent_id.clone(),
            )
        })
        .collect()
}
