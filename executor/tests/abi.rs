//! The host side of ABI v1, checked edge by edge with small hand-written modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use brine_executor::pool::{self, Job};
use brine_executor::runtime::{
    Dataset, KillSwitch, LoadedModule, MemoryOutput, Output, Progress, Runtime, RuntimeConfig,
    TaskRun,
};
use brine_proto::payload::{Encoding, ErrorKind, ModuleHash, ModuleRef, TaskSpec};
use brine_tests::wasm::{leb, many_functions, section};
use common::*;

/// Tasks covering every return code, import and trap path.
const TASKS: &str = r#"
  (data (i32.const 16) "boom")
  (data (i32.const 32) "bad args")
  (data (i32.const 48) "cannot encode")
  (data (i32.const 64) "oh no")
  (data (i32.const 80) "\ff\fe ok")
  (data (i32.const 96) "first")
  (data (i32.const 112) "second")
  (data (i32.const 128) "to stderr\n")
  (data (i32.const 144) "to stdout\n")

  (func (export "echo") (param $p i32) (param $n i32) (param $e i32) (result i32)
    (call $result (local.get $p) (local.get $n)) (i32.const 0))
  (func (export "encoding") (param $p i32) (param $n i32) (param $e i32) (result i32)
    (i32.store8 (i32.const 0) (i32.add (i32.const 48) (local.get $e)))
    (call $result (i32.const 0) (i32.const 1)) (i32.const 0))
  (func (export "no_result") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "fail") (param i32 i32 i32) (result i32)
    (call $error (i32.const 16) (i32.const 4)) (i32.const 1))
  (func (export "fail_silently") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "bad_args") (param i32 i32 i32) (result i32)
    (call $error (i32.const 32) (i32.const 8)) (i32.const 2))
  (func (export "bad_result") (param i32 i32 i32) (result i32)
    (call $error (i32.const 48) (i32.const 13)) (i32.const 3))
  (func (export "code7") (param i32 i32 i32) (result i32) (i32.const 7))
  (func (export "code_negative") (param i32 i32 i32) (result i32) (i32.const -1))
  (func (export "last_wins") (param i32 i32 i32) (result i32)
    (call $result (i32.const 96) (i32.const 5))
    (call $result (i32.const 112) (i32.const 6))
    (call $error (i32.const 16) (i32.const 4))
    (i32.const 0))
  (func (export "last_error_wins") (param i32 i32 i32) (result i32)
    (call $error (i32.const 16) (i32.const 4))
    (call $error (i32.const 64) (i32.const 5))
    (i32.const 1))
  (func (export "lossy_error") (param i32 i32 i32) (result i32)
    (call $error (i32.const 80) (i32.const 5)) (i32.const 1))
  (func (export "panic") (param i32 i32 i32) (result i32)
    (call $panic (i32.const 64) (i32.const 5)) unreachable)
  (func (export "panic_then_return") (param i32 i32 i32) (result i32)
    (call $panic (i32.const 64) (i32.const 5))
    (call $result (i32.const 96) (i32.const 5)) (i32.const 0))
  (func (export "trap") (param i32 i32 i32) (result i32) unreachable)
  (func (export "divide_by_zero") (param $p i32) (param $n i32) (param $e i32) (result i32)
    (i32.div_u (i32.const 1) (i32.sub (local.get $e) (local.get $e))))
  (func (export "oob_result") (param i32 i32 i32) (result i32)
    (call $result (i32.const 65530) (i32.const 100)) (i32.const 0))
  (func (export "oob_wrapping") (param i32 i32 i32) (result i32)
    (call $result (i32.const -1) (i32.const 2)) (i32.const 0))
  (func (export "oob_error") (param i32 i32 i32) (result i32)
    (call $error (i32.const 65536) (i32.const 1)) (i32.const 1))
  (func (export "oob_panic") (param i32 i32 i32) (result i32)
    (call $panic (i32.const 0) (i32.const 70000)) unreachable)
  (func (export "edge_result") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 65535) (i32.const 90))
    (call $result (i32.const 65535) (i32.const 1)) (i32.const 0))
  (func (export "empty_result_at_end") (param i32 i32 i32) (result i32)
    (call $result (i32.const 65536) (i32.const 0)) (i32.const 0))
  (func (export "progress_high") (param i32 i32 i32) (result i32)
    (call $progress (f64.const 2.5)) (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "progress_low") (param i32 i32 i32) (result i32)
    (call $progress (f64.const -3)) (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "progress_infinite") (param i32 i32 i32) (result i32)
    (call $progress (f64.const inf)) (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "progress_nan") (param i32 i32 i32) (result i32)
    (call $progress (f64.const 0.25))
    (call $progress (f64.const nan))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "no_progress") (param i32 i32 i32) (result i32)
    (call $progress (f64.const nan))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "ds_len") (param i32 i32 i32) (result i32)
    (i64.store (i32.const 0) (call $dataset_len))
    (call $result (i32.const 0) (i32.const 8)) (i32.const 0))
  ;; args: offset i64, dst i32, len i32; result: the i64 return value, then `len`
  ;; bytes of memory from 2056 (where callers point `dst`).
  (func (export "ds_read") (param $p i32) (param i32 i32) (result i32)
    (i64.store (i32.const 2048)
      (call $dataset_read
        (i64.load (local.get $p))
        (i32.load offset=8 (local.get $p))
        (i32.load offset=12 (local.get $p))))
    (call $result (i32.const 2048) (i32.add (i32.const 8) (i32.load offset=12 (local.get $p))))
    (i32.const 0))
  (func (export "grow_then_trap") (param i32 i32 i32) (result i32)
    (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1)) (then unreachable))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "grow_then_fail") (param i32 i32 i32) (result i32)
    (if (result i32) (i32.eq (memory.grow (i32.const 64)) (i32.const -1))
      (then (call $error (i32.const 16) (i32.const 4)) (i32.const 1))
      (else (call $result (i32.const 0) (i32.const 0)) (i32.const 0))))
  (func (export "spin") (param i32 i32 i32) (result i32)
    (loop $forever (br $forever)) (i32.const 0))
  (func (export "exit") (param i32 i32 i32) (result i32)
    (call $proc_exit (i32.const 3)) (i32.const 0))
  (func (export "stderr_then_trap") (param i32 i32 i32) (result i32)
    (i32.store (i32.const 512) (i32.const 128))
    (i32.store (i32.const 516) (i32.const 10))
    (drop (call $fd_write (i32.const 2) (i32.const 512) (i32.const 1) (i32.const 520)))
    unreachable)
  (func (export "stdout_and_stderr") (param i32 i32 i32) (result i32)
    (i32.store (i32.const 512) (i32.const 144))
    (i32.store (i32.const 516) (i32.const 10))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))
    (i32.store (i32.const 512) (i32.const 128))
    (drop (call $fd_write (i32.const 2) (i32.const 512) (i32.const 1) (i32.const 520)))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "fresh_memory") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 3000) (i32.add (i32.const 48) (i32.load8_u (i32.const 4000))))
    (i32.store8 (i32.const 4000) (i32.const 1))
    (call $result (i32.const 3000) (i32.const 1)) (i32.const 0))
  (func (export "wrong_signature") (param i32) (result i32) (i32.const 0))
  (func (export "_reserved") (param i32 i32 i32) (result i32) (i32.const 0))
  (global (export "a_global") i32 (i32.const 0))
"#;

fn tasks_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| wat_module(TASKS))
}

fn setup() -> (Runtime, Arc<LoadedModule>) {
    let runtime = runtime();
    let module = load(&runtime, tasks_wasm());
    (runtime, module)
}

/// The runtime still runs a normal task after whatever happened before.
fn assert_healthy(runtime: &Runtime, module: &LoadedModule) {
    let result = runtime.run(module, &json_task("echo", "still fine".into()));
    assert_eq!(result.unwrap(), br#""still fine""#);
}

fn task(export: &str) -> TaskRun {
    TaskRun::new(export, Vec::new(), Encoding::Json)
}

/// Runs `export`, expecting `kind` with `needle` in the message, then a healthy task.
fn expect(runtime: &Runtime, module: &LoadedModule, export: &str, kind: ErrorKind, needle: &str) {
    let failure = run_err(runtime, module, &task(export));
    assert_failure(&failure, kind, needle);
    assert_healthy(runtime, module);
}

#[test]
fn arguments_reach_the_entry_and_the_result_comes_back() {
    let (runtime, module) = setup();
    let args = br#"{"a":[1,2,3]}"#.to_vec();
    let result = runtime.run(&module, &TaskRun::new("echo", args.clone(), Encoding::Json));
    assert_eq!(result.unwrap(), args);
    let empty = runtime.run(
        &module,
        &TaskRun::new("echo", Vec::new(), Encoding::Postcard),
    );
    assert_eq!(empty.unwrap(), b"");
}

#[test]
fn the_encoding_is_passed_as_its_abi_code() {
    let (runtime, module) = setup();
    for (encoding, code) in [(Encoding::Postcard, b"0"), (Encoding::Json, b"1")] {
        let result = runtime.run(&module, &TaskRun::new("encoding", vec![], encoding));
        assert_eq!(result.unwrap(), code);
    }
}

#[test]
fn return_codes_map_to_their_kinds() {
    let (runtime, module) = setup();
    expect(
        &runtime,
        &module,
        "no_result",
        ErrorKind::GuestError,
        "no result",
    );
    expect(&runtime, &module, "fail", ErrorKind::GuestError, "boom");
    expect(
        &runtime,
        &module,
        "fail_silently",
        ErrorKind::GuestError,
        "no message (return code 1)",
    );
    expect(
        &runtime,
        &module,
        "bad_args",
        ErrorKind::ArgumentDecode,
        "bad args",
    );
    expect(
        &runtime,
        &module,
        "bad_result",
        ErrorKind::ResultEncode,
        "cannot encode",
    );
    expect(
        &runtime,
        &module,
        "code7",
        ErrorKind::GuestError,
        "unknown return code 7",
    );
    expect(
        &runtime,
        &module,
        "code_negative",
        ErrorKind::GuestError,
        "unknown return code -1",
    );
}

#[test]
fn the_last_report_wins_and_messages_are_lossy_utf8() {
    let (runtime, module) = setup();
    assert_eq!(runtime.run(&module, &task("last_wins")).unwrap(), b"second");
    let failure = run_err(&runtime, &module, &task("last_error_wins"));
    assert_eq!(failure.message, "oh no");
    let failure = run_err(&runtime, &module, &task("lossy_error"));
    assert_eq!(failure.kind, ErrorKind::GuestError);
    assert_eq!(failure.message, "\u{fffd}\u{fffd} ok");
}

#[test]
fn panics_are_reported_with_the_guest_message() {
    let (runtime, module) = setup();
    let failure = run_err(&runtime, &module, &task("panic"));
    assert_eq!(failure.kind, ErrorKind::GuestPanic);
    assert_eq!(failure.message, "oh no");
    assert_healthy(&runtime, &module);
    // A recorded panic without a trap does not fail the task.
    assert_eq!(
        runtime.run(&module, &task("panic_then_return")).unwrap(),
        b"first"
    );
}

#[test]
fn traps_carry_wasmtime_messages() {
    let (runtime, module) = setup();
    expect(&runtime, &module, "trap", ErrorKind::Trap, "unreachable");
    expect(
        &runtime,
        &module,
        "divide_by_zero",
        ErrorKind::Trap,
        "divide by zero",
    );
    expect(
        &runtime,
        &module,
        "exit",
        ErrorKind::Trap,
        "guest exited with code 3",
    );
}

#[test]
fn guest_ranges_outside_memory_trap() {
    let (runtime, module) = setup();
    for export in ["oob_result", "oob_wrapping", "oob_error", "oob_panic"] {
        expect(&runtime, &module, export, ErrorKind::Trap, "out of bounds");
    }
    // Ranges touching the end of memory are fine.
    assert_eq!(runtime.run(&module, &task("edge_result")).unwrap(), b"Z");
    assert_eq!(
        runtime.run(&module, &task("empty_result_at_end")).unwrap(),
        b""
    );
}

#[test]
fn progress_is_clamped_and_nan_ignored() {
    let (runtime, module) = setup();
    for (export, expected) in [
        ("progress_high", Some(1.0)),
        ("progress_low", Some(0.0)),
        ("progress_infinite", Some(1.0)),
        ("progress_nan", Some(0.25)),
        ("no_progress", None),
    ] {
        let run = task(export);
        runtime.run(&module, &run).unwrap();
        assert_eq!(run.progress.fraction(), expected, "{export}");
        assert!(run.progress.started());
    }
}

fn ds_read(
    runtime: &Runtime,
    module: &LoadedModule,
    data: &Arc<Dataset>,
    offset: i64,
    dst: i32,
    len: i32,
) -> Result<(i64, Vec<u8>), brine_proto::payload::TaskFailure> {
    let mut args = offset.to_le_bytes().to_vec();
    args.extend(dst.to_le_bytes());
    args.extend(len.to_le_bytes());
    let run = TaskRun {
        dataset: Some(Arc::clone(data)),
        ..TaskRun::new("ds_read", args, Encoding::Postcard)
    };
    let result = runtime.run(module, &run)?;
    let (code, bytes) = result.split_at(8);
    Ok((i64::from_le_bytes(code.try_into().unwrap()), bytes.to_vec()))
}

#[test]
fn dataset_reads_are_bounds_checked() {
    let (runtime, module) = setup();
    let data = Dataset::from_bytes(b"hello dataset".to_vec());
    let len_of = |dataset: Option<Arc<Dataset>>| {
        let run = TaskRun {
            dataset,
            ..task("ds_len")
        };
        i64::from_le_bytes(runtime.run(&module, &run).unwrap().try_into().unwrap())
    };
    assert_eq!(len_of(Some(Arc::clone(&data))), 13);
    assert_eq!(len_of(None), 0);

    let read = |offset, dst, len| ds_read(&runtime, &module, &data, offset, dst, len);
    assert_eq!(read(0, 2056, 5).unwrap(), (5, b"hello".to_vec()));
    assert_eq!(read(6, 2056, 100).unwrap().0, 7);
    assert_eq!(&read(6, 2056, 100).unwrap().1[..7], b"dataset");
    assert_eq!(read(12, 2056, 4).unwrap(), (1, b"t\0\0\0".to_vec()));
    assert_eq!(read(13, 2056, 4).unwrap(), (0, vec![0; 4]), "at the end");
    assert_eq!(
        read(1000, 2056, 4).unwrap(),
        (0, vec![0; 4]),
        "past the end"
    );
    assert_eq!(read(i64::MAX, 2056, 4).unwrap().0, 0, "far past the end");
    assert_eq!(
        read(-1, 2056, 4).unwrap(),
        (-1, vec![0; 4]),
        "negative offset"
    );
    assert_eq!(read(i64::MIN, 2056, 0).unwrap().0, -1);
    assert_eq!(read(0, 2056, 0).unwrap(), (0, vec![]));

    for (dst, len) in [(65_530, 100), (-4, 8), (0, -1)] {
        let failure = read(0, dst, len).unwrap_err();
        assert_failure(&failure, ErrorKind::Trap, "out of bounds");
    }
    // Without a dataset every read copies nothing.
    let run = TaskRun::new(
        "ds_read",
        [
            0i64.to_le_bytes().as_slice(),
            &2056i32.to_le_bytes(),
            &4i32.to_le_bytes(),
        ]
        .concat(),
        Encoding::Postcard,
    );
    assert_eq!(
        &runtime.run(&module, &run).unwrap()[..8],
        &0i64.to_le_bytes()
    );
    assert_healthy(&runtime, &module);
}

#[test]
fn memory_growth_past_the_limit_is_memory_limit() {
    let (runtime, module) = setup();
    let limited = |export: &str, limit: u64| TaskRun {
        memory_limit_bytes: Some(limit),
        ..task(export)
    };
    let failure = run_err(&runtime, &module, &limited("grow_then_trap", 1 << 20));
    assert_failure(
        &failure,
        ErrorKind::MemoryLimit,
        "memory limit of 1048576 bytes",
    );
    assert!(
        failure.message.contains("unreachable"),
        "{}",
        failure.message
    );
    assert_healthy(&runtime, &module);
    // The same growth within the limit succeeds.
    runtime
        .run(&module, &limited("grow_then_trap", 16 << 20))
        .unwrap();
    // A refused growth the guest handles is not a failure of the host's making.
    let failure = run_err(&runtime, &module, &limited("grow_then_fail", 1 << 20));
    assert_failure(&failure, ErrorKind::GuestError, "boom");
    // A limit below the initial memory fails at instantiation.
    let failure = run_err(&runtime, &module, &limited("echo", 1000));
    assert_eq!(failure.kind, ErrorKind::MemoryLimit, "{failure:?}");
    assert_healthy(&runtime, &module);
}

#[test]
fn the_runtime_cap_bounds_every_task() {
    let runtime = Runtime::new(RuntimeConfig {
        max_memory_bytes: 1 << 20,
        ..small_config()
    })
    .unwrap();
    let module = load(&runtime, tasks_wasm());
    let failure = run_err(&runtime, &module, &task("grow_then_trap"));
    assert_eq!(failure.kind, ErrorKind::MemoryLimit);
    let run = TaskRun {
        memory_limit_bytes: Some(1 << 30),
        ..task("grow_then_trap")
    };
    assert_eq!(
        run_err(&runtime, &module, &run).kind,
        ErrorKind::MemoryLimit
    );
    assert_healthy(&runtime, &module);
}

#[test]
fn a_deadline_stops_a_spinning_task() {
    let (runtime, module) = setup();
    let run = TaskRun {
        deadline: Some(Duration::from_millis(50)),
        ..task("spin")
    };
    let failure = std::thread::scope(|scope| {
        // A task the deadline did not stop is killed when the wait for it fails.
        let _guard = KillOnDrop(run.kill.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let (runtime, module, run) = (&runtime, &module, &run);
        scope.spawn(move || tx.send(run_err(runtime, module, run)));
        end_within(&rx, "a task past its deadline")
    });
    assert_failure(&failure, ErrorKind::DeadlineExceeded, "50ms");
    assert_healthy(&runtime, &module);
}

#[test]
fn a_kill_stops_a_spinning_task() {
    let (runtime, module) = setup();
    // The deadline only stops the task if the kill does not (and then the test fails).
    let run = TaskRun {
        deadline: Some(BOUND),
        ..task("spin")
    };
    let (kill, progress) = (run.kill.clone(), run.progress.clone());
    std::thread::scope(|scope| {
        // Inside the scope: a failed assertion kills the task before the scope joins it.
        let _guard = KillOnDrop(kill.clone());
        let handle = scope.spawn(|| run_err(&runtime, &module, &run));
        assert!(
            progress.wait_started(Duration::from_secs(30)),
            "task never started"
        );
        kill.kill();
        let failure = handle.join().unwrap();
        assert_failure(&failure, ErrorKind::Killed, "killed");
    });
    assert_healthy(&runtime, &module);
    // Killed before it starts: never runs.
    let run = task("echo");
    run.kill.kill();
    assert_eq!(run_err(&runtime, &module, &run).kind, ErrorKind::Killed);
    assert!(!run.progress.started());
}

#[test]
fn stdout_and_stderr_are_captured() {
    let (runtime, module) = setup();
    let dir = tempfile::tempdir().unwrap();
    let stdout = MemoryOutput::new(1024);
    let stderr_path = dir.path().join("stderr");
    let run = TaskRun {
        stdout: Output::Memory(stdout.clone()),
        stderr: Output::File {
            path: stderr_path.clone(),
            max_bytes: 1024,
        },
        ..task("stdout_and_stderr")
    };
    runtime.run(&module, &run).unwrap();
    assert_eq!(stdout.contents(), b"to stdout\n");
    assert_eq!(std::fs::read(&stderr_path).unwrap(), b"to stderr\n");

    // Bounded: the rest is dropped and counted.
    let small = MemoryOutput::new(4);
    let run = TaskRun {
        stdout: Output::Memory(small.clone()),
        ..task("stdout_and_stderr")
    };
    runtime.run(&module, &run).unwrap();
    assert_eq!(small.contents(), b"to s");
    assert_eq!(small.dropped_bytes(), 6);
    let run = TaskRun {
        stderr: Output::File {
            path: stderr_path.clone(),
            max_bytes: 3,
        },
        ..task("stdout_and_stderr")
    };
    runtime.run(&module, &run).unwrap();
    assert_eq!(std::fs::read(&stderr_path).unwrap(), b"to stderr\nto ");
}

#[test]
fn failures_carry_the_tail_of_stderr() {
    let (runtime, module) = setup();
    let failure = run_err(&runtime, &module, &task("stderr_then_trap"));
    assert_eq!(failure.kind, ErrorKind::Trap);
    assert_eq!(failure.stderr_tail, "to stderr\n");

    let short = Runtime::new(RuntimeConfig {
        stderr_tail_bytes: 5,
        ..small_config()
    })
    .unwrap();
    let module = load(&short, tasks_wasm());
    let failure = run_err(&short, &module, &task("stderr_then_trap"));
    assert_eq!(failure.stderr_tail, "derr\n");
}

#[test]
fn every_task_gets_a_fresh_instance() {
    let (runtime, module) = setup();
    for _ in 0..3 {
        assert_eq!(runtime.run(&module, &task("fresh_memory")).unwrap(), b"0");
    }
}

#[test]
fn exports_that_are_not_entries_are_export_missing() {
    let (runtime, module) = setup();
    expect(
        &runtime,
        &module,
        "nope",
        ErrorKind::ExportMissing,
        "exports no task `nope`",
    );
    expect(
        &runtime,
        &module,
        "wrong_signature",
        ErrorKind::ExportMissing,
        "(param i32)",
    );
    expect(
        &runtime,
        &module,
        "a_global",
        ErrorKind::ExportMissing,
        "is a global",
    );
    expect(
        &runtime,
        &module,
        "memory",
        ErrorKind::ExportMissing,
        "is a memory",
    );
    expect(
        &runtime,
        &module,
        "_reserved",
        ErrorKind::ExportMissing,
        "reserved",
    );
    expect(
        &runtime,
        &module,
        "__brine_alloc",
        ErrorKind::ExportMissing,
        "reserved",
    );
    let tasks = module.tasks();
    assert!(tasks.contains(&"echo".to_owned()));
    assert!(
        !tasks
            .iter()
            .any(|t| t.starts_with('_') || t == "wrong_signature")
    );
}

#[test]
fn modules_without_the_marker_are_abi_mismatch() {
    let runtime = runtime();
    let failure = load_err(&runtime, &wat(r#"(module (memory (export "memory") 1))"#));
    assert_failure(&failure, ErrorKind::AbiMismatch, "not a Brine v1 module");
    assert!(
        failure.message.contains("supports ABI versions: 1"),
        "{}",
        failure.message
    );
    let v2 = wat(r#"(module (memory (export "memory") 1) (func (export "__brine_abi_v2")))"#);
    let failure = load_err(&runtime, &v2);
    assert_failure(&failure, ErrorKind::AbiMismatch, "module declares: v2");
    let module = load(&runtime, tasks_wasm());
    assert_healthy(&runtime, &module);
}

#[test]
fn imports_must_come_from_the_host() {
    let runtime = runtime();
    let with_import = |import: &str| wat(&format!("(module {import} {PRELUDE})"));
    let failure = load_err(&runtime, &with_import(r#"(import "env" "foo" (func))"#));
    assert_failure(&failure, ErrorKind::ModuleInvalid, "`env::foo`");
    let failure = load_err(&runtime, &with_import(r#"(import "brine" "nope" (func))"#));
    assert_failure(&failure, ErrorKind::ModuleInvalid, "brine::nope");
    let failure = load_err(
        &runtime,
        &with_import(r#"(import "brine" "progress" (func (param i32)))"#),
    );
    assert_failure(&failure, ErrorKind::ModuleInvalid, "brine::progress");
    let failure = load_err(
        &runtime,
        &with_import(r#"(import "wasi_snapshot_preview1" "no_such_call" (func))"#),
    );
    assert_failure(
        &failure,
        ErrorKind::ModuleInvalid,
        "wasi_snapshot_preview1::no_such_call",
    );
    let module = load(&runtime, tasks_wasm());
    assert_healthy(&runtime, &module);
}

#[test]
fn invalid_bytes_and_missing_exports_are_module_invalid() {
    let runtime = runtime();
    let failure = load_err(&runtime, b"definitely not wasm");
    assert_eq!(failure.kind, ErrorKind::ModuleInvalid);
    assert!(!failure.message.is_empty());
    let failure = load_err(&runtime, b"\0asm\x01\0\0\0\x01\xff");
    assert_eq!(failure.kind, ErrorKind::ModuleInvalid, "{failure:?}");

    let no_memory = wat(r#"(module (func (export "__brine_abi_v1"))
        (func (export "__brine_alloc") (param i32) (result i32) (i32.const 0)))"#);
    assert_failure(
        &load_err(&runtime, &no_memory),
        ErrorKind::ModuleInvalid,
        "`memory`",
    );
    let no_alloc = wat(r#"(module (memory (export "memory") 1) (func (export "__brine_abi_v1")))"#);
    assert_failure(
        &load_err(&runtime, &no_alloc),
        ErrorKind::ModuleInvalid,
        "__brine_alloc",
    );
    assert_eq!(runtime.stats().disk_writes, 0);
    let module = load(&runtime, tasks_wasm());
    assert_healthy(&runtime, &module);
}

#[test]
fn module_refs_are_verified_and_looked_up_by_hash() {
    let runtime = runtime();
    let bytes = tasks_wasm().to_vec();
    let hash = ModuleHash::of(&bytes);
    let failure = runtime.load(&ModuleRef::by_hash(hash)).unwrap_err();
    assert_failure(&failure, ErrorKind::ModuleMissing, &hash.to_string());

    let forged = ModuleRef {
        hash: ModuleHash::of(b"other"),
        bytes: Some(bytes.clone()),
    };
    assert_failure(
        &runtime.load(&forged).unwrap_err(),
        ErrorKind::ModuleInvalid,
        "hash",
    );

    let module = runtime.load(&ModuleRef::inline(bytes)).unwrap();
    let again = runtime.load(&ModuleRef::by_hash(hash)).unwrap();
    assert!(Arc::ptr_eq(&module, &again));
    assert_eq!(runtime.cached_modules(), vec![hash]);
    assert_eq!(runtime.stats().compiles, 1);
    assert_eq!(runtime.stats().memory_hits, 1);

    assert!(runtime.evict(&hash));
    assert!(runtime.cached_modules().is_empty());
    assert_eq!(
        runtime.load(&ModuleRef::by_hash(hash)).unwrap_err().kind,
        ErrorKind::ModuleMissing
    );
    // A module evicted while held still runs.
    assert_healthy(&runtime, &module);
}

#[test]
fn initialize_runs_once_per_instance_before_the_entry() {
    let runtime = runtime();
    let wasm = wat_module(
        r#"
      (global $ready (mut i32) (i32.const 0))
      (func (export "_initialize")
        (global.set $ready (i32.add (global.get $ready) (i32.const 1))))
      (func (export "ready") (param i32 i32 i32) (result i32)
        (i32.store8 (i32.const 0) (i32.add (i32.const 48) (global.get $ready)))
        (call $result (i32.const 0) (i32.const 1)) (i32.const 0))"#,
    );
    let module = load(&runtime, &wasm);
    for _ in 0..2 {
        assert_eq!(runtime.run(&module, &task("ready")).unwrap(), b"1");
    }
    let trapping = wat_module(
        r#"
      (func (export "_initialize") unreachable)
      (func (export "echo") (param i32 i32 i32) (result i32) (i32.const 0))"#,
    );
    let module = load(&runtime, &trapping);
    assert_failure(
        &run_err(&runtime, &module, &task("echo")),
        ErrorKind::Trap,
        "unreachable",
    );
}

#[test]
fn a_bad_pointer_from_alloc_is_a_trap() {
    let runtime = runtime();
    let wasm = wat(r#"(module
      (import "brine" "result" (func $result (param i32 i32)))
      (memory (export "memory") 1)
      (func (export "__brine_abi_v1"))
      (func (export "__brine_alloc") (param i32) (result i32) (i32.const -16))
      (func (export "echo") (param i32 i32 i32) (result i32) (i32.const 0)))"#);
    let module = load(&runtime, &wasm);
    let run = TaskRun::new("echo", b"1234".to_vec(), Encoding::Json);
    let failure = run_err(&runtime, &module, &run);
    assert_failure(
        &failure,
        ErrorKind::Trap,
        "`__brine_alloc` returned a bad pointer",
    );
    assert!(failure.message.contains("out of bounds"));
}

/// WASI imports beyond the prelude's, for [`HOSTILE`].
const MORE_WASI: &str = r#"
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
"#;

/// Guests that abuse the host: raw `fd_write`s, other WASI calls with bad pointers,
/// table growth, oversized results and messages.
const HOSTILE: &str = r#"
  (table $t 1 funcref)
  (data (i32.const 144) "to stdout\n")
  (data (i32.const 160) "hello ")

  ;; args (all i32): fd, iovs, iovs_len, nwritten, then two iovecs (ptr, len) stored
  ;; at 512 and 520. Result: fd_write's errno, then the i32 at 604.
  (func (export "fd_write") (param $p i32) (param i32 i32) (result i32)
    (i32.store (i32.const 512) (i32.load offset=16 (local.get $p)))
    (i32.store (i32.const 516) (i32.load offset=20 (local.get $p)))
    (i32.store (i32.const 520) (i32.load offset=24 (local.get $p)))
    (i32.store (i32.const 524) (i32.load offset=28 (local.get $p)))
    (i32.store (i32.const 604) (i32.const -1))
    (i32.store (i32.const 600)
      (call $fd_write
        (i32.load (local.get $p))
        (i32.load offset=4 (local.get $p))
        (i32.load offset=8 (local.get $p))
        (i32.load offset=12 (local.get $p))))
    (call $result (i32.const 600) (i32.const 8))
    (i32.const 0))
  (func (export "random_get_out_of_bounds") (param i32 i32 i32) (result i32)
    (drop (call $random_get (i32.const 65530) (i32.const 100)))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "clock_time_get_out_of_bounds") (param i32 i32 i32) (result i32)
    (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 65536)))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  (func (export "environ_sizes_get_out_of_bounds") (param i32 i32 i32) (result i32)
    (drop (call $environ_sizes_get (i32.const -4) (i32.const 0)))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))

  ;; Grows the table 1000 elements at a time until refused, then traps.
  (func (export "grow_table_forever") (param i32 i32 i32) (result i32)
    (loop $more
      (br_if $more
        (i32.ne (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))))
    unreachable)
  ;; Asks for 2^31 - 1 more elements at once; traps when refused.
  (func (export "grow_table_at_once") (param i32 i32 i32) (result i32)
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 0x7fffffff)) (i32.const -1))
      (then unreachable))
    (call $result (i32.const 0) (i32.const 0)) (i32.const 0))
  ;; Grows the table a little: fine.
  (func (export "grow_table_a_little") (param i32 i32 i32) (result i32)
    (drop (table.grow $t (ref.null func) (i32.const 100)))
    (i32.store (i32.const 0) (table.size $t))
    (call $result (i32.const 0) (i32.const 4)) (i32.const 0))

  ;; arg: u32 length; grows memory to hold it, then offers [0, length) as the result.
  (func (export "result_of") (param $p i32) (param i32 i32) (result i32)
    (local $len i32)
    (local.set $len (i32.load (local.get $p)))
    (drop (memory.grow
      (i32.sub (i32.add (i32.shr_u (local.get $len) (i32.const 16)) (i32.const 1))
               (memory.size))))
    (call $result (i32.const 0) (local.get $len))
    (i32.const 0))
  ;; A 200,000-byte message of 'x' through `error` (and `panic` below).
  (func $long_message (result i32)
    (drop (memory.grow (i32.const 3)))
    (memory.fill (i32.const 0) (i32.const 120) (i32.const 200000))
    (i32.const 200000))
  (func (export "long_error") (param i32 i32 i32) (result i32)
    (call $error (i32.const 0) (call $long_message)) (i32.const 1))
  (func (export "long_panic") (param i32 i32 i32) (result i32)
    (call $panic (i32.const 0) (call $long_message)) unreachable)
"#;

fn hostile(runtime: &Runtime) -> Arc<LoadedModule> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    let wasm = WASM.get_or_init(|| wat(&format!("(module {MORE_WASI} {PRELUDE} {HOSTILE})")));
    load(runtime, wasm)
}

/// Raw little-endian i32 arguments.
fn i32_args(export: &str, args: &[i32]) -> TaskRun {
    let bytes = args.iter().flat_map(|a| a.to_le_bytes()).collect();
    TaskRun::new(export, bytes, Encoding::Postcard)
}

/// `fd_write` through the host's own implementation: `(errno, nwritten)`, or the failure.
fn fd_write(
    runtime: &Runtime,
    module: &LoadedModule,
    args: [i32; 8],
    stdout: &MemoryOutput,
    stderr: &MemoryOutput,
) -> Result<(i32, i32), brine_proto::payload::TaskFailure> {
    let run = TaskRun {
        stdout: Output::Memory(stdout.clone()),
        stderr: Output::Memory(stderr.clone()),
        ..i32_args("fd_write", &args)
    };
    let result = runtime.run(module, &run)?;
    let word = |at: usize| i32::from_le_bytes(result[at..at + 4].try_into().unwrap());
    Ok((word(0), word(4)))
}

#[test]
fn fd_write_takes_every_buffer_and_refuses_bad_descriptors() {
    let runtime = runtime();
    let module = hostile(&runtime);
    let out = || (MemoryOutput::new(1024), MemoryOutput::new(1024));

    // Both buffers in one call, to stdout or stderr.
    let (stdout, stderr) = out();
    let gather = [1, 512, 2, 604, 160, 6, 144, 10];
    assert_eq!(
        fd_write(&runtime, &module, gather, &stdout, &stderr).unwrap(),
        (0, 16)
    );
    assert_eq!(stdout.contents(), b"hello to stdout\n");
    assert!(stderr.contents().is_empty());
    let (stdout, stderr) = out();
    let to_stderr = [2, 512, 2, 604, 160, 6, 144, 10];
    assert_eq!(
        fd_write(&runtime, &module, to_stderr, &stdout, &stderr).unwrap(),
        (0, 16)
    );
    assert_eq!(stderr.contents(), b"hello to stdout\n");
    // No buffers: nothing written.
    let (stdout, stderr) = out();
    assert_eq!(
        fd_write(
            &runtime,
            &module,
            [1, 512, 0, 604, 0, 0, 0, 0],
            &stdout,
            &stderr
        )
        .unwrap(),
        (0, 0)
    );

    // Every other descriptor is `badf` (8); stdin is not writable; nothing is written.
    for fd in [0, 3, 7, -1] {
        let (stdout, stderr) = out();
        let args = [fd, 512, 2, 604, 160, 6, 144, 10];
        assert_eq!(
            fd_write(&runtime, &module, args, &stdout, &stderr).unwrap(),
            (8, -1),
            "fd {fd}"
        );
        assert!(stdout.contents().is_empty() && stderr.contents().is_empty());
    }
    // More buffers than IOV_MAX: `inval` (28).
    let (stdout, stderr) = out();
    let args = [1, 512, 1025, 604, 160, 6, 144, 10];
    assert_eq!(
        fd_write(&runtime, &module, args, &stdout, &stderr).unwrap(),
        (28, -1)
    );
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}

#[test]
fn fd_write_with_pointers_outside_memory_traps_before_writing() {
    let runtime = runtime();
    let module = hostile(&runtime);
    for (args, needle) in [
        (
            [1, 65532, 2, 604, 160, 6, 144, 10],
            "out of bounds: fd_write: the iovec array",
        ),
        ([1, -8, 2, 604, 160, 6, 144, 10], "the iovec array"),
        ([1, 514, 1, 604, 160, 6, 144, 10], "not aligned"),
        ([1, 512, 2, 604, 160, 6, 65530, 100], "out of bounds"),
        ([1, 512, 2, 604, 160, 6, -16, 32], "out of bounds"),
        (
            [1, 512, 1, 65536, 160, 6, 0, 0],
            "out of bounds: fd_write: `nwritten`",
        ),
        (
            [1, 512, 1, 602, 160, 6, 0, 0],
            "`nwritten` at 602 is not aligned",
        ),
    ] {
        let (stdout, stderr) = (MemoryOutput::new(1024), MemoryOutput::new(1024));
        let failure = fd_write(&runtime, &module, args, &stdout, &stderr).unwrap_err();
        assert_failure(&failure, ErrorKind::Trap, needle);
        assert!(
            stdout.contents().is_empty(),
            "{args:?}: nothing is written before the check"
        );
    }
    // WASI's own calls trap on bad pointers too (as WASI requires).
    for export in [
        "random_get_out_of_bounds",
        "clock_time_get_out_of_bounds",
        "environ_sizes_get_out_of_bounds",
    ] {
        let failure = run_err(&runtime, &module, &task(export));
        assert_eq!(failure.kind, ErrorKind::Trap, "{export}: {failure:?}");
        assert!(
            failure.message.contains("out of bounds"),
            "{export}: {failure:?}"
        );
    }
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}

#[test]
fn table_growth_stops_at_the_table_limit() {
    let runtime = runtime();
    let module = hostile(&runtime);
    let failure = run_err(&runtime, &module, &task("grow_table_forever"));
    assert_failure(
        &failure,
        ErrorKind::Trap,
        "table limit of 20000 elements reached: growth to 20001 elements refused",
    );
    assert!(failure.message.contains("unreachable"), "{failure:?}");
    let failure = run_err(&runtime, &module, &task("grow_table_at_once"));
    assert_failure(
        &failure,
        ErrorKind::Trap,
        "growth to 2147483648 elements refused",
    );
    let size = runtime.run(&module, &task("grow_table_a_little")).unwrap();
    assert_eq!(size, 101u32.to_le_bytes());
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}

/// Peak resident set of this process (`VmHWM`), if `/proc` says.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_result_over_the_cap_is_refused_before_it_is_copied() {
    let small = Runtime::new(RuntimeConfig {
        max_result_bytes: 1000,
        ..small_config()
    })
    .unwrap();
    let module = hostile(&small);
    let at_cap = small.run(&module, &i32_args("result_of", &[1000])).unwrap();
    assert_eq!(at_cap.len(), 1000);
    let failure = run_err(&small, &module, &i32_args("result_of", &[1001]));
    assert_failure(
        &failure,
        ErrorKind::ResultEncode,
        "result of 1001 bytes is larger than the result cap of 1000 bytes",
    );
    assert_healthy(&small, &load(&small, tasks_wasm()));

    // The default cap (16 MiB) against a 256 MiB result: refused without copying it (a
    // copy would add its 256 MiB to the peak resident set; the guest's own pages are
    // never touched, so they are not resident).
    let runtime = runtime();
    let module = hostile(&runtime);
    let before = peak_resident_bytes();
    let failure = run_err(&runtime, &module, &i32_args("result_of", &[256 << 20]));
    assert_failure(
        &failure,
        ErrorKind::ResultEncode,
        "result of 268435456 bytes is larger than the result cap of 16777216 bytes",
    );
    if let (Some(before), Some(after)) = (before, peak_resident_bytes()) {
        let growth = after.saturating_sub(before);
        assert!(growth < 64 << 20, "peak resident set grew {growth} bytes");
    }
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}

#[test]
fn long_messages_are_cut() {
    let runtime = runtime();
    let module = hostile(&runtime);
    let kept = "x".repeat(brine_executor::runtime::MAX_MESSAGE_BYTES);
    let cut = format!("{kept}… (message of 200000 bytes cut at 65536)");
    let failure = run_err(&runtime, &module, &task("long_error"));
    assert_eq!(failure.kind, ErrorKind::GuestError);
    assert!(failure.message == cut, "{}", &failure.message[65530..]);
    let failure = run_err(&runtime, &module, &task("long_panic"));
    assert_eq!(failure.kind, ErrorKind::GuestPanic);
    assert!(failure.message == cut, "{}", &failure.message[65530..]);
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}

/// A Brine module with `pages` of memory and one data segment of `len` bytes of 7 at
/// address 0; task `byte` returns the byte at the address it is given (an i32).
fn with_data(pages: u32, len: usize) -> Vec<u8> {
    let mut module = wat(&format!(
        r#"(module
      (import "brine" "result" (func $result (param i32 i32)))
      (memory (export "memory") {pages})
      (func (export "__brine_abi_v1"))
      (func (export "__brine_alloc") (param i32) (result i32) (i32.const 0))
      (func (export "byte") (param $p i32) (param i32 i32) (result i32)
        (call $result (i32.load (local.get $p)) (i32.const 1)) (i32.const 0)))"#
    ));
    // The data section comes last (after the code section; custom sections may be
    // anywhere).
    let mut data = vec![1, 0, 0x41, 0, 0x0b];
    data.extend(leb(len as u64));
    data.extend(std::iter::repeat_n(7u8, len));
    module.extend(section(11, &data));
    module
}

/// wasmtime cannot interrupt a compilation: a module that compiles for longer than
/// its task's deadline fails the task at the deadline, while the compilation goes on
/// (on a thread of its own) to cache the module for later tasks.
#[test]
fn a_compile_past_the_deadline_fails_the_task_at_its_deadline() {
    let runtime = Arc::new(runtime());
    let dir = tempfile::tempdir().unwrap();
    let job = |module: ModuleRef, deadline: Option<Duration>| Job {
        task_id: "slow".into(),
        spec: TaskSpec {
            module,
            export: "x".into(),
            args: vec![],
            encoding: Encoding::Json,
            deadline: None,
        },
        runtime: Arc::clone(&runtime),
        memory_limit_bytes: None,
        deadline,
        kill: KillSwitch::new(),
        progress: Progress::new(),
        output_dir: dir.path().into(),
        dataset: Ok(None),
    };
    // 10 000 functions take far longer than 5 ms to compile (and not so long that
    // the compilation left behind slows the other tests much).
    let slow = ModuleRef::inline(many_functions(10_000));
    let failure = pool::run(job(slow, Some(Duration::from_millis(5)))).unwrap_err();
    assert_failure(
        &failure,
        ErrorKind::DeadlineExceeded,
        "did not compile within the task's deadline of 5ms",
    );
    // A module that compiles in time runs within the same deadline.
    let quick = ModuleRef::inline(wat(&format!("(module {PRELUDE} {TASKS})")));
    let failure = pool::run(job(quick, Some(Duration::from_secs(60)))).unwrap_err();
    assert_eq!(failure.kind, ErrorKind::ExportMissing, "{failure:?}");
}

#[test]
fn modules_over_the_size_limits_are_refused_before_compiling() {
    let runtime = runtime();
    // More functions than the limit: refused from the function section's count (a
    // compile of 100 000 functions takes seconds even in a release build).
    let over = brine_executor::runtime::DEFAULT_MAX_MODULE_FUNCTIONS as u64 + 1;
    let failure = load_err(&runtime, &many_functions(over));
    assert_failure(
        &failure,
        ErrorKind::ModuleInvalid,
        "module defines 100001 functions, more than the limit of 100000",
    );
    // More bytes than the limit (a 33 MiB data segment).
    let huge = with_data(600, 33 << 20);
    let failure = load_err(&runtime, &huge);
    assert_failure(
        &failure,
        ErrorKind::ModuleInvalid,
        "is larger than the limit of 33554432 bytes",
    );
    assert_eq!(runtime.stats().compiles, 0, "neither was compiled");

    // Within the limits: a 16 MiB data segment loads and runs.
    let module = load(&runtime, &with_data(300, 16 << 20));
    let byte = |at: i32| runtime.run(&module, &i32_args("byte", &[at]));
    assert_eq!(byte((16 << 20) - 1).unwrap(), [7]);
    assert_eq!(byte(16 << 20).unwrap(), [0]);
    // A smaller limit applies as configured.
    let strict = Runtime::new(RuntimeConfig {
        max_module_bytes: 1 << 20,
        max_module_functions: 100,
        ..small_config()
    })
    .unwrap();
    assert_failure(
        &load_err(&strict, &many_functions(101)),
        ErrorKind::ModuleInvalid,
        "defines 101 functions, more than the limit of 100",
    );
    assert_failure(
        &load_err(&strict, &with_data(300, 2 << 20)),
        ErrorKind::ModuleInvalid,
        "larger than the limit of 1048576 bytes",
    );
    assert_healthy(&strict, &load(&strict, tasks_wasm()));
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}

#[test]
fn modules_that_do_not_fit_the_instance_pool_are_module_invalid() {
    let runtime = runtime();
    let brine = |extra: &str| {
        wat(&format!(
            r#"(module {extra}
          (func (export "__brine_abi_v1"))
          (func (export "__brine_alloc") (param i32) (result i32) (i32.const 0)))"#
        ))
    };
    for (extra, needle) in [
        (
            r#"(memory (export "memory") 20000)"#,
            "memory has a minimum byte size of 1310720000 which exceeds the limit",
        ),
        (
            r#"(memory (export "memory") 1) (table 30000 funcref)"#,
            "minimum element size of 30000 which exceeds the limit of 20000",
        ),
        (
            r#"(memory (export "memory") 1) (memory 1)"#,
            "defined memories count of 2 exceeds the per-instance limit of 1",
        ),
    ] {
        assert_failure(
            &load_err(&runtime, &brine(extra)),
            ErrorKind::ModuleInvalid,
            needle,
        );
    }
    // Many globals: an instance larger than a pool slot.
    let globals = "(global i64 (i64.const 0))".repeat(100_000);
    let failure = load_err(
        &runtime,
        &brine(&format!(r#"(memory (export "memory") 1) {globals}"#)),
    );
    assert_failure(
        &failure,
        ErrorKind::ModuleInvalid,
        "exceeds the configured maximum",
    );
    // A data segment outside the memory: a trap when the task's instance is created.
    let outside = wat_module(
        r#"(data (i32.const 70000) "x")
        (func (export "echo") (param i32 i32 i32) (result i32) (i32.const 0))"#,
    );
    let module = load(&runtime, &outside);
    assert_failure(
        &run_err(&runtime, &module, &task("echo")),
        ErrorKind::Trap,
        "out of bounds memory access",
    );
    assert_healthy(&runtime, &load(&runtime, tasks_wasm()));
}
