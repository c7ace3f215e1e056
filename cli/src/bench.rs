//! `brine bench`: an external subcommand, as git and cargo have them. The benchmark
//! harness is its own binary (`brine-bench`, with its own heavy dependencies); `brine`
//! only finds it and hands over its arguments, stdio and exit code by `exec`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

const BENCH: &str = "brine-bench";

/// Replaces this process with `brine-bench ARGS…`; returns only on failure.
pub fn exec(args: &[OsString]) -> anyhow::Error {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BENCH)));
    let Some(program) = find(beside.as_deref(), std::env::var_os("PATH")) else {
        let place = beside.map_or_else(String::new, |p| format!("{} nor ", p.display()));
        return anyhow::anyhow!(
            "{BENCH} not found ({place}on PATH): build it with \
             `cargo build --release -p brine-bench` (it lands beside `brine`)"
        );
    };
    let error = std::process::Command::new(&program).args(args).exec();
    anyhow::anyhow!("cannot run {}: {error}", program.display())
}

/// `beside` if it is a file, else the first `brine-bench` on `path`.
fn find(beside: Option<&Path>, path: Option<OsString>) -> Option<PathBuf> {
    if let Some(beside) = beside
        && beside.is_file()
    {
        return Some(beside.to_path_buf());
    }
    std::env::split_paths(&path?)
        .map(|dir| dir.join(BENCH))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_one_beside_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let on_path = dir.path().join("bin");
        std::fs::create_dir(&on_path).unwrap();
        std::fs::write(on_path.join(BENCH), b"").unwrap();
        let beside = dir.path().join(BENCH);
        let path = Some(on_path.clone().into_os_string());
        assert_eq!(find(Some(&beside), path.clone()), Some(on_path.join(BENCH)));
        std::fs::write(&beside, b"").unwrap();
        assert_eq!(find(Some(&beside), path), Some(beside.clone()));
        assert_eq!(find(None, None), None);
    }
}
