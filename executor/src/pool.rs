//! The worker pool: which accepted tasks run now, and running one off the event loop.
//!
//! Tasks wait in launch order in a [`WorkQueue`]; the event loop starts the oldest
//! ones while fewer tasks run than the allocation allows
//! ([`TaskTable::concurrency`](crate::tasks::TaskTable::concurrency): `ceil(Σ cpus of
//! non-terminal tasks)`, at least 1, at most the runtime's instance slots). Each task
//! runs on a blocking thread ([`spawn`], see [`Placement`]), never on the event loop;
//! its outcome comes back as a [`TaskDone`] message. Lane closures (`crate::leases`)
//! take the same path.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use brine_proto::payload::{ErrorKind, ModuleRef, TaskFailure, TaskSpec};
use tokio::sync::mpsc::UnboundedSender;

use crate::runtime::{Dataset, KillSwitch, LoadedModule, Output, Progress, Runtime, TaskRun};

/// Most bytes of a task's stdout (and of its stderr) written to its sandbox file.
pub const MAX_TASK_OUTPUT_BYTES: u64 = 16 << 20;

/// A decoded task waiting for a worker.
#[derive(Debug)]
pub struct Queued {
    pub task_id: String,
    pub spec: TaskSpec,
}

/// Accepted tasks not started yet, oldest first.
#[derive(Debug, Default)]
pub struct WorkQueue {
    queue: VecDeque<Queued>,
}

impl WorkQueue {
    pub fn push(&mut self, task: Queued) {
        self.queue.push_back(task);
    }

    /// The oldest task, if `running < limit`.
    pub fn next(&mut self, running: usize, limit: usize) -> Option<Queued> {
        if running < limit {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// Takes a task out of the queue (killed before it started).
    pub fn remove(&mut self, task_id: &str) -> Option<Queued> {
        let at = self.queue.iter().position(|q| q.task_id == task_id)?;
        self.queue.remove(at)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Everything a worker needs to run one task.
pub struct Job {
    pub task_id: String,
    pub spec: TaskSpec,
    pub runtime: Arc<Runtime>,
    /// The task's `mem`, in bytes (`None`: the runtime's maximum).
    pub memory_limit_bytes: Option<u64>,
    pub deadline: Option<Duration>,
    pub kill: KillSwitch,
    pub progress: Progress,
    /// Where the task's stdout and stderr files go.
    pub output_dir: PathBuf,
    /// The shared dataset, or why it is not available.
    pub dataset: Result<Option<Arc<Dataset>>, String>,
}

/// A task's outcome, sent back to the event loop.
#[derive(Debug)]
pub struct TaskDone {
    pub task_id: String,
    pub outcome: Result<Vec<u8>, TaskFailure>,
    /// How long the task ran on its worker (load + run).
    pub ran_for: Duration,
    /// The compilation of the task's module, when it outlived the task's deadline:
    /// it still uses a core and memory (see [`Compiling`]).
    pub compiling: Option<Compiling>,
}

/// A compilation that outlived the task that started it. wasmtime cannot interrupt
/// one, so it goes on (and caches the module); whoever holds this can wait for its
/// end, for example to keep the resources it uses until then.
pub struct Compiling(std::sync::mpsc::Receiver<Result<Arc<LoadedModule>, TaskFailure>>);

impl Compiling {
    /// Blocks until the compilation has ended (or its thread died).
    pub fn wait(self) {
        let _ = self.0.recv();
    }
}

impl std::fmt::Debug for Compiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiling")
    }
}

/// Which thread runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The thread that dispatched it (the event loop's worker), as soon as the loop
    /// yields: the job becomes a task that calls `block_in_place`, so it lands in this
    /// worker's LIFO slot and `block_in_place` hands the worker's other tasks to
    /// another thread while the wasm runs here. `spawn_blocking` instead wakes an idle
    /// pool thread, on the other core as often as not: 24 µs at the median on the
    /// 2-core benchmark VM, about half of the executor's warm start
    /// (`bench/README.md`). For a job that comes alone: every Mesos task, and a lane
    /// closure that finds no other waiting.
    Dispatcher,
    /// A thread of tokio's blocking pool (`spawn_blocking`). For lane closures in a
    /// burst: with `block_in_place` for each, the worker's tasks (event loop, lane
    /// reader and writer) change threads with every closure; on the 2-core VM that cut
    /// warm `sum` closures through the lane by a third to a half (A/B runs: 10 700–
    /// 16 000 against 17 600–25 000 a second; `measure_lane_throughput` in
    /// `tests/tests/lane.rs`).
    BlockingPool,
}

/// Runs `job` off the event loop on the thread `placement` names (on a current-thread
/// runtime, in tests, always the blocking pool); its [`TaskDone`] goes to `done`
/// (wrapped by `wrap`).
pub fn spawn<M: Send + 'static>(
    job: Job,
    done: UnboundedSender<M>,
    wrap: impl FnOnce(TaskDone) -> M + Send + 'static,
    placement: Placement,
) {
    let work = move || {
        let started = Instant::now();
        let task_id = job.task_id.clone();
        let (outcome, compiling) = run_reporting(job);
        let message = wrap(TaskDone {
            task_id,
            outcome,
            ran_for: started.elapsed(),
            compiling,
        });
        // The loop has gone only when the process is exiting.
        let _ = done.send(message);
    };
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    match flavor {
        tokio::runtime::RuntimeFlavor::MultiThread if placement == Placement::Dispatcher => {
            tokio::spawn(async move { tokio::task::block_in_place(work) });
        }
        _ => {
            tokio::task::spawn_blocking(work);
        }
    }
}

/// Loads the module and runs the task, on the calling thread. The task's deadline
/// covers both: what loading took is taken off what the run may take.
pub fn run(job: Job) -> Result<Vec<u8>, TaskFailure> {
    run_reporting(job).0
}

/// [`run`], and the compilation of the module if it outlived the task.
fn run_reporting(job: Job) -> (Result<Vec<u8>, TaskFailure>, Option<Compiling>) {
    let started = Instant::now();
    // The module first: it is then cached even if this task cannot run.
    match load_within(&job.runtime, &job.spec.module, job.deadline, &job.kill) {
        Ok(module) => (run_loaded(job, &module, started), None),
        Err((failure, compiling)) => (Err(failure), compiling),
    }
}

/// Runs the task once its module is loaded; `started` is when loading began.
fn run_loaded(job: Job, module: &LoadedModule, started: Instant) -> Result<Vec<u8>, TaskFailure> {
    let dataset = job
        .dataset
        .map_err(|message| TaskFailure::new(ErrorKind::Internal, message))?;
    let deadline = match job.deadline {
        Some(deadline) if started.elapsed() >= deadline => {
            return Err(TaskFailure::new(
                ErrorKind::DeadlineExceeded,
                format!("loading the module took the task's whole deadline of {deadline:?}"),
            ));
        }
        deadline => deadline.map(|d| d.saturating_sub(started.elapsed())),
    };
    let (stdout, stderr) = outputs(&job.output_dir);
    let task = TaskRun {
        export: job.spec.export,
        args: job.spec.args,
        encoding: job.spec.encoding,
        memory_limit_bytes: job.memory_limit_bytes,
        deadline,
        kill: job.kill,
        progress: job.progress,
        stdout,
        stderr,
        dataset,
    };
    job.runtime.run(module, &task)
}

/// Loads `module`, within `deadline` when the task has one and the module comes with
/// its bytes, so may need compiling: wasmtime cannot interrupt a compilation, so it
/// runs on a thread of its own, and when the deadline passes first (or the task is
/// killed) the task fails at once while the compilation goes on and caches the module
/// for the tasks after it; the failure comes with the [`Compiling`] to wait for. (A
/// module named by hash is loaded from a cache: no compilation, no extra thread.)
fn load_within(
    runtime: &Arc<Runtime>,
    module: &ModuleRef,
    deadline: Option<Duration>,
    kill: &KillSwitch,
) -> Result<Arc<LoadedModule>, (TaskFailure, Option<Compiling>)> {
    let (Some(deadline), Some(_)) = (deadline, &module.bytes) else {
        return runtime.load(module).map_err(|f| (f, None));
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let (compiler, to_load) = (Arc::clone(runtime), module.clone());
    std::thread::Builder::new()
        .name("brine-compile".into())
        .spawn(move || {
            lower_priority();
            // The task may have given up waiting: then nobody reads this.
            let _ = tx.send(compiler.load(&to_load));
        })
        .map_err(|e| {
            let failure = TaskFailure::new(
                ErrorKind::Internal,
                format!("cannot start a thread to compile the module: {e}"),
            );
            (failure, None)
        })?;
    // Waited for in steps, so that a kill (a lost lane, SHUTDOWN) frees the worker
    // at once rather than at the deadline.
    let started = Instant::now();
    let answer = loop {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left.min(KILL_POLL)) {
            Err(RecvTimeoutError::Timeout) if kill.is_killed() => {
                let killed = TaskFailure::new(ErrorKind::Killed, "killed while compiling");
                return Err((killed, Some(Compiling(rx))));
            }
            Err(RecvTimeoutError::Timeout) if !left.is_zero() => continue,
            answer => break answer,
        }
    };
    match answer {
        Ok(loaded) => loaded.map_err(|f| (f, None)),
        Err(RecvTimeoutError::Timeout) => {
            let failure = TaskFailure::new(
                ErrorKind::DeadlineExceeded,
                format!(
                    "module {} did not compile within the task's deadline of {deadline:?} \
                     (the compilation goes on, and caches it for later tasks)",
                    module.hash
                ),
            );
            Err((failure, Some(Compiling(rx))))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let failure = TaskFailure::new(
                ErrorKind::Internal,
                "the thread compiling the module ended without an answer",
            );
            Err((failure, None))
        }
    }
}

/// How often a task waiting for its module's compilation looks at its kill switch.
const KILL_POLL: Duration = Duration::from_millis(20);

/// Lowers the calling thread's scheduling priority (nice +10): a compilation is
/// background work next to running tasks, heartbeats and the lane. Best effort.
fn lower_priority() {
    // SAFETY: plain syscalls on this thread's own id; no memory is shared.
    let lowered = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10)
    };
    if lowered != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "compile thread keeps its priority");
    }
}

/// The task's output files (created by the runtime on a first write).
fn outputs(dir: &std::path::Path) -> (Output, Output) {
    let file = |name: &str| Output::File {
        path: dir.join(name),
        max_bytes: MAX_TASK_OUTPUT_BYTES,
    };
    (file("stdout"), file("stderr"))
}

#[cfg(test)]
mod tests {
    use brine_proto::payload::{Encoding, ModuleRef};

    use super::*;

    fn queued(id: &str) -> Queued {
        Queued {
            task_id: id.into(),
            spec: TaskSpec {
                module: ModuleRef::inline(vec![]),
                export: "x".into(),
                args: vec![],
                encoding: Encoding::Json,
                deadline: None,
            },
        }
    }

    #[test]
    fn queue_releases_tasks_in_order_within_the_limit() {
        let mut q = WorkQueue::default();
        for id in ["a", "b", "c"] {
            q.push(queued(id));
        }
        assert!(q.next(1, 1).is_none());
        assert_eq!(q.next(0, 1).map(|t| t.task_id), Some("a".into()));
        assert_eq!(q.remove("c").map(|t| t.task_id), Some("c".into()));
        assert!(q.remove("c").is_none());
        assert_eq!(q.len(), 1);
        assert_eq!(q.next(1, 2).map(|t| t.task_id), Some("b".into()));
        assert!(q.is_empty());
    }
}
