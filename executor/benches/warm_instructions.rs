//! A warm `sum` task run `BRINE_PROFILE_TASKS` times (default 1000) with nothing else
//! around it, for instruction counts under callgrind, which are stable on a noisy
//! machine where wall-clock figures are not:
//!
//! ```text
//! cargo bench -p brine-executor --bench warm_instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='*warm_instructions::run_tasks*' <bench binary>
//! ```
//!
//! The pool is 4 instances (valgrind cannot reserve the default 64 × 4 GiB); the engine
//! settings are otherwise the executor's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use brine_executor::runtime::{LoadedModule, Runtime, RuntimeConfig, TaskRun};
use brine_proto::payload::{Encoding, ModuleRef};

#[inline(never)]
fn run_tasks(runtime: &Runtime, module: &LoadedModule, task: &TaskRun, n: usize) {
    for _ in 0..n {
        black_box(runtime.run(module, task).unwrap());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let n = std::env::var("BRINE_PROFILE_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let module = runtime
        .load(&ModuleRef::inline(brine_tests::example("sum")))
        .unwrap();
    let task = TaskRun::new("sum", br#""1 2 3""#.to_vec(), Encoding::Json);
    run_tasks(&runtime, &module, &task, 1);
    run_tasks(&runtime, &module, &task, n);
}
