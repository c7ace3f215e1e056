//! Runs every example task module through the runtime core and prints what it returns.
//!
//! The runtime alone, without a cluster (`make demo` runs the main job on a local
//! cluster instead): `cargo run --release -p brine-executor --example runtime_demo`.
//! Arguments and results are postcard-encoded with the example crates' own types, as
//! the scheduler library sends them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use brine_executor::runtime::{
    Dataset, KillSwitch, LoadedModule, MemoryOutput, Output, Progress, Runtime, RuntimeConfig,
    TaskRun,
};
use brine_proto::payload::{Encoding, ModuleRef};
use example_evolve::{EvolveArgs, EvolveResult};
use example_pi::{PiArgs, PiResult};
use example_wordcount::{WordcountArgs, WordcountResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn main() -> Result<()> {
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let module = load(&runtime, "hello")?;
    hello(&runtime, &module)?;
    let module = load(&runtime, "sum")?;
    sum(&runtime, &module)?;
    let module = load(&runtime, "wordcount")?;
    wordcount(&runtime, &module)?;
    let module = load(&runtime, "pi")?;
    pi(&runtime, &module)?;
    let module = load(&runtime, "evolve")?;
    evolve(&runtime, &module)?;
    let module = load(&runtime, "failures")?;
    failures(&runtime, &module)?;

    let stats = runtime.stats();
    println!(
        "\nruntime: {} tasks, {} modules compiled, {} cache hits",
        stats.tasks, stats.compiles, stats.memory_hits
    );
    Ok(())
}

/// Compiles (or finds in the cache) the example module `name`.
fn load(runtime: &Runtime, name: &str) -> Result<Arc<LoadedModule>> {
    let path = brine_tests::examples_dir().join(format!("example_{name}.wasm"));
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `make examples`)", path.display()))?;
    Ok(runtime.load(&ModuleRef::inline(bytes))?)
}

/// Runs `export` with postcard-encoded `args` and decodes its result.
fn call<A: Serialize, R: DeserializeOwned>(
    runtime: &Runtime,
    module: &LoadedModule,
    task: TaskRun,
    args: &A,
) -> Result<R> {
    let task = TaskRun {
        args: postcard::to_allocvec(args)?,
        ..task
    };
    let bytes = runtime.run(module, &task)?;
    Ok(postcard::from_bytes(&bytes)?)
}

fn task(export: &str) -> TaskRun {
    TaskRun::new(export, Vec::new(), Encoding::Postcard)
}

fn hello(runtime: &Runtime, module: &LoadedModule) -> Result<()> {
    let stdout = MemoryOutput::new(4096);
    let run = TaskRun {
        stdout: Output::Memory(stdout.clone()),
        ..task("hello")
    };
    let greeting: String = call(runtime, module, run, &())?;
    let printed = String::from_utf8_lossy(&stdout.contents()).into_owned();
    println!(
        "hello      -> {greeting:?} (its stdout: {:?})",
        printed.trim_end()
    );
    Ok(())
}

fn sum(runtime: &Runtime, module: &LoadedModule) -> Result<()> {
    for numbers in ["1 2 3", "4 5 6", "7 8 9"] {
        let total: i64 = call(runtime, module, task("sum"), &numbers.to_string())?;
        println!("sum        {numbers:?} -> {total}");
    }
    match call::<_, i64>(runtime, module, task("sum"), &"1 two 3".to_string()) {
        Ok(total) => bail!("sum of a bad token returned {total}"),
        Err(error) => println!("sum        \"1 two 3\" -> error: {error}"),
    }
    Ok(())
}

fn wordcount(runtime: &Runtime, module: &LoadedModule) -> Result<()> {
    let text = generated_text(4 << 20);
    let expected = text.split_ascii_whitespace().count() as u64;
    let dataset = Dataset::from_bytes(text.into_bytes());
    let shards = 4u64;
    let shard_len = dataset.len().div_ceil(shards);
    let started = Instant::now();
    let results: Vec<Result<WordcountResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shards)
            .map(|i| {
                let run = TaskRun {
                    dataset: Some(Arc::clone(&dataset)),
                    ..task("wordcount")
                };
                let args = WordcountArgs {
                    offset: i * shard_len,
                    len: shard_len,
                };
                scope.spawn(move || call(runtime, module, run, &args))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a wordcount thread panicked"))
            })
            .collect()
    });
    let mut words = 0;
    for result in results {
        words += result?.words;
    }
    println!(
        "wordcount  {shards} tasks side by side over a shared {} MiB dataset -> {words} words \
         (counted on the host: {expected}) in {:.1?}",
        dataset.len() >> 20,
        started.elapsed()
    );
    if words != expected {
        bail!("wordcount shards add up to {words}, not {expected}");
    }
    Ok(())
}

/// Deterministic text of roughly `len` bytes: words of 1 to 9 letters.
fn generated_text(len: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word_len = 1 + (state % 9) as usize;
        text.extend((0..word_len).map(|i| (b'a' + ((state >> (i * 5)) % 26) as u8) as char));
        text.push(if state.is_multiple_of(11) { '\n' } else { ' ' });
    }
    text
}

fn pi(runtime: &Runtime, module: &LoadedModule) -> Result<()> {
    let progress = Progress::new();
    let run = TaskRun {
        progress: progress.clone(),
        ..task("pi")
    };
    let args = PiArgs {
        samples: 20_000_000,
        seed: 7,
    };
    let result: Result<PiResult> = std::thread::scope(|scope| {
        let worker = scope.spawn(|| call(runtime, module, run, &args));
        let mut last_shown = -1.0;
        while !worker.is_finished() {
            if let Some(fraction) = progress.fraction()
                && fraction - last_shown >= 0.25
            {
                println!("pi         progress {:>3.0}%", fraction * 100.0);
                last_shown = fraction;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        worker
            .join()
            .unwrap_or_else(|_| bail!("the pi thread panicked"))
    });
    let result = result?;
    println!(
        "pi         {} samples -> {:.5} ({} inside)",
        result.samples, result.estimate, result.inside
    );
    Ok(())
}

fn evolve(runtime: &Runtime, module: &LoadedModule) -> Result<()> {
    const SHARDS: usize = 4;
    const SHARD_SIZE: usize = 10;
    const WANTED: usize = 10;
    let mut population = example_evolve::random_population(1, SHARDS * SHARD_SIZE);
    let mut solutions = std::collections::BTreeSet::new();
    let mut evaluated = 0;
    for generation in 1..=500u64 {
        let results = population
            .chunks(SHARD_SIZE)
            .enumerate()
            .map(|(i, shard)| {
                let args = EvolveArgs {
                    population: shard.to_vec(),
                    seed: generation * 1000 + i as u64,
                    offspring: (SHARD_SIZE - 2) as u32,
                    mutation_rate: 0.2,
                };
                call::<_, EvolveResult>(runtime, module, task("evolve"), &args)
            })
            .collect::<Result<Vec<_>>>()?;
        evaluated += population.len();
        let summary = example_evolve::summarize(&results).context("evolve returned no genomes")?;
        solutions.extend(summary.exact);
        println!(
            "evolve     generation {generation:>3}: population {}, evaluated {evaluated:>5}, \
             best {:.3}, median {:.3}, exact solutions {}",
            population.len(),
            summary.best.fitness,
            summary.median,
            solutions.len()
        );
        if solutions.len() >= WANTED {
            for genome in solutions.iter().take(WANTED) {
                let sum = example_evolve::gene_sum(genome);
                println!("evolve     solution {genome:?} sums to {sum}");
            }
            return Ok(());
        }
        population = example_evolve::next_population(&results, 2 * SHARDS);
    }
    bail!(
        "evolve found {} of {WANTED} exact solutions in 500 generations",
        solutions.len()
    )
}

fn failures(runtime: &Runtime, module: &LoadedModule) -> Result<()> {
    let limited = |export: &str| TaskRun {
        deadline: Some(Duration::from_millis(200)),
        memory_limit_bytes: Some(32 << 20),
        kill: KillSwitch::new(),
        ..task(export)
    };
    for export in ["fail", "panic", "trap", "loop_forever", "allocate_forever"] {
        match runtime.run(module, &limited(export)) {
            Ok(_) => bail!("{export} succeeded"),
            Err(failure) => println!(
                "failures   {export:<16} -> {}: {}",
                failure.kind, failure.message
            ),
        }
    }
    let spun: u64 = call(runtime, module, task("spin"), &1u64)?;
    println!("failures   spin 1 ms (the runtime still serves after all of that) -> {spun}");
    Ok(())
}
