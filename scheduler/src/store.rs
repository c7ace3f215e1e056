//! The state store: what a restarted scheduler needs to carry on as the same framework.
//!
//! A JSON-lines file of [`Record`]s, appended as things happen and compacted when it is
//! opened. It holds the FrameworkID, the executors started (their ids are never
//! reused), and for each job (by [`JobKey`]) its last launched task and its outcome.
//! A crash can cut the last line short; that line is ignored. Lines are flushed once per
//! turn of the scheduling loop, not fsynced: after a machine crash the newest records
//! may be lost, and a job whose launch was lost is run again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::TaskError;
use crate::scheduler::JobKey;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state file {path} line {line} is not a Brine state record: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

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
    fn apply(&mut self, record: Record) {
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
                    (_, Some(e)) => Err(e),
                    (Some(b64), None) => STANDARD
                        .decode(b64)
                        .map_err(|e| TaskError::Protocol(format!("stored result: {e}"))),
                    (None, None) => Err(TaskError::Protocol("stored outcome is empty".into())),
                };
                self.jobs.entry(job).or_default().outcome = Some(outcome);
            }
        }
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

/// An open state file.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    out: BufWriter<File>,
    dirty: bool,
}

impl Store {
    /// Reads `path` (a missing file is an empty state), rewrites it compacted, and
    /// opens it for appending.
    pub(crate) fn open(path: &Path) -> Result<(Store, State), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let state = match File::open(path) {
            Ok(file) => read(path, BufReader::new(file))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(e)),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("compacting");
        {
            let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
            for record in state.records() {
                write_record(&mut out, &record).map_err(io)?;
            }
            out.flush().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok((
            Store {
                path: path.to_owned(),
                out: BufWriter::new(file),
                dirty: false,
            },
            state,
        ))
    }

    pub(crate) fn append(&mut self, record: &Record) {
        if let Err(e) = write_record(&mut self.out, record) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the state file");
        }
        self.dirty = true;
    }

    pub(crate) fn flush(&mut self) {
        if self.dirty {
            if let Err(e) = self.out.flush() {
                tracing::error!(path = %self.path.display(), error = %e, "cannot write the state file");
            }
            self.dirty = false;
        }
    }

    /// Forgets everything: the framework is torn down, nothing is left to resume.
    pub(crate) fn remove(self) {
        drop(self.out);
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the state file");
        }
    }
}

fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")
}

fn read(path: &Path, input: impl BufRead) -> Result<State, StoreError> {
    let mut state = State::default();
    let mut lines = input.split(b'\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let line = line.map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => state.apply(record),
            // The last line of a file whose writer died mid-line.
            Err(_) if lines.peek().is_none() => {
                tracing::warn!(path = %path.display(), line = index + 1, "ignoring a cut-off last line");
            }
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    line: index + 1,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::payload::ErrorKind;

    fn key(n: u8) -> JobKey {
        JobKey([n; 16])
    }

    #[test]
    fn state_survives_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let (mut store, state) = Store::open(&path).unwrap();
            assert_eq!(state, State::default());
            store.append(&Record::Framework { id: "fw-1".into() });
            store.append(&Record::Executor {
                agent: "a1".into(),
                id: "brine-a1-1".into(),
                generation: 1,
            });
            store.append(&Record::ExecutorGone {
                agent: "a1".into(),
                id: "brine-a1-1".into(),
            });
            store.append(&Record::Executor {
                agent: "a1".into(),
                id: "brine-a1-2".into(),
                generation: 2,
            });
            store.append(&Record::Launched {
                job: key(1),
                task: "t1".into(),
                agent: "a1".into(),
                attempt: 1,
            });
            store.append(&Record::Launched {
                job: key(2),
                task: "t2".into(),
                agent: "a1".into(),
                attempt: 2,
            });
            store.append(&Record::finished(key(1), &Ok(vec![1, 2, 3])));
            let failure = TaskError::Guest {
                kind: ErrorKind::Trap,
                message: "unreachable".into(),
                stderr_tail: String::new(),
            };
            store.append(&Record::finished(key(2), &Err(failure)));
            store.flush();
        }
        let (_, first) = Store::open(&path).unwrap();
        assert_eq!(first.framework_id.as_deref(), Some("fw-1"));
        assert_eq!(
            first.executors.get("a1"),
            Some(&("brine-a1-2".to_string(), 2))
        );
        assert_eq!(first.generations.get("a1"), Some(&2));
        assert_eq!(first.jobs[&key(1)].outcome, Some(Ok(vec![1, 2, 3])));
        assert!(matches!(
            first.jobs[&key(2)].outcome,
            Some(Err(TaskError::Guest {
                kind: ErrorKind::Trap,
                ..
            }))
        ));
        assert_eq!(
            first.jobs[&key(2)].task,
            Some(("t2".to_string(), "a1".to_string(), 2))
        );
        // Opening compacted the file; the state read back is the same.
        let (_, second) = Store::open(&path).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn a_cut_off_last_line_is_ignored_but_garbage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        std::fs::write(
            &path,
            "{\"record\":\"framework\",\"id\":\"fw\"}\n{\"record\":\"laun",
        )
        .unwrap();
        let (_, state) = Store::open(&path).unwrap();
        assert_eq!(state.framework_id.as_deref(), Some("fw"));

        std::fs::write(
            &path,
            "nonsense\n{\"record\":\"framework\",\"id\":\"fw\"}\n",
        )
        .unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
