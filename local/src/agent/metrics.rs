//! `GET /metrics/snapshot` of the agent: Mesos's `slave/*`, `gc/*` and
//! `containerizer/fetcher/*` keys, from the live state and the counters in
//! [`super::state::Metrics`].

use std::collections::BTreeMap;

use brine_proto::mesos::v1::TaskState;

use super::config::AgentResources;
use super::inner::Inner;
use super::state::ExecutorState;

pub(super) fn task_state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::TaskStaging => "staging",
        TaskState::TaskStarting => "starting",
        TaskState::TaskRunning => "running",
        TaskState::TaskKilling => "killing",
        TaskState::TaskFinished => "finished",
        TaskState::TaskFailed => "failed",
        TaskState::TaskKilled => "killed",
        TaskState::TaskError => "error",
        TaskState::TaskLost => "lost",
        TaskState::TaskDropped => "dropped",
        TaskState::TaskUnreachable => "unreachable",
        TaskState::TaskGone => "gone",
        TaskState::TaskGoneByOperator => "gone_by_operator",
        TaskState::TaskUnknown => "unknown",
    }
}

impl Inner {
    pub fn metrics(&self) -> serde_json::Map<String, serde_json::Value> {
        let st = self.lock();
        let mut counts = [0u64; 3];
        let mut used = AgentResources::default();
        let mut live_tasks: BTreeMap<&'static str, u64> = BTreeMap::new();
        for fw in st.frameworks.values() {
            for e in fw.executors.values() {
                match e.state {
                    ExecutorState::Registering => counts[0] += 1,
                    ExecutorState::Running => counts[1] += 1,
                    _ => counts[2] += 1,
                }
                let a = e.allocation();
                used.cpus += a.cpus;
                used.mem_mb += a.mem_mb;
                used.disk_mb += a.disk_mb;
                for t in e.launched.values().filter(|t| !t.state.is_terminal()) {
                    *live_tasks.entry(task_state_name(t.state)).or_default() += 1;
                }
                *live_tasks.entry("staging").or_default() += e.queued.len() as u64;
            }
        }
        let total = self.config.resources;
        let pct = |u: f64, t: f64| if t > 0.0 { u / t } else { 0.0 };
        let m = &st.metrics;
        let mut out = serde_json::Map::new();
        let mut put = |k: &str, v: f64| {
            out.insert(k.to_owned(), serde_json::json!(v));
        };
        put("slave/uptime_secs", self.started.elapsed().as_secs_f64());
        let gc = *self.gc.counts().borrow();
        put("gc/path_removals_succeeded", gc.succeeded as f64);
        put("gc/path_removals_failed", gc.failed as f64);
        put("gc/path_removals_pending", self.gc.pending() as f64);
        put("slave/registered", 1.0);
        put("slave/cpus_total", total.cpus);
        put("slave/cpus_used", used.cpus);
        put("slave/cpus_percent", pct(used.cpus, total.cpus));
        put("slave/mem_total", total.mem_mb);
        put("slave/mem_used", used.mem_mb);
        put("slave/mem_percent", pct(used.mem_mb, total.mem_mb));
        put("slave/disk_total", total.disk_mb);
        put("slave/disk_used", used.disk_mb);
        put("slave/disk_percent", pct(used.disk_mb, total.disk_mb));
        put("slave/executors_registering", counts[0] as f64);
        put("slave/executors_running", counts[1] as f64);
        put("slave/executors_terminating", counts[2] as f64);
        put("slave/executors_terminated", m.executors_terminated as f64);
        put(
            "slave/container_launch_errors",
            m.container_launch_errors as f64,
        );
        put("slave/frameworks_active", st.frameworks.len() as f64);
        put("slave/valid_status_updates", m.valid_status_updates as f64);
        put(
            "slave/invalid_status_updates",
            m.invalid_status_updates as f64,
        );
        put(
            "slave/valid_framework_messages",
            m.valid_framework_messages as f64,
        );
        put(
            "slave/invalid_framework_messages",
            m.invalid_framework_messages as f64,
        );
        for state in ["staging", "starting", "running", "killing"] {
            put(
                &format!("slave/tasks_{state}"),
                live_tasks.get(state).copied().unwrap_or(0) as f64,
            );
        }
        for state in [
            "finished", "failed", "killed", "lost", "error", "gone", "dropped",
        ] {
            put(
                &format!("slave/tasks_{state}"),
                m.tasks.get(state).copied().unwrap_or(0) as f64,
            );
        }
        put(
            "containerizer/fetcher/task_fetches_succeeded",
            m.fetches_succeeded as f64,
        );
        put(
            "containerizer/fetcher/task_fetches_failed",
            m.fetches_failed as f64,
        );
        out
    }
}
