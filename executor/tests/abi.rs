//! The host side of ABI v1, checked edge by edge with small hand-written modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use brine_executor::runtime::{
    Dataset, LoadedModule, MemoryOutput, Output, Runtime, RuntimeConfig, TaskRun,
};
use brine_proto::payload::{Encoding, ErrorKind, ModuleHash, ModuleRef};
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
