//! ACCEPT, as `Master::accept` takes it: the offers are checked first (an error fails
//! every task), then each LAUNCH task and LAUNCH_GROUP is validated, recorded and sent
//! to its agent, and what is left of the offers goes back with a filter.

use brine_proto::mesos::v1::scheduler::call;
use brine_proto::mesos::v1::{FrameworkId, TaskState, offer, resource, task_status};

use super::frameworks::Framework;
use super::offers::AgentOp;
use super::resources::Resources;
use super::state::State;
use super::tasks::{Task, master_status};
use super::validation::{self, TaskContext};

impl State {
    /// `Master::accept`: offers validated first (an error fails every task with
    /// TASK_LOST / TASK_DROPPED, REASON_INVALID_OFFERS), then each task.
    pub(super) fn accept(&mut self, framework_id: &str, accept: call::Accept) {
        let mut error: Option<String> = None;
        let mut seen: Vec<&str> = Vec::new();
        let mut agent: Option<usize> = None;
        for id in &accept.offer_ids {
            let e = match self.offers.get(&id.value) {
                None => Some(format!("Offer {} is no longer valid", id.value)),
                Some(_) if seen.contains(&id.value.as_str()) => {
                    Some(format!("Duplicate offer {} in offer list", id.value))
                }
                Some(o) if o.offer.framework_id.value != framework_id => Some(format!(
                    "Offer {} has invalid framework {} while framework {} is expected",
                    id.value, o.offer.framework_id.value, framework_id
                )),
                Some(o) => match agent {
                    Some(a) if a != o.agent => Some(format!(
                        "Aggregated offers must belong to one single agent. Offer {} uses agent {} and offer {} uses agent {}",
                        id.value,
                        o.offer.agent_id.value,
                        accept.offer_ids[0].value,
                        self.agents[a].id.value
                    )),
                    _ => {
                        agent = Some(o.agent);
                        None
                    }
                },
            };
            seen.push(&id.value);
            if error.is_none() {
                error = e;
            }
        }
        // Every valid offer named is used up by this call.
        let mut offered = Resources::default();
        for id in &accept.offer_ids {
            let belongs = self
                .offers
                .get(&id.value)
                .is_some_and(|o| o.offer.framework_id.value == framework_id);
            if belongs && let Some(o) = self.offers.remove(&id.value) {
                self.agents[o.agent].offered = self.agents[o.agent].offered.sub(&o.resources);
                offered = offered.add(&o.resources);
            }
        }
        if let Some(f) = self.frameworks.get_mut(framework_id) {
            f.offers_accepted += accept.offer_ids.len() as u64;
        }
        let partition_aware = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.partition_aware());
        let (Some(agent), None) = (agent, error.clone()) else {
            let message = format!(
                "Task launched with invalid offers: {}",
                error.unwrap_or_else(|| "No offers".to_owned())
            );
            let state = if partition_aware {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            for task in launch_tasks(&accept.operations) {
                let status = master_status(
                    &task.task_id,
                    state,
                    task_status::Reason::InvalidOffers,
                    message.clone(),
                    Some(task.agent_id.clone()),
                );
                self.count_state(state);
                self.send_to(framework_id, status);
            }
            return;
        };
        let fid = FrameworkId {
            value: framework_id.to_owned(),
        };
        let role = self
            .frameworks
            .get(framework_id)
            .and_then(Framework::role)
            .unwrap_or_else(|| "*".to_owned());
        let mut remaining = offered;
        for operation in accept.operations {
            match operation.r#type() {
                offer::operation::Type::Launch => {
                    let tasks = operation.launch.map(|l| l.task_infos).unwrap_or_default();
                    for task in tasks {
                        remaining = self.launch(&fid, agent, &role, None, vec![task], remaining);
                    }
                }
                offer::operation::Type::LaunchGroup => {
                    if let Some(group) = operation.launch_group {
                        remaining = self.launch(
                            &fid,
                            agent,
                            &role,
                            Some(group.executor),
                            group.task_group.tasks,
                            remaining,
                        );
                    }
                }
                other => {
                    tracing::warn!(operation = ?other, "offer operation not supported by the local master; ignored");
                }
            }
        }
        let refuse = accept
            .filters
            .as_ref()
            .map(|f| f.refuse_seconds())
            .unwrap_or(5.0);
        self.add_filter(framework_id, agent, remaining, refuse);
    }

    /// Validates and launches one task (LAUNCH) or one task group (LAUNCH_GROUP with
    /// `group_executor`); returns what is left of `offered`.
    fn launch(
        &mut self,
        fid: &FrameworkId,
        agent: usize,
        role: &str,
        mut group_executor: Option<brine_proto::mesos::v1::ExecutorInfo>,
        mut tasks: Vec<brine_proto::mesos::v1::TaskInfo>,
        offered: Resources,
    ) -> Resources {
        // `Master::accept` injects the offer's allocation info into the operation's
        // resources (task and executor) before anything validates them, so the
        // executor kept for the compatibility check, and the one the agent checkpoints
        // and re-registers with, carry it too.
        let allocate = |resources: &mut Vec<brine_proto::mesos::v1::Resource>| {
            for r in resources {
                if r.allocation_info.is_none() {
                    r.allocation_info = Some(resource::AllocationInfo {
                        role: Some(role.to_owned()),
                    });
                }
            }
        };
        if let Some(executor) = group_executor.as_mut() {
            allocate(&mut executor.resources);
        }
        for task in &mut tasks {
            allocate(&mut task.resources);
            if let Some(executor) = task.executor.as_mut() {
                allocate(&mut executor.resources);
            }
        }
        let slot = &self.agents[agent];
        let Some(framework) = self.frameworks.get(&fid.value) else {
            return offered;
        };
        let task_exists = |id: &str| framework.tasks.contains_key(id);
        let running_executor = |id: &str| slot.executor(&fid.value, id).cloned();
        let ctx = TaskContext {
            framework_id: fid,
            agent_id: &slot.id.value,
            task_exists: &task_exists,
            running_executor: &running_executor,
        };
        let offered_proto = offered.to_proto(role);
        let result = match (&group_executor, tasks.first()) {
            (Some(executor), _) => {
                validation::validate_group(executor, &tasks, &ctx, &offered, &offered_proto)
            }
            (None, Some(task)) => validation::validate_task(task, &ctx, &offered, &offered_proto),
            (None, None) => return offered,
        };
        let total = match result {
            Ok(total) => total,
            Err(message) => {
                for task in &tasks {
                    let status = master_status(
                        &task.task_id,
                        TaskState::TaskError,
                        task_status::Reason::TaskInvalid,
                        message.clone(),
                        Some(task.agent_id.clone()),
                    );
                    self.count_state(TaskState::TaskError);
                    self.send_to(&fid.value, status);
                }
                return offered;
            }
        };
        let framework_info = framework.info.clone();
        for mut task in tasks {
            let mut executor = group_executor.clone().or_else(|| task.executor.clone());
            if let Some(executor) = executor.as_mut() {
                executor.framework_id = Some(fid.clone());
                let key = (fid.value.clone(), executor.executor_id.value.clone());
                self.agents[agent].executors.entry(key).or_insert_with(|| {
                    (executor.clone(), Resources::from_proto(&executor.resources))
                });
                if task.executor.is_some() {
                    task.executor = Some(executor.clone());
                }
            }
            let task_resources = Resources::from_proto(&task.resources);
            self.agents[agent].tasks.insert(
                (fid.value.clone(), task.task_id.value.clone()),
                task_resources.clone(),
            );
            if let Some(framework) = self.frameworks.get_mut(&fid.value) {
                framework.tasks.insert(
                    task.task_id.value.clone(),
                    Task {
                        info: task.clone(),
                        agent_id: self.agents[agent].id.clone(),
                        executor_id: executor.as_ref().map(|e| e.executor_id.clone()),
                        resources: task_resources,
                        state: TaskState::TaskStaging,
                        latest: None,
                        freed: false,
                    },
                );
            }
            self.count_state(TaskState::TaskStaging);
            self.count("master/tasks_launched");
            self.agents[agent].send(AgentOp::Launch {
                framework: framework_info.clone(),
                executor: executor.unwrap_or_default(),
                task,
            });
        }
        offered.sub(&total)
    }
}

/// The TaskInfos of LAUNCH and LAUNCH_GROUP operations.
fn launch_tasks(
    operations: &[brine_proto::mesos::v1::offer::Operation],
) -> Vec<&brine_proto::mesos::v1::TaskInfo> {
    let mut out = Vec::new();
    for op in operations {
        if let Some(launch) = &op.launch {
            out.extend(launch.task_infos.iter());
        }
        if let Some(group) = &op.launch_group {
            out.extend(group.task_group.tasks.iter());
        }
    }
    out
}
