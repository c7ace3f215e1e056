//! `brine-executor`: the resident Brine executor, started by a Mesos agent (or
//! `brine-local`). All its configuration comes from the `MESOS_*` environment and from
//! `ExecutorInfo.data`; see the crate's README.
//!
//! Exit codes: 0 after a shutdown (SHUTDOWN, idle timeout, drain, SIGTERM, or losing
//! the agent); 1 bad environment; 2 bad `ExecutorConfig` or runtime set-up failure;
//! 3 the agent could not be reached for the first subscription.

use std::process::ExitCode;

use anyhow::Context;
use brine_executor::env::MesosEnv;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The resident Brine executor: runs WebAssembly tasks for a Mesos framework.
///
/// It is started by a Mesos agent, which sets its environment: MESOS_AGENT_ENDPOINT,
/// MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, MESOS_SANDBOX (or MESOS_DIRECTORY),
/// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD, and MESOS_CHECKPOINT=1 with
/// MESOS_RECOVERY_TIMEOUT and MESOS_SUBSCRIPTION_BACKOFF_MAX when the framework
/// checkpoints. Logs go to stderr, filtered by BRINE_LOG or RUST_LOG (default "info").
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    init_logging();
    let env = match MesosEnv::from_process() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("brine-executor: {e}");
            return ExitCode::from(1);
        }
    };
    // SAFETY: no other thread exists yet (the tokio runtime is built below).
    unsafe { brine_executor::env::erase_token_from_process_env() };
    let code = match run(env) {
        Ok(ended) => {
            tracing::info!(reason = %ended.reason, unacknowledged = ended.unacknowledged, "executor exiting");
            0
        }
        Err(e) => {
            let code = e
                .downcast_ref::<brine_executor::executor::ExecutorError>()
                .map_or(1, brine_executor::executor::ExecutorError::exit_code);
            tracing::error!("{e:#}");
            code
        }
    };
    // Exit without waiting for wasm threads still unwinding from a kill.
    std::process::exit(code)
}

fn run(env: MesosEnv) -> anyhow::Result<brine_executor::executor::Ended> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Blocking threads run wasm: room for wasmtime's 512 KiB wasm stack and the host.
        .thread_stack_size(8 << 20)
        .thread_name("brine-executor")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The event loop runs as a task on the workers, like the stream reader and the
    // senders that feed it: run by `block_on` on this thread instead, every event would
    // cost a cross-thread wake-up before it is even looked at.
    let ended = runtime
        .block_on(async { tokio::spawn(brine_executor::executor::run(env)).await })
        .context("the event loop panicked")?;
    // Do not wait for wasm threads still busy (e.g. compiling a module when SHUTDOWN
    // came): dropping the runtime would block on them past the grace period.
    runtime.shutdown_background();
    Ok(ended?)
}

fn init_logging() {
    let filter = std::env::var("BRINE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if std::env::var("BRINE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
