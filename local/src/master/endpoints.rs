//! The read-only endpoints served from the state: `GET /master/state` (frameworks,
//! their tasks, executors and offers, completed frameworks, agents) and
//! `GET /metrics/snapshot` (Mesos's `master/*` keys).

use std::collections::BTreeMap;

use brine_proto::mesos::v1::TaskState;
use serde_json::{Value, json};

use super::frameworks::Framework;
use super::resources::Resources;
use super::state::State;

impl State {
    pub(super) fn state_json(&self) -> Value {
        let framework_json = |f: &Framework, active: bool| {
            let tasks: Vec<Value> = f
                .tasks
                .values()
                .map(|t| {
                    json!({
                        "id": t.info.task_id.value,
                        "name": t.info.name,
                        "framework_id": f.id.value,
                        "agent_id": t.agent_id.value,
                        "slave_id": t.agent_id.value,
                        "executor_id": t.executor_id.as_ref().map(|e| e.value.clone()).unwrap_or_default(),
                        "state": t.state.as_str_name(),
                        "resources": resources_json(&t.resources),
                    })
                })
                .collect();
            let executors: Vec<Value> = self
                .agents
                .iter()
                .flat_map(|a| {
                    a.executors
                        .iter()
                        .filter(|((fid, _), _)| *fid == f.id.value)
                        .map(|((_, eid), (_, r))| {
                            json!({
                                "executor_id": eid,
                                "framework_id": f.id.value,
                                "agent_id": a.id.value,
                                "slave_id": a.id.value,
                                "resources": resources_json(r),
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            let offered = self
                .offers
                .values()
                .filter(|o| o.offer.framework_id == f.id)
                .fold(Resources::default(), |sum, o| sum.add(&o.resources));
            let used = self
                .agents
                .iter()
                .flat_map(|a| {
                    let executors = a
                        .executors
                        .iter()
                        .filter(|((fid, _), _)| *fid == f.id.value)
                        .map(|(_, (_, r))| r);
                    let tasks = a
                        .tasks
                        .iter()
                        .filter(|((fid, _), _)| *fid == f.id.value)
                        .map(|(_, r)| r);
                    executors.chain(tasks)
                })
                .fold(Resources::default(), |sum, r| sum.add(r));
            let capabilities: Vec<&str> = f
                .info
                .capabilities
                .iter()
                .map(|c| c.r#type().as_str_name())
                .collect();
            let mut entry = json!({
                "id": f.id.value,
                "name": f.info.name,
                "user": f.info.user,
                "capabilities": capabilities,
                "failover_timeout": f.info.failover_timeout.unwrap_or(0.0),
                "hostname": f.info.hostname.clone().unwrap_or_default(),
                "webui_url": f.info.webui_url.clone().unwrap_or_default(),
                "checkpoint": f.info.checkpoint(),
                "active": active && f.connected(),
                "connected": f.connected(),
                "recovered": false,
                "registered_time": f.registered_time,
                "offered_resources": resources_json(&offered),
                "used_resources": resources_json(&used),
                "tasks": tasks,
                "executors": executors,
                "offers": self.offers.values().filter(|o| o.offer.framework_id == f.id).map(|o| json!({
                    "id": o.offer.id.value, "agent_id": o.offer.agent_id.value, "resources": resources_json(&o.resources),
                })).collect::<Vec<_>>(),
            });
            // Mesos lists `roles` for a MULTI_ROLE framework and `role` otherwise.
            if let Some(o) = entry.as_object_mut() {
                if f.multi_role() {
                    o.insert("roles".to_owned(), json!(f.info.roles));
                } else {
                    o.insert("role".to_owned(), json!(f.info.role()));
                }
            }
            entry
        };
        let agents: Vec<Value> = self
            .agents
            .iter()
            .filter(|a| a.active)
            .map(|a| {
                json!({
                    "id": a.id.value,
                    "hostname": a.info.hostname,
                    "port": a.endpoint.port(),
                    "pid": format!("slave(1)@{}", a.endpoint),
                    "resources": resources_json(&a.total),
                    "used_resources": resources_json(&a.used()),
                    "offered_resources": resources_json(&a.offered),
                    "active": a.connected,
                })
            })
            .collect();
        let info = &self.master_info;
        json!({
            "version": "1.12.0",
            "id": info.id,
            "pid": info.pid,
            "hostname": info.hostname,
            // As Mesos's `_slaves_active()`/`_slaves_inactive()`: a disconnected
            // agent is deactivated until it re-registers.
            "activated_slaves": self.agents.iter().filter(|a| a.connected).count(),
            "deactivated_slaves": self.agents.iter().filter(|a| !a.connected).count(),
            "leader": info.pid,
            "slaves": agents,
            "frameworks": self.frameworks.values().map(|f| framework_json(f, true)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed.iter().map(|f| framework_json(f, false)).collect::<Vec<_>>(),
        })
    }

    pub(super) fn metrics(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: f64| {
            m.insert(k.to_owned(), json!(v));
        };
        let connected = self.frameworks.values().filter(|f| f.connected()).count() as f64;
        put("master/elected", 1.0);
        put("master/uptime_secs", self.started.elapsed().as_secs_f64());
        put("master/frameworks_active", connected);
        put("master/frameworks_connected", connected);
        put(
            "master/frameworks_disconnected",
            self.frameworks.len() as f64 - connected,
        );
        put(
            "master/frameworks_inactive",
            self.frameworks.len() as f64 - connected,
        );
        let active = self.agents.iter().filter(|a| a.active).count() as f64;
        put("master/slaves_active", active);
        let connected_agents = self
            .agents
            .iter()
            .filter(|a| a.active && a.connected)
            .count() as f64;
        put("master/slaves_connected", connected_agents);
        put("master/slaves_disconnected", active - connected_agents);
        put("master/slaves_inactive", 0.0);
        put("master/outstanding_offers", self.offers.len() as f64);
        let mut total = Resources::default();
        let mut used = Resources::default();
        for a in self.agents.iter().filter(|a| a.active) {
            total = total.add(&a.total);
            used = used.add(&a.used());
        }
        for (name, t, u) in [
            ("cpus", total.cpus, used.cpus),
            ("mem", total.mem, used.mem),
            ("disk", total.disk, used.disk),
        ] {
            put(&format!("master/{name}_total"), t);
            put(&format!("master/{name}_used"), u);
            put(
                &format!("master/{name}_percent"),
                if t > 0.0 { u / t } else { 0.0 },
            );
        }
        for state in [
            "staging",
            "starting",
            "running",
            "finished",
            "failed",
            "killed",
            "killing",
            "lost",
            "error",
            "dropped",
            "unreachable",
            "gone",
            "gone_by_operator",
            "unknown",
        ] {
            let n = self.task_states.get(state).copied().unwrap_or(0);
            put(&format!("master/tasks_{state}"), n as f64);
        }
        // `tasks_staging` / `tasks_running` are gauges in Mesos: count current tasks.
        let mut current: BTreeMap<&str, f64> = BTreeMap::new();
        for f in self.frameworks.values() {
            for t in f.tasks.values() {
                let key = match t.state {
                    TaskState::TaskStaging => "master/tasks_staging",
                    TaskState::TaskStarting => "master/tasks_starting",
                    TaskState::TaskRunning => "master/tasks_running",
                    TaskState::TaskKilling => "master/tasks_killing",
                    _ => continue,
                };
                *current.entry(key).or_default() += 1.0;
            }
        }
        for key in [
            "master/tasks_staging",
            "master/tasks_starting",
            "master/tasks_running",
            "master/tasks_killing",
        ] {
            put(key, current.get(key).copied().unwrap_or(0.0));
        }
        for (k, v) in &self.counters {
            put(k, *v as f64);
        }
        m
    }
}

fn resources_json(r: &Resources) -> Value {
    let ports: Vec<String> = r.ports.iter().map(|(b, e)| format!("{b}-{e}")).collect();
    let mut v = json!({"cpus": r.cpus, "mem": r.mem, "disk": r.disk});
    if !ports.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("ports".to_owned(), json!(format!("[{}]", ports.join(", "))));
    }
    v
}
