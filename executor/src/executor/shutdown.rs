//! Ending the executor. Every cause (a signal, SHUTDOWN, a drain, the idle timeout, the
//! agent lost) comes here: queued tasks are killed, running ones told to stop, the lane
//! closed, and the loop ends once all is settled or the grace period, less a margin for
//! exiting, is used up.

use std::time::{Duration, Instant};

use brine_proto::mesos::v1::TaskState;
use brine_proto::payload::{ErrorKind, TaskFailure};

use super::link::LinkState;
use super::outcome::failure_status;
use super::{Ended, Executor};
use crate::tasks::Phase;

/// The part of the shutdown grace period kept in reserve for exiting: at most 1 s, at
/// most a fifth of the period.
pub fn shutdown_margin(grace: Duration) -> Duration {
    (grace / 5).min(Duration::from_secs(1))
}

pub(super) struct Shutdown {
    reason: String,
    pub(super) deadline: Instant,
}

impl Executor {
    pub(super) fn begin_shutdown(&mut self, reason: String) {
        if self.shutdown.is_some() {
            return;
        }
        let grace = self.env.shutdown_grace_period;
        let deadline = Instant::now() + grace.saturating_sub(shutdown_margin(grace));
        tracing::info!(%reason, ?grace, active_tasks = self.tasks.active_count(), "shutting down");
        self.shutdown = Some(Shutdown { reason, deadline });
        let queued: Vec<String> = self
            .tasks
            .active()
            .filter(|(_, t)| t.phase == Phase::Queued)
            .map(|(id, _)| id.to_owned())
            .collect();
        for id in queued {
            self.queue.remove(&id);
            let failure = TaskFailure::new(ErrorKind::Killed, "the executor is shutting down");
            self.terminate(&id, failure_status(&id, TaskState::TaskKilled, failure));
        }
        for (_, task, _) in self.tasks.running() {
            task.kill.kill();
        }
        self.shutdown_lane();
    }

    pub(super) fn finished(&self, now: Instant) -> Option<Ended> {
        let shutdown = self.shutdown.as_ref()?;
        let done = self.tasks.active_count() == 0
            && (self.updates.is_empty() || self.link_state == LinkState::Lost);
        if done || now >= shutdown.deadline {
            if !done {
                tracing::warn!(
                    active_tasks = self.tasks.active_count(),
                    unacknowledged = self.updates.len(),
                    "shutdown grace period used up; exiting anyway"
                );
            }
            return Some(Ended {
                reason: shutdown.reason.clone(),
                unacknowledged: self.updates.len(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn margin_is_small() {
        assert_eq!(
            shutdown_margin(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            shutdown_margin(Duration::from_secs(2)),
            Duration::from_millis(400)
        );
        assert_eq!(shutdown_margin(Duration::ZERO), Duration::ZERO);
    }
}
