//! The event loop's side of leases and the closure lane: a lease enters the task table
//! (the container grows) and reports `TASK_RUNNING` at once; closures from the lane
//! queue for its slots ([`Leases`](crate::leases::Leases)), run on the worker pool
//! exactly as Mesos tasks do, and their outcomes go back over the lane as `Done` frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_proto::lane::{ClosureId, LeaseSpec, ToExecutor, ToScheduler};
use brine_proto::mesos::v1::TaskState;
use brine_proto::payload::{ErrorKind, Payload, TaskFailure, TaskOutcome, TaskSpec};
use bytes::Bytes;

use super::lifecycle::{instance_count, memory_limit};
use super::outcome::failure_status;
use super::{Executor, Input};
use crate::lane::LaneEvent;
use crate::leases::{End, Killed, Next, QueuedClosure};
use crate::pool::{self, Job, Placement, TaskDone};
use crate::runtime::{KillSwitch, Progress};
use crate::updates::StatusSpec;

/// How often running lane closures' progress is looked at (and sent when it changed).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// How long the exit waits for the lane's last frames to be written.
pub const LANE_FLUSH: Duration = Duration::from_millis(500);

/// The failure of a closure naming a lease that is not held or is being ended (the
/// scheduler retries it: `internal` is not deterministic).
fn not_held(lease: &str) -> TaskOutcome {
    TaskOutcome::Failure(TaskFailure::new(
        ErrorKind::Internal,
        format!("lease {lease} is not held by this executor"),
    ))
}

fn killed(why: &str) -> TaskOutcome {
    TaskOutcome::Failure(TaskFailure::new(ErrorKind::Killed, why))
}

impl Executor {
    /// LAUNCH of a lease, already in the task table (the executor is configured and
    /// neither draining nor shutting down).
    pub(super) fn launch_lease(&mut self, id: &str, data: Option<Bytes>) {
        let spec = match data {
            Some(data) if !data.is_empty() => LeaseSpec::decode(&data).map_err(|e| e.to_string()),
            _ => Err("TaskInfo.data is empty; a lease must hold a LeaseSpec".to_owned()),
        };
        let spec = match spec {
            Ok(spec) => spec,
            Err(why) => {
                let failure = TaskFailure::new(
                    ErrorKind::InvalidTaskSpec,
                    format!("invalid LeaseSpec: {why}"),
                );
                self.terminate(id, failure_status(id, TaskState::TaskError, failure));
                return;
            }
        };
        let mem_mb = self.tasks.get(id).map_or(0.0, |t| t.resources.mem_mb);
        self.tasks.start(id, Instant::now());
        self.leases.add(id, mem_mb);
        tracing::info!(lease = id, mem_mb, lane = %spec.lane.addr, "lease held");
        self.send_status(StatusSpec::new(id, TaskState::TaskRunning));
        if self.lane.set_endpoint(spec.lane) {
            self.lane_lost();
        }
        self.dispatch_closures();
    }

    /// Ends a lease: at once if no closure runs in it, else when the last one ends.
    pub(super) fn end_lease(&mut self, id: &str, end: End) {
        let ending = self.leases.end(id, end);
        for closure in ending.refused {
            self.send_done(closure.conn, closure.id, not_held(&closure.lease));
        }
        if let Some(end) = ending.ended {
            self.lease_ended(id, end);
        }
    }

    /// The lease's terminal update; its resources leave the allocation.
    fn lease_ended(&mut self, id: &str, end: End) {
        let status = match end {
            End::Released => {
                let mut status = StatusSpec::new(id, TaskState::TaskFinished);
                status.message = Some("lease released".into());
                status
            }
            End::Killed => failure_status(
                id,
                TaskState::TaskKilled,
                TaskFailure::new(ErrorKind::Killed, "lease killed"),
            ),
        };
        self.terminate(id, status);
    }

    pub(super) fn on_lane_event(&mut self, event: LaneEvent) {
        let news = self.lane.on_event(event, Instant::now());
        for frame in news.frames {
            self.on_lane_frame(news.conn, frame);
        }
        if news.lost {
            self.lane_lost();
        }
        self.dispatch_closures();
    }

    fn on_lane_frame(&mut self, conn: u64, frame: ToExecutor) {
        match frame {
            ToExecutor::Run {
                closure,
                lease,
                spec,
            } => self.on_run(conn, closure, lease, spec),
            ToExecutor::Kill { closure } => match self.leases.kill(conn, closure) {
                Killed::Running => tracing::debug!(closure, "killing a closure"),
                Killed::Queued(id) => self.send_done(conn, id, killed("killed before it started")),
                Killed::Unknown => tracing::debug!(closure, "Kill of a closure not held; ignored"),
            },
            ToExecutor::Release { lease } => {
                if self.leases.holds(&lease) {
                    tracing::info!(lease, "releasing a lease");
                    self.end_lease(&lease, End::Released);
                } else {
                    tracing::debug!(lease, "Release of a lease not held; ignored");
                }
            }
            // Answered by the link itself.
            ToExecutor::Welcome { .. } | ToExecutor::Refused { .. } | ToExecutor::Ping { .. } => {}
        }
    }

    fn on_run(&mut self, conn: u64, id: ClosureId, lease: String, spec: TaskSpec) {
        if self.shutdown.is_some() {
            self.send_done(conn, id, killed("the executor is shutting down"));
        } else if !self.leases.usable(&lease) {
            self.send_done(conn, id, not_held(&lease));
        } else if self.leases.knows(conn, id) {
            tracing::warn!(
                closure = id,
                "Run of a closure already queued or running; ignored"
            );
        } else {
            self.leases.push(QueuedClosure {
                conn,
                id,
                lease,
                spec,
            });
        }
    }

    /// Starts queued closures while slots and runtime instances are free, and at
    /// most `ceil(Σ cpus of the leases)` at once: a lease is a slot (admission and a
    /// memory limit), but the CPUs the container holds are what run closures — ten
    /// leases of 0.1 cpus run one closure at a time, as ten 0.1-cpu tasks would.
    /// Without it a batch of CPU-bound closures ran one thread per slot and starved the
    /// executor's own event loop (heartbeats) on a small machine.
    pub(super) fn dispatch_closures(&mut self) {
        loop {
            let Some(setup) = &self.setup else {
                return;
            };
            let max = setup.runtime.config().max_instances;
            let instances = instance_count(max)
                .saturating_sub(self.tasks.running_count())
                .min(crate::tasks::workers_for(self.tasks.lease_cpus(), max));
            match self.leases.next(instances) {
                None => return,
                Some(Next::Refuse(closure)) => {
                    self.send_done(closure.conn, closure.id, not_held(&closure.lease));
                }
                Some(Next::Start(closure, mem_mb)) => self.start_closure(closure, mem_mb),
            }
        }
    }

    fn start_closure(&mut self, closure: QueuedClosure, mem_mb: f64) {
        let Some(setup) = self.setup.as_mut() else {
            return;
        };
        let (kill, progress, now) = (KillSwitch::new(), Progress::new(), Instant::now());
        let local = self
            .leases
            .start(&closure, kill.clone(), progress.clone(), now);
        let job = Job {
            task_id: format!("closure-{}", closure.id),
            deadline: closure.spec.deadline.or(setup.config.default_task_deadline),
            output_dir: self
                .env
                .sandbox
                .join("closures")
                .join(closure.id.to_string()),
            spec: closure.spec,
            runtime: Arc::clone(&setup.runtime),
            memory_limit_bytes: memory_limit(mem_mb),
            kill,
            progress,
            dataset: setup.dataset.get(),
        };
        let wrap = move |done| Input::ClosureDone { local, done };
        // A closure that came alone runs on this thread as soon as the loop yields (as a
        // Mesos task does); in a burst, the blocking pool keeps the loop where it is.
        let placement = if self.leases.queued_count() == 0 {
            Placement::Dispatcher
        } else {
            Placement::BlockingPool
        };
        pool::spawn(job, self.tx.clone(), wrap, placement);
        self.next_progress.get_or_insert(now + PROGRESS_INTERVAL);
    }

    pub(super) fn on_closure_done(&mut self, local: u64, done: TaskDone) {
        let outcome = match done.outcome {
            Ok(result) => TaskOutcome::Success { result },
            Err(failure) => TaskOutcome::Failure(failure),
        };
        if let Some(compiling) = done.compiling {
            // Answered now; the slot stays taken until the compilation ends, so that
            // its lease (and the memory the container holds for it) is not given back
            // while the compilation still uses it.
            let Some(closure) = self.leases.answered(local) else {
                return;
            };
            let (conn, id) = (closure.conn, closure.id);
            tracing::info!(
                closure = id,
                "the module's compilation outlived the closure: its slot stays taken until \
                 the compilation ends"
            );
            self.send_done(conn, id, outcome);
            let tx = self.tx.clone();
            tokio::task::spawn_blocking(move || {
                compiling.wait();
                // The loop has gone only when the process is exiting.
                let _ = tx.send(Input::CompileEnded { local });
            });
            return;
        }
        let Some((closure, lease_end)) = self.leases.finish(local) else {
            return;
        };
        self.send_done(closure.conn, closure.id, outcome);
        self.slot_freed(&closure.lease, lease_end);
    }

    /// The compilation a closure started, and outlived, ended: its slot is free.
    pub(super) fn on_compile_ended(&mut self, local: u64) {
        if let Some((closure, lease_end)) = self.leases.finish(local) {
            tracing::debug!(closure = closure.id, "compilation ended: slot free");
            self.slot_freed(&closure.lease, lease_end);
        }
    }

    fn slot_freed(&mut self, lease: &str, lease_end: Option<End>) {
        if let Some(end) = lease_end {
            self.lease_ended(lease, end);
        }
        self.dispatch_closures();
        self.dispatch();
    }

    /// Sends a closure's outcome if the connection it came on is still up; otherwise
    /// the scheduler has dispatched it again and the outcome is dropped.
    fn send_done(&mut self, conn: u64, closure: ClosureId, outcome: TaskOutcome) {
        if self.lane.up() != Some(conn) || !self.lane.send(ToScheduler::Done { closure, outcome }) {
            tracing::debug!(closure, "lane connection gone; outcome dropped");
        }
    }

    /// The lane connection was lost: its closures are abandoned (see `crate::leases`).
    pub(super) fn lane_lost(&mut self) {
        let (dropped, killed) = self.leases.connection_lost();
        if dropped + killed > 0 {
            tracing::info!(
                dropped,
                killed,
                "lane lost: queued closures dropped, running ones killed (the scheduler \
                 dispatches them again)"
            );
        }
    }

    /// Sends the progress of running closures that changed, every `PROGRESS_INTERVAL`
    /// while any runs.
    pub(super) fn progress_tick(&mut self, now: Instant) {
        if self.next_progress.is_none_or(|at| at > now) {
            return;
        }
        if let Some(conn) = self.lane.up() {
            for (closure, progress) in self.leases.progress_changes(conn) {
                self.lane.send(ToScheduler::Progress { closure, progress });
            }
        }
        self.next_progress = (self.leases.running_count() > 0).then(|| now + PROGRESS_INTERVAL);
    }

    /// SHUTDOWN: queued closures are answered `killed`, running ones killed, and every
    /// lease ends `TASK_KILLED` once nothing runs in it.
    pub(super) fn shutdown_lane(&mut self) {
        let (queued, ended) = self.leases.end_all();
        for closure in queued {
            self.send_done(
                closure.conn,
                closure.id,
                killed("the executor is shutting down"),
            );
        }
        for id in ended {
            self.lease_ended(&id, End::Killed);
        }
    }
}
