//! `brine`: the command line of Brine.
//!
//! - `brine run`: run one closure, or one per line of a JSON-lines file (`--map`).
//! - `brine local`: a local Mesos-compatible master with agents (as `brine-local`).
//! - `brine status`: what a master knows of the `brine` frameworks, plus what their
//!   schedulers know (heartbeats).
//! - `brine bench`: runs `brine-bench`, as git and cargo run external subcommands.
//!
//! `cli/CLI.md` documents every flag. Exit codes: 0 success, 1 at least one task
//! failed, 2 bad usage or nothing could run (no master, unreadable module…), 130
//! interrupted (Ctrl-C, SIGTERM).

mod bench;
mod http;
mod options;
mod report;
mod run;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "brine",
    version,
    about = "Run WebAssembly tasks on Apache Mesos (or a local stand-in)"
)]
struct Cli {
    /// Log line format on stderr (levels from RUST_LOG, default `warn`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ENTRY of a module once (--args, --args-file) or once per line (--map).
    Run(Box<run::RunArgs>),
    /// A local Mesos-compatible master with N agents, until Ctrl-C or SIGTERM.
    Local(brine_local::serve::ServeArgs),
    /// The `brine` frameworks of a master: executors, tasks, last heartbeats.
    Status(status::StatusArgs),
    /// Run `brine-bench` (found beside this executable, else on PATH) with these arguments.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// What a command ended with, beyond "it worked".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    /// Some task failed; its error was reported where its result would have been.
    TasksFailed,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    // `bench` replaces this process: no runtime needed.
    if let Command::Bench { args } = &cli.command {
        let error = bench::exec(args);
        eprintln!("brine bench: {error:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("brine: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(*args).await,
            Command::Local(args) => local(args).await,
            Command::Status(args) => status::status(args).await,
            Command::Bench { .. } => Ok(Outcome::Success),
        }
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::TasksFailed) => ExitCode::from(1),
        // As shells report a process ended by SIGINT.
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(error) => {
            eprintln!("brine: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `brine local`: exactly `brine-local` (one shared implementation).
async fn local(args: brine_local::serve::ServeArgs) -> anyhow::Result<Outcome> {
    let config = args.config()?;
    brine_local::serve::serve(config, |cluster| println!("{}", cluster.master_url())).await?;
    Ok(Outcome::Success)
}

/// Logs go to stderr, so stdout stays results only (pipeable JSON). The default level
/// is `warn`: the command's own output is the interesting part.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
