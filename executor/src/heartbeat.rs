//! Heartbeats: a framework MESSAGE every `heartbeat_interval` carrying what the
//! executor runs (with each task's latest progress), the modules it holds, its
//! allocation and its closure lane (leases, lane closures, connection). Framework messages are best effort, so each heartbeat stands alone and
//! supersedes the previous one; a Mesos task's progress travels only this way (a lane
//! closure's goes over the lane).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use brine_proto::payload::{ExecutorMessage, Heartbeat, LaneUse, ModuleHash, RunningTask};

use crate::tasks::TaskTable;

/// Numbers heartbeats.
#[derive(Debug, Default)]
pub struct Heartbeats {
    seq: u64,
}

impl Heartbeats {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next heartbeat: sequence numbers start at 1 and grow by one. `running`
    /// lists Mesos tasks on a worker (not leases, not lane closures: `lane` counts those).
    pub fn next(
        &mut self,
        tasks: &TaskTable,
        cached_modules: Vec<ModuleHash>,
        lane: LaneUse,
        now: Instant,
    ) -> ExecutorMessage {
        self.seq += 1;
        let running = tasks
            .running()
            .map(|(id, task, started)| RunningTask {
                task_id: id.to_owned(),
                progress: task.progress.fraction(),
                elapsed_ms: u64::try_from(now.saturating_duration_since(started).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect();
        ExecutorMessage::Heartbeat(Heartbeat {
            seq: self.seq,
            sent_at_unix_ms: unix_ms(),
            running,
            cached_modules,
            allocation: tasks.allocation(),
            lane,
        })
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brine_proto::mesos::v1::{TaskId, TaskInfo};

    use super::*;
    use crate::tasks::Resources;

    #[test]
    fn heartbeats_count_and_describe_running_tasks() {
        let mut table = TaskTable::new(Resources {
            cpus: 0.1,
            mem_mb: 32.0,
            disk_mb: 0.0,
        });
        for id in ["queued", "running"] {
            table.insert(TaskInfo {
                task_id: TaskId { value: id.into() },
                ..Default::default()
            });
        }
        let start = Instant::now();
        table.start("running", start);
        let mut beats = Heartbeats::new();
        let lane = LaneUse {
            leases: 2,
            running: 1,
            queued: 3,
            connected: true,
        };
        let ExecutorMessage::Heartbeat(first) =
            beats.next(&table, vec![], lane, start + Duration::from_millis(1500));
        assert_eq!(first.seq, 1);
        assert_eq!(first.running.len(), 1);
        assert_eq!(first.running[0].task_id, "running");
        assert_eq!(first.running[0].elapsed_ms, 1500);
        assert_eq!(first.running[0].progress, None);
        assert_eq!(first.allocation.tasks, 2);
        assert!(first.sent_at_unix_ms > 1_600_000_000_000);
        assert_eq!(first.lane, lane);
        let ExecutorMessage::Heartbeat(second) = beats.next(
            &table,
            vec![ModuleHash::of(b"m")],
            LaneUse::default(),
            start,
        );
        assert_eq!(second.seq, 2);
        assert_eq!(second.cached_modules, vec![ModuleHash::of(b"m")]);
    }
}
