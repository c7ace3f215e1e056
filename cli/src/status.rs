//! `brine status`: the `brine` frameworks a master knows (executors, their size and
//! tasks), merged with what each framework's scheduler knows and the master does not
//! (executor heartbeats, job counts), read from the scheduler's `GET /status` at the
//! framework's `webui_url`. A scheduler that is gone still leaves the master's view.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use brine_scheduler::{ClusterStatus, ExecutorStatus};
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::http::get_json;
use crate::options::{CredentialArgs, parse_master};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The master (http://host:port; `brine local` listens on http://127.0.0.1:5050).
    #[arg(long, default_value = "http://127.0.0.1:5050", value_parser = parse_master)]
    pub master: String,
    /// Print the merged view as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show the frameworks with this name.
    #[arg(long, default_value = "brine")]
    pub name: String,
    /// Bound on each HTTP request (a Mesos duration: `500ms`, `5secs`).
    #[arg(long, default_value = "5secs", value_parser = |s: &str| brine_proto::duration::parse(s).map_err(|e| e.to_string()))]
    pub timeout: Duration,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let master = args.master.trim_end_matches('/');
    if master.starts_with("local") {
        bail!(
            "a `local` master lives inside the process that started it; start one with \
             `brine local` and pass its URL (default http://127.0.0.1:5050)"
        );
    }
    if !master.starts_with("http://") {
        bail!("brine status reads plain http:// masters only (not {master})");
    }
    let credential = args.credentials.read()?;
    let state: MasterState = get_json(
        &format!("{master}/master/state"),
        credential.as_ref(),
        args.timeout,
    )
    .await?;
    let mut report = Report {
        master: master.to_owned(),
        frameworks: Vec::new(),
    };
    for framework in state.frameworks.into_iter().filter(|f| f.name == args.name) {
        let webui = Some(framework.webui_url.trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty());
        let scheduler = match &webui {
            None => Err("the framework advertises no webui_url".to_owned()),
            Some(url) => get_json::<ClusterStatus>(&format!("{url}/status"), None, args.timeout)
                .await
                .map_err(|e| format!("{e:#}")),
        };
        report.frameworks.push(merge(framework, webui, scheduler));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report, &args.name, now_unix_ms());
    }
    Ok(Outcome::Success)
}

/// The parts of `GET /master/state` read here; Mesos and `brine-local` both write them.
/// Mesos names agents `slave_id` there; `brine-local` writes both names.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MasterState {
    frameworks: Vec<MasterFramework>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MasterFramework {
    id: String,
    name: String,
    active: bool,
    connected: bool,
    webui_url: String,
    executors: Vec<MasterExecutor>,
    tasks: Vec<MasterTask>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MasterExecutor {
    executor_id: String,
    agent_id: Option<String>,
    slave_id: Option<String>,
    resources: Resources,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MasterTask {
    id: String,
    state: String,
    executor_id: String,
    agent_id: Option<String>,
    slave_id: Option<String>,
    resources: Resources,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
struct Resources {
    cpus: f64,
    mem: f64,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    master: String,
    frameworks: Vec<FrameworkReport>,
}

#[derive(Debug, Serialize)]
struct FrameworkReport {
    id: String,
    active: bool,
    connected: bool,
    webui_url: Option<String>,
    /// The scheduler's own view (`GET <webui_url>/status`), when it answered.
    scheduler: Option<ClusterStatus>,
    /// Why the scheduler's view is missing.
    scheduler_error: Option<String>,
    executors: Vec<ExecutorReport>,
}

#[derive(Debug, Serialize)]
struct ExecutorReport {
    agent_id: String,
    executor_id: String,
    /// The executor's container: its own resources plus its live tasks' (as the master
    /// accounts them).
    cpus: f64,
    mem_mb: f64,
    tasks: Vec<TaskReport>,
    /// From the scheduler; `None`: unknown (no heartbeat yet, or no scheduler).
    last_heartbeat_unix_ms: Option<u64>,
    /// Known to the scheduler only (e.g. presumed lost, gone from the master).
    known_to_master: bool,
    /// The scheduler's record of this executor.
    scheduler: Option<ExecutorStatus>,
}

#[derive(Debug, Serialize)]
struct TaskReport {
    id: String,
    state: String,
}

fn agent_of(agent_id: &Option<String>, slave_id: &Option<String>) -> String {
    agent_id
        .clone()
        .or_else(|| slave_id.clone())
        .unwrap_or_default()
}

fn merge(
    framework: MasterFramework,
    webui_url: Option<String>,
    scheduler: Result<ClusterStatus, String>,
) -> FrameworkReport {
    let mut executors: BTreeMap<(String, String), ExecutorReport> = BTreeMap::new();
    for e in &framework.executors {
        let key = (agent_of(&e.agent_id, &e.slave_id), e.executor_id.clone());
        executors.insert(
            key.clone(),
            ExecutorReport {
                agent_id: key.0,
                executor_id: key.1,
                cpus: e.resources.cpus,
                mem_mb: e.resources.mem,
                tasks: Vec::new(),
                last_heartbeat_unix_ms: None,
                known_to_master: true,
                scheduler: None,
            },
        );
    }
    for t in &framework.tasks {
        let key = (agent_of(&t.agent_id, &t.slave_id), t.executor_id.clone());
        if let Some(executor) = executors.get_mut(&key) {
            if !is_terminal(&t.state) {
                executor.cpus += t.resources.cpus;
                executor.mem_mb += t.resources.mem;
            }
            executor.tasks.push(TaskReport {
                id: t.id.clone(),
                state: t.state.clone(),
            });
        }
    }
    let (scheduler, scheduler_error) = match scheduler {
        Ok(status) => (Some(status), None),
        Err(e) => (None, Some(e)),
    };
    for s in scheduler.iter().flat_map(|s| &s.executors) {
        let key = (s.agent_id.clone(), s.executor_id.clone());
        let executor = executors
            .entry(key.clone())
            .or_insert_with(|| ExecutorReport {
                agent_id: key.0,
                executor_id: key.1,
                cpus: s.cpus,
                mem_mb: s.mem_mb,
                tasks: s
                    .tasks
                    .iter()
                    .map(|id| TaskReport {
                        id: id.clone(),
                        state: "unknown to the master".into(),
                    })
                    .collect(),
                last_heartbeat_unix_ms: None,
                known_to_master: false,
                scheduler: None,
            });
        executor.last_heartbeat_unix_ms = s.last_heartbeat_unix_ms;
        executor.scheduler = Some(s.clone());
    }
    FrameworkReport {
        id: framework.id,
        active: framework.active,
        connected: framework.connected,
        webui_url,
        scheduler,
        scheduler_error,
        executors: executors.into_values().collect(),
    }
}

/// Mesos's terminal task states (`isTerminalState`).
fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_LOST"
            | "TASK_ERROR"
            | "TASK_DROPPED"
            | "TASK_GONE"
            | "TASK_GONE_BY_OPERATOR"
    )
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn print_table(report: &Report, name: &str, now_ms: u64) {
    println!("master {}", report.master);
    if report.frameworks.is_empty() {
        println!("no framework named {name:?}");
    }
    for f in &report.frameworks {
        let link = if f.connected {
            "connected"
        } else {
            "disconnected"
        };
        println!();
        println!("framework {} ({name}, {link})", f.id);
        match (&f.scheduler, &f.scheduler_error) {
            (Some(s), _) => {
                let j = &s.jobs;
                println!(
                    "  scheduler {}: jobs {} pending, {} staging, {} running, {} succeeded, {} failed",
                    f.webui_url.as_deref().unwrap_or("?"),
                    j.pending,
                    j.staging,
                    j.running,
                    j.succeeded,
                    j.failed
                );
            }
            (None, error) => println!(
                "  scheduler unreachable ({}): last heartbeats unknown",
                error.as_deref().unwrap_or("no answer")
            ),
        }
        if f.executors.is_empty() {
            println!("  no executors");
            continue;
        }
        // Ids are long (Mesos ids carry the master's UUID): size columns to them.
        let agent_w = f
            .executors
            .iter()
            .map(|e| e.agent_id.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let exec_w = f
            .executors
            .iter()
            .map(|e| e.executor_id.len())
            .max()
            .unwrap_or(0)
            .max(8);
        println!(
            "  {:<agent_w$}  {:<exec_w$}  {:>5}  {:>6}  {:>5}  LAST HEARTBEAT",
            "AGENT", "EXECUTOR", "CPUS", "MEM MB", "TASKS"
        );
        for e in &f.executors {
            let heartbeat = match e.last_heartbeat_unix_ms {
                Some(at) => format!("{:.1}s ago", now_ms.saturating_sub(at) as f64 / 1000.0),
                None => "unknown".to_owned(),
            };
            let lost = if e.scheduler.as_ref().is_some_and(|s| s.lost) {
                " (presumed lost)"
            } else {
                ""
            };
            println!(
                "  {:<agent_w$}  {:<exec_w$}  {:>5.2}  {:>6.0}  {:>5}  {heartbeat}{lost}",
                e.agent_id,
                e.executor_id,
                e.cpus,
                e.mem_mb,
                e.tasks.len()
            );
            for t in &e.tasks {
                println!("    task {}  {}", t.id, t.state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mesos's own field names (`slave_id`, no `agent_id`) are understood.
    #[test]
    fn reads_mesos_state() {
        let state: MasterState = serde_json::from_value(serde_json::json!({
            "frameworks": [{
                "id": "F1", "name": "brine", "active": true, "connected": true,
                "webui_url": "",
                "executors": [{"executor_id": "brine-S0-1", "slave_id": "S0",
                               "resources": {"cpus": 0.1, "mem": 32.0, "disk": 0.0}}],
                "tasks": [
                    {"id": "t1", "state": "TASK_RUNNING", "executor_id": "brine-S0-1",
                     "slave_id": "S0", "resources": {"cpus": 0.1, "mem": 64.0}},
                    {"id": "t2", "state": "TASK_FINISHED", "executor_id": "brine-S0-1",
                     "slave_id": "S0", "resources": {"cpus": 0.1, "mem": 64.0}}
                ]
            }]
        }))
        .unwrap_or_default();
        let framework = state.frameworks.into_iter().next().unwrap_or_default();
        let report = merge(framework, None, Err("gone".into()));
        assert_eq!(report.executors.len(), 1);
        let e = &report.executors[0];
        assert_eq!((e.agent_id.as_str(), e.tasks.len()), ("S0", 2));
        assert!((e.cpus - 0.2).abs() < 1e-9 && (e.mem_mb - 96.0).abs() < 1e-9);
        assert_eq!(e.last_heartbeat_unix_ms, None);
        assert_eq!(report.scheduler_error.as_deref(), Some("gone"));
    }
}
