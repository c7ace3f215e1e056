//! Processes the end-to-end tests start: `brine-local` master and agents, `brine`.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::bounded;

/// `binary`, logging at `$BRINE_TEST_LOG` (default `warn`) to the test's stderr, its
/// stdout piped for the test to read, killed with the test.
pub fn command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env(
            "RUST_LOG",
            std::env::var("BRINE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `binary args…` and returns it with the first line it prints (`brine-local`
/// prints its URL or agent id), within [`crate::BOUND`]. The rest of its stdout is
/// drained, so that it never blocks on a full pipe.
///
/// # Panics
/// If it cannot start, or prints nothing in time.
pub async fn spawn_first_line<S: AsRef<std::ffi::OsStr>>(
    binary: &Path,
    args: &[S],
) -> (Child, String) {
    let mut child = command(binary)
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let what = format!("{}'s first line", binary.display());
    let first = bounded(&what, lines.next_line())
        .await
        .unwrap_or_else(|e| panic!("reading {what}: {e}"))
        .unwrap_or_else(|| panic!("{} exited before printing a line", binary.display()));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, first)
}

/// A TCP port free on 127.0.0.1 now (to hand to a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
