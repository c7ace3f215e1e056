//! What the agents tell the master, relayed to the frameworks: status updates (the
//! task's state and resources follow them), executor messages, executor exits
//! (FAILURE), launches an agent refused, and an agent's removal.

use brine_proto::mesos::v1::scheduler::event;
use brine_proto::mesos::v1::{AgentId, ExecutorId, FrameworkId, TaskId, TaskState, task_status};

use super::frameworks::event;
use super::offers::AgentOp;
use super::resources::Resources;
use super::state::{State, status_event};
use super::tasks::master_status;
use crate::agent::AgentEvent;

impl State {
    fn free_task(&mut self, agent: usize, framework_id: &str, task_id: &str) {
        self.agents[agent]
            .tasks
            .remove(&(framework_id.to_owned(), task_id.to_owned()));
    }

    pub(super) fn agent_event(&mut self, index: usize, agent_event: AgentEvent) {
        let agent_id = self.agents[index].id.clone();
        match agent_event {
            AgentEvent::StatusUpdate {
                framework_id,
                status,
            } => {
                let state = status.state();
                self.count_state(state);
                self.count("master/status_updates");
                if state.is_terminal() {
                    self.free_task(index, &framework_id.value, &status.task_id.value);
                }
                let Some(framework) = self.frameworks.get_mut(&framework_id.value) else {
                    // A removed framework's updates are acknowledged here, as nobody
                    // else will.
                    if let Some(uuid) = status.uuid {
                        self.agents[index].send(AgentOp::Acknowledge {
                            framework_id,
                            task_id: status.task_id,
                            uuid,
                        });
                    }
                    return;
                };
                let remove = match framework.tasks.get_mut(&status.task_id.value) {
                    Some(task) => {
                        task.state = state;
                        task.latest = Some(status.clone());
                        if state.is_terminal() {
                            task.freed = true;
                        }
                        state.is_terminal() && status.uuid.is_none()
                    }
                    None => false,
                };
                if remove {
                    framework.tasks.remove(&status.task_id.value);
                }
                framework.send(&status_event(status));
            }
            AgentEvent::ExecutorMessage {
                framework_id,
                executor_id,
                data,
            } => {
                self.count("master/messages_executor_to_framework");
                if let Some(framework) = self.frameworks.get_mut(&framework_id.value) {
                    let mut e = event(event::Type::Message);
                    e.message = Some(event::Message {
                        agent_id,
                        executor_id,
                        data,
                    });
                    framework.send(&e);
                }
            }
            AgentEvent::ExecutorTerminated {
                framework_id,
                executor_id,
                status,
            } => {
                self.executor_gone(index, &framework_id, &executor_id);
                if let Some(framework) = self.frameworks.get_mut(&framework_id.value) {
                    let mut e = event(event::Type::Failure);
                    e.failure = Some(event::Failure {
                        agent_id: Some(agent_id),
                        executor_id: Some(executor_id),
                        status,
                    });
                    framework.send(&e);
                }
            }
        }
    }

    fn executor_gone(
        &mut self,
        index: usize,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        self.agents[index]
            .executors
            .remove(&(framework_id.value.clone(), executor_id.value.clone()));
    }

    pub(super) fn launch_failed(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        agent_id: &AgentId,
        error: &str,
    ) {
        let Some(index) = self.agent_index(&agent_id.value) else {
            return;
        };
        self.free_task(index, &framework_id.value, &task_id.value);
        let executor_id = self
            .frameworks
            .get_mut(&framework_id.value)
            .and_then(|f| f.tasks.remove(&task_id.value))
            .and_then(|t| t.executor_id);
        if let Some(executor_id) = executor_id {
            let still_used = self.frameworks.get(&framework_id.value).is_some_and(|f| {
                f.tasks.values().any(|t| {
                    t.agent_id == *agent_id && t.executor_id.as_ref() == Some(&executor_id)
                })
            });
            if !still_used {
                self.executor_gone(index, framework_id, &executor_id);
            }
        }
        let status = master_status(
            task_id,
            TaskState::TaskError,
            task_status::Reason::TaskInvalid,
            format!("The local agent cannot launch this task: {error}"),
            Some(agent_id.clone()),
        );
        self.count_state(TaskState::TaskError);
        self.send_to(&framework_id.value, status);
    }

    pub(super) fn remove_agent(&mut self, agent_id: &str) -> bool {
        let Some(index) = self.agent_index(agent_id) else {
            return false;
        };
        let hostname = self.agents[index].info.hostname.clone();
        self.remove_agent_at(
            index,
            TaskState::TaskGone,
            &format!("Agent {hostname} removed: agent shut down"),
        );
        true
    }

    /// Withdraws every outstanding offer of the agent at `index` (RESCIND).
    pub(super) fn rescind_agent_offers(&mut self, index: usize) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent == index)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(o) = self.offers.remove(&id) {
                let mut e = event(event::Type::Rescind);
                e.rescind = Some(event::Rescind {
                    offer_id: o.offer.id.clone(),
                });
                self.send_to_framework_event(&o.offer.framework_id.value, &e);
            }
        }
        self.agents[index].offered = Resources::default();
    }

    /// The agent is gone (removed, or unreachable): offers rescinded, its tasks
    /// `TASK_LOST` (`aware_state` for PARTITION_AWARE frameworks, REASON_AGENT_REMOVED,
    /// `message`), a FAILURE naming it to every framework.
    pub(super) fn remove_agent_at(&mut self, index: usize, aware_state: TaskState, message: &str) {
        self.agents[index].active = false;
        self.agents[index].connected = false;
        let slot_id = self.agents[index].id.clone();
        self.rescind_agent_offers(index);
        self.agents[index].tasks.clear();
        self.agents[index].executors.clear();
        let keys: Vec<String> = self.frameworks.keys().cloned().collect();
        for key in keys {
            let Some(framework) = self.frameworks.get_mut(&key) else {
                continue;
            };
            let state = if framework.partition_aware() {
                aware_state
            } else {
                TaskState::TaskLost
            };
            let lost: Vec<String> = framework
                .tasks
                .iter()
                .filter(|(_, t)| t.agent_id == slot_id)
                .map(|(id, _)| id.clone())
                .collect();
            for id in lost {
                if let Some(task) = framework.tasks.remove(&id) {
                    let status = master_status(
                        &task.info.task_id,
                        state,
                        task_status::Reason::AgentRemoved,
                        message.to_owned(),
                        Some(slot_id.clone()),
                    );
                    framework.send(&status_event(status));
                }
            }
            let mut e = event(event::Type::Failure);
            e.failure = Some(event::Failure {
                agent_id: Some(slot_id.clone()),
                executor_id: None,
                status: None,
            });
            framework.send(&e);
        }
    }
}
