//! Status updates: moving jobs along, resolving them, and retrying what
//! infrastructure failures took. Every update with a uuid is acknowledged, after it is
//! acted on; updates without one (made by the master) must not be.

use std::time::Instant;

use brine_proto::mesos::v1::scheduler::call;
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::mesos::v1::{TaskState, TaskStatus};
use brine_proto::payload::{ErrorKind, Payload, PayloadError, TaskOutcome};

use super::{Job, Scheduler};
use crate::job::JobKey;
use crate::store::Record;
use crate::{JobState, TaskError};

/// How an attempt ended, from a terminal status update or a lane answer.
pub(super) struct Ending {
    pub state: TaskState,
    /// The Brine outcome it carried, if any.
    pub outcome: Option<Result<TaskOutcome, PayloadError>>,
    pub reason: Reason,
    pub message: String,
}

impl Ending {
    pub(super) fn of_status(status: &TaskStatus) -> Self {
        Self {
            state: status.state(),
            outcome: status
                .data
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(TaskOutcome::decode),
            reason: status.reason(),
            message: status.message().to_owned(),
        }
    }

    /// A closure's answer on the lane: what its terminal update would have said.
    pub(super) fn of_lane(outcome: TaskOutcome) -> Self {
        let state = match &outcome {
            TaskOutcome::Success { .. } => TaskState::TaskFinished,
            TaskOutcome::Failure(_) => TaskState::TaskFailed,
        };
        Self {
            state,
            outcome: Some(Ok(outcome)),
            reason: Reason::default(),
            message: String::new(),
        }
    }
}

/// What an ended attempt means for a job.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Done(Result<Vec<u8>, TaskError>),
    /// Not the job's fault: run it again (counts towards `max_retries` when `counted`).
    /// `infra`: the failure to blame on the agent, if any.
    Retry {
        counted: bool,
        infra: Option<TaskError>,
    },
    /// The executor did not hold the module it was sent by hash: send the bytes. Only
    /// the first such resend is free.
    Resend {
        counted: bool,
    },
}

/// What the loop knows of a job and its executor when an attempt ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct History {
    /// Attempts made so far, the one that ended included.
    pub attempts: u32,
    pub max_retries: u32,
    /// The attempt already carried the module's bytes after a `module_missing`.
    pub force_inline: bool,
    /// The executor the attempt went to is no longer the agent's current one.
    pub executor_replaced: bool,
}

impl Ending {
    /// Mesos (the agent or master) ended the attempt because its executor or agent is
    /// gone: no Brine outcome, and a reason that says so.
    pub(super) fn executor_ended(&self) -> bool {
        !matches!(self.outcome, Some(Ok(_)))
            && matches!(
                self.reason,
                Reason::ExecutorTerminated | Reason::AgentRemoved | Reason::AgentDisconnected
            )
    }

    /// Retry classification: from how the attempt ended and the job's history alone,
    /// so that it is tested as a table (`tests::verdicts`).
    pub(super) fn verdict(self, history: History) -> Verdict {
        let Ending {
            state,
            outcome,
            reason,
            message,
        } = self;
        match (state, outcome) {
            (TaskState::TaskFinished, Some(Ok(TaskOutcome::Success { result }))) => {
                Verdict::Done(Ok(result))
            }
            (TaskState::TaskFinished, other) => Verdict::Done(Err(TaskError::Protocol(format!(
                "TASK_FINISHED without a success outcome: {other:?}"
            )))),
            (TaskState::TaskKilled, _) => Verdict::Done(Err(TaskError::Killed { message })),
            (_, Some(Ok(TaskOutcome::Failure(failure)))) => match failure.kind {
                ErrorKind::ModuleMissing => Verdict::Resend {
                    counted: history.force_inline,
                },
                ErrorKind::DeadlineExceeded => Verdict::Done(Err(TaskError::Timeout {
                    message: failure.message,
                })),
                kind if kind.is_deterministic() || history.attempts > history.max_retries => {
                    Verdict::Done(Err(TaskError::Guest {
                        kind,
                        message: failure.message,
                        stderr_tail: failure.stderr_tail,
                    }))
                }
                _ => Verdict::Retry {
                    counted: true,
                    infra: None,
                },
            },
            // No Brine outcome (or one that does not decode): Mesos ended it.
            (_, _) => {
                let lost = TaskError::Lost {
                    state: state.as_str_name().to_owned(),
                    reason: reason.as_str_name().to_owned(),
                    message,
                    attempts: history.attempts,
                };
                match state {
                    // The launch itself was invalid: it would be again.
                    TaskState::TaskError if !history.executor_replaced => Verdict::Done(Err(lost)),
                    // Launched on an executor that had just ended (the master saw the
                    // end first): the next attempt starts a new one.
                    TaskState::TaskError => Verdict::Retry {
                        counted: true,
                        infra: None,
                    },
                    _ => Verdict::Retry {
                        counted: true,
                        infra: Some(lost),
                    },
                }
            }
        }
    }
}

impl Scheduler {
    pub(super) fn on_update(&mut self, status: TaskStatus) {
        let state = status.state();
        let task_id = status.task_id.value.as_str();
        tracing::trace!(
            task = task_id,
            state = state.as_str_name(),
            reason = status.reason().as_str_name(),
            "UPDATE"
        );
        if awaits_agent_update(&status) {
            // The master's reconciliation answer carries the state, never the data:
            // the outcome comes with the agent's own update, which it re-sends until
            // acknowledged.
            return;
        }
        if self.on_lease_update(&status) {
            self.acknowledge(&status);
            return;
        }
        if let Some(&id) = self.jobs.by_task.get(task_id) {
            if state.is_terminal() {
                if let Some((job, attempt)) = self.jobs.take_task(task_id) {
                    let (agent, executor) =
                        attempt.map(|a| (a.agent, a.executor)).unwrap_or_default();
                    if let Some(current) = self.executors.by_agent.get_mut(&agent) {
                        current.tasks.remove(task_id);
                    }
                    self.settle(job, agent, &executor, Ending::of_status(&status));
                }
            } else if let Some(job) = self.jobs.jobs.get(&id)
                && matches!(state, TaskState::TaskRunning | TaskState::TaskStarting)
            {
                job.set_state(JobState::Running);
            }
        } else if let Some(key) = self.jobs.orphan_tasks.get(task_id).copied() {
            if state.is_terminal() {
                self.jobs.orphan_tasks.remove(task_id);
                self.orphan_finished(key, &status);
            }
        } else if !state.is_terminal() {
            // Ours, live, and no job wants it (cancelled, presumed lost, or from a life
            // whose records were lost): free its resources.
            if let Some(agent) = &status.agent_id {
                tracing::debug!(task = task_id, "unknown live task: KILL");
                self.kill(task_id, &agent.value);
            }
        }
        self.acknowledge(&status);
    }

    fn acknowledge(&self, status: &TaskStatus) {
        if let (Some(uuid), Some(agent_id)) = (status.uuid.clone(), status.agent_id.clone()) {
            let task_id = status.task_id.clone();
            self.call(call::Type::Acknowledge, |c| {
                c.acknowledge = Some(call::Acknowledge {
                    agent_id,
                    task_id,
                    uuid,
                })
            });
        }
    }

    /// Ends an attempt of `job` on `agent` as `ending` says: resolved, or run again.
    pub(super) fn settle(&mut self, mut job: Job, agent: String, executor: &str, ending: Ending) {
        if ending.executor_ended() {
            self.executor_gone(&agent, None);
        }
        let history = History {
            attempts: job.attempts,
            max_retries: self.config.max_retries,
            force_inline: job.force_inline,
            executor_replaced: self
                .executors
                .by_agent
                .get(&agent)
                .is_none_or(|e| e.id() != executor),
        };
        let (counted, infra) = match ending.verdict(history) {
            Verdict::Done(outcome) => return self.resolve(job, outcome),
            Verdict::Resend { counted } => {
                if let Some(e) = self.executors.by_agent.get_mut(&agent) {
                    e.modules.remove(&job.module.hash);
                }
                job.force_inline = true;
                (counted, None)
            }
            Verdict::Retry { counted, infra } => (counted, infra),
        };
        if !counted {
            job.attempts = job.attempts.saturating_sub(1);
        }
        match infra {
            Some(TaskError::Lost {
                state,
                reason,
                message,
                ..
            }) => self.infra_failure(job, &agent, &state, &reason, &message),
            Some(other) => self.infra_failure(job, &agent, "", "", &other.to_string()),
            None => self.enqueue(job, true),
        }
    }

    /// A job's attempt on `agent` failed for infrastructure reasons: count it against
    /// the agent, avoid the agent for this job, and retry within the limit.
    pub(super) fn infra_failure(
        &mut self,
        mut job: Job,
        agent: &str,
        state: &str,
        reason: &str,
        message: &str,
    ) {
        if !agent.is_empty() {
            self.health.failure(agent, Instant::now());
            job.avoid.insert(agent.to_owned());
        }
        self.retry_or_fail(job, state, reason, message);
    }

    /// Runs `job` again, or fails it as lost once it used up `max_retries`.
    pub(super) fn retry_or_fail(&mut self, job: Job, state: &str, reason: &str, message: &str) {
        if job.attempts <= self.config.max_retries {
            tracing::info!(
                job = %job.key,
                state,
                reason,
                attempts = job.attempts,
                "retrying job elsewhere"
            );
            self.enqueue(job, true);
        } else {
            let attempts = job.attempts;
            self.resolve(
                job,
                Err(TaskError::Lost {
                    state: state.to_owned(),
                    reason: reason.to_owned(),
                    message: message.to_owned(),
                    attempts,
                }),
            );
        }
    }

    fn resolve(&mut self, job: Job, outcome: Result<Vec<u8>, TaskError>) {
        self.record(Record::finished(job.key, &outcome));
        self.count_end(&outcome);
        job.resolve(outcome);
    }

    /// A task of an earlier life ended before its job was submitted again: keep the
    /// outcome for when it is, or mark it to run again.
    fn orphan_finished(&mut self, key: JobKey, status: &TaskStatus) {
        let Some(orphan) = self.jobs.orphans.get_mut(&key) else {
            return;
        };
        orphan.live = false;
        let outcome = status
            .data
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(TaskOutcome::decode);
        let kept = match (status.state(), outcome) {
            (TaskState::TaskFinished, Some(Ok(TaskOutcome::Success { result }))) => {
                Some(Ok(result))
            }
            (_, Some(Ok(TaskOutcome::Failure(f)))) if f.kind.is_deterministic() => {
                Some(Err(TaskError::Guest {
                    kind: f.kind,
                    message: f.message,
                    stderr_tail: f.stderr_tail,
                }))
            }
            // Anything else runs again when the job comes back.
            _ => None,
        };
        if let Some(outcome) = kept {
            self.record(Record::finished(key, &outcome));
            if let Some(orphan) = self.jobs.orphans.get_mut(&key) {
                orphan.stored.outcome = Some(outcome);
            }
        }
    }
}

/// A reconciliation answer saying an executor ended the task: its outcome (the data)
/// is still to come in the agent's update.
fn awaits_agent_update(status: &TaskStatus) -> bool {
    status.reason() == Reason::Reconciliation
        && status.data.as_ref().is_none_or(|d| d.is_empty())
        && matches!(
            status.state(),
            TaskState::TaskFinished | TaskState::TaskFailed | TaskState::TaskKilled
        )
}
