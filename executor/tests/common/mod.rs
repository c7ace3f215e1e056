//! Helpers shared by the runtime tests.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use brine_executor::runtime::{LoadedModule, Runtime, RuntimeConfig, TaskRun};
use brine_proto::payload::{Encoding, ErrorKind, ModuleRef, TaskFailure};

/// A runtime with a small pool (tests create many).
pub fn runtime() -> Runtime {
    Runtime::new(small_config()).expect("runtime")
}

pub fn small_config() -> RuntimeConfig {
    RuntimeConfig {
        max_instances: 8,
        ..RuntimeConfig::default()
    }
}

/// Imports, memory, marker and a bump allocator (from 1024) common to the WAT modules.
pub const PRELUDE: &str = r#"
  (import "brine" "result" (func $result (param i32 i32)))
  (import "brine" "error" (func $error (param i32 i32)))
  (import "brine" "panic" (func $panic (param i32 i32)))
  (import "brine" "progress" (func $progress (param f64)))
  (import "brine" "dataset_len" (func $dataset_len (result i64)))
  (import "brine" "dataset_read" (func $dataset_read (param i64 i32 i32) (result i64)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "__brine_abi_v1"))
  (func (export "__brine_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
"#;

/// A module made of [`PRELUDE`] and `body`.
pub fn wat_module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {body})")).expect("valid WAT")
}

/// Parses a whole WAT module.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

pub fn load(runtime: &Runtime, wasm: &[u8]) -> Arc<LoadedModule> {
    runtime
        .load(&ModuleRef::inline(wasm.to_vec()))
        .unwrap_or_else(|f| panic!("load failed: {f:?}"))
}

pub fn load_err(runtime: &Runtime, wasm: &[u8]) -> TaskFailure {
    runtime
        .load(&ModuleRef::inline(wasm.to_vec()))
        .expect_err("load should fail")
}

/// A JSON task with `args` as JSON.
pub fn json_task(export: &str, args: serde_json::Value) -> TaskRun {
    TaskRun::new(export, serde_json::to_vec(&args).unwrap(), Encoding::Json)
}

pub fn run_err(runtime: &Runtime, module: &LoadedModule, task: &TaskRun) -> TaskFailure {
    match runtime.run(module, task) {
        Ok(result) => panic!(
            "task `{}` should fail, returned {:?}",
            task.export,
            String::from_utf8_lossy(&result)
        ),
        Err(failure) => failure,
    }
}

/// Asserts the failure's kind and that its message contains `needle`.
pub fn assert_failure(failure: &TaskFailure, kind: ErrorKind, needle: &str) {
    assert_eq!(failure.kind, kind, "{failure:?}");
    assert!(
        failure.message.contains(needle),
        "message {:?} should contain {needle:?}",
        failure.message
    );
}

/// The example modules, found as every other test finds them.
pub use brine_tests::example;

/// The bound on waiting for a task that something (a kill, a deadline) should end: the
/// test fails past it. A bound on a wait, not a timing target (debug builds on a loaded
/// 2-core machine).
pub use brine_tests::BOUND;

/// What the thread running a task sends on `rx` when the task ends, awaited for at most
/// [`BOUND`]; past that, or if that thread panicked, the test fails naming `what`.
pub fn end_within<T>(rx: &std::sync::mpsc::Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(BOUND) {
        Ok(end) => end,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {BOUND:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{what}: the thread running it panicked")
        }
    }
}

/// Kills a task when dropped, so a failed assertion in a test never leaves a spinning
/// task behind (which would hang the thread scope waiting for it).
pub struct KillOnDrop(pub brine_executor::runtime::KillSwitch);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}
