//! Parts 2 and 3: the real `brine-executor` process under the real local agent
//! (`brine_local::agent::Agent`), the harness playing the scheduler above the agent.
//!
//! The executor runs with `BRINE_BENCH_TIMESTAMPS=1`, so its terminal updates carry
//! `CLOCK_MONOTONIC` stamps of "LAUNCH decoded" and "guest entry" taken inside it; the
//! harness reads the same clock right before handing the LAUNCH to the agent (which
//! writes it to the executor's SUBSCRIBE stream without further waiting) and when the
//! terminal update reaches it. No point is inferred from outside.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use brine_executor::runtime::monotonic_ns;
use brine_executor::tasks::{
    BENCH_TIMESTAMPS_ENV, LABEL_GUEST_ENTERED_NS, LABEL_LAUNCH_DECODED_NS,
};
use brine_local::agent::{Agent, AgentConfig, AgentEvent, AgentResources, CgroupsMode};
use brine_proto::mesos::v1::{
    ExecutorId, ExecutorInfo, FrameworkInfo, TaskInfo, TaskState, TaskStatus, environment,
};
use brine_proto::payload::{ExecutorConfig, ModuleHash, ModuleRef, Payload, TaskOutcome};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::stats::Series;
use crate::{Context, Plan};

/// How long any one task may take before the benchmark gives up.
const TASK_TIMEOUT: Duration = Duration::from_secs(120);

/// A local agent driven directly: launches, acknowledgements, events.
pub struct BenchAgent {
    pub agent: Arc<Agent>,
    events: UnboundedReceiver<AgentEvent>,
    framework: FrameworkInfo,
    _dir: tempfile::TempDir,
}

/// The timestamps of one task, all `CLOCK_MONOTONIC` ns.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Taken by the harness right before handing the LAUNCH to the agent.
    pub launch_written: u64,
    /// Taken by the executor right after decoding the LAUNCH event.
    pub launch_decoded: u64,
    /// Taken by the executor right before calling the task's entry.
    pub guest_entered: u64,
    /// Taken by the harness when the terminal update reached it.
    pub terminal_received: u64,
    pub status: TaskStatus,
}

impl BenchAgent {
    /// An agent with cgroups off.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// An agent with cgroups off, then `configure`d.
    pub async fn start_with(configure: impl FnOnce(&mut AgentConfig)) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("brine-bench-").tempdir()?;
        let mut config = AgentConfig::new(dir.path().join("agent"));
        config.resources = AgentResources {
            cpus: 64.0,
            mem_mb: 65536.0,
            disk_mb: 65536.0,
        };
        config.cgroups = CgroupsMode::Off;
        config.executor_shutdown_grace_period = Duration::from_secs(5);
        configure(&mut config);
        let mut agent = Agent::start(config).await?;
        let events = agent
            .take_events()
            .context("the agent's events were taken")?;
        Ok(Self {
            agent: Arc::new(agent),
            events,
            framework: brine_tests::framework("brine-bench", false),
            _dir: dir,
        })
    }

    /// Where executors' sandboxes and the harness's scratch files go.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// An executor running the real binary with the timestamp opt-in.
    pub fn executor(&self, id: &str, config: &ExecutorConfig, uris: &[&Path]) -> ExecutorInfo {
        let mut info = brine_tests::executor_info(id, config, uris);
        if let Some(env) = info.command.as_mut().and_then(|c| c.environment.as_mut()) {
            env.variables.push(environment::Variable {
                name: BENCH_TIMESTAMPS_ENV.into(),
                value: Some("1".into()),
                ..Default::default()
            });
        }
        info
    }

    /// Launches `task` on `executor`; returns its timestamps once its terminal update
    /// arrived (every update acknowledged as it comes, as a scheduler does).
    pub async fn run(&mut self, executor: &ExecutorInfo, task: TaskInfo) -> anyhow::Result<Timed> {
        let id = task.task_id.value.clone();
        let launch_written = monotonic_ns();
        self.agent
            .launch(self.framework.clone(), executor.clone(), task)
            .await?;
        let (status, terminal_received) = self.terminal(&id).await?;
        let stamp = |key: &str| label_ns(&status, key).with_context(|| format!("{id}: no {key}"));
        Ok(Timed {
            launch_written,
            launch_decoded: stamp(LABEL_LAUNCH_DECODED_NS)?,
            guest_entered: stamp(LABEL_GUEST_ENTERED_NS)?,
            terminal_received,
            status,
        })
    }

    /// Launches all `tasks` at once; waits for every terminal update.
    pub async fn run_all(
        &mut self,
        executor: &ExecutorInfo,
        tasks: Vec<TaskInfo>,
    ) -> anyhow::Result<Vec<TaskStatus>> {
        let mut pending: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        for task in tasks {
            self.agent
                .launch(self.framework.clone(), executor.clone(), task)
                .await?;
        }
        let mut done = Vec::new();
        while !pending.is_empty() {
            let status = self.next_terminal().await?.0;
            pending.retain(|id| *id != status.task_id.value);
            done.push(status);
        }
        Ok(done)
    }

    async fn terminal(&mut self, task_id: &str) -> anyhow::Result<(TaskStatus, u64)> {
        loop {
            let (status, at) = self.next_terminal().await?;
            if status.task_id.value == task_id {
                return Ok((status, at));
            }
        }
    }

    /// The next terminal update of any task, with the time it arrived.
    async fn next_terminal(&mut self) -> anyhow::Result<(TaskStatus, u64)> {
        loop {
            let event = tokio::time::timeout(TASK_TIMEOUT, self.events.recv())
                .await
                .context("no terminal update in time")?
                .context("the agent stopped")?;
            let at = monotonic_ns();
            match event {
                AgentEvent::StatusUpdate {
                    framework_id,
                    status,
                } => {
                    if let Some(uuid) = &status.uuid {
                        self.agent
                            .acknowledge(&framework_id, &status.task_id, uuid)
                            .await?;
                    }
                    if status.state().is_terminal() {
                        return Ok((status, at));
                    }
                }
                AgentEvent::ExecutorTerminated {
                    executor_id,
                    status,
                    ..
                } => bail!(
                    "executor {} terminated (wait status {status:?}) while a task was pending",
                    executor_id.value
                ),
                AgentEvent::ExecutorMessage { .. } => {}
            }
        }
    }

    /// Shuts an executor down and waits until its process is gone.
    pub async fn stop_executor(&mut self, id: &str) -> anyhow::Result<()> {
        let executor_id = ExecutorId { value: id.into() };
        let framework_id = self.framework.id.clone().unwrap_or_default();
        self.agent
            .shutdown_executor(&framework_id, &executor_id)
            .await?;
        loop {
            let event = tokio::time::timeout(TASK_TIMEOUT, self.events.recv())
                .await
                .context("the executor did not stop in time")?
                .context("the agent stopped")?;
            match event {
                AgentEvent::ExecutorTerminated { executor_id, .. } if executor_id.value == id => {
                    return Ok(());
                }
                AgentEvent::StatusUpdate {
                    framework_id,
                    status,
                } => {
                    if let Some(uuid) = &status.uuid {
                        let _ = self
                            .agent
                            .acknowledge(&framework_id, &status.task_id, uuid)
                            .await;
                    }
                }
                _ => {}
            }
        }
    }

    pub async fn shutdown(self) {
        drop(self.events);
        if let Ok(agent) = Arc::try_unwrap(self.agent) {
            agent.shutdown().await;
        }
    }
}

fn label_ns(status: &TaskStatus, key: &str) -> Option<u64> {
    status
        .labels
        .as_ref()?
        .labels
        .iter()
        .find(|l| l.key == key)?
        .value
        .as_deref()?
        .parse()
        .ok()
}

/// The result bytes of a finished task, or why it did not finish.
pub fn result_of(status: &TaskStatus) -> anyhow::Result<Vec<u8>> {
    if status.state() != TaskState::TaskFinished {
        bail!(
            "task {} ended {}: {}",
            status.task_id.value,
            status.state().as_str_name(),
            status.message()
        );
    }
    match TaskOutcome::decode(status.data.as_deref().unwrap_or_default()) {
        Ok(TaskOutcome::Success { result }) => Ok(result),
        Ok(TaskOutcome::Failure(f)) => bail!("task {} failed: {f}", status.task_id.value),
        Err(e) => bail!("task {}: no outcome: {e}", status.task_id.value),
    }
}

fn sum_task(id: &str, module: ModuleRef) -> TaskInfo {
    let spec = brine_tests::spec(module, "sum", r#""1 2 3""#);
    brine_tests::task(id, &spec, 1.0, 64.0)
}

fn check_sum(timed: &Timed) -> anyhow::Result<()> {
    let result = result_of(&timed.status)?;
    anyhow::ensure!(result == b"6", "sum returned {result:?}");
    Ok(())
}

pub struct Warm {
    pub launch_to_entry: Series,
    pub decoded_to_entry: Series,
    pub launch_to_terminal: Series,
}

pub struct Cold {
    pub module_to_entry: Series,
    pub module_to_terminal: Series,
    pub process_disk_to_entry: Series,
    pub process_disk_to_terminal: Series,
    pub process_compile_to_entry: Series,
    pub process_compile_to_terminal: Series,
}

/// Part 2 (warm starts) and part 3 (cold starts) on one agent.
pub async fn measure(ctx: &Context, plan: &Plan) -> anyhow::Result<(Warm, Cold)> {
    let mut bench = BenchAgent::start().await?;
    let sum = ctx.artifacts.example("sum")?;
    let hash = ModuleHash::of(&sum);
    let config = brine_tests::config(Duration::from_secs(2));
    let executor = bench.executor("bench-warm", &config, &[]);

    // The first task compiles; the scheduler then names the module by hash only.
    check_sum(
        &bench
            .run(&executor, sum_task("first", ModuleRef::inline(sum.clone())))
            .await?,
    )?;
    let mut warm = Warm {
        launch_to_entry: Series::new(
            "warm.launch_to_entry",
            "executor warm start: to guest entry",
            "LAUNCH handed to the agent → entry about to be called (in the executor)",
        ),
        decoded_to_entry: Series::new(
            "warm.decoded_to_entry",
            "executor warm start: decoded to guest entry",
            "LAUNCH decoded (in the executor) → entry about to be called",
        ),
        launch_to_terminal: Series::new(
            "warm.launch_to_terminal",
            "executor warm start: to terminal update",
            "LAUNCH handed to the agent → TASK_FINISHED received from the agent",
        ),
    };
    let mut n = 0u64;
    for _ in 0..plan.warm_warmup {
        n += 1;
        let task = sum_task(&format!("warmup-{n}"), ModuleRef::by_hash(hash));
        check_sum(&bench.run(&executor, task).await?)?;
    }
    for _ in 0..plan.rounds {
        warm.launch_to_entry.start_round();
        warm.decoded_to_entry.start_round();
        warm.launch_to_terminal.start_round();
        for _ in 0..plan.warm_iters {
            n += 1;
            let task = sum_task(&format!("warm-{n}"), ModuleRef::by_hash(hash));
            let t = bench.run(&executor, task).await?;
            check_sum(&t)?;
            warm.launch_to_entry
                .record(t.guest_entered.saturating_sub(t.launch_written));
            warm.decoded_to_entry
                .record(t.guest_entered.saturating_sub(t.launch_decoded));
            warm.launch_to_terminal
                .record(t.terminal_received.saturating_sub(t.launch_written));
            ctx.progress.inc(1);
        }
    }

    let mut cold = Cold {
        module_to_entry: Series::new(
            "cold.module_to_entry",
            "cold module (compile) on a running executor: to guest entry",
            "LAUNCH of a never-seen module handed to the agent → entry about to be called",
        ),
        module_to_terminal: Series::new(
            "cold.module_to_terminal",
            "cold module (compile) on a running executor: to terminal update",
            "LAUNCH of a never-seen module handed to the agent → TASK_FINISHED received",
        ),
        process_disk_to_entry: Series::new(
            "cold.process_disk_to_entry",
            "new executor process, module in the disk cache: to guest entry",
            "LAUNCH handed to the agent (executor not running) → entry about to be called",
        ),
        process_disk_to_terminal: Series::new(
            "cold.process_disk_to_terminal",
            "new executor process, module in the disk cache: to terminal update",
            "LAUNCH handed to the agent (executor not running) → TASK_FINISHED received",
        ),
        process_compile_to_entry: Series::new(
            "cold.process_compile_to_entry",
            "new executor process, compile from nothing: to guest entry",
            "LAUNCH handed to the agent (executor not running, no cache) → entry about to be called",
        ),
        process_compile_to_terminal: Series::new(
            "cold.process_compile_to_terminal",
            "new executor process, compile from nothing: to terminal update",
            "LAUNCH handed to the agent (executor not running, no cache) → TASK_FINISHED received",
        ),
    };
    for round in 0..plan.rounds {
        cold.module_to_entry.start_round();
        cold.module_to_terminal.start_round();
        for i in 0..plan.cold_module_iters {
            let bytes = crate::paths::salted_module(&sum, &format!("module-{round}-{i}"));
            let t = bench
                .run(
                    &executor,
                    sum_task(
                        &format!("cold-module-{round}-{i}"),
                        ModuleRef::inline(bytes),
                    ),
                )
                .await?;
            check_sum(&t)?;
            cold.module_to_entry
                .record(t.guest_entered.saturating_sub(t.launch_written));
            cold.module_to_terminal
                .record(t.terminal_received.saturating_sub(t.launch_written));
            ctx.progress.inc(1);
        }
    }
    bench.stop_executor("bench-warm").await?;

    // New processes: one shared disk cache, warmed once, versus a fresh sandbox cache.
    let shared_cache = bench.dir().join("shared-module-cache");
    let disk_config = ExecutorConfig {
        module_cache_dir: Some(shared_cache.to_string_lossy().into_owned()),
        ..config.clone()
    };
    let warmer = bench.executor("bench-cache-warmer", &disk_config, &[]);
    check_sum(
        &bench
            .run(
                &warmer,
                sum_task("cache-warmer", ModuleRef::inline(sum.clone())),
            )
            .await?,
    )?;
    bench.stop_executor("bench-cache-warmer").await?;
    for round in 0..plan.rounds {
        cold.process_disk_to_entry.start_round();
        cold.process_disk_to_terminal.start_round();
        cold.process_compile_to_entry.start_round();
        cold.process_compile_to_terminal.start_round();
        for i in 0..plan.cold_process_iters {
            for (kind, cfg) in [("disk", &disk_config), ("compile", &config)] {
                let id = format!("bench-cold-{kind}-{round}-{i}");
                let executor = bench.executor(&id, cfg, &[]);
                let t = bench
                    .run(
                        &executor,
                        sum_task(&format!("{id}-task"), ModuleRef::inline(sum.clone())),
                    )
                    .await?;
                check_sum(&t)?;
                let (entry, terminal) = if kind == "disk" {
                    (
                        &mut cold.process_disk_to_entry,
                        &mut cold.process_disk_to_terminal,
                    )
                } else {
                    (
                        &mut cold.process_compile_to_entry,
                        &mut cold.process_compile_to_terminal,
                    )
                };
                entry.record(t.guest_entered.saturating_sub(t.launch_written));
                terminal.record(t.terminal_received.saturating_sub(t.launch_written));
                bench.stop_executor(&id).await?;
                ctx.progress.inc(1);
            }
        }
    }
    bench.shutdown().await;
    Ok((warm, cold))
}
