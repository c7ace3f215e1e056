//! The agent's checkpoint, under `<work_dir>/meta` with the Mesos agent's layout
//! (`src/slave/paths.{hpp,cpp}`) and encoding (`src/slave/state.{hpp,cpp}`):
//!
//! ```text
//! meta/boot_id
//! meta/slaves/latest -> meta/slaves/<agent_id>
//! meta/slaves/<agent_id>/slave.info
//!   frameworks/<fid>/framework.info
//!     executors/<eid>/executor.info
//!       runs/latest -> runs/<container_id>
//!       runs/<container_id>/pids/forked.pid        (text)
//!       runs/<container_id>/http.marker            (empty: an HTTP executor)
//!       runs/<container_id>/executor.sentinel      (empty: the run is over)
//!       runs/<container_id>/tasks/<tid>/task.info
//!       runs/<container_id>/tasks/<tid>/task.updates
//! ```
//!
//! Each `.info` file is one protobuf message preceded by its size as a 4-byte native
//! endian integer (stout's `protobuf::write`); `task.updates` is a sequence of such
//! size-prefixed `StatusUpdateRecord`s (UPDATE with the update, or ACK with the uuid),
//! appended as updates are taken and acknowledged. `slave.info` holds a v1 `AgentInfo`
//! (wire-compatible with Mesos's `SlaveInfo`); `task.info` holds the `TaskInfo` the
//! agent was given (Mesos writes its `Task` message there: see `local/README.md`).
//! Only frameworks with `FrameworkInfo.checkpoint` are checkpointed, as in Mesos.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use brine_proto::mesos::v1::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, TaskInfo, TaskStatus,
};
use bytes::Bytes;
use prost::Message;

/// Mesos's `StatusUpdate` (`messages/messages.proto`), field for field, so
/// `task.updates` has Mesos's bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusUpdate {
    #[prost(message, required, tag = "1")]
    pub framework_id: FrameworkId,
    #[prost(message, optional, tag = "2")]
    pub executor_id: Option<ExecutorId>,
    #[prost(message, optional, tag = "3")]
    pub slave_id: Option<AgentId>,
    #[prost(message, required, tag = "4")]
    pub status: TaskStatus,
    #[prost(double, required, tag = "5")]
    pub timestamp: f64,
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub uuid: Option<Bytes>,
    #[prost(int32, optional, tag = "7")]
    pub latest_state: Option<i32>,
}

/// Mesos's `StatusUpdateRecord` (`messages/messages.proto`): `type` 0 = UPDATE, 1 = ACK.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusUpdateRecord {
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub update: Option<StatusUpdate>,
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub uuid: Option<Bytes>,
}

const UPDATE: i32 = 0;
const ACK: i32 = 1;

/// Where an executor run's checkpoint lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RunKey {
    pub framework: String,
    pub executor: String,
    pub container: String,
}

/// The checkpoint of one agent (`meta/slaves/<agent_id>`).
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    root: PathBuf,
    agent: PathBuf,
}

pub(crate) fn meta_root(work_dir: &Path) -> PathBuf {
    work_dir.join("meta")
}

/// The id of the agent `meta/slaves/latest` points at, if any.
pub(crate) fn latest_agent_id(work_dir: &Path) -> Option<String> {
    let target = fs::read_link(meta_root(work_dir).join("slaves").join("latest")).ok()?;
    target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), as Mesos's `os::bootId`.
fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// `protobuf::write`: the size (4 bytes, native endian), then the message.
fn framed(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_ne_bytes());
    out.extend_from_slice(&body);
    out
}

/// Splits a file of size-prefixed messages; a torn last record (the agent died while
/// appending) is dropped, as Mesos's recovery does in non-strict mode.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let size = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + size {
            tracing::warn!("dropping a torn record at the end of a checkpoint file");
            break;
        }
        out.push(&rest[4..4 + size]);
        rest = &rest[4 + size..];
    }
    out
}

fn read_message<M: Message + Default>(path: &Path) -> io::Result<M> {
    let bytes = fs::read(path)?;
    let first = records(&bytes)
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty checkpoint"))?;
    M::decode(first).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `state::checkpoint`: write a temporary file, then rename it over the target.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("tmp");
    fs::write(&temp, bytes)?;
    fs::rename(&temp, path)
}

fn symlink_latest(dir: &Path, target: &Path) -> io::Result<()> {
    let latest = dir.join("latest");
    let temp = dir.join("latest.tmp");
    let _ = fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)?;
    fs::rename(&temp, &latest)
}

/// Directory names in `dir` (none when it does not exist).
fn children(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What a restarted agent reads back.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub info: Option<AgentInfo>,
    /// The machine rebooted since the checkpoint: no executor can still be running.
    pub rebooted: bool,
    pub frameworks: Vec<RecoveredFramework>,
}

#[derive(Debug)]
pub(crate) struct RecoveredFramework {
    pub info: FrameworkInfo,
    pub executors: Vec<RecoveredExecutor>,
}

#[derive(Debug)]
pub(crate) struct RecoveredExecutor {
    pub info: ExecutorInfo,
    pub container_id: String,
    pub pid: Option<u32>,
    /// `executor.sentinel` exists: the run ended before the agent stopped.
    pub completed: bool,
    pub tasks: Vec<RecoveredTask>,
}

#[derive(Debug)]
pub(crate) struct RecoveredTask {
    pub info: TaskInfo,
    /// Every update taken, in order.
    pub updates: Vec<TaskStatus>,
    /// The uuids acknowledged.
    pub acknowledged: HashSet<Bytes>,
}

impl Meta {
    pub fn new(work_dir: &Path, agent_id: &str) -> Meta {
        let root = meta_root(work_dir);
        let agent = root.join("slaves").join(agent_id);
        Meta { root, agent }
    }

    fn framework_dir(&self, fid: &str) -> PathBuf {
        self.agent.join("frameworks").join(fid)
    }

    pub fn executor_dir(&self, fid: &str, eid: &str) -> PathBuf {
        self.framework_dir(fid).join("executors").join(eid)
    }

    fn run_dir(&self, run: &RunKey) -> PathBuf {
        self.executor_dir(&run.framework, &run.executor)
            .join("runs")
            .join(&run.container)
    }

    fn task_dir(&self, run: &RunKey, tid: &str) -> PathBuf {
        self.run_dir(run).join("tasks").join(tid)
    }

    /// `slave.info`, `slaves/latest` and `boot_id`.
    pub fn checkpoint_agent(&self, info: &AgentInfo) -> io::Result<()> {
        write_atomic(&self.agent.join("slave.info"), &framed(info))?;
        symlink_latest(&self.root.join("slaves"), &self.agent)?;
        if let Some(id) = boot_id() {
            write_atomic(&self.root.join("boot_id"), id.as_bytes())?;
        }
        Ok(())
    }

    pub fn checkpoint_framework(&self, info: &FrameworkInfo) -> io::Result<()> {
        let fid = info.id.as_ref().map(|i| i.value.as_str()).unwrap_or("");
        write_atomic(
            &self.framework_dir(fid).join("framework.info"),
            &framed(info),
        )
    }

    /// `executor.info`, the run directory and `runs/latest`.
    pub fn checkpoint_executor(&self, run: &RunKey, info: &ExecutorInfo) -> io::Result<()> {
        let dir = self.executor_dir(&run.framework, &run.executor);
        write_atomic(&dir.join("executor.info"), &framed(info))?;
        let run_dir = self.run_dir(run);
        fs::create_dir_all(&run_dir)?;
        symlink_latest(&dir.join("runs"), &run_dir)
    }

    pub fn checkpoint_pid(&self, run: &RunKey, pid: u32) -> io::Result<()> {
        write_atomic(
            &self.run_dir(run).join("pids").join("forked.pid"),
            pid.to_string().as_bytes(),
        )
    }

    /// `http.marker`: the executor talks HTTP (no `libprocess.pid`).
    pub fn checkpoint_http_marker(&self, run: &RunKey) -> io::Result<()> {
        write_atomic(&self.run_dir(run).join("http.marker"), b"")
    }

    /// `executor.sentinel`: the run is over.
    pub fn checkpoint_sentinel(&self, run: &RunKey) -> io::Result<()> {
        write_atomic(&self.run_dir(run).join("executor.sentinel"), b"")
    }

    pub fn checkpoint_task(&self, run: &RunKey, task: &TaskInfo) -> io::Result<()> {
        write_atomic(
            &self.task_dir(run, &task.task_id.value).join("task.info"),
            &framed(task),
        )
    }

    fn append(&self, run: &RunKey, tid: &str, record: &StatusUpdateRecord) -> io::Result<()> {
        let dir = self.task_dir(run, tid);
        fs::create_dir_all(&dir)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("task.updates"))?;
        file.write_all(&framed(record))
    }

    /// An UPDATE record, appended before the update goes anywhere.
    pub fn checkpoint_update(
        &self,
        run: &RunKey,
        agent_id: &AgentId,
        status: &TaskStatus,
    ) -> io::Result<()> {
        let record = StatusUpdateRecord {
            r#type: UPDATE,
            update: Some(StatusUpdate {
                framework_id: FrameworkId {
                    value: run.framework.clone(),
                },
                executor_id: status.executor_id.clone(),
                slave_id: Some(agent_id.clone()),
                status: status.clone(),
                timestamp: status.timestamp.unwrap_or_default(),
                uuid: status.uuid.clone(),
                latest_state: None,
            }),
            uuid: None,
        };
        self.append(run, &status.task_id.value, &record)
    }

    /// An ACK record.
    pub fn checkpoint_ack(&self, run: &RunKey, tid: &str, uuid: &[u8]) -> io::Result<()> {
        let record = StatusUpdateRecord {
            r#type: ACK,
            update: None,
            uuid: Some(Bytes::copy_from_slice(uuid)),
        };
        self.append(run, tid, &record)
    }

    /// Reads the whole checkpoint back (`state::recover`): frameworks, each executor's
    /// latest run, its tasks and their updates. Unreadable parts are skipped with a
    /// warning (Mesos's `--strict=false`).
    pub fn recover(&self) -> Recovered {
        let mut out = Recovered {
            info: read_message(&self.agent.join("slave.info"))
                .map_err(|e| tracing::warn!(error = %e, "cannot read slave.info"))
                .ok(),
            ..Recovered::default()
        };
        let recorded_boot = fs::read_to_string(self.root.join("boot_id")).ok();
        out.rebooted = match (recorded_boot, boot_id()) {
            (Some(then), Some(now)) => then.trim() != now,
            _ => false,
        };
        for fid in children(&self.agent.join("frameworks")) {
            let fdir = self.framework_dir(&fid);
            let info: FrameworkInfo = match read_message(&fdir.join("framework.info")) {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(framework = %fid, error = %e, "skipping a framework without a readable framework.info");
                    continue;
                }
            };
            let mut executors = Vec::new();
            for eid in children(&fdir.join("executors")) {
                if let Some(executor) = self.recover_executor(&fid, &eid) {
                    executors.push(executor);
                }
            }
            out.frameworks.push(RecoveredFramework { info, executors });
        }
        out
    }

    fn recover_executor(&self, fid: &str, eid: &str) -> Option<RecoveredExecutor> {
        let dir = self.executor_dir(fid, eid);
        let info: ExecutorInfo = read_message(&dir.join("executor.info"))
            .map_err(|e| tracing::warn!(executor = %eid, error = %e, "skipping an executor without a readable executor.info"))
            .ok()?;
        let latest = fs::read_link(dir.join("runs").join("latest")).ok()?;
        let container_id = latest.file_name()?.to_string_lossy().into_owned();
        let run = RunKey {
            framework: fid.to_owned(),
            executor: eid.to_owned(),
            container: container_id.clone(),
        };
        let run_dir = self.run_dir(&run);
        let pid = fs::read_to_string(run_dir.join("pids").join("forked.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let completed = run_dir.join("executor.sentinel").exists();
        let mut tasks = Vec::new();
        for tid in children(&run_dir.join("tasks")) {
            let tdir = self.task_dir(&run, &tid);
            let info: TaskInfo = match read_message(&tdir.join("task.info")) {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(task = %tid, error = %e, "skipping a task without a readable task.info");
                    continue;
                }
            };
            let mut updates = Vec::new();
            let mut acknowledged = HashSet::new();
            let bytes = fs::read(tdir.join("task.updates")).unwrap_or_default();
            for record in records(&bytes) {
                match StatusUpdateRecord::decode(record) {
                    Ok(r) if r.r#type == UPDATE => {
                        if let Some(update) = r.update {
                            updates.push(update.status);
                        }
                    }
                    Ok(r) => {
                        if let Some(uuid) = r.uuid {
                            acknowledged.insert(uuid);
                        }
                    }
                    Err(e) => tracing::warn!(task = %tid, error = %e, "skipping a bad record"),
                }
            }
            tasks.push(RecoveredTask {
                info,
                updates,
                acknowledged,
            });
        }
        Some(RecoveredExecutor {
            info,
            container_id,
            pid,
            completed,
            tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use brine_proto::mesos::v1::{TaskId, TaskState};

    #[test]
    fn round_trips_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::new(dir.path(), "A-S0");
        let info = AgentInfo {
            hostname: "h".into(),
            id: Some(AgentId {
                value: "A-S0".into(),
            }),
            ..Default::default()
        };
        meta.checkpoint_agent(&info).unwrap();
        assert_eq!(latest_agent_id(dir.path()).as_deref(), Some("A-S0"));
        let framework = FrameworkInfo {
            id: Some(FrameworkId { value: "F".into() }),
            checkpoint: Some(true),
            ..Default::default()
        };
        meta.checkpoint_framework(&framework).unwrap();
        let run = RunKey {
            framework: "F".into(),
            executor: "E".into(),
            container: "C".into(),
        };
        let executor = ExecutorInfo {
            executor_id: ExecutorId { value: "E".into() },
            ..Default::default()
        };
        meta.checkpoint_executor(&run, &executor).unwrap();
        meta.checkpoint_pid(&run, 4242).unwrap();
        let task = TaskInfo {
            task_id: TaskId { value: "T".into() },
            ..Default::default()
        };
        meta.checkpoint_task(&run, &task).unwrap();
        let status = |uuid: u8, state: TaskState| TaskStatus {
            task_id: TaskId { value: "T".into() },
            state: state as i32,
            uuid: Some(Bytes::from(vec![uuid; 16])),
            ..Default::default()
        };
        let agent_id = info.id.clone().unwrap();
        meta.checkpoint_update(&run, &agent_id, &status(1, TaskState::TaskRunning))
            .unwrap();
        meta.checkpoint_ack(&run, "T", &[1; 16]).unwrap();
        meta.checkpoint_update(&run, &agent_id, &status(2, TaskState::TaskFinished))
            .unwrap();
        // A torn append is dropped.
        let updates = dir
            .path()
            .join("meta/slaves/A-S0/frameworks/F/executors/E/runs/C/tasks/T/task.updates");
        OpenOptions::new()
            .append(true)
            .open(&updates)
            .unwrap()
            .write_all(&[9, 0, 0, 0, 1])
            .unwrap();

        let recovered = meta.recover();
        assert_eq!(recovered.info, Some(info));
        assert_eq!(recovered.frameworks.len(), 1);
        let e = &recovered.frameworks[0].executors[0];
        assert_eq!(
            (e.container_id.as_str(), e.pid, e.completed),
            ("C", Some(4242), false)
        );
        let t = &e.tasks[0];
        assert_eq!(t.info, task);
        assert_eq!(t.updates.len(), 2);
        assert!(t.acknowledged.contains(&Bytes::from(vec![1u8; 16])));
        meta.checkpoint_sentinel(&run).unwrap();
        assert!(meta.recover().frameworks[0].executors[0].completed);
    }
}
