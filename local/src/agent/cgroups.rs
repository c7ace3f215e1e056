//! Per-executor cgroups, sized to "executor + Σ non-terminal tasks".
//!
//! - cgroup v1 (`cpu` and `memory` hierarchies): `<hierarchy>/{cpu,memory}/<root>/<container_id>`;
//!   `cpu.shares` = 1024 × cpus (at least 2), and with CFS enabled `cpu.cfs_period_us`
//!   = 100000 and `cpu.cfs_quota_us` = 100000 × cpus (at least 1000), as Mesos's
//!   cgroups isolator with `--cgroups_enable_cfs`; `memory.soft_limit_in_bytes` and
//!   `memory.limit_in_bytes` = mem (at least 32 MiB).
//! - cgroup v2 (unified, detected by `<hierarchy>/cgroup.controllers`):
//!   `<hierarchy>/<root>/<container_id>` with `cpu.weight` (from the same shares),
//!   `cpu.max` ("quota 100000") with CFS enabled, `memory.low` (the soft limit) and
//!   `memory.max`.
//!
//! The soft limit follows the tasks both ways; the hard limit is set once and then only
//! raised, never lowered, as Mesos's memory subsystems (`cgroups` and `cgroups2`
//! isolators) do: lowering it could OOM-kill a container using more than its new share
//! (say, an executor still compiling a module for a task that has ended).
//!
//! The executor joins its cgroup before `exec` (see the launcher), so nothing of it ever
//! runs outside. When cgroups are missing or not writable, [`Cgroups::detect`] says so
//! once and every operation is a no-op.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CPU_SHARES_PER_CPU: f64 = 1024.0;
const MIN_CPU_SHARES: u64 = 2;
const CFS_PERIOD_US: u64 = 100_000;
const MIN_CFS_QUOTA_US: u64 = 1_000;
const MIN_MEMORY_BYTES: u64 = 32 << 20;
/// cgroup v1 reports "no limit" as the largest page-aligned counter value (about
/// 2^63); anything this large was never set.
const UNLIMITED_V1: u64 = 1 << 62;

/// Which cgroup interface an executor's cgroup uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Where an executor's cgroup lives (for v2, `cpu` and `memory` are the same directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPaths {
    pub version: CgroupVersion,
    pub cpu: PathBuf,
    pub memory: PathBuf,
}

impl CgroupPaths {
    /// The `cgroup.procs` files the executor writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self.version {
            CgroupVersion::V1 => vec![
                self.cpu.join("cgroup.procs"),
                self.memory.join("cgroup.procs"),
            ],
            CgroupVersion::V2 => vec![self.cpu.join("cgroup.procs")],
        }
    }

    /// The memory soft limit now in force, in bytes (`None` for "max"/unreadable).
    pub fn memory_soft_limit_bytes(&self) -> Option<u64> {
        self.read_memory("memory.soft_limit_in_bytes", "memory.low")
    }

    /// The memory hard limit now in force, in bytes (`None` for "max"/unreadable).
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.read_memory("memory.limit_in_bytes", "memory.max")
    }

    /// A number from the memory controller's `v1` or `v2` file, by version.
    fn read_memory(&self, v1: &str, v2: &str) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V1 => v1,
            CgroupVersion::V2 => v2,
        };
        fs::read_to_string(self.memory.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

#[derive(Debug, Clone)]
enum Backend {
    None,
    V1 {
        cpu_root: PathBuf,
        memory_root: PathBuf,
    },
    V2 {
        root: PathBuf,
    },
}

/// The agent's cgroup manager.
#[derive(Debug, Clone)]
pub struct Cgroups {
    backend: Backend,
    enable_cfs: bool,
}

impl Cgroups {
    /// A manager that does nothing.
    pub fn disabled() -> Self {
        Cgroups {
            backend: Backend::None,
            enable_cfs: false,
        }
    }

    /// Finds a usable hierarchy under `hierarchy` and creates `<root>` in it; logs one
    /// warning and returns a disabled manager when that is not possible.
    pub fn detect(hierarchy: &Path, root: &str, enable_cfs: bool) -> Self {
        match Self::try_detect(hierarchy, root) {
            Ok(backend) => {
                tracing::info!(?backend, "executor cgroups enabled");
                Cgroups {
                    backend,
                    enable_cfs,
                }
            }
            Err(reason) => {
                tracing::warn!(
                    "cgroups are not available ({reason}); executors run without \
                     enforced cpu/memory limits"
                );
                Self::disabled()
            }
        }
    }

    fn try_detect(hierarchy: &Path, root: &str) -> Result<Backend, String> {
        let controllers = hierarchy.join("cgroup.controllers");
        if controllers.exists() {
            let available = fs::read_to_string(&controllers)
                .map_err(|e| format!("cannot read {}: {e}", controllers.display()))?;
            let has = |c: &str| available.split_whitespace().any(|x| x == c);
            if !(has("cpu") && has("memory")) {
                return Err(format!(
                    "{} lacks the cpu or memory controller",
                    controllers.display()
                ));
            }
            let root = hierarchy.join(root);
            // Delegate cpu and memory to our subtree; harmless when already enabled.
            let _ = fs::write(hierarchy.join("cgroup.subtree_control"), "+cpu +memory");
            fs::create_dir_all(&root)
                .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
            fs::write(root.join("cgroup.subtree_control"), "+cpu +memory")
                .map_err(|e| format!("cannot enable cpu and memory in {}: {e}", root.display()))?;
            probe(&root)?;
            return Ok(Backend::V2 { root });
        }
        let cpu = hierarchy.join("cpu");
        let memory = hierarchy.join("memory");
        if !cpu.join("cpu.shares").exists() || !memory.join("memory.limit_in_bytes").exists() {
            return Err(format!(
                "no cgroup v2 at {} and no cgroup v1 cpu and memory hierarchies",
                hierarchy.display()
            ));
        }
        let cpu_root = cpu.join(root);
        let memory_root = memory.join(root);
        for dir in [&cpu_root, &memory_root] {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            probe(dir)?;
        }
        Ok(Backend::V1 {
            cpu_root,
            memory_root,
        })
    }

    pub fn enabled(&self) -> bool {
        !matches!(self.backend, Backend::None)
    }

    /// Creates the cgroup of a container. `Ok(None)` when cgroups are disabled.
    pub fn create(&self, container_id: &str) -> io::Result<Option<CgroupPaths>> {
        let paths = match &self.backend {
            Backend::None => return Ok(None),
            Backend::V1 {
                cpu_root,
                memory_root,
            } => CgroupPaths {
                version: CgroupVersion::V1,
                cpu: cpu_root.join(container_id),
                memory: memory_root.join(container_id),
            },
            Backend::V2 { root } => {
                let dir = root.join(container_id);
                CgroupPaths {
                    version: CgroupVersion::V2,
                    cpu: dir.clone(),
                    memory: dir,
                }
            }
        };
        fs::create_dir_all(&paths.cpu)?;
        fs::create_dir_all(&paths.memory)?;
        Ok(Some(paths))
    }

    /// Sets cpu and memory limits. Errors are logged, never fatal.
    pub fn update(&self, paths: &CgroupPaths, cpus: f64, mem_mb: f64) {
        let shares = ((CPU_SHARES_PER_CPU * cpus) as u64).max(MIN_CPU_SHARES);
        let quota_us = ((CFS_PERIOD_US as f64 * cpus) as u64).max(MIN_CFS_QUOTA_US);
        let mem = ((mem_mb * 1024.0 * 1024.0) as u64).max(MIN_MEMORY_BYTES);
        match paths.version {
            CgroupVersion::V1 => {
                write_logged(&paths.cpu, "cpu.shares", &shares.to_string());
                if self.enable_cfs {
                    write_logged(&paths.cpu, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string());
                    write_logged(&paths.cpu, "cpu.cfs_quota_us", &quota_us.to_string());
                }
                write_logged(
                    &paths.memory,
                    "memory.soft_limit_in_bytes",
                    &mem.to_string(),
                );
                set_hard_limit(paths, "memory.limit_in_bytes", mem);
            }
            CgroupVersion::V2 => {
                // The v1 -> v2 weight conversion the kernel documents.
                let weight = 1 + (shares.saturating_sub(2) * 9999) / 262_142;
                write_logged(
                    &paths.cpu,
                    "cpu.weight",
                    &weight.clamp(1, 10_000).to_string(),
                );
                if self.enable_cfs {
                    write_logged(
                        &paths.cpu,
                        "cpu.max",
                        &format!("{quota_us} {CFS_PERIOD_US}"),
                    );
                }
                write_logged(&paths.memory, "memory.low", &mem.to_string());
                set_hard_limit(paths, "memory.max", mem);
            }
        }
        tracing::debug!(cgroup = %paths.cpu.display(), cpus, mem_mb, "updated cgroup limits");
    }

    /// Kills whatever is left in the cgroup and removes it.
    pub async fn destroy(&self, paths: &CgroupPaths) {
        let mut dirs = vec![paths.cpu.clone()];
        if paths.memory != paths.cpu {
            dirs.push(paths.memory.clone());
        }
        for dir in dirs {
            // A cgroup can only be removed once its last process is reaped by the
            // kernel, which follows the SIGKILL closely: retry for a bounded time.
            let mut attempt = 0;
            loop {
                kill_all(&dir);
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if attempt < 100 => {
                        attempt += 1;
                        tracing::trace!(cgroup = %dir.display(), error = %e, "cgroup busy");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "failed to remove cgroup");
                        break;
                    }
                }
            }
        }
    }
}

fn probe(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    fs::create_dir(&probe)
        .map_err(|e| format!("cannot create a cgroup under {}: {e}", dir.display()))?;
    let _ = fs::remove_dir(&probe);
    Ok(())
}

fn write_logged(dir: &Path, file: &str, value: &str) {
    if let Err(e) = fs::write(dir.join(file), value) {
        tracing::warn!(cgroup = %dir.display(), file, value, error = %e, "failed to write cgroup file");
    }
}

/// Sets the hard limit the first time (a new cgroup has none) and when it rises.
fn set_hard_limit(paths: &CgroupPaths, file: &str, bytes: u64) {
    let current = paths.memory_limit_bytes().filter(|&b| b < UNLIMITED_V1);
    if current.is_some_and(|c| bytes <= c) {
        tracing::debug!(
            cgroup = %paths.memory.display(),
            limit = bytes,
            current,
            "the memory hard limit is only raised, never lowered (as in Mesos)"
        );
        return;
    }
    if let Err(e) = fs::write(paths.memory.join(file), bytes.to_string()) {
        tracing::warn!(
            cgroup = %paths.memory.display(),
            file,
            limit = bytes,
            current = ?paths.memory_limit_bytes(),
            error = %e,
            "cannot set the memory limit (below current usage?); keeping the current limit"
        );
    }
}

/// SIGKILLs every process listed in the cgroup.
pub fn kill_all(dir: &Path) {
    let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
