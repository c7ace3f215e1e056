//! A Mesos task's way through the executor: LAUNCH into the task table, the work queue,
//! dispatch onto the worker pool within the allocation, its terminal update, and KILL.
//! A lease branches off at LAUNCH to `closures.rs`.

use std::sync::Arc;
use std::time::Instant;

use brine_proto::mesos::v1::task_status::Reason;
use brine_proto::mesos::v1::{TaskInfo, TaskState};
use brine_proto::payload::{ErrorKind, Payload, TaskFailure, TaskSpec};

use super::outcome::{failure_status, terminal_status};
use super::{Executor, Input};
use crate::leases::End;
use crate::pool::{self, Job, Placement, Queued, TaskDone};
use crate::tasks::{Phase, bench_labels, bench_timestamps, sanitize_task_id};
use crate::updates::StatusSpec;

/// A task's (or lane closure's) memory limit: whole bytes of its `mem` (MB), a fraction
/// of a byte dropped; none (the runtime's cap) without `mem`.
pub(super) fn memory_limit(mem_mb: f64) -> Option<u64> {
    (mem_mb > 0.0).then_some((mem_mb * 1024.0 * 1024.0) as u64)
}

/// The runtime's instance slots as a count.
pub(super) fn instance_count(max_instances: u32) -> usize {
    usize::try_from(max_instances).unwrap_or(usize::MAX)
}

impl Executor {
    pub(super) fn launch(&mut self, task: TaskInfo, decoded_ns: Option<u64>) {
        let id = task.task_id.value.clone();
        if self.tasks.contains(&id) {
            tracing::warn!(task_id = %id, "LAUNCH of a task already known; ignored");
            return;
        }
        let data = task.data.clone();
        self.tasks.insert(task);
        if let Some(entry) = self.tasks.get_mut(&id) {
            entry.launch_decoded_ns = decoded_ns;
        }
        self.idle_since = None;
        if self.shutdown.is_some() {
            let failure = TaskFailure::new(ErrorKind::Killed, "the executor is shutting down");
            self.terminate(&id, failure_status(&id, TaskState::TaskKilled, failure));
            return;
        }
        if self.draining || self.setup.is_none() {
            let why = if self.draining {
                "the executor is draining and accepts no new tasks"
            } else {
                "the executor is not configured yet"
            };
            let failure = TaskFailure::new(ErrorKind::Internal, why);
            self.terminate(&id, failure_status(&id, TaskState::TaskFailed, failure));
            return;
        }
        if self.tasks.get(&id).is_some_and(|t| t.lease) {
            self.launch_lease(&id, data);
            return;
        }
        let spec = match data {
            Some(data) if !data.is_empty() => TaskSpec::decode(&data).map_err(|e| e.to_string()),
            _ => Err("TaskInfo.data is empty; it must hold a TaskSpec".to_owned()),
        };
        match spec {
            Ok(spec) => {
                self.queue.push(Queued { task_id: id, spec });
                self.dispatch();
            }
            Err(why) => {
                let failure = TaskFailure::new(
                    ErrorKind::InvalidTaskSpec,
                    format!("invalid TaskSpec: {why}"),
                );
                self.terminate(&id, failure_status(&id, TaskState::TaskError, failure));
            }
        }
    }

    /// Starts queued tasks while the allocation allows more to run.
    pub(super) fn dispatch(&mut self) {
        loop {
            let Some(setup) = self.setup.as_mut() else {
                return;
            };
            let max_instances = setup.runtime.config().max_instances;
            // Lane closures take runtime instances too.
            let limit = self
                .tasks
                .concurrency(max_instances)
                .min(instance_count(max_instances).saturating_sub(self.leases.running_count()));
            let Some(queued) = self.queue.next(self.tasks.running_count(), limit) else {
                return;
            };
            let Some(entry) = self.tasks.get(&queued.task_id) else {
                continue;
            };
            let mem_mb = entry.resources.mem_mb;
            let task_id = queued.task_id;
            let job = Job {
                task_id: task_id.clone(),
                deadline: queued.spec.deadline.or(setup.config.default_task_deadline),
                spec: queued.spec,
                runtime: Arc::clone(&setup.runtime),
                memory_limit_bytes: memory_limit(mem_mb),
                kill: entry.kill.clone(),
                progress: entry.progress.clone(),
                output_dir: self
                    .env
                    .sandbox
                    .join("tasks")
                    .join(sanitize_task_id(&task_id)),
                dataset: setup.dataset.get(),
            };
            let delay = setup.config.running_update_delay;
            let now = Instant::now();
            self.tasks.start(&task_id, now);
            pool::spawn(job, self.tx.clone(), Input::TaskDone, Placement::Dispatcher);
            if delay.is_zero() {
                self.send_status(StatusSpec::new(task_id, TaskState::TaskRunning));
            } else if let Some(due) = now.checked_add(delay) {
                self.running_due.push_back((due, task_id));
            }
            // else: a delay too long for the clock never falls due.
        }
    }

    pub(super) fn on_task_done(&mut self, done: TaskDone) {
        match self.tasks.get(&done.task_id) {
            Some(entry) if !entry.is_terminal() => {}
            _ => return,
        }
        tracing::debug!(task_id = %done.task_id, ran_for = ?done.ran_for, "task done");
        let mut status = terminal_status(&done.task_id, done.outcome);
        if bench_timestamps() {
            status.labels = self.tasks.get(&done.task_id).map(bench_labels);
        }
        self.terminate(&done.task_id, status);
    }

    /// Sends a task's terminal update and frees its share of the allocation.
    pub(super) fn terminate(&mut self, task_id: &str, status: StatusSpec) {
        if !self.tasks.finish(task_id, status.state) {
            return;
        }
        self.send_status(status);
        self.dispatch();
        self.dispatch_closures();
        if self.tasks.active_count() == 0 {
            self.idle_since = Some(Instant::now());
            if self.draining {
                self.begin_shutdown("drained".into());
            }
        }
    }

    pub(super) fn kill(&mut self, task_id: &str) {
        let Some(entry) = self.tasks.get(task_id) else {
            tracing::warn!(task_id, "KILL of an unknown task; ignored");
            return;
        };
        match entry.phase {
            Phase::Terminal(_) => tracing::debug!(task_id, "KILL of a finished task; ignored"),
            _ if entry.lease => {
                tracing::info!(task_id, "killing a lease");
                self.end_lease(task_id, End::Killed);
            }
            Phase::Running { .. } => {
                tracing::info!(task_id, "killing");
                entry.kill.kill();
            }
            Phase::Queued => {
                self.queue.remove(task_id);
                let failure = TaskFailure::new(ErrorKind::Killed, "killed before it started");
                let mut status = failure_status(task_id, TaskState::TaskKilled, failure);
                status.reason = Some(Reason::TaskKilledDuringLaunch);
                self.terminate(task_id, status);
            }
        }
    }
}
