//! Sandbox garbage collection, as the Mesos agent does it (`src/slave/gc.cpp`,
//! `Slave::garbageCollect`, `Slave::_checkDiskUsage`).
//!
//! - When an executor terminates, its run directory and its executor directory are
//!   scheduled for removal `gc_delay` later; when a framework's last executor is gone,
//!   so is the framework directory. A new launch under a scheduled directory
//!   unschedules it first.
//! - Every `disk_watch_interval` the agent measures the filesystem holding its work
//!   directory and removes at once every scheduled directory older than
//!   `gc_delay * max(0, 1 - gc_disk_headroom - usage)`: a full disk shortens the wait
//!   to nothing. Without this, each executor run keeps its copy of the executor binary
//!   (and of any fetched dataset) for a week.
//!
//! Removal takes a lock that sandbox creation also takes, so a directory being removed
//! never loses a sandbox created under it at the same moment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Counters served as Mesos's `gc/path_removals_*` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcCounts {
    pub succeeded: u64,
    pub failed: u64,
}

pub(crate) struct GarbageCollector {
    delay: Duration,
    headroom: f64,
    /// Path → when it is removed.
    scheduled: Mutex<BTreeMap<PathBuf, Instant>>,
    changed: Notify,
    counts: watch::Sender<GcCounts>,
    /// Held while removing, and while creating a sandbox.
    removing: tokio::sync::Mutex<()>,
}

impl GarbageCollector {
    pub fn new(delay: Duration, headroom: f64) -> Self {
        GarbageCollector {
            delay,
            headroom: headroom.clamp(0.0, 1.0),
            scheduled: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            counts: watch::channel(GcCounts::default()).0,
            removing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Instant>> {
        self.scheduled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes `path` `gc_delay` from now (Mesos touches the directory's mtime and
    /// counts from it, which comes to the same).
    pub fn schedule(&self, path: &Path) {
        tracing::debug!(path = %path.display(), delay = ?self.delay, "scheduling for gc");
        self.schedule_at(path, Instant::now() + self.delay);
    }

    fn schedule_at(&self, path: &Path, at: Instant) {
        self.lock().insert(path.to_path_buf(), at);
        self.changed.notify_one();
    }

    /// Keeps `path` after all (a new launch under it).
    pub fn unschedule(&self, path: &Path) {
        if self.lock().remove(path).is_some() {
            tracing::debug!(path = %path.display(), "unscheduled from gc");
        }
    }

    /// Paths waiting for removal (`gc/path_removals_pending`).
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    pub fn counts(&self) -> watch::Receiver<GcCounts> {
        self.counts.subscribe()
    }

    /// Waits for any removal in progress and keeps new ones off while held.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.removing.lock().await
    }

    /// Takes the paths whose removal time is at most `limit`.
    fn take_due(&self, limit: Instant) -> Vec<PathBuf> {
        let mut scheduled = self.lock();
        let due: Vec<PathBuf> = scheduled
            .iter()
            .filter(|(_, at)| **at <= limit)
            .map(|(p, _)| p.clone())
            .collect();
        for path in &due {
            scheduled.remove(path);
        }
        due
    }

    /// The age beyond which directories go now, at disk `usage` (0..=1).
    fn max_age(&self, usage: f64) -> Duration {
        self.delay
            .mul_f64((1.0 - self.headroom - usage).clamp(0.0, 1.0))
    }

    async fn remove(&self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let _held = self.removing.lock().await;
        for path in paths {
            let shown = path.display().to_string();
            let result = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&path)).await;
            let outcome = match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            self.counts.send_modify(|c| match &outcome {
                Ok(()) => c.succeeded += 1,
                Err(_) => c.failed += 1,
            });
            match outcome {
                Ok(()) => tracing::info!(path = %shown, "deleted by gc"),
                Err(e) => tracing::warn!(path = %shown, error = %e, "gc failed to delete"),
            }
        }
    }

    /// Removes directories when they fall due, and early when the disk fills, until
    /// `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        work_dir: PathBuf,
        disk_watch_interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut next_watch = Instant::now();
        loop {
            if Instant::now() >= next_watch {
                next_watch = Instant::now() + disk_watch_interval;
                match disk_usage(&work_dir) {
                    Some(usage) => {
                        let max_age = self.max_age(usage);
                        tracing::debug!(usage, ?max_age, "disk usage");
                        // Everything is scheduled `delay` ahead, so removing what is due
                        // within `delay - max_age` removes what is older than `max_age`.
                        let due =
                            self.take_due(Instant::now() + self.delay.saturating_sub(max_age));
                        self.remove(due).await;
                    }
                    None => tracing::warn!(dir = %work_dir.display(), "cannot measure disk usage"),
                }
            }
            let due = self.take_due(Instant::now());
            self.remove(due).await;
            let wake = self
                .lock()
                .values()
                .min()
                .copied()
                .map_or(next_watch, |at| at.min(next_watch));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.changed.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The used fraction of the filesystem holding `dir`, as Mesos's `fs::usage` computes
/// it: `(blocks - free) / blocks`.
fn disk_usage(dir: &Path) -> Option<f64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    let blocks = stat.blocks() as f64;
    (blocks > 0.0).then(|| (blocks - stat.blocks_free() as f64) / blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fuller_disk_shortens_the_wait() {
        let gc = GarbageCollector::new(Duration::from_secs(7 * 24 * 3600), 0.1);
        assert_eq!(
            gc.max_age(0.0),
            Duration::from_secs(7 * 24 * 3600).mul_f64(0.9)
        );
        assert_eq!(
            gc.max_age(0.45),
            Duration::from_secs(7 * 24 * 3600).mul_f64(0.45)
        );
        assert_eq!(gc.max_age(0.9), Duration::ZERO);
        assert_eq!(gc.max_age(0.99), Duration::ZERO);
    }

    #[test]
    fn only_what_is_due_is_taken_and_unscheduling_keeps_a_path() {
        let gc = GarbageCollector::new(Duration::from_secs(100), 0.1);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        gc.schedule_at(Path::new("/a"), t0 + s(100));
        gc.schedule_at(Path::new("/b"), t0 + s(150));
        gc.schedule_at(Path::new("/c"), t0 + s(150));
        gc.unschedule(Path::new("/c"));
        assert!(gc.take_due(t0).is_empty());
        assert_eq!(gc.take_due(t0 + s(120)), vec![PathBuf::from("/a")]);
        assert_eq!(gc.take_due(t0 + s(1000)), vec![PathBuf::from("/b")]);
        assert_eq!(gc.pending(), 0);
    }
}
