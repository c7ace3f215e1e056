//! Which agent ran each job (from the job's `JobStatus.agent`), to show that work spread
//! over both agents.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use brine_scheduler::{ClusterStatus, TaskError, TaskHandle};
use serde::de::DeserializeOwned;

#[derive(Default)]
pub struct Agents {
    jobs: Mutex<BTreeMap<String, usize>>,
}

impl Agents {
    /// Awaits `handle`, then counts the job for the agent that ran it.
    pub async fn track<R: DeserializeOwned>(&self, handle: TaskHandle<R>) -> Result<R, TaskError> {
        let status = handle.watch();
        let result = handle.await;
        self.record(status.and_then(|s| s.borrow().agent.clone()));
        result
    }

    /// Counts one job for `agent` (`None`: never placed).
    pub fn record(&self, agent: Option<String>) {
        let agent = agent.unwrap_or_else(|| "(not placed)".into());
        *self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(agent)
            .or_default() += 1;
    }

    /// Jobs per agent, and each agent's executor as the scheduler sees it.
    pub fn print(&self, status: Option<&ClusterStatus>) {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        for (agent, n) in jobs.iter() {
            println!("agent {agent}: ran {n} of the hello, sum, wordcount and pi jobs");
        }
        if jobs.keys().filter(|a| !a.starts_with('(')).count() >= 2 {
            println!("Both agents ran work.");
        }
        let Some(status) = status else {
            return;
        };
        let j = &status.jobs;
        println!(
            "scheduler: {} jobs succeeded, {} failed (the failure is sum's bad token)",
            j.succeeded, j.failed
        );
        for e in &status.executors {
            println!(
                "executor {} on {}: {:.2} cpus, {:.0} MB at its last heartbeat, {} modules cached{}",
                e.executor_id,
                e.agent_id,
                e.cpus,
                e.mem_mb,
                e.modules,
                if e.lost { ", presumed lost" } else { "" }
            );
        }
    }
}
