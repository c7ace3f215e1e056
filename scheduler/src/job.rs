//! What a user can see of a job: its state and progress. A job is one submitted
//! closure; its attempts are Mesos tasks.

use serde::{Deserialize, Serialize};

/// Where a job is. A job moves forward only, except that a retried job goes back from
/// `Staging`/`Running` to `Pending`:
///
/// ```text
/// Pending → Staging → Running → Succeeded
///    ↑         │         │    ↘ Failed
///    └─────────┴─────────┘ (retry after an infrastructure failure)
/// ```
///
/// A task that ends within the executor's `running_update_delay` (5 ms by default)
/// never reports `TASK_RUNNING`, so its job goes from `Staging` to its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for an offer.
    Pending,
    /// Launched; the executor has not reported it running yet.
    Staging,
    /// The executor runs it.
    Running,
    /// It ended with a result.
    Succeeded,
    /// It ended with an error (the handle says which).
    Failed,
}

impl JobState {
    /// `Succeeded` or `Failed`: the job will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

/// A snapshot of one job, as [`crate::TaskHandle::status`] returns it. More fields may
/// come (it is `#[non_exhaustive]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// Where the job is.
    pub state: JobState,
    /// Tasks launched for this job so far.
    pub attempts: u32,
    /// The agent running (or that last ran) the job.
    pub agent: Option<String>,
    /// The Mesos task id of the current (or last) attempt.
    pub task_id: Option<String>,
    /// The guest's last reported progress, 0.0–1.0, from the executor's heartbeats.
    pub progress: Option<f64>,
}

impl JobStatus {
    pub(crate) fn pending() -> Self {
        Self {
            state: JobState::Pending,
            attempts: 0,
            agent: None,
            task_id: None,
            progress: None,
        }
    }
}

/// A job's handle-side identity, unique in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct JobId(pub u64);

/// A job's identity across scheduler restarts: the n-th submission of the same
/// (module, entry, encoding, arguments). Written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct JobKey(pub [u8; 16]);

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for JobKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut key = [0; 16];
        hex::decode_to_slice(&text, &mut key).map_err(serde::de::Error::custom)?;
        Ok(JobKey(key))
    }
}
