//! The module caches: in memory (LRU) and on disk (serialized, checksummed, per engine).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use brine_executor::runtime::{Runtime, RuntimeConfig, RuntimeStats};
use brine_proto::payload::{CacheLimits, ErrorKind, ModuleHash, ModuleRef};
use common::*;
use serde_json::json;

fn disk_runtime(dir: &Path, cache: CacheLimits) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_owned()),
        cache,
        ..small_config()
    })
    .unwrap()
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|engine_dir| std::fs::read_dir(engine_dir.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

/// A small valid task module returning `value` (distinct values, distinct modules).
fn constant_module(value: u8) -> Vec<u8> {
    wat_module(&format!(
        r#"(data (i32.const 0) "{}")
           (func (export "value") (param i32 i32 i32) (result i32)
             (call $result (i32.const 0) (i32.const 1)) (i32.const 0))"#,
        value as char
    ))
}

fn stats(
    compiles: u64,
    disk_hits: u64,
    disk_rejects: u64,
    disk_writes: u64,
) -> (u64, u64, u64, u64) {
    (compiles, disk_hits, disk_rejects, disk_writes)
}

fn seen(s: RuntimeStats) -> (u64, u64, u64, u64) {
    (s.compiles, s.disk_hits, s.disk_rejects, s.disk_writes)
}

#[test]
fn a_new_runtime_over_the_same_directory_starts_warm() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = example("sum");
    let hash = ModuleHash::of(&wasm);
    {
        let first = disk_runtime(dir.path(), CacheLimits::default());
        load(&first, &wasm);
        assert_eq!(seen(first.stats()), stats(1, 0, 0, 1));
    }
    assert_eq!(cache_files(dir.path()).len(), 1);

    let second = disk_runtime(dir.path(), CacheLimits::default());
    assert_eq!(
        second.cached_modules(),
        vec![hash],
        "disk modules count as cached"
    );
    // By hash alone: the bytes are not needed, nothing is compiled.
    let module = second.load(&ModuleRef::by_hash(hash)).unwrap();
    assert_eq!(seen(second.stats()), stats(0, 1, 0, 0));
    let result = second
        .run(&module, &json_task("sum", json!("4 5 6")))
        .unwrap();
    assert_eq!(result, b"15");
    // Then from memory.
    second.load(&ModuleRef::inline(wasm)).unwrap();
    assert_eq!(second.stats().memory_hits, 1);
}

#[test]
fn corrupted_cache_files_are_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = constant_module(b'7');
    load(&disk_runtime(dir.path(), CacheLimits::default()), &wasm);
    let file = cache_files(dir.path()).pop().unwrap();
    let pristine = std::fs::read(&file).unwrap();

    let mut corruptions: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut flipped = pristine.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    corruptions.push(("payload bit flip", flipped));
    corruptions.push(("truncated", pristine[..pristine.len() / 2].to_vec()));
    let mut other_engine = pristine.clone();
    other_engine[8] ^= 0xff;
    corruptions.push(("another engine's key", other_engine));
    let mut other_module = pristine.clone();
    other_module[30] ^= 0xff;
    corruptions.push(("another module's hash", other_module));
    corruptions.push(("empty", Vec::new()));

    for (what, bytes) in corruptions {
        std::fs::write(&file, &bytes).unwrap();
        let runtime = disk_runtime(dir.path(), CacheLimits::default());
        let module = load(&runtime, &wasm);
        assert_eq!(seen(runtime.stats()), stats(1, 0, 1, 1), "{what}");
        let result = runtime
            .run(&module, &json_task("value", json!(null)))
            .unwrap();
        assert_eq!(result, b"7", "{what}");
        // The file was rewritten, valid again.
        let fresh = disk_runtime(dir.path(), CacheLimits::default());
        load(&fresh, &wasm);
        assert_eq!(seen(fresh.stats()), stats(0, 1, 0, 0), "{what}");
    }
    // Hash-only with a corrupt file: missing, not loaded.
    std::fs::write(&file, b"garbage").unwrap();
    let runtime = disk_runtime(dir.path(), CacheLimits::default());
    let failure = runtime
        .load(&ModuleRef::by_hash(ModuleHash::of(&wasm)))
        .unwrap_err();
    assert_eq!(failure.kind, ErrorKind::ModuleMissing);
    assert_eq!(runtime.stats().disk_rejects, 1);
}

#[test]
fn the_disk_cache_stays_within_its_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let probe = tempfile::tempdir().unwrap();
    load(
        &disk_runtime(probe.path(), CacheLimits::default()),
        &constant_module(b'a'),
    );
    let one_file = std::fs::metadata(&cache_files(probe.path())[0])
        .unwrap()
        .len();

    let limits = CacheLimits {
        max_modules_in_memory: 64,
        max_disk_bytes: one_file * 2 + one_file / 2,
    };
    let runtime = disk_runtime(dir.path(), limits);
    for value in [b'a', b'b', b'c', b'd'] {
        load(&runtime, &constant_module(value));
    }
    assert_eq!(runtime.stats().disk_writes, 4);
    assert_eq!(runtime.stats().disk_evictions, 2);
    let left = cache_files(dir.path());
    assert_eq!(left.len(), 2);
    let total: u64 = left
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(total <= limits.max_disk_bytes);
    // The newest two are the ones kept.
    let names: Vec<String> = [b'c', b'd']
        .iter()
        .map(|&v| format!("{}.cwasm", ModuleHash::of(&constant_module(v))))
        .collect();
    for file in &left {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(names.contains(&name), "{name} should have been evicted");
    }

    // A module larger than the whole bound is not written at all.
    let tiny = disk_runtime(
        tempfile::tempdir().unwrap().path(),
        CacheLimits {
            max_modules_in_memory: 4,
            max_disk_bytes: 16,
        },
    );
    load(&tiny, &constant_module(b'x'));
    assert_eq!(tiny.stats().disk_writes, 0);
}

#[test]
fn the_memory_cache_evicts_the_least_recently_used() {
    let runtime = Runtime::new(RuntimeConfig {
        cache: CacheLimits {
            max_modules_in_memory: 2,
            max_disk_bytes: 0,
        },
        ..small_config()
    })
    .unwrap();
    let [a, b, c] = [b'a', b'b', b'c'].map(constant_module);
    let hash = |wasm: &Vec<u8>| ModuleHash::of(wasm);
    load(&runtime, &a);
    load(&runtime, &b);
    load(&runtime, &a); // a is now the most recently used
    load(&runtime, &c); // evicts b
    let mut expected = vec![hash(&a), hash(&c)];
    expected.sort();
    assert_eq!(runtime.cached_modules(), expected);
    assert_eq!(
        runtime
            .load(&ModuleRef::by_hash(hash(&b)))
            .unwrap_err()
            .kind,
        ErrorKind::ModuleMissing
    );
    assert_eq!(runtime.stats().compiles, 3);
    assert_eq!(runtime.stats().memory_hits, 1);
}

#[test]
fn evict_removes_from_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = disk_runtime(dir.path(), CacheLimits::default());
    let wasm = constant_module(b'e');
    let hash = ModuleHash::of(&wasm);
    load(&runtime, &wasm);
    assert_eq!(cache_files(dir.path()).len(), 1);
    assert!(runtime.evict(&hash));
    assert!(cache_files(dir.path()).is_empty());
    assert!(runtime.cached_modules().is_empty());
    assert_eq!(
        runtime.load(&ModuleRef::by_hash(hash)).unwrap_err().kind,
        ErrorKind::ModuleMissing
    );
    assert!(!runtime.evict(&hash));
}

#[test]
fn invalid_modules_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = disk_runtime(dir.path(), CacheLimits::default());
    let no_marker = wat(r#"(module (memory (export "memory") 1))"#);
    assert_eq!(load_err(&runtime, &no_marker).kind, ErrorKind::AbiMismatch);
    assert!(runtime.cached_modules().is_empty());
    assert!(cache_files(dir.path()).is_empty());
}

#[test]
fn an_unusable_cache_directory_is_a_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let result = Runtime::new(RuntimeConfig {
        cache_dir: Some(file),
        ..small_config()
    });
    assert!(result.is_err());
}
