//! Runtime figures for the `sum` example: a warm task (module cached, `InstancePre`
//! ready: instantiate + call), a cold compile, and a load from the disk cache.
//!
//! Needs the example modules (`make examples`); run with
//! `cargo bench -p brine-executor --bench runtime`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use brine_executor::runtime::{Runtime, RuntimeConfig, TaskRun};
use brine_proto::payload::{CacheLimits, Encoding, ModuleRef};
use criterion::{Criterion, criterion_group, criterion_main};

/// `example_sum.wasm`, found like the tests find it.
fn sum_wasm() -> Vec<u8> {
    let dir = std::env::var_os("BRINE_EXAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
                .join("wasm32-wasip1/release")
        });
    let path = dir.join("example_sum.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run `make examples` first",
            path.display()
        )
    })
}

fn sum_task() -> TaskRun {
    TaskRun::new("sum", br#""1 2 3""#.to_vec(), Encoding::Json)
}

fn warm(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let module = runtime.load(&ModuleRef::inline(sum_wasm())).unwrap();
    let task = sum_task();
    assert_eq!(runtime.run(&module, &task).unwrap(), b"6");
    c.bench_function("warm run sum (instantiate + call)", |b| {
        b.iter(|| black_box(runtime.run(&module, &task).unwrap()))
    });
}

fn cold(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let module = ModuleRef::inline(sum_wasm());
    c.bench_function("cold load sum (compile + check + link)", |b| {
        b.iter(|| {
            runtime.evict(&module.hash);
            black_box(runtime.load(&module).unwrap())
        })
    });
    // Every timed load compiled: none was answered from the cache.
    let stats = runtime.stats();
    assert!(stats.compiles >= 1 && stats.memory_hits == 0, "{stats:?}");
}

fn disk(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let module = ModuleRef::inline(sum_wasm());
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        // Nothing stays in memory: every load below is answered from disk.
        cache: CacheLimits {
            max_modules_in_memory: 0,
            ..CacheLimits::default()
        },
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config).unwrap();
    runtime.load(&module).unwrap();
    let by_hash = ModuleRef::by_hash(module.hash);
    c.bench_function(
        "disk cache load sum (read + verify + deserialize + link)",
        |b| b.iter(|| black_box(runtime.load(&by_hash).unwrap())),
    );
    assert_eq!(runtime.stats().compiles, 1);
    assert!(runtime.stats().disk_hits > 0);
}

criterion_group!(benches, warm, cold, disk);
criterion_main!(benches);
