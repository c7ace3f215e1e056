//! Executor sandboxes, laid out as a Mesos agent lays them out:
//! `<work_dir>/slaves/<agent_id>/frameworks/<framework_id>/executors/<executor_id>/runs/<container_id>/`
//! with a `runs/latest` symlink (absolute target) and empty `stdout` and `stderr` files
//! (mode 0644).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `<work_dir>/slaves/<agent_id>/frameworks/<framework_id>`.
pub fn framework_path(work_dir: &Path, agent_id: &str, framework_id: &str) -> PathBuf {
    work_dir
        .join("slaves")
        .join(agent_id)
        .join("frameworks")
        .join(framework_id)
}

/// `…/frameworks/<framework_id>/executors/<executor_id>`: every run of one executor.
pub fn executor_path(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
) -> PathBuf {
    framework_path(work_dir, agent_id, framework_id)
        .join("executors")
        .join(executor_id)
}

/// The sandbox directory of one executor run.
pub fn sandbox_path(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> PathBuf {
    executor_path(work_dir, agent_id, framework_id, executor_id)
        .join("runs")
        .join(container_id)
}

/// Creates the sandbox, its `stdout`/`stderr` files and the `runs/latest` link.
pub fn create(sandbox: &Path) -> io::Result<()> {
    fs::create_dir_all(sandbox)?;
    for name in ["stdout", "stderr"] {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(sandbox.join(name))?;
    }
    if let Some(runs) = sandbox.parent() {
        let latest = runs.join("latest");
        match fs::symlink_metadata(&latest) {
            Ok(_) => fs::remove_file(&latest)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(sandbox, &latest)?;
    }
    Ok(())
}

/// Opens a sandbox output file for the executor's stdout or stderr.
pub fn open_output(sandbox: &Path, name: &str) -> io::Result<fs::File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(sandbox.join(name))
}

/// Rejects ids that would escape the work directory when used as path components.
pub fn valid_component(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains('/') && !id.contains('\0')
}
