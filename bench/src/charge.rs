//! What a set of processes costs the machine in memory, for part 6.
//!
//! The figure that counts is the memory cgroup's charge: `memory.current` (cgroup v2) or
//! `memory.usage_in_bytes` (cgroup v1), which holds the processes' own memory *and* the
//! page cache they brought in, each page once, whether it is mapped or read with
//! `read`/`pread`. That is what a memory limit is enforced against and what a cluster
//! bills. Per-process views disagree with it both ways: `VmRSS` and PSS count a mapped
//! file's pages but not the page cache behind `pread`.
//!
//! Without a usable cgroup the same total is estimated as the processes' PSS (from
//! `/proc/<pid>/smaps`), leaving out mappings of the dataset, plus the dataset's pages in
//! the page cache (`mincore`), counted once.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use brine_local::agent::{CgroupPaths, CgroupVersion};
use serde::Serialize;

/// A memory cgroup whose charge is read.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    version: CgroupVersion,
    /// Made by the harness: removed when dropped.
    owned: bool,
}

impl Cgroup {
    /// The cgroup the local agent put an executor in.
    pub fn of_executor(paths: &CgroupPaths) -> Self {
        Self {
            dir: paths.memory.clone(),
            version: paths.version,
            owned: false,
        }
    }

    /// A new cgroup beside `paths` (under the agent's root, where the memory controller
    /// is enabled), removed when dropped.
    pub fn beside(paths: &CgroupPaths, name: &str) -> io::Result<Self> {
        let parent = paths
            .memory
            .parent()
            .ok_or_else(|| io::Error::other("the executor's cgroup has no parent"))?;
        let dir = parent.join(name);
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            version: paths.version,
            owned: true,
        })
    }

    /// The file read, and its meaning.
    pub fn meter(&self) -> &'static str {
        match self.version {
            CgroupVersion::V2 => "cgroup v2 `memory.current`",
            CgroupVersion::V1 => "cgroup v1 `memory.usage_in_bytes`",
        }
    }

    /// The charge now, in bytes.
    pub fn usage(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V2 => "memory.current",
            CgroupVersion::V1 => "memory.usage_in_bytes",
        };
        fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Spawns `command` inside this cgroup: the child writes itself into `cgroup.procs`
    /// between `fork` and `exec`, so none of its memory is charged elsewhere.
    pub fn spawn(&self, command: &mut std::process::Command) -> io::Result<std::process::Child> {
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))?;
        let fd = procs.as_raw_fd();
        // SAFETY: the closure only calls `write(2)`, which is async-signal-safe, on a
        // descriptor that stays open until `spawn` returns (`procs` lives until then).
        unsafe {
            command.pre_exec(move || {
                // "0": the writing process itself, in both cgroup versions.
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        let child = command.spawn();
        drop(procs);
        child
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.owned {
            // Its processes have been reaped; what they charged moves to the parent.
            for _ in 0..50 {
                match fs::remove_dir(&self.dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => return,
                }
            }
            tracing::warn!(cgroup = %self.dir.display(), "cannot remove the benchmark's cgroup");
        }
    }
}

/// PSS of `pid` (`/proc/<pid>/smaps_rollup`), in bytes.
pub fn pss(pid: u32) -> Option<u64> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup.lines().find_map(|l| kib_field(l, "Pss:"))
}

/// PSS of `pid` leaving out every mapping of a file in `exclude`, in bytes.
pub fn pss_excluding(pid: u32, exclude: &[PathBuf]) -> Option<u64> {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut total = 0;
    let mut skipping = false;
    for line in smaps.lines() {
        if let Some(pss) = kib_field(line, "Pss:") {
            if !skipping {
                total += pss;
            }
        } else if is_mapping_header(line) {
            // "start-end perms offset dev inode   path"
            let path = line.splitn(6, ' ').nth(5).map(str::trim_start);
            skipping = path.is_some_and(|p| exclude.iter().any(|e| Path::new(p) == e));
        }
    }
    Some(total)
}

fn is_mapping_header(line: &str) -> bool {
    line.split(' ').next().is_some_and(|range| {
        range.contains('-') && range.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
    })
}

/// `<name> <n> kB` → bytes.
fn kib_field(line: &str, name: &str) -> Option<u64> {
    let rest = line.strip_prefix(name)?;
    let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Bytes of `path` in the page cache (`mincore` over a mapping that touches no page).
pub fn cached_bytes(path: &Path) -> io::Result<u64> {
    let file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: a fresh read-only mapping of `len` bytes, never dereferenced: `mincore`
    // only reports residency; unmapped below on every path.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut residency = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr..addr + len` is the mapping made above; `residency` has one byte per
    // page of it.
    let rc = unsafe { libc::mincore(addr, len, residency.as_mut_ptr()) };
    let error = io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above, which nothing refers to.
    unsafe { libc::munmap(addr, len) };
    if rc != 0 {
        return Err(error);
    }
    let pages = residency.iter().filter(|&&r| r & 1 == 1).count() as u64;
    Ok((pages * page as u64).min(len as u64))
}

/// Drops `path`'s pages from the page cache (after writing back any dirty ones), so the
/// next reader brings them in again, charged to its own cgroup. Mapped pages stay.
pub fn evict(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    file.sync_data()?;
    // SAFETY: a valid descriptor; the advice has no memory-safety effect.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// The peaks seen while sampling, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Peaks {
    /// The cgroup's charge (`None`: no cgroup).
    pub charged: Option<u64>,
    /// Σ PSS of the processes.
    pub pss: u64,
    /// Σ PSS without the dataset's mappings + the dataset's page cache: the charge's
    /// stand-in without a cgroup (with one, only in [`Watch::now`]'s snapshots).
    pub estimate: u64,
}

impl Peaks {
    /// The cgroup's charge, else the estimate.
    pub fn total(&self) -> u64 {
        self.charged.unwrap_or(self.estimate)
    }
}

/// What a sampler watches.
pub struct Watch {
    pub cgroup: Option<Arc<Cgroup>>,
    pub pids: Box<dyn Fn() -> Vec<u32> + Send>,
    /// The dataset's files (the executor's copy, or the file the processes read).
    pub dataset: Vec<PathBuf>,
}

impl Watch {
    /// One sample: the cgroup's charge every time; when `full`, PSS, and the estimate
    /// too if there is no cgroup or `estimate` asks for it (it reads every mapping and
    /// the dataset's page-cache residency: the costliest figure).
    fn sample(&self, full: bool, estimate: bool, peaks: &mut Peaks) {
        if let Some(charged) = self.cgroup.as_ref().and_then(|c| c.usage()) {
            peaks.charged = Some(peaks.charged.unwrap_or(0).max(charged));
        }
        if !full {
            return;
        }
        let pids = (self.pids)();
        let pss: u64 = pids.iter().filter_map(|&p| pss(p)).sum();
        peaks.pss = peaks.pss.max(pss);
        if !estimate && self.cgroup.is_some() {
            return;
        }
        let own: u64 = pids
            .iter()
            .filter_map(|&p| pss_excluding(p, &self.dataset))
            .sum();
        let cached: u64 = self
            .dataset
            .iter()
            .filter_map(|d| cached_bytes(d).ok())
            .sum();
        peaks.estimate = peaks.estimate.max(own + cached);
    }

    /// One sample of everything (the estimate too), now.
    pub fn now(&self) -> Peaks {
        let mut peaks = Peaks::default();
        self.sample(true, true, &mut peaks);
        peaks
    }
}

/// Samples a [`Watch`] on its own thread until stopped: the cgroup's charge every 5 ms
/// (one small file read), the `/proc` figures every 50 ms (they walk page tables: more
/// often would take CPU from the tasks measured, on a small machine).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Peaks>,
}

impl Sampler {
    pub fn start(watch: Watch) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            let mut last_full: Option<Instant> = None;
            loop {
                let stopping = flag.load(Ordering::Relaxed);
                let full =
                    stopping || last_full.is_none_or(|t| t.elapsed() >= Duration::from_millis(50));
                if full {
                    last_full = Some(Instant::now());
                }
                watch.sample(full, false, &mut peaks);
                if stopping {
                    return peaks;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> anyhow::Result<Peaks> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the memory sampler panicked"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_headers() {
        assert_eq!(
            kib_field("Pss:                 120 kB", "Pss:"),
            Some(120 * 1024)
        );
        assert_eq!(kib_field("Pss_Anon:  1 kB", "Pss:"), None);
        assert!(is_mapping_header(
            "7f1c2a000000-7f1c6a000000 r--s 00000000 fd:01 1234     /tmp/x/dataset.txt"
        ));
        assert!(!is_mapping_header("Size:               1024 kB"));
        assert!(!is_mapping_header("VmFlags: rd sh mr mw me ms sd"));
    }

    #[test]
    fn pss_of_self_excludes_a_mapped_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let file = File::open(&path).unwrap();
        // SAFETY: a private read-only mapping of a file only this test knows.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                1 << 20,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        let pid = std::process::id();
        let with = pss_excluding(pid, &[]).unwrap();
        let without = pss_excluding(pid, std::slice::from_ref(&path)).unwrap();
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(addr, 1 << 20) };
        assert!(with >= without + (1 << 20) / 2, "{with} vs {without}");
        assert_eq!(cached_bytes(&path).unwrap(), 1 << 20);
    }
}
