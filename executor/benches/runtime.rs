//! Runtime figures for the `sum` example: a warm task (module cached, `InstancePre`
//! ready: instantiate + call), a cold compile, and a load from the disk cache.
//!
//! Needs the example modules (`make examples`); run with
//! `cargo bench -p brine-executor --bench runtime`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use brine_executor::runtime::{Runtime, RuntimeConfig, TaskRun};
use brine_proto::payload::{CacheLimits, Encoding, ModuleRef};
use criterion::{Criterion, criterion_group, criterion_main};

fn sum_task() -> TaskRun {
    TaskRun::new("sum", br#""1 2 3""#.to_vec(), Encoding::Json)
}

fn warm(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let module = runtime
        .load(&ModuleRef::inline(brine_tests::example("sum")))
        .unwrap();
    let task = sum_task();
    assert_eq!(runtime.run(&module, &task).unwrap(), b"6");
    c.bench_function("warm run sum (instantiate + call)", |b| {
        b.iter(|| black_box(runtime.run(&module, &task).unwrap()))
    });
}

fn cold(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let module = ModuleRef::inline(brine_tests::example("sum"));
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
    let module = ModuleRef::inline(brine_tests::example("sum"));
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
