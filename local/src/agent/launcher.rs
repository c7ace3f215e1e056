//! Starting an executor process: its command line, its environment (built from
//! scratch, as Mesos does: the agent's own environment is not inherited), its own
//! session and process group, its cgroup, and its stdout/stderr in the sandbox.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;

use brine_proto::mesos::v1::CommandInfo;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::sandbox;

/// `PATH` the Mesos containerizer gives a command when none is configured.
pub const CONTAINERIZER_DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the process for `command`: `sh -c <value>` when `shell` (the default),
/// otherwise `value` exec'ed with `arguments` as its whole argv (as Mesos does).
pub fn build_command(
    command: &CommandInfo,
    sandbox_dir: &Path,
    environment: &BTreeMap<String, String>,
    cgroup_procs: &[std::path::PathBuf],
) -> io::Result<tokio::process::Command> {
    let value = command.value.clone().unwrap_or_default();
    let mut cmd = if command.shell() {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(&value);
        cmd
    } else {
        if value.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CommandInfo.value is empty",
            ));
        }
        let mut cmd = tokio::process::Command::new(&value);
        if let Some((argv0, rest)) = command.arguments.split_first() {
            cmd.arg0(argv0);
            cmd.args(rest);
        }
        cmd
    };
    cmd.env_clear()
        .envs(environment)
        .current_dir(sandbox_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(sandbox::open_output(sandbox_dir, "stdout")?))
        .stderr(Stdio::from(sandbox::open_output(sandbox_dir, "stderr")?))
        .kill_on_drop(false);

    // Prepared before fork: the child only makes async-signal-safe calls.
    let procs: Vec<CString> = cgroup_procs
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (setsid, open, write, close) on memory prepared
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for path in &procs {
                // Writing "0" to cgroup.procs moves the writing process.
                let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let written = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = io::Error::last_os_error();
                nix::libc::close(fd);
                if written != 1 {
                    return Err(error);
                }
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// SIGKILLs the process group (= session) led by `pid`; a group already gone is fine.
pub fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    match killpg(Pid::from_raw(raw), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, error = %e, "failed to kill executor process group"),
    }
}

/// Whether `pid` is a live (not zombie) process that was started as executor
/// `executor_id` (its initial environment names it), so a pid reused by something
/// else since the checkpoint is not taken for the executor.
pub fn alive(pid: u32, executor_id: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(environ) => {
            let wanted = format!("MESOS_EXECUTOR_ID={executor_id}");
            environ
                .split(|b| *b == 0)
                .any(|entry| entry == wanted.as_bytes())
        }
        // Not readable (another user): trust the pid, as Mesos does.
        Err(_) => true,
    }
}
