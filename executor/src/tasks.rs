//! The task table and the executor's allocation.
//!
//! The executor's container is "its own resources + Σ resources of its non-terminal
//! tasks": it grows when a task is launched and shrinks when the task's terminal update
//! is sent. A task stays in the table after that until every update of it has been
//! acknowledged, because until then it may have to be re-sent in SUBSCRIBE.
//!
//! Leases (tasks labelled [`LEASE_LABEL`]) are tasks like any other here: they count in
//! the allocation and keep the executor busy, but run nothing themselves, so they are
//! not among the [`running`](TaskTable::running) tasks and add no task workers (their
//! slots are for lane closures, see [`crate::leases`]).

use std::collections::BTreeMap;
use std::time::Instant;

use brine_proto::lane::LEASE_LABEL;
use brine_proto::mesos::v1::{Label, Labels, Resource, TaskInfo, TaskState};
use brine_proto::payload::Allocation;

use crate::runtime::{KillSwitch, Progress};

/// The environment variable that turns on [`bench_timestamps`].
pub const BENCH_TIMESTAMPS_ENV: &str = "BRINE_BENCH_TIMESTAMPS";
/// Label of a terminal update: `CLOCK_MONOTONIC` ns when the task's LAUNCH was decoded.
pub const LABEL_LAUNCH_DECODED_NS: &str = "brine.bench.launch_decoded_ns";
/// Label of a terminal update: `CLOCK_MONOTONIC` ns right before the entry was called.
pub const LABEL_GUEST_ENTERED_NS: &str = "brine.bench.guest_entered_ns";

/// Whether terminal updates carry the benchmark's timestamps (`BRINE_BENCH_TIMESTAMPS=1`
/// in the executor's environment). Off by default: the labels are of no use to a
/// scheduler, and the benchmark (`brine-bench`) needs them to measure LAUNCH → guest
/// entry where it happens rather than guess it from the outside. Read once.
pub fn bench_timestamps() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var(BENCH_TIMESTAMPS_ENV).is_ok_and(|v| v == "1"))
}

/// The benchmark labels of `entry`'s terminal update: the timestamps it has.
pub fn bench_labels(entry: &TaskEntry) -> Labels {
    let stamps = [
        (LABEL_LAUNCH_DECODED_NS, entry.launch_decoded_ns),
        (LABEL_GUEST_ENTERED_NS, entry.progress.entered_at_ns()),
    ];
    Labels {
        labels: stamps
            .into_iter()
            .filter_map(|(key, ns)| {
                Some(Label {
                    key: key.to_owned(),
                    value: Some(ns?.to_string()),
                })
            })
            .collect(),
    }
}

/// Scalar resources (the ones Brine uses).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub cpus: f64,
    pub mem_mb: f64,
    pub disk_mb: f64,
}

impl Resources {
    /// Sums the `cpus`, `mem` and `disk` scalars of a Mesos resource list (several
    /// entries of one name, e.g. from different roles, add up). Others are ignored.
    pub fn from_mesos(resources: &[Resource]) -> Self {
        let mut out = Self::default();
        for r in resources {
            let Some(value) = r.scalar.as_ref().map(|s| s.value) else {
                continue;
            };
            if !value.is_finite() || value < 0.0 {
                continue;
            }
            match r.name.as_str() {
                "cpus" => out.cpus += value,
                "mem" => out.mem_mb += value,
                "disk" => out.disk_mb += value,
                _ => {}
            }
        }
        out
    }

    fn add(&mut self, other: Resources) {
        self.cpus += other.cpus;
        self.mem_mb += other.mem_mb;
        self.disk_mb += other.disk_mb;
    }
}

/// Where a task is in its life inside the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, waiting for a free worker.
    Queued,
    /// On a worker since `started`.
    Running { started: Instant },
    /// Its terminal update was sent.
    Terminal(TaskState),
}

/// One task the executor knows.
#[derive(Debug)]
pub struct TaskEntry {
    pub info: TaskInfo,
    pub resources: Resources,
    pub phase: Phase,
    /// Whether any update of this task was acknowledged (then it is not sent in
    /// SUBSCRIBE's `unacknowledged_tasks`).
    pub acknowledged: bool,
    pub kill: KillSwitch,
    pub progress: Progress,
    /// [`monotonic_ns`](crate::runtime::monotonic_ns) when its LAUNCH was decoded, kept
    /// only when [`bench_timestamps`] is on.
    pub launch_decoded_ns: Option<u64>,
    /// A lease ([`is_lease`]): it holds a slot for lane closures and runs nothing.
    pub lease: bool,
}

impl TaskEntry {
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Terminal(_))
    }
}

/// Every task the executor holds, by task id.
#[derive(Debug, Default)]
pub struct TaskTable {
    own: Resources,
    tasks: BTreeMap<String, TaskEntry>,
}

impl TaskTable {
    /// A table for an executor whose own resources are `own`.
    pub fn new(own: Resources) -> Self {
        Self {
            own,
            tasks: BTreeMap::new(),
        }
    }

    /// The executor's own resources.
    pub fn own(&self) -> Resources {
        self.own
    }

    pub fn set_own(&mut self, own: Resources) {
        self.own = own;
    }

    /// Adds a launched task, queued. Returns `false` (and changes nothing) if a task
    /// with this id is already known.
    pub fn insert(&mut self, info: TaskInfo) -> bool {
        let id = task_id(&info).to_owned();
        if self.tasks.contains_key(&id) {
            return false;
        }
        let resources = Resources::from_mesos(&info.resources);
        let lease = is_lease(&info);
        self.tasks.insert(
            id,
            TaskEntry {
                lease,
                info,
                resources,
                phase: Phase::Queued,
                acknowledged: false,
                kill: KillSwitch::new(),
                progress: Progress::new(),
                launch_decoded_ns: None,
            },
        );
        true
    }

    pub fn get(&self, id: &str) -> Option<&TaskEntry> {
        self.tasks.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut TaskEntry> {
        self.tasks.get_mut(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    /// Marks a task started on a worker.
    pub fn start(&mut self, id: &str, now: Instant) {
        if let Some(task) = self.tasks.get_mut(id)
            && task.phase == Phase::Queued
        {
            task.phase = Phase::Running { started: now };
        }
    }

    /// Marks a task terminal; its resources leave the allocation. Returns whether it
    /// was non-terminal before.
    pub fn finish(&mut self, id: &str, state: TaskState) -> bool {
        match self.tasks.get_mut(id) {
            Some(task) if !task.is_terminal() => {
                task.phase = Phase::Terminal(state);
                true
            }
            _ => false,
        }
    }

    /// Records that an update of the task was acknowledged; drops the task when it is
    /// terminal and `has_unacknowledged` says no update of it is still outstanding.
    pub fn acknowledge(&mut self, id: &str, has_unacknowledged: bool) {
        let remove = match self.tasks.get_mut(id) {
            Some(task) => {
                task.acknowledged = true;
                task.is_terminal() && !has_unacknowledged
            }
            None => false,
        };
        if remove {
            self.tasks.remove(id);
        }
    }

    /// Drops terminal tasks for which `has_unacknowledged` is false.
    pub fn forget_settled(&mut self, has_unacknowledged: impl Fn(&str) -> bool) {
        self.tasks.retain(|id, task| {
            !(task.is_terminal() && task.acknowledged && !has_unacknowledged(id))
        });
    }

    /// Tasks that are not terminal (queued or running).
    pub fn active(&self) -> impl Iterator<Item = (&str, &TaskEntry)> {
        self.tasks
            .iter()
            .filter(|(_, t)| !t.is_terminal())
            .map(|(id, t)| (id.as_str(), t))
    }

    /// Tasks on a worker, with their start time (leases are never on a worker).
    pub fn running(&self) -> impl Iterator<Item = (&str, &TaskEntry, Instant)> {
        self.tasks.iter().filter_map(|(id, t)| match t.phase {
            Phase::Running { started } if !t.lease => Some((id.as_str(), t, started)),
            _ => None,
        })
    }

    pub fn running_count(&self) -> usize {
        self.running().count()
    }

    pub fn active_count(&self) -> usize {
        self.active().count()
    }

    /// TaskInfos of the tasks no update of which has been acknowledged, for SUBSCRIBE.
    pub fn unacknowledged(&self) -> Vec<TaskInfo> {
        self.tasks
            .values()
            .filter(|t| !t.acknowledged)
            .map(|t| t.info.clone())
            .collect()
    }

    /// Whether the table holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Σ resources of the non-terminal tasks.
    pub fn tasks_resources(&self) -> Resources {
        let mut sum = Resources::default();
        for (_, t) in self.active() {
            sum.add(t.resources);
        }
        sum
    }

    /// The executor's container: its own resources plus its non-terminal tasks'.
    pub fn allocation(&self) -> Allocation {
        let mut total = self.own;
        total.add(self.tasks_resources());
        Allocation {
            cpus: total.cpus,
            mem_mb: total.mem_mb,
            disk_mb: total.disk_mb,
            tasks: u32::try_from(self.active_count()).unwrap_or(u32::MAX),
        }
    }

    /// How many tasks may run side by side: `ceil(Σ cpus of non-terminal tasks)`
    /// (leases excluded: their cpus are their closures'), at least 1, at most `cap`
    /// (the runtime's instance slots).
    pub fn concurrency(&self, cap: u32) -> usize {
        let cpus = self
            .active()
            .filter(|(_, t)| !t.lease)
            .map(|(_, t)| t.resources.cpus)
            .sum();
        workers_for(cpus, cap)
    }
}

impl TaskTable {
    /// Σ cpus of the leases held (not terminal).
    pub fn lease_cpus(&self) -> f64 {
        self.active()
            .filter(|(_, t)| t.lease)
            .map(|(_, t)| t.resources.cpus)
            .sum()
    }
}

/// `ceil(cpus)` (tolerating float noise such as 0.1 × 10), at least 1, at most `cap`
/// (itself at least 1).
pub fn workers_for(cpus: f64, cap: u32) -> usize {
    let cap = usize::try_from(cap.max(1)).unwrap_or(usize::MAX);
    if !cpus.is_finite() || cpus <= 0.0 {
        return 1;
    }
    let wanted = (cpus - 1e-6).ceil();
    if wanted >= cap as f64 {
        cap
    } else {
        // In range 1..cap: the cast is exact.
        (wanted as usize).clamp(1, cap)
    }
}

/// Whether a task is a lease: its labels hold [`LEASE_LABEL`] (then its `data` is a
/// `LeaseSpec`, not a `TaskSpec`).
pub fn is_lease(info: &TaskInfo) -> bool {
    let (key, value) = LEASE_LABEL;
    info.labels.as_ref().is_some_and(|labels| {
        labels
            .labels
            .iter()
            .any(|l| l.key == key && l.value.as_deref() == Some(value))
    })
}

/// The task id's value.
pub fn task_id(info: &TaskInfo) -> &str {
    &info.task_id.value
}

/// A task id turned into a single safe file-name component: ASCII letters, digits,
/// `.`, `_` and `-` are kept, anything else becomes `_`; when anything was replaced
/// (or the name would be `.`/`..`/empty) a short hash of the original id is appended so
/// that distinct ids never share a directory.
pub fn sanitize_task_id(id: &str) -> String {
    let mut out: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    let changed = out != id || out.is_empty() || out == "." || out == "..";
    if changed {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(id.as_bytes());
        out.push('-');
        out.push_str(&hex::encode(&digest[..4]));
    }
    out
}

#[cfg(test)]
mod tests {
    use brine_proto::mesos::v1::TaskId;

    use super::*;

    fn task(id: &str, cpus: f64, mem: f64) -> TaskInfo {
        TaskInfo {
            name: id.into(),
            task_id: TaskId { value: id.into() },
            resources: vec![Resource::scalar("cpus", cpus), Resource::scalar("mem", mem)],
            ..Default::default()
        }
    }

    #[test]
    fn resources_add_up_by_name() {
        let r = Resources::from_mesos(&[
            Resource::scalar("cpus", 0.5),
            Resource::scalar("cpus", 0.25),
            Resource::scalar("mem", 64.0),
            Resource::scalar("disk", 10.0),
            Resource::scalar("gpus", 1.0),
            Resource::scalar("mem", f64::NAN),
        ]);
        assert_eq!(
            r,
            Resources {
                cpus: 0.75,
                mem_mb: 64.0,
                disk_mb: 10.0
            }
        );
    }

    #[test]
    fn allocation_grows_on_launch_and_shrinks_on_terminal() {
        let mut table = TaskTable::new(Resources {
            cpus: 0.1,
            mem_mb: 32.0,
            disk_mb: 0.0,
        });
        assert_eq!(table.allocation().mem_mb, 32.0);
        assert!(table.insert(task("a", 1.0, 64.0)));
        assert!(table.insert(task("b", 0.5, 128.0)));
        assert!(
            !table.insert(task("a", 9.0, 9.0)),
            "duplicate ids are refused"
        );
        let a = table.allocation();
        assert_eq!((a.cpus, a.mem_mb, a.tasks), (1.6, 224.0, 2));
        assert_eq!(table.concurrency(64), 2);

        table.start("a", Instant::now());
        assert_eq!(table.running_count(), 1);
        assert!(table.finish("a", TaskState::TaskFinished));
        assert!(!table.finish("a", TaskState::TaskFailed), "terminal once");
        let a = table.allocation();
        assert_eq!((a.cpus, a.mem_mb, a.tasks), (0.6, 160.0, 1));
        assert_eq!(table.concurrency(64), 1);
        // Still known until its updates are acknowledged.
        assert!(table.contains("a"));
        table.acknowledge("a", true);
        assert!(table.contains("a"));
        table.acknowledge("a", false);
        assert!(!table.contains("a"));
    }

    #[test]
    fn leases_count_in_the_allocation_but_not_as_running_tasks() {
        let mut table = TaskTable::new(Resources {
            cpus: 0.1,
            mem_mb: 32.0,
            disk_mb: 0.0,
        });
        let mut lease = task("lease", 2.0, 128.0);
        lease.labels = Some(Labels {
            labels: vec![Label {
                key: LEASE_LABEL.0.into(),
                value: Some(LEASE_LABEL.1.into()),
            }],
        });
        assert!(is_lease(&lease));
        assert!(!is_lease(&task("t", 1.0, 1.0)));
        table.insert(lease);
        table.insert(task("t", 0.5, 64.0));
        let now = Instant::now();
        table.start("lease", now);
        table.start("t", now);
        let a = table.allocation();
        assert_eq!((a.cpus, a.mem_mb, a.tasks), (2.6, 224.0, 2));
        assert_eq!(
            table.concurrency(64),
            1,
            "the lease's cpus are its closures'"
        );
        let running: Vec<&str> = table.running().map(|(id, _, _)| id).collect();
        assert_eq!(running, ["t"]);
        assert!(table.finish("lease", TaskState::TaskFinished));
        assert_eq!(table.allocation().mem_mb, 96.0, "the container shrinks");
    }

    #[test]
    fn unacknowledged_tasks_are_those_without_any_acknowledged_update() {
        let mut table = TaskTable::default();
        table.insert(task("a", 1.0, 1.0));
        table.insert(task("b", 1.0, 1.0));
        table.acknowledge("a", true);
        let ids: Vec<String> = table
            .unacknowledged()
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        assert_eq!(ids, ["b"]);
        // A terminal task nobody acknowledged yet is still reported.
        table.finish("b", TaskState::TaskError);
        assert_eq!(table.unacknowledged().len(), 1);
        table.forget_settled(|_| false);
        assert_eq!(table.unacknowledged().len(), 1, "b was never acknowledged");
    }

    #[test]
    fn concurrency_rule() {
        assert_eq!(workers_for(0.0, 64), 1);
        assert_eq!(workers_for(0.5, 64), 1);
        assert_eq!(workers_for(1.0, 64), 1);
        assert_eq!(workers_for(0.1 * 10.0 + 1e-12, 64), 1);
        assert_eq!(workers_for(1.01, 64), 2);
        assert_eq!(workers_for(4.0, 64), 4);
        assert_eq!(workers_for(100.0, 8), 8);
        assert_eq!(workers_for(f64::INFINITY, 8), 1);
        assert_eq!(workers_for(3.0, 0), 1);
    }

    #[test]
    fn task_ids_become_safe_distinct_file_names() {
        assert_eq!(sanitize_task_id("task-1.a_b"), "task-1.a_b");
        let slash = sanitize_task_id("a/b");
        assert!(slash.starts_with("a_b-") && !slash.contains('/'), "{slash}");
        assert_ne!(sanitize_task_id("a/b"), sanitize_task_id("a_b"));
        assert_ne!(sanitize_task_id(".."), "..");
        assert_ne!(sanitize_task_id(""), "");
        assert!(sanitize_task_id(&"x".repeat(1000)).len() < 200);
    }
}
