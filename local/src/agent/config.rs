//! The agent's configuration, with Mesos's defaults (flag names in the docs).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether to put executors in cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    /// Use cgroups (v2 unified, else v1 `cpu` + `memory`) where they exist and are
    /// writable; otherwise say so once in the log and run unenforced.
    #[default]
    Auto,
    /// Never touch cgroups.
    Off,
}

/// The resources the agent offers (Mesos's `--resources`), as scalars.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AgentResources {
    pub cpus: f64,
    pub mem_mb: f64,
    pub disk_mb: f64,
}

impl AgentResources {
    /// The resources of this machine, by Mesos's rules (`Containerizer::resources`):
    /// cpus = online CPUs; mem = total RAM minus 1 GiB when there are at least 2 GiB,
    /// else half; disk = size of the filesystem holding `work_dir` minus 5 GiB when it
    /// has at least 10 GiB, else half (10 GiB if it cannot be measured).
    pub fn detect(work_dir: &Path) -> Self {
        let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
            .ok()
            .flatten()
            .filter(|n| *n > 0)
            .map(|n| n as f64)
            .unwrap_or(1.0);
        const GIB: u64 = 1 << 30;
        const MIB: u64 = 1 << 20;
        let mem_bytes = total_memory_bytes()
            .map(|total| {
                if total >= 2 * GIB {
                    total - GIB
                } else {
                    total / 2
                }
            })
            .unwrap_or(GIB);
        let disk_bytes = filesystem_size_bytes(work_dir)
            .map(|total| {
                if total >= 10 * GIB {
                    total - 5 * GIB
                } else {
                    total / 2
                }
            })
            .unwrap_or(10 * GIB);
        AgentResources {
            cpus,
            mem_mb: (mem_bytes / MIB) as f64,
            disk_mb: (disk_bytes / MIB) as f64,
        }
    }
}

fn total_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn filesystem_size_bytes(path: &Path) -> Option<u64> {
    // The work directory may not exist yet: measure its nearest existing ancestor.
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(stat.blocks() as u64 * stat.fragment_size() as u64)
}

/// Agent configuration. Build it with [`AgentConfig::new`] and change fields as needed.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `--work_dir`: sandboxes live under `<work_dir>/slaves/<agent_id>/…`.
    pub work_dir: PathBuf,
    /// The agent id; default a fresh `<uuid>-S0`.
    pub agent_id: String,
    /// `--hostname`; default `127.0.0.1`.
    pub hostname: String,
    /// Where to serve the executor API; default `127.0.0.1:0` (any free port).
    pub listen: SocketAddr,
    /// `--resources`; default from the machine ([`AgentResources::detect`]).
    pub resources: AgentResources,
    /// `--executor_registration_timeout`; Mesos default 1mins.
    pub executor_registration_timeout: Duration,
    /// `--executor_shutdown_grace_period`; Mesos default 5secs.
    /// `ExecutorInfo.shutdown_grace_period` overrides it per executor.
    pub executor_shutdown_grace_period: Duration,
    /// `--executor_reregistration_timeout`; Mesos default 2secs: after a restart with
    /// [`AgentConfig::recover`], how long recovered executors have to SUBSCRIBE again.
    /// Also passed to checkpointing executors as `MESOS_SUBSCRIPTION_BACKOFF_MAX`.
    pub executor_reregistration_timeout: Duration,
    /// `--recover=reconnect`: at start, take the agent id and the executors
    /// checkpointed under `<work_dir>/meta` (when there is a checkpoint). Default
    /// `false` (a fresh agent every start, as `LocalCluster` wants); the standalone
    /// `brine-local agent` sets it.
    pub recover: bool,
    /// `--recovery_timeout`; Mesos default 15mins. Passed to checkpointing executors
    /// as `MESOS_RECOVERY_TIMEOUT`.
    pub recovery_timeout: Duration,
    /// First re-send interval of an unacknowledged status update; Mesos's
    /// `STATUS_UPDATE_RETRY_INTERVAL_MIN` (10secs). It doubles after each re-send up to
    /// [`AgentConfig::status_update_retry_interval_max`].
    pub status_update_retry_interval: Duration,
    /// Mesos's `STATUS_UPDATE_RETRY_INTERVAL_MAX` (10mins).
    pub status_update_retry_interval_max: Duration,
    /// `--executor_environment_variables`: added to every executor's environment.
    /// Default `{"PATH": "/usr/local/bin:/usr/bin:/bin"}`.
    pub executor_environment: BTreeMap<String, String>,
    /// `--fetcher_cache_dir`; default `<work_dir>/fetch`.
    pub fetcher_cache_dir: PathBuf,
    /// Default [`CgroupsMode::Auto`].
    pub cgroups: CgroupsMode,
    /// `--cgroups_hierarchy`; default `/sys/fs/cgroup`.
    pub cgroups_hierarchy: PathBuf,
    /// `--cgroups_root`: the cgroup under which executors' cgroups go; default `brine`.
    pub cgroups_root: String,
    /// `--cgroups_enable_cfs`: also cap CPU time (CFS quota) at the allocation. Default
    /// `false`, as Mesos (shares only): with a hard quota a small container (an
    /// executor holding one 0.1-cpu lease: 20 ms of CPU per 100 ms period) is
    /// throttled for the rest of each period, which Mesos with its defaults is not.
    pub cgroups_enable_cfs: bool,
    /// `--gc_delay`: how long a terminated executor's sandbox stays; Mesos default
    /// 1weeks, shortened as the disk fills (see `gc_disk_headroom`).
    pub gc_delay: Duration,
    /// `--gc_disk_headroom`: sandboxes older than
    /// `gc_delay * max(0, 1 - gc_disk_headroom - disk usage)` are removed at each disk
    /// check. Mesos default 0.1; must be within 0..=1.
    pub gc_disk_headroom: f64,
    /// `--disk_watch_interval`: how often disk usage is checked; Mesos default 1mins.
    pub disk_watch_interval: Duration,
}

impl AgentConfig {
    /// Mesos's defaults, resources measured from this machine.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        let work_dir = work_dir.into();
        let resources = AgentResources::detect(&work_dir);
        let fetcher_cache_dir = work_dir.join("fetch");
        AgentConfig {
            agent_id: format!("{}-S0", uuid::Uuid::new_v4()),
            hostname: "127.0.0.1".to_owned(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            resources,
            executor_registration_timeout: Duration::from_secs(60),
            executor_shutdown_grace_period: Duration::from_secs(5),
            executor_reregistration_timeout: Duration::from_secs(2),
            recover: false,
            recovery_timeout: Duration::from_secs(15 * 60),
            status_update_retry_interval: Duration::from_secs(10),
            status_update_retry_interval_max: Duration::from_secs(10 * 60),
            executor_environment: BTreeMap::from([(
                "PATH".to_owned(),
                "/usr/local/bin:/usr/bin:/bin".to_owned(),
            )]),
            fetcher_cache_dir,
            cgroups: CgroupsMode::Auto,
            cgroups_hierarchy: PathBuf::from("/sys/fs/cgroup"),
            cgroups_root: "brine".to_owned(),
            cgroups_enable_cfs: false,
            gc_delay: Duration::from_secs(7 * 24 * 3600),
            gc_disk_headroom: 0.1,
            disk_watch_interval: Duration::from_secs(60),
            work_dir,
        }
    }
}
