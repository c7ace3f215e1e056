//! Closures over leases: taking leases from offers, sending closures down the lane,
//! their answers, and what happens when a lane, lease or executor goes away.
//!
//! A closure's attempt names the lease it was sent into and its lane id. Whatever
//! ends that attempt — an answer, a lost lane, a lost executor — takes it off the
//! books first ([`Jobs::take_closure`]), so a job is resolved or re-queued once, and a
//! late answer for an id no longer on the books is dropped.

use std::time::Instant;

use brine_proto::lane::{LEASE_LABEL, ToExecutor, ToScheduler};
use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::mesos::v1::{
    Label, Labels, Offer, OfferId, Resource, TaskId, TaskInfo, TaskState, TaskStatus,
};
use brine_proto::payload::{LeaseSpec, ModuleRef, Payload, TaskOutcome, TaskSpec};
use bytes::Bytes;

use super::Scheduler;
use super::jobs::{Attempt, Jobs};
use super::leases::{LeaseRoom, pack};
use super::offers::scalar;
use super::updates::Ending;
use crate::JobState;
use crate::lane::{ConnId, LaneEvent, LaneWriter};
use crate::store::Record;

/// An executor's lane connection, as the loop holds it.
pub(crate) struct LaneLink {
    pub conn: ConnId,
    pub writer: LaneWriter,
    /// When a frame last came from it.
    pub last_heard: Instant,
}

impl Scheduler {
    /// Offers in lease mode: as many leases as pending closures want, spread over the
    /// offers; the rest declined.
    pub(super) fn take_leases(&mut self, offers: Vec<Offer>) {
        let now = Instant::now();
        let mut wanted = self.leases_wanted();
        let mut usable = Vec::new();
        let mut declined: Vec<OfferId> = Vec::new();
        for offer in offers {
            let agent = offer.agent_id.value.clone();
            self.health.known.insert(agent.clone());
            if wanted == 0 || self.health.excludes(&agent, now) {
                declined.push(offer.id);
                continue;
            }
            usable.push(offer);
        }
        let mut rooms: Vec<LeaseRoom> = usable
            .iter()
            .map(|offer| LeaseRoom {
                cpus: scalar(&offer.resources, "cpus"),
                mem: scalar(&offer.resources, "mem"),
                new_executor: !self.executors.by_agent.contains_key(&offer.agent_id.value),
                leases: 0,
            })
            .collect();
        let slot = (self.config.task_cpus, self.config.task_mem_mb);
        let executor = (self.config.executor_cpus, self.config.executor_mem_mb);
        wanted -= pack(&mut rooms, wanted, slot, executor);
        for (offer, room) in usable.into_iter().zip(rooms) {
            if room.leases == 0 {
                declined.push(offer.id);
            } else {
                self.launch_leases(offer, room);
            }
        }
        self.decline(declined);
        if wanted == 0 {
            self.want_offers(false);
        }
    }

    /// One ACCEPT launching `room.leases` leases on the offer's agent.
    fn launch_leases(&mut self, offer: Offer, room: LeaseRoom) {
        let agent = offer.agent_id.value.clone();
        if room.new_executor {
            let generation = self.executors.create(&self.template, &agent);
            let id = super::Template::executor_id(&agent, generation);
            self.record(Record::Executor {
                agent: agent.clone(),
                id,
                generation,
            });
        }
        let Some(executor) = self.executors.by_agent.get_mut(&agent) else {
            return;
        };
        let data = Bytes::from(
            LeaseSpec {
                lane: self.lane.clone(),
            }
            .encode(),
        );
        let labels = Labels {
            labels: vec![Label {
                key: LEASE_LABEL.0.into(),
                value: Some(LEASE_LABEL.1.into()),
            }],
        };
        let now = Instant::now();
        let mut task_infos = Vec::with_capacity(room.leases);
        for _ in 0..room.leases {
            let id = self.leases.launch(&agent, executor.id(), now);
            executor.tasks.insert(id.clone());
            task_infos.push(TaskInfo {
                name: "brine lease".into(),
                task_id: TaskId { value: id },
                agent_id: offer.agent_id.clone(),
                resources: vec![
                    Resource::scalar("cpus", self.config.task_cpus),
                    Resource::scalar("mem", self.config.task_mem_mb),
                ],
                executor: Some(executor.info.clone()),
                data: Some(data.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            });
        }
        tracing::debug!(agent = %agent, leases = task_infos.len(), "ACCEPT: leases");
        self.launch(offer.id, task_infos);
    }

    /// A status update of a lease task; false if `status` is not about a lease.
    pub(super) fn on_lease_update(&mut self, status: &TaskStatus) -> bool {
        let id = status.task_id.value.as_str();
        if !self.leases.is_lease(id) {
            return false;
        }
        let state = status.state();
        if state == TaskState::TaskRunning {
            if self.leases.running(id, Instant::now()) {
                self.dispatch();
            }
        } else if state.is_terminal()
            && let Some(lease) = self.leases.ended(id)
        {
            if let Some(executor) = self.executors.by_agent.get_mut(&lease.agent) {
                executor.tasks.remove(id);
            }
            tracing::debug!(
                lease = id,
                state = state.as_str_name(),
                reason = status.reason().as_str_name(),
                why = status.message(),
                "lease ended"
            );
            if status.reason() == Reason::Reconciliation && self.release_over_lane(id, &lease) {
                self.leases.await_release(id, &lease.executor);
                // The master answered for an agent it does not know (yet): a master
                // restarted without a registry does so before its agents re-register.
                // The executor still answers on its lane, so the lease most likely
                // lives. It takes no more work, and is released so that its
                // resources come back once the agent re-registers (else they stay
                // held by a lease no one uses). Its closures stay on the books: those
                // running finish and answer; the executor refuses those still queued
                // in it, and they are sent again.
            } else if lease.in_flight > 0 {
                // Not released by us: its closures went with it.
                let message = format!(
                    "lease {id} ended {}: {}",
                    state.as_str_name(),
                    status.message()
                );
                let ids = self.jobs.closures_in(|a| a.lease() == Some(id));
                // A master's reconciliation answer says nothing about the agent's
                // health, only about what the master knows.
                let blame = status.reason() != Reason::Reconciliation;
                self.closures_lost(ids, &lease.agent, state.as_str_name(), &message, blame);
            }
            self.want_more_leases();
        }
        true
    }

    /// Sends pending closures to leases with room, as long as there are both.
    pub(super) fn dispatch(&mut self) {
        let depth = self.config.lane_depth.max(1);
        while let Some(id) = self.jobs.peek_pending() {
            let Some(job) = self.jobs.jobs.get(&id) else {
                self.jobs.pop_pending();
                continue;
            };
            let executors = &self.executors;
            let hash = job.module.hash;
            let avoid = &job.avoid;
            let health = &self.health;
            let usable = |l: &super::leases::Lease| {
                executors
                    .by_agent
                    .get(&l.agent)
                    .is_some_and(|e| e.id() == l.executor && e.lane.is_some())
                    && !health.should_avoid(avoid, &l.agent)
            };
            let prefer = |l: &super::leases::Lease| {
                executors
                    .by_agent
                    .get(&l.agent)
                    .is_some_and(|e| e.modules.contains(&hash))
            };
            let Some(lease) = self.leases.pick(usable, prefer, depth) else {
                break;
            };
            self.jobs.pop_pending();
            self.send_closure(id, lease);
        }
        self.want_more_leases();
    }

    fn send_closure(&mut self, id: super::JobId, lease_id: String) {
        let Some(lease) = self.leases.get(&lease_id) else {
            return;
        };
        let agent = lease.agent.clone();
        let (Some(job), Some(executor)) = (
            self.jobs.jobs.get_mut(&id),
            self.executors.by_agent.get_mut(&agent),
        ) else {
            return;
        };
        let Some(link) = &executor.lane else {
            return;
        };
        self.next_closure += 1;
        let closure = self.next_closure;
        job.attempts += 1;
        let hash = job.module.hash;
        let module = if executor.modules.insert(hash) || job.force_inline {
            ModuleRef::inline(job.module.bytes.to_vec())
        } else {
            ModuleRef::by_hash(hash)
        };
        job.force_inline = false;
        let frame = ToExecutor::Run {
            closure,
            lease: lease_id.clone(),
            spec: TaskSpec {
                module,
                export: job.entry.clone(),
                args: job.args.clone(),
                encoding: job.encoding,
                deadline: self.config.task_deadline,
            },
        };
        job.attempt = Some(Attempt {
            task_id: lease_id.clone(),
            agent,
            executor: executor.id().to_owned(),
            closure: Some(closure),
        });
        job.set_state(JobState::Staging);
        // A dead writer shows up as a Closed event, which re-queues this closure.
        link.writer.send(frame);
        self.jobs.by_closure.insert(closure, id);
        self.leases.add_closure(&lease_id);
    }

    /// Lease mode: ask for offers while more leases would help, not otherwise.
    pub(super) fn want_more_leases(&mut self) {
        let wanted = self.leases_wanted();
        self.want_offers(wanted > 0);
    }

    /// How many more leases the pending closures want (see `Leases::wanted`).
    fn leases_wanted(&mut self) -> usize {
        let pending = self.jobs.pending_len();
        let executors = &self.executors;
        self.leases.wanted(
            pending,
            self.config.lane_depth,
            self.config.max_leases,
            |l| {
                executors
                    .by_agent
                    .get(&l.agent)
                    .is_some_and(|e| e.id() == l.executor && e.lane.is_some())
            },
        )
    }

    pub(super) fn on_lane_event(&mut self, event: LaneEvent) {
        match event {
            LaneEvent::Hello {
                conn,
                executor_id,
                agent_id,
                writer,
            } => self.lane_hello(conn, &executor_id, &agent_id, writer),
            LaneEvent::Frames { conn, frames } => {
                let now = Instant::now();
                // Any frame is a sign of life (of the executor whose link is this
                // connection; a stale connection matches none).
                if let Some(link) = self
                    .executors
                    .by_agent
                    .values_mut()
                    .find_map(|e| e.lane.as_mut().filter(|l| l.conn == conn))
                {
                    link.last_heard = now;
                }
                for frame in frames {
                    self.on_frame(conn, frame, now);
                }
                self.dispatch();
            }
            LaneEvent::Closed { conn, why } => self.lane_closed(conn, &why),
        }
    }

    fn lane_hello(&mut self, conn: ConnId, executor_id: &str, agent_id: &str, writer: LaneWriter) {
        let Some(executor) = self.executors.get_mut(agent_id, executor_id) else {
            let reason = format!("{executor_id} on {agent_id} is not a current executor");
            tracing::info!(%reason, "lane hello refused");
            writer.send(ToExecutor::Refused { reason });
            writer.close();
            return;
        };
        writer.send(ToExecutor::Welcome {
            ping_interval: self.config.lane_timeout / 4,
        });
        let old = executor.lane.replace(LaneLink {
            conn,
            writer,
            last_heard: Instant::now(),
        });
        tracing::info!(agent = agent_id, executor = executor_id, conn, "lane up");
        if let Some(old) = old {
            // The executor reconnected: whatever was in flight on the old connection
            // will not be answered there.
            old.writer.close();
            self.lane_lost(agent_id, executor_id, "the executor opened a new lane");
        }
        // A new connection: the executor abandoned the old ones' closures.
        self.jobs.unanswerable(executor_id);
        self.dispatch();
    }

    fn on_frame(&mut self, conn: ConnId, frame: ToScheduler, now: Instant) {
        match frame {
            ToScheduler::Done { closure, outcome } => self.closure_done(closure, outcome, now),
            ToScheduler::Progress { closure, progress } => {
                if let Some(job) = self
                    .jobs
                    .by_closure
                    .get(&closure)
                    .and_then(|id| self.jobs.jobs.get(id))
                {
                    job.set_state(JobState::Running);
                    job.set_progress(Some(progress));
                }
            }
            ToScheduler::Pong { .. } => {}
            ToScheduler::Hello { .. } => {
                tracing::debug!(conn, "second Hello on a lane; ignored");
            }
        }
    }

    fn closure_done(&mut self, closure: u64, outcome: TaskOutcome, now: Instant) {
        let Some((job, attempt)) = self.jobs.take_closure(closure) else {
            // Cancelled, or re-dispatched after its lane was lost: already handled.
            tracing::trace!(closure, "answer for a closure no longer in flight");
            if self.jobs.written_off.remove(&closure).is_some() {
                self.jobs.ended.completed_twice += 1;
            }
            return;
        };
        self.leases.closure_done(&attempt.task_id, now);
        self.settle(
            job,
            attempt.agent,
            &attempt.executor,
            Ending::of_lane(outcome),
        );
    }

    fn lane_closed(&mut self, conn: ConnId, why: &str) {
        let found = self.executors.by_agent.values_mut().find_map(|e| {
            let ours = e.lane.as_ref().is_some_and(|l| l.conn == conn);
            ours.then(|| {
                e.lane = None;
                (e.agent.clone(), e.id().to_owned())
            })
        });
        if let Some((agent, executor)) = found {
            let in_flight = self
                .jobs
                .closures_in(|a| a.closure.is_some() && a.executor == executor)
                .len();
            if in_flight > 0 {
                tracing::warn!(agent = %agent, executor = %executor, %why, in_flight, "lane lost");
            } else {
                // An executor whose last lease ended closes its lane: nothing lost.
                tracing::debug!(agent = %agent, executor = %executor, %why, "lane closed");
            }
            self.lane_lost(&agent, &executor, why);
        }
    }

    /// Every closure in flight on `executor`'s lane goes to another attempt.
    fn lane_lost(&mut self, agent: &str, executor: &str, why: &str) {
        let ids = self
            .jobs
            .closures_in(|a| a.closure.is_some() && a.executor == executor);
        let message = format!("lane to executor {executor} lost: {why}");
        self.closures_lost(ids, agent, "TASK_LOST", &message, false);
    }

    /// Re-queues (within `max_retries`) the jobs of closures that will not be
    /// answered. `blame` counts it against the agent (its executor or lease died).
    pub(super) fn closures_lost(
        &mut self,
        closures: Vec<u64>,
        agent: &str,
        state: &str,
        message: &str,
        blame: bool,
    ) {
        let now = Instant::now();
        for closure in closures {
            if let Some((job, attempt)) = self.jobs.take_closure(closure) {
                self.jobs
                    .written_off
                    .insert(closure, attempt.executor.clone());
                self.leases.closure_done(&attempt.task_id, now);
                if blame {
                    self.infra_failure(job, agent, state, "REASON_EXECUTOR_TERMINATED", message);
                } else {
                    self.retry_or_fail(job, state, "REASON_LANE_LOST", message);
                }
            }
        }
    }

    /// Lane liveness and idle leases, on the loop's clock.
    pub(super) fn lane_tick(&mut self, now: Instant) {
        let timeout = self.config.lane_timeout;
        let mut silent = Vec::new();
        for executor in self.executors.by_agent.values_mut() {
            if let Some(link) = &executor.lane {
                if now.saturating_duration_since(link.last_heard) > timeout {
                    silent.push((executor.agent.clone(), executor.id().to_owned()));
                    link.writer.close();
                    executor.lane = None;
                } else {
                    link.writer.send(ToExecutor::Ping { nonce: 0 });
                }
            }
        }
        for (agent, executor) in silent {
            tracing::warn!(%agent, %executor, ?timeout, "lane silent: presumed lost");
            self.lane_lost(&agent, &executor, "silent past the lane timeout");
        }
        if self.jobs.pending_len() > 0 {
            return;
        }
        for (id, lease) in self
            .leases
            .release_idle(now, self.config.lease_idle_timeout)
        {
            let released = self.release_over_lane(&id, &lease);
            tracing::debug!(lease = %id, via_lane = released, "releasing an idle lease");
            if !released {
                self.kill(&id, &lease.agent);
            }
        }
    }

    /// Sends `Release` for `id` on its executor's lane; false if that lane is not up.
    fn release_over_lane(&self, id: &str, lease: &super::leases::Lease) -> bool {
        self.executors
            .by_agent
            .get(&lease.agent)
            .filter(|e| e.id() == lease.executor)
            .and_then(|e| e.lane.as_ref())
            .is_some_and(|l| {
                l.writer.send(ToExecutor::Release {
                    lease: id.to_owned(),
                })
            })
    }

    /// The lane ids of leases' closures, for jobs cancelled by their handle.
    pub(super) fn cancel_closure(&mut self, attempt: &Attempt) {
        let Some(closure) = attempt.closure else {
            return;
        };
        self.jobs.by_closure.remove(&closure);
        self.leases.closure_done(&attempt.task_id, Instant::now());
        if let Some(link) = self
            .executors
            .by_agent
            .get(&attempt.agent)
            .filter(|e| e.id() == attempt.executor)
            .and_then(|e| e.lane.as_ref())
        {
            link.writer.send(ToExecutor::Kill { closure });
        }
    }
}

impl Jobs {
    /// Closure ids of jobs whose attempt matches.
    pub(crate) fn closures_in(&self, matches: impl Fn(&Attempt) -> bool) -> Vec<u64> {
        self.by_closure
            .iter()
            .filter(|(_, id)| {
                self.jobs
                    .get(id)
                    .and_then(|j| j.attempt.as_ref())
                    .is_some_and(&matches)
            })
            .map(|(closure, _)| *closure)
            .collect()
    }
}
