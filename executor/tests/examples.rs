//! The real example task modules (built by `make examples`) on a real runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use brine_executor::runtime::{Dataset, LoadedModule, MemoryOutput, Output, Runtime, TaskRun};
use brine_proto::payload::{ErrorKind, ModuleRef};
use common::*;
use serde_json::{Value, json};

/// One runtime for every test here, as in the executor: tests run on threads side by
/// side, so this doubles as a concurrency test.
fn shared() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(brine_executor::runtime::RuntimeConfig {
            max_instances: 32,
            ..small_config()
        })
        .unwrap()
    })
}

/// Each example module, loaded once (compiling in a debug build takes a while).
fn module(name: &str) -> Arc<LoadedModule> {
    static MODULES: OnceLock<Mutex<HashMap<String, Arc<LoadedModule>>>> = OnceLock::new();
    let modules = MODULES.get_or_init(Default::default);
    let mut modules = modules.lock().unwrap();
    let module = modules
        .entry(name.to_owned())
        .or_insert_with(|| load(shared(), &example(name)));
    Arc::clone(module)
}

fn run_json(name: &str, task: &TaskRun) -> Value {
    let result = shared()
        .run(&module(name), task)
        .unwrap_or_else(|f| panic!("{f:?}"));
    serde_json::from_slice(&result).unwrap()
}

/// A normal task still runs after whatever happened before.
fn assert_healthy() {
    assert_eq!(
        run_json("hello", &json_task("hello", Value::Null)),
        json!("hello world")
    );
}

#[test]
fn hello_prints_and_returns_its_greeting() {
    let stdout = MemoryOutput::new(1024);
    let task = TaskRun {
        stdout: Output::Memory(stdout.clone()),
        ..json_task("hello", Value::Null)
    };
    assert_eq!(run_json("hello", &task), json!("hello world"));
    assert_eq!(stdout.contents(), b"hello world\n");
    assert_eq!(module("hello").tasks(), vec!["hello".to_owned()]);
}

#[test]
fn sum_adds_and_reports_bad_input() {
    assert_eq!(run_json("sum", &json_task("sum", json!("1 2 3"))), json!(6));
    assert_eq!(run_json("sum", &json_task("sum", json!(""))), json!(0));

    let failure = run_err(shared(), &module("sum"), &json_task("sum", json!("1 x 3")));
    assert_failure(&failure, ErrorKind::GuestError, "not an integer: \"x\"");
    assert_healthy();
    let failure = run_err(shared(), &module("sum"), &json_task("sum", json!(123)));
    assert_eq!(failure.kind, ErrorKind::ArgumentDecode, "{failure:?}");
    assert!(!failure.message.is_empty());
    assert_healthy();
    let garbage = TaskRun::new(
        "sum",
        b"{not json".to_vec(),
        brine_proto::payload::Encoding::Json,
    );
    assert_eq!(
        run_err(shared(), &module("sum"), &garbage).kind,
        ErrorKind::ArgumentDecode
    );
    assert_healthy();
}

/// Words (runs of non-whitespace) in `text`.
fn count_words(text: &[u8]) -> u64 {
    text.split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .count() as u64
}

#[test]
fn wordcount_partitions_add_up_over_a_mapped_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("words.txt");
    let mut text = Vec::new();
    for i in 0..50_000u32 {
        text.extend(std::iter::repeat_n(
            b"abcdefg"[(i % 7) as usize],
            (i % 9 + 1) as usize,
        ));
        text.extend(if i % 13 == 0 {
            &b"\n\t "[..]
        } else {
            &b" "[..]
        });
    }
    std::fs::write(&path, &text).unwrap();
    let dataset = Dataset::open(&path).unwrap();
    assert_eq!(dataset.len(), text.len() as u64);
    let expected = count_words(&text);

    let count = |offset: u64, len: u64| {
        let task = TaskRun {
            dataset: Some(Arc::clone(&dataset)),
            ..json_task("wordcount", json!({ "offset": offset, "len": len }))
        };
        run_json("wordcount", &task)
    };
    let whole = count(0, text.len() as u64);
    assert_eq!(whole, json!({ "words": expected, "bytes": text.len() }));

    let parts = 7;
    let step = (text.len() as u64).div_ceil(parts);
    let (mut words, mut bytes) = (0, 0);
    for part in 0..parts {
        let result = count(part * step, step);
        words += result["words"].as_u64().unwrap();
        bytes += result["bytes"].as_u64().unwrap();
    }
    assert_eq!((words, bytes), (expected, text.len() as u64));
    // Past the end: nothing, no failure.
    assert_eq!(
        count(text.len() as u64 + 10, 100),
        json!({ "words": 0, "bytes": 0 })
    );
}

#[test]
fn pi_estimates_and_reports_progress() {
    let task = json_task("pi", json!({ "samples": 400_000, "seed": 7 }));
    let result = run_json("pi", &task);
    let estimate = result["estimate"].as_f64().unwrap();
    assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{result}");
    assert_eq!(result["samples"], json!(400_000));
    assert_eq!(task.progress.fraction(), Some(1.0));

    let failure = run_err(
        shared(),
        &module("pi"),
        &json_task("pi", json!({ "samples": 0, "seed": 1 })),
    );
    assert_failure(
        &failure,
        ErrorKind::GuestError,
        "samples must be at least 1",
    );
    assert_healthy();
}

#[test]
fn progress_can_be_watched_while_a_task_runs() {
    // Far more samples than the test waits for (progress comes every 1%, 10^8
    // samples): it is killed once progress shows.
    let task = json_task("pi", json!({ "samples": 10_000_000_000u64, "seed": 3 }));
    let (kill, progress) = (task.kill.clone(), task.progress.clone());
    std::thread::scope(|scope| {
        // Inside the scope: a failed assertion kills the task before the scope joins it.
        let _guard = KillOnDrop(kill.clone());
        let running = scope.spawn(|| run_err(shared(), &module("pi"), &task));
        let deadline = Instant::now() + Duration::from_secs(120);
        let seen = loop {
            if let Some(fraction) = progress.fraction() {
                break fraction;
            }
            assert!(Instant::now() < deadline, "no progress reported");
            std::thread::yield_now();
        };
        assert!((0.0..1.0).contains(&seen), "{seen}");
        kill.kill();
        assert_failure(&running.join().unwrap(), ErrorKind::Killed, "killed");
    });
    assert_healthy();
}

#[test]
fn evolve_scores_and_breeds_a_shard() {
    let population = json!([
        [1, 2, 3, 4, 5],
        [50, 50, 50, 50, 31],
        [99, 99, 0, 0, 0],
        [10, 20, 30, 40, 50]
    ]);
    let args =
        json!({ "population": population, "seed": 11, "offspring": 6, "mutation_rate": 0.2 });
    let result = run_json("evolve", &json_task("evolve", args.clone()));
    let scored = result["scored"].as_array().unwrap();
    assert_eq!(scored.len(), 4);
    assert_eq!(scored[0]["genome"], json!([50, 50, 50, 50, 31]));
    assert_eq!(scored[0]["fitness"], json!(1.0));
    let offspring = result["offspring"].as_array().unwrap();
    assert_eq!(offspring.len(), 6);
    assert!(
        offspring
            .iter()
            .flat_map(|g| g.as_array().unwrap())
            .all(|x| x.as_u64().unwrap() < 100)
    );
    // Deterministic in its arguments.
    assert_eq!(run_json("evolve", &json_task("evolve", args)), result);

    let bad = json!({ "population": [[1, 2, 3, 4, 200]], "seed": 1, "offspring": 1, "mutation_rate": 0.1 });
    let failure = run_err(shared(), &module("evolve"), &json_task("evolve", bad));
    assert_failure(&failure, ErrorKind::GuestError, "outside 0..100");
    assert_healthy();
}

fn failing(task: &str) -> TaskRun {
    json_task(task, Value::Null)
}

#[test]
fn loop_forever_is_killed_from_another_thread() {
    // The deadline only stops the task if the kill does not (and then the test fails).
    let task = TaskRun {
        deadline: Some(BOUND),
        ..failing("loop_forever")
    };
    let (kill, progress) = (task.kill.clone(), task.progress.clone());
    std::thread::scope(|scope| {
        // Inside the scope: a failed assertion kills the task before the scope joins it.
        let _guard = KillOnDrop(kill.clone());
        let running = scope.spawn(|| run_err(shared(), &module("failures"), &task));
        assert!(
            progress.wait_started(Duration::from_secs(120)),
            "never started"
        );
        kill.kill();
        assert_failure(&running.join().unwrap(), ErrorKind::Killed, "killed");
    });
    assert_healthy();
}

#[test]
fn loop_forever_hits_its_deadline() {
    let task = TaskRun {
        deadline: Some(Duration::from_millis(100)),
        ..failing("loop_forever")
    };
    let failure = run_err(shared(), &module("failures"), &task);
    assert_failure(&failure, ErrorKind::DeadlineExceeded, "100ms");
    assert_healthy();
}

#[test]
fn allocate_forever_hits_the_memory_limit() {
    let task = TaskRun {
        memory_limit_bytes: Some(32 << 20),
        ..failing("allocate_forever")
    };
    let failure = run_err(shared(), &module("failures"), &task);
    assert_failure(
        &failure,
        ErrorKind::MemoryLimit,
        "memory limit of 33554432 bytes",
    );
    assert!(
        failure.stderr_tail.contains("allocated 16 MiB"),
        "{failure:?}"
    );
    assert_healthy();
}

#[test]
fn panic_is_a_guest_panic_with_its_message() {
    let failure = run_err(shared(), &module("failures"), &failing("panic"));
    assert_failure(&failure, ErrorKind::GuestPanic, "deliberate panic");
    assert_healthy();
}

#[test]
fn trap_is_a_trap() {
    let failure = run_err(shared(), &module("failures"), &failing("trap"));
    assert_failure(&failure, ErrorKind::Trap, "unreachable");
    assert_healthy();
}

#[test]
fn fail_is_a_guest_error() {
    let failure = run_err(shared(), &module("failures"), &failing("fail"));
    assert_failure(&failure, ErrorKind::GuestError, "deliberate failure");
    assert_healthy();
}

#[test]
fn tasks_run_side_by_side() {
    let module = module("pi");
    let expected: Vec<Value> = (0..6)
        .map(|seed| {
            run_json(
                "pi",
                &json_task("pi", json!({ "samples": 50_000, "seed": seed })),
            )
        })
        .collect();
    // Six at once, plus one that loops until killed at the end.
    let looping = failing("loop_forever");
    std::thread::scope(|scope| {
        // Inside the scope: a failed assertion kills the task before the scope joins it.
        let _guard = KillOnDrop(looping.kill.clone());
        let looper = scope.spawn(|| run_err(shared(), &self::module("failures"), &looping));
        let workers: Vec<_> = (0..6)
            .map(|seed| {
                let module = Arc::clone(&module);
                scope.spawn(move || {
                    let task = json_task("pi", json!({ "samples": 50_000, "seed": seed }));
                    serde_json::from_slice::<Value>(&shared().run(&module, &task).unwrap()).unwrap()
                })
            })
            .collect();
        let results: Vec<Value> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(results, expected);
        assert!(looping.progress.wait_started(Duration::from_secs(120)));
        looping.kill.kill();
        assert_eq!(looper.join().unwrap().kind, ErrorKind::Killed);
    });
}

#[test]
fn hash_only_refs_find_loaded_examples() {
    let hash = module("sum").hash();
    let again = shared().load(&ModuleRef::by_hash(hash)).unwrap();
    assert_eq!(again.hash(), hash);
    assert!(shared().cached_modules().contains(&hash));
}

fn postcard_task<A: serde::Serialize>(export: &str, args: &A) -> TaskRun {
    TaskRun::new(
        export,
        postcard::to_allocvec(args).unwrap(),
        brine_proto::payload::Encoding::Postcard,
    )
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let failures = module("failures");
    // Within the wasm stack: fine.
    let depth = shared()
        .run(&failures, &json_task("recurse", json!(1000)))
        .unwrap();
    assert_eq!(depth, b"1000");
    // Native frames (wasm locals) past `max_wasm_stack_bytes`: wasmtime's stack check.
    let failure = run_err(
        shared(),
        &failures,
        &json_task("recurse", json!(100_000_000)),
    );
    assert_failure(&failure, ErrorKind::Trap, "call stack exhausted");
    assert_healthy();
    // Frames on Rust's shadow stack (in linear memory) past its 1 MiB: the stack
    // pointer runs below address 0 and the next store is out of bounds.
    let shallow = shared()
        .run(&failures, &json_task("recurse_with_frames", json!(10)))
        .unwrap();
    assert_eq!(shallow, b"10");
    let failure = run_err(
        shared(),
        &failures,
        &json_task("recurse_with_frames", json!(100_000)),
    );
    assert_failure(&failure, ErrorKind::Trap, "out of bounds memory access");
    assert_healthy();
}

#[test]
fn a_result_over_the_cap_is_result_encode() {
    let failures = module("failures");
    let cap = brine_executor::runtime::DEFAULT_MAX_RESULT_BYTES;
    // postcard: a 4-byte length, then the bytes; exactly the cap is fine.
    let fits = cap - 4;
    let result = shared()
        .run(&failures, &postcard_task("big_result", &fits))
        .unwrap();
    assert_eq!(result.len() as u64, cap);
    let bytes: Vec<u8> = postcard::from_bytes(&result).unwrap();
    assert_eq!(bytes.len() as u64, fits);
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));

    let failure = run_err(
        shared(),
        &failures,
        &postcard_task("big_result", &(fits + 1)),
    );
    assert_failure(
        &failure,
        ErrorKind::ResultEncode,
        &format!(
            "result of {} bytes is larger than the result cap of {cap} bytes",
            cap + 1
        ),
    );
    assert_healthy();
}

#[test]
fn abi_calls_with_pointers_outside_memory_trap() {
    let failures = module("failures");
    // The six cases of `example_failures::BAD_ABI_CALLS`: `result`, `error`, `panic` and
    // `dataset_read` called with ranges past the end of memory, wrapping around the
    // address space, or 4 GiB long.
    for case in 0..6 {
        let failure = run_err(shared(), &failures, &json_task("bad_abi_call", json!(case)));
        assert_failure(&failure, ErrorKind::Trap, "out of bounds: guest range");
        assert!(
            failure.message.contains("lies outside its"),
            "case {case}: {failure:?}"
        );
        assert_healthy();
    }
    let failure = run_err(shared(), &failures, &json_task("bad_abi_call", json!(99)));
    assert_failure(&failure, ErrorKind::GuestError, "unknown case");
}

#[test]
fn wasi_gives_no_files_sockets_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "host data").unwrap();
    let probe = run_json(
        "failures",
        &json_task("probe_wasi", json!(secret.to_string_lossy())),
    );
    let field = |name: &str| probe[name].as_str().unwrap_or_default().to_owned();
    // Files and directories, even one that exists on the host: with no preopened
    // directory to resolve a path through, wasi-libc answers ENOENT (44).
    for name in ["open", "create", "read_dir", "read_dir_current"] {
        assert_eq!(
            field(name),
            "NotFound: No such file or directory (os error 44)",
            "{name}"
        );
    }
    assert!(!dir.path().join("secret.txt.new").exists());
    // Sockets: none.
    for name in ["tcp_connect", "tcp_bind", "udp_bind"] {
        let seen = field(name);
        assert!(seen.starts_with("Unsupported"), "{name}: {seen}");
    }
    // No environment, no arguments, an empty stdin, no current directory.
    assert_eq!(probe["env_vars"], json!(0));
    assert_eq!(probe["env_path"], json!("Err(NotPresent)"));
    assert_eq!(probe["args"], json!(0));
    assert_eq!(probe["stdin"], json!("ok: 0"));
    // The working directory is wasi-libc's own "/", not a host path.
    assert_eq!(field("current_dir"), r#"ok: "/""#);
    // The raw calls: `badf` (8) for fd 3 (no preopened directory, nothing opened), and
    // `notsock` (57) for a socket call on stdout.
    assert_eq!(probe["prestat_fd3"], json!(8), "{probe}");
    assert_eq!(probe["path_open_fd3"], json!(8), "{probe}");
    assert_eq!(probe["sock_accept_fd3"], json!(8), "{probe}");
    assert_eq!(probe["sock_accept_stdout"], json!(57), "{probe}");
    assert_healthy();
}
