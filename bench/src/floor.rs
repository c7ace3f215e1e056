//! Part 1, the in-process floor: what wasmtime costs with the executor's own engine
//! settings and nothing around it — `Runtime::run` of a module already loaded
//! (instantiate from its `InstancePre`, `_initialize`, arguments, call).

use brine_executor::runtime::{Runtime, RuntimeConfig, TaskRun, monotonic_ns};
use brine_proto::payload::{Encoding, ModuleRef};

use crate::stats::Series;
use crate::{Context, Plan};

pub struct Floor {
    /// `Runtime::run` called → its result returned.
    pub run: Series,
    /// `Runtime::run` called → the entry about to be called.
    pub to_entry: Series,
}

pub fn measure(ctx: &Context, plan: &Plan) -> anyhow::Result<Floor> {
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let module = runtime
        .load(&ModuleRef::inline(ctx.artifacts.example("sum")?))
        .map_err(|f| anyhow::anyhow!("cannot load sum: {f}"))?;
    let task = TaskRun::new("sum", br#""1 2 3""#.to_vec(), Encoding::Json);
    let mut floor = Floor {
        run: Series::new(
            "floor.run",
            "in-process floor: instantiate + call `sum`",
            "`Runtime::run` called → result returned",
        ),
        to_entry: Series::new(
            "floor.to_entry",
            "in-process floor: to guest entry",
            "`Runtime::run` called → entry about to be called",
        ),
    };
    let once = || -> anyhow::Result<(u64, u64)> {
        let start = monotonic_ns();
        let result = runtime
            .run(&module, &task)
            .map_err(|f| anyhow::anyhow!("sum failed: {f}"))?;
        let end = monotonic_ns();
        anyhow::ensure!(result == b"6", "sum returned {result:?}");
        let entered = task.progress.entered_at_ns().unwrap_or(end);
        Ok((end - start, entered.saturating_sub(start)))
    };
    for _ in 0..plan.floor_warmup {
        once()?;
    }
    for _ in 0..plan.rounds {
        floor.run.start_round();
        floor.to_entry.start_round();
        for _ in 0..plan.floor_iters {
            let (run, entry) = once()?;
            floor.run.record(run);
            floor.to_entry.record(entry);
            ctx.progress.inc(1);
        }
    }
    Ok(floor)
}
