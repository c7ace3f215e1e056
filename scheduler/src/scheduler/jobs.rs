//! The job table: every unresolved job, the queue of pending ones, and the jobs a
//! previous life of this scheduler left in the state store.

use std::collections::{HashMap, HashSet, VecDeque};

use brine_proto::payload::Encoding;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::job::{JobId, JobKey};
use crate::store::StoredJob;
use crate::task::Reply;
use crate::{JobState, JobStatus, Module, TaskError};

/// Where a job's current attempt runs.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// Its Mesos task: the task itself, or the lease it runs in (lane closures).
    pub task_id: String,
    pub agent: String,
    /// The executor it was sent to.
    pub executor: String,
    /// Its id on the lane, for a closure sent over the lane.
    pub closure: Option<u64>,
}

impl Attempt {
    /// The lease a lane closure runs in.
    pub(crate) fn lease(&self) -> Option<&str> {
        self.closure.map(|_| self.task_id.as_str())
    }
}

/// One submitted closure, across its attempts.
pub(crate) struct Job {
    pub id: JobId,
    /// Its identity across scheduler restarts; set when the loop accepts it.
    pub key: JobKey,
    pub module: Module,
    pub entry: String,
    pub args: Vec<u8>,
    pub encoding: Encoding,
    pub attempts: u32,
    /// Send the module bytes whatever the executor is believed to hold (it said
    /// `module_missing`).
    pub force_inline: bool,
    /// Agents where an attempt failed for infrastructure reasons.
    pub avoid: HashSet<String>,
    pub attempt: Option<Attempt>,
    reply: Reply,
    status: watch::Sender<JobStatus>,
}

impl Job {
    pub(crate) fn new(
        id: JobId,
        module: Module,
        entry: String,
        args: Vec<u8>,
        encoding: Encoding,
        reply: Reply,
        status: watch::Sender<JobStatus>,
    ) -> Self {
        Self {
            id,
            key: JobKey([0; 16]),
            module,
            entry,
            args,
            encoding,
            attempts: 0,
            force_inline: false,
            avoid: HashSet::new(),
            attempt: None,
            reply,
            status,
        }
    }

    pub(crate) fn state(&self) -> JobState {
        self.status.borrow().state
    }

    /// Moves the job to `state`, with the current attempt's agent and task.
    pub(crate) fn set_state(&self, state: JobState) {
        let (agent, task_id) = match &self.attempt {
            Some(a) => (Some(a.agent.clone()), Some(a.task_id.clone())),
            None => (None, None),
        };
        let attempts = self.attempts;
        self.status.send_if_modified(|s| {
            let changed = s.state != state || s.attempts != attempts || s.task_id != task_id;
            if state == JobState::Pending || s.task_id != task_id {
                s.progress = None;
            }
            s.state = state;
            s.attempts = attempts;
            if agent.is_some() {
                s.agent = agent;
            }
            s.task_id = task_id;
            changed
        });
    }

    pub(crate) fn set_progress(&self, progress: Option<f64>) {
        self.status.send_if_modified(|s| {
            let changed = s.progress != progress;
            s.progress = progress;
            changed
        });
    }

    /// Ends the job: the handle gets `result`.
    pub(crate) fn resolve(self, result: Result<Vec<u8>, TaskError>) {
        self.set_state(if result.is_ok() {
            JobState::Succeeded
        } else {
            JobState::Failed
        });
        // The user may have dropped the handle; nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// A job of an earlier life of the scheduler (read from the state store), until it is
/// submitted again.
#[derive(Debug)]
pub(crate) struct Orphan {
    pub stored: StoredJob,
    /// Its last task is not known to have ended.
    pub live: bool,
}

/// Counts kept as jobs end, for the status endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ended {
    pub succeeded: u64,
    pub failed: u64,
    /// Answers that came for closures already written off (their lane or executor
    /// was presumed lost and the job sent elsewhere): work that ran to completion
    /// twice.
    pub completed_twice: u64,
}

#[derive(Default)]
pub(crate) struct Jobs {
    pub jobs: HashMap<JobId, Job>,
    /// Jobs waiting for an offer, oldest first. May hold ids of cancelled jobs, which
    /// are skipped.
    pub pending: VecDeque<JobId>,
    pub by_task: HashMap<String, JobId>,
    /// Jobs whose attempt is a closure in flight on a lane.
    pub by_closure: HashMap<u64, JobId>,
    /// Closures written off as lost whose answer may still come on the connection
    /// they were sent on (see [`Ended::completed_twice`]), with their executor. An
    /// entry goes when the answer comes, when the executor opens a new lane (it
    /// abandons the old connection's closures) or when it is gone.
    pub written_off: HashMap<u64, String>,
    /// How many times each (module, entry, encoding, args) was submitted: the n-th
    /// identical submission is the same job in every life of the scheduler.
    occurrences: HashMap<[u8; 32], u32>,
    pub orphans: HashMap<JobKey, Orphan>,
    /// Live tasks of orphans, for their updates.
    pub orphan_tasks: HashMap<String, JobKey>,
    pub ended: Ended,
}

impl Jobs {
    /// The jobs a state store remembers.
    pub(crate) fn with_orphans(stored: HashMap<JobKey, StoredJob>) -> Self {
        let mut jobs = Jobs::default();
        for (key, stored) in stored {
            let live = stored.outcome.is_none() && stored.task.is_some();
            if live && let Some((task, _, _)) = &stored.task {
                jobs.orphan_tasks.insert(task.clone(), key);
            }
            jobs.orphans.insert(key, Orphan { stored, live });
        }
        jobs
    }

    /// The key of the next submission of this closure.
    pub(crate) fn key_for(&mut self, job: &Job) -> JobKey {
        let mut content = Sha256::new();
        content.update(job.module.hash.0);
        content.update((job.entry.len() as u64).to_le_bytes());
        content.update(job.entry.as_bytes());
        content.update([job.encoding.abi_code() as u8]);
        content.update(&job.args);
        let content: [u8; 32] = content.finalize().into();
        let n = self.occurrences.entry(content).or_insert(0);
        *n += 1;
        let mut key = Sha256::new();
        key.update(content);
        key.update(n.to_le_bytes());
        let digest: [u8; 32] = key.finalize().into();
        let mut short = [0; 16];
        short.copy_from_slice(&digest[..16]);
        JobKey(short)
    }

    /// The next pending job still in the table, left in the queue.
    pub(crate) fn peek_pending(&mut self) -> Option<JobId> {
        self.has_pending()
            .then(|| self.pending.front().copied())
            .flatten()
    }

    /// How many jobs wait (cancelled ones behind the first live one included: an
    /// estimate that only errs high, and only until they reach the front).
    pub(crate) fn pending_len(&mut self) -> usize {
        if self.has_pending() {
            self.pending.len()
        } else {
            0
        }
    }

    /// Forgets the written-off closures of `executor`: no answer can come for them.
    pub(crate) fn unanswerable(&mut self, executor: &str) {
        self.written_off.retain(|_, e| e != executor);
    }

    /// Takes the job whose current attempt is lane closure `closure` off the books.
    pub(crate) fn take_closure(&mut self, closure: u64) -> Option<(Job, Attempt)> {
        let id = self.by_closure.remove(&closure)?;
        let attempt = self.jobs.get_mut(&id)?.attempt.take()?;
        let job = self.jobs.remove(&id)?;
        Some((job, attempt))
    }

    /// The next pending job still in the table.
    pub(crate) fn pop_pending(&mut self) -> Option<JobId> {
        while let Some(id) = self.pending.pop_front() {
            if self
                .jobs
                .get(&id)
                .is_some_and(|j| j.state() == JobState::Pending)
            {
                return Some(id);
            }
        }
        None
    }

    /// Whether a job waits for an offer. Cancelled ids at the front are dropped on the
    /// way, so asking after every offer stays cheap however many were cancelled.
    pub(crate) fn has_pending(&mut self) -> bool {
        while let Some(id) = self.pending.front() {
            if self
                .jobs
                .get(id)
                .is_some_and(|j| j.state() == JobState::Pending)
            {
                return true;
            }
            self.pending.pop_front();
        }
        false
    }

    /// Takes the job whose current attempt is `task_id` off the books of that task.
    /// Also returns the attempt it was.
    pub(crate) fn take_task(&mut self, task_id: &str) -> Option<(Job, Option<Attempt>)> {
        let id = self.by_task.remove(task_id)?;
        let mut job = self.jobs.remove(&id)?;
        let attempt = job.attempt.take();
        Some((job, attempt))
    }

    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        let (mut pending, mut staging, mut running) = (0, 0, 0);
        for job in self.jobs.values() {
            match job.state() {
                JobState::Pending => pending += 1,
                JobState::Staging => staging += 1,
                JobState::Running => running += 1,
                JobState::Succeeded | JobState::Failed => {}
            }
        }
        (pending, staging, running)
    }
}
