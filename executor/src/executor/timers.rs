//! What the loop does because time passed, and when it must next wake: delayed
//! `TASK_RUNNING` updates, subscription retries and the recovery timeout, heartbeats,
//! the lane's reconnection and closure progress, the idle timeout.

use std::time::{Duration, Instant};

use brine_proto::mesos::v1::TaskState;
use brine_proto::mesos::v1::executor::call;
use brine_proto::payload::{LaneUse, Payload};
use bytes::Bytes;

use super::Executor;
use super::link::LinkState;
use crate::backoff::Reconnect;
use crate::updates::StatusSpec;

impl Executor {
    pub(super) fn on_timers(&mut self, now: Instant) {
        while let Some((at, _)) = self.running_due.front()
            && *at <= now
        {
            if let Some((_, task_id)) = self.running_due.pop_front()
                && self.tasks.get(&task_id).is_some_and(|t| !t.is_terminal())
            {
                self.send_status(StatusSpec::new(task_id, TaskState::TaskRunning));
            }
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.start_subscription();
        }
        if self.link_state != LinkState::Subscribed
            && self.link_state != LinkState::Lost
            && self.reconnect.as_ref().is_some_and(|r| r.deadline() <= now)
        {
            self.recovery_timed_out("no subscription within the recovery timeout");
        }
        if let (Some(at), Some(setup)) = (self.next_heartbeat, &self.setup)
            && at <= now
        {
            let interval = setup.config.heartbeat_interval;
            // An interval too long for the clock (the scheduler's to choose): never again.
            self.next_heartbeat = now.checked_add(interval);
            self.send_heartbeat(now);
        }
        if self.lane.poll(now, self.leases.count() > 0) {
            self.lane_lost();
        }
        self.progress_tick(now);
        if let Some(timeout) = self.idle_timeout()
            && let Some(since) = self.idle_since
            && self.shutdown.is_none()
            && self.tasks.active_count() == 0
            && now.saturating_duration_since(since) >= timeout
        {
            self.begin_shutdown(format!("idle for {timeout:?}"));
        }
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.setup.as_ref()?.config.idle_timeout
    }

    pub(super) fn next_wake(&self, now: Instant) -> Instant {
        let idle = match (self.idle_timeout(), self.idle_since) {
            (Some(timeout), Some(since)) if self.shutdown.is_none() => since.checked_add(timeout),
            _ => None,
        };
        let reconnect = match self.link_state {
            LinkState::Subscribing | LinkState::Waiting => {
                self.reconnect.as_ref().map(Reconnect::deadline)
            }
            _ => None,
        };
        [
            self.retry_at,
            self.next_heartbeat,
            idle,
            reconnect,
            self.shutdown.as_ref().map(|s| s.deadline),
            self.running_due.front().map(|(at, _)| *at),
            self.lane.next_wake(self.leases.count() > 0),
            self.next_progress,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_secs(3600))
    }

    fn send_heartbeat(&mut self, now: Instant) {
        if self.link_state != LinkState::Subscribed {
            return;
        }
        let Some(setup) = &self.setup else {
            return;
        };
        let lane = LaneUse {
            connected: self.lane.connected(),
            ..self.leases.usage()
        };
        let beat = self
            .heartbeats
            .next(&self.tasks, setup.runtime.cached_modules(), lane, now);
        let data = Bytes::from(beat.encode());
        let call = self.call(call::Type::Message, |c| {
            c.message = Some(call::Message { data });
        });
        let _ = self.messages_out.send((self.sub, call));
    }
}
