//! The state store: what a restarted scheduler needs to carry on as the same framework.
//!
//! A JSON-lines file of [`Record`]s, appended as things happen and compacted when it is
//! opened. It holds the FrameworkID, the executors started (their ids are never
//! reused), and for each job (by [`JobKey`]) its last launched task and its outcome.
//! The file itself (locking, writing, syncing, reading back) is [`journal`]'s.
//!
//! # What survives what
//!
//! [`Store::append`] hands its record to the kernel (one write(2)) before it returns,
//! and the scheduler appends a record before it queues the call that acts on it: the
//! `Executor` and `Launched` records before the ACCEPT that launches them, `Finished`
//! before the acknowledgement of the update that ended the job.
//!
//! - **The scheduler's process dies** (SIGKILL, OOM kill, abort): nothing appended is
//!   lost, flushed or not. A write cut short leaves a torn last line, dropped when the
//!   file is opened again; nothing had been acted on because of it.
//! - **The machine dies** (power loss, kernel crash): what was synced survives.
//!   - `Framework` and `Executor` records are synced (`fdatasync`) before `append`
//!     returns: a restarted scheduler always re-subscribes as the framework the master
//!     knows, and never reuses an executor id (generation) an ACCEPT may have used.
//!     They are rare: one per subscription, one per executor started.
//!   - `Launched`, `Finished` and `ExecutorGone` records, one or more per job, are
//!     group-committed: [`Store::flush`], at the end of every turn of the scheduling
//!     loop, wakes a background thread that syncs everything appended so far while the
//!     loop carries on. A machine crash loses those whose sync had not completed: the
//!     turns of about the last `fdatasync` or two, milliseconds on an SSD (no hard
//!     bound if the disk stalls). Their calls may have reached the master, and a
//!     restarted scheduler then acts as for any record lost: a job whose `Launched` was
//!     lost does not know its task and runs again when submitted again; a job whose
//!     `Finished` was lost (its update acknowledged) may run again; an executor whose
//!     `ExecutorGone` was lost is adopted, heard nothing from, and replaced.
//!   - Opening compacts: the new file is synced before it is renamed over the old one,
//!     and the directory after, so a crash while opening leaves the old file or the new
//!     one, whole. A new file is made durable (its directory synced) the same way.
//! - **The store is dropped** (the scheduler stopped or abandoned): it syncs what is
//!   left first. [`Store::remove`] (after TEARDOWN) does not sync the directory: a file
//!   that a machine crash brings back names a torn-down framework, which the master
//!   refuses, and the cluster then starts afresh.
//!
//! # One scheduler per file
//!
//! An open store holds an exclusive `flock` on the file: opening it again, from this
//! process or another, fails with [`StoreError::Locked`] naming the file. The lock goes
//! when the store is dropped or its process dies, however it dies.
//!
//! # Torn and corrupt files
//!
//! A torn last record (a crash in the middle of an append) is dropped with a warning;
//! any other damage, and a record that makes no sense (a result that is not base64), is
//! refused with [`StoreError::Corrupt`] (file, byte offset, line, why), leaving the file
//! as it is. See [`journal`] for the exact rules and why.

mod journal;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::TaskError;
use crate::job::JobKey;
pub use journal::StoreError;
use journal::{Claimed, Durability, Journal};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub(crate) enum Record {
    Framework {
        id: String,
    },
    Executor {
        agent: String,
        id: String,
        generation: u64,
    },
    ExecutorGone {
        agent: String,
        id: String,
    },
    Launched {
        job: JobKey,
        task: String,
        agent: String,
        attempt: u32,
    },
    Finished {
        job: JobKey,
        /// The result bytes, base64.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<TaskError>,
    },
}

impl Record {
    /// When this record must be on disk; see the module documentation.
    fn durability(&self) -> Durability {
        match self {
            // Rare, and nothing can rebuild them: the framework's identity, and the
            // generations that must never be used twice.
            Record::Framework { .. } | Record::Executor { .. } => Durability::Now,
            // Per job, on the hot path: losing the newest costs re-running jobs.
            Record::ExecutorGone { .. } | Record::Launched { .. } | Record::Finished { .. } => {
                Durability::Soon
            }
        }
    }

    pub(crate) fn finished(job: JobKey, outcome: &Result<Vec<u8>, TaskError>) -> Record {
        match outcome {
            Ok(bytes) => Record::Finished {
                job,
                result: Some(STANDARD.encode(bytes)),
                error: None,
            },
            Err(e) => Record::Finished {
                job,
                result: None,
                error: Some(e.clone()),
            },
        }
    }
}

/// A job as the store last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StoredJob {
    /// Last launched task: (task id, agent, attempt).
    pub task: Option<(String, String, u32)>,
    pub outcome: Option<Result<Vec<u8>, TaskError>>,
}

/// Everything read back from a state file.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct State {
    pub framework_id: Option<String>,
    /// Live executors by agent: (executor id, generation).
    pub executors: HashMap<String, (String, u64)>,
    /// Highest executor generation ever used per agent.
    pub generations: HashMap<String, u64>,
    pub jobs: HashMap<JobKey, StoredJob>,
}

impl State {
    /// Applies one record read back; `Err` says why it cannot be (the file is corrupt).
    fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Framework { id } => self.framework_id = Some(id),
            Record::Executor {
                agent,
                id,
                generation,
            } => {
                let highest = self.generations.entry(agent.clone()).or_insert(0);
                *highest = (*highest).max(generation);
                self.executors.insert(agent, (id, generation));
            }
            Record::ExecutorGone { agent, id } => {
                if self.executors.get(&agent).is_some_and(|(e, _)| *e == id) {
                    self.executors.remove(&agent);
                }
            }
            Record::Launched {
                job,
                task,
                agent,
                attempt,
            } => {
                self.jobs.entry(job).or_default().task = Some((task, agent, attempt));
            }
            Record::Finished { job, result, error } => {
                let outcome = match (result, error) {
                    (None, Some(e)) => Err(e),
                    (Some(b64), None) => Ok(STANDARD
                        .decode(b64)
                        .map_err(|e| format!("job {job}: the result is not base64: {e}"))?),
                    (Some(_), Some(_)) => {
                        return Err(format!("job {job}: both a result and an error"));
                    }
                    (None, None) => return Err(format!("job {job}: neither result nor error")),
                };
                self.jobs.entry(job).or_default().outcome = Some(outcome);
            }
        }
        Ok(())
    }

    /// The fewest records that rebuild this state.
    fn records(&self) -> Vec<Record> {
        let mut records = Vec::new();
        if let Some(id) = &self.framework_id {
            records.push(Record::Framework { id: id.clone() });
        }
        for (agent, generation) in &self.generations {
            let id = match self.executors.get(agent) {
                Some((id, g)) if g == generation => id.clone(),
                _ => String::new(),
            };
            records.push(Record::Executor {
                agent: agent.clone(),
                id: id.clone(),
                generation: *generation,
            });
            if id.is_empty() {
                records.push(Record::ExecutorGone {
                    agent: agent.clone(),
                    id,
                });
            }
        }
        for (key, job) in &self.jobs {
            if let Some((task, agent, attempt)) = &job.task {
                records.push(Record::Launched {
                    job: *key,
                    task: task.clone(),
                    agent: agent.clone(),
                    attempt: *attempt,
                });
            }
            if let Some(outcome) = &job.outcome {
                records.push(Record::finished(*key, outcome));
            }
        }
        records
    }
}

/// An open state file, locked against other schedulers until dropped.
#[derive(Debug)]
pub(crate) struct Store {
    journal: Journal,
}

impl Store {
    /// Locks `path` (a missing file is an empty state), reads it, rewrites it compacted,
    /// and opens it for appending.
    pub(crate) fn open(path: &Path) -> Result<(Store, State), StoreError> {
        let (claimed, records) = Claimed::open::<Record>(path)?;
        let mut state = State::default();
        for (at, record) in records {
            state
                .apply(record)
                .map_err(|reason| StoreError::corrupt(path, at, reason))?;
        }
        let journal = claimed.compact(&state.records())?;
        Ok((Store { journal }, state))
    }

    /// Writes `record`: in the kernel when this returns (a process crash cannot lose
    /// it), on disk now or after the next [`Store::flush`], as the record's kind says.
    pub(crate) fn append(&mut self, record: &Record) {
        self.journal.append(record, record.durability());
    }

    /// The end of a turn of the scheduling loop: starts syncing what it appended, in the
    /// background.
    pub(crate) fn flush(&mut self) {
        self.journal.flush();
    }

    /// Forgets everything: the framework is torn down, nothing is left to resume.
    pub(crate) fn remove(self) {
        self.journal.remove();
    }
}
