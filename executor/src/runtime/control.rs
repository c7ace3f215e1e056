//! Handles shared between a running task and the rest of the executor: the kill switch,
//! the progress cell, and the watch its epoch callback keeps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::error::Interrupt;

/// Stops a task from another thread: the task ends with `killed` within about one epoch
/// tick of [`kill`](Self::kill) (at once if it has not started yet). Clones share the
/// switch.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the task to stop. Idempotent.
    pub fn kill(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_killed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A task's progress, readable from any thread while it runs. Clones share the cell.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<ProgressCell>);

#[derive(Debug)]
struct ProgressCell {
    /// The latest fraction as `f64` bits; [`NO_PROGRESS`] until the guest reports.
    bits: AtomicU64,
    started: Mutex<bool>,
    started_changed: Condvar,
    /// [`monotonic_ns`] when the entry was called; 0 before.
    entered_ns: AtomicU64,
}

/// A NaN pattern: the guest's NaN reports are ignored, so none is ever stored.
const NO_PROGRESS: u64 = u64::MAX;

impl Default for ProgressCell {
    fn default() -> Self {
        Self {
            bits: AtomicU64::new(NO_PROGRESS),
            started: Mutex::new(false),
            started_changed: Condvar::new(),
            entered_ns: AtomicU64::new(0),
        }
    }
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// The guest's latest report in `0.0..=1.0`, `None` before its first.
    pub fn fraction(&self) -> Option<f64> {
        match self.0.bits.load(Ordering::Relaxed) {
            NO_PROGRESS => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    /// Whether the task's entry has been called (it stays `true` once it was).
    pub fn started(&self) -> bool {
        *self
            .0
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the task's entry has been called or `timeout` passes; returns
    /// [`started`](Self::started).
    pub fn wait_started(&self, timeout: Duration) -> bool {
        let started = self
            .0
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (started, _) = self
            .0
            .started_changed
            .wait_timeout_while(started, timeout, |started| !*started)
            .unwrap_or_else(PoisonError::into_inner);
        *started
    }

    /// [`monotonic_ns`] taken right before the task's entry was called, `None` before.
    /// Comparable with the same clock read in another process on this machine, which
    /// is what lets a benchmark measure "LAUNCH written → guest entered" across the
    /// agent/executor boundary.
    pub fn entered_at_ns(&self) -> Option<u64> {
        match self.0.entered_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(ns),
        }
    }

    pub(crate) fn set(&self, fraction: f64) {
        self.0.bits.store(fraction.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn mark_started(&self) {
        // One vDSO clock read (tens of ns): cheap enough to take for every task, so the
        // timestamp needs no switch of its own.
        self.0.entered_ns.store(monotonic_ns(), Ordering::Relaxed);
        *self
            .0
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.0.started_changed.notify_all();
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds. Unlike [`Instant`], the raw value means the same
/// thing in every process on the machine, so timestamps taken in the executor can be
/// compared with ones taken by whoever wrote its LAUNCH.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on
    // Linux, so the call cannot fail (and on failure `now` stays zero).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// What a task's epoch callback checks every tick.
#[derive(Debug)]
pub(crate) struct Watch {
    kill: KillSwitch,
    deadline: Option<(Instant, Duration)>,
    /// Why the task was stopped, once it was.
    pub(crate) interrupted: Option<Interrupt>,
}

impl Watch {
    /// Watches `kill`, and a deadline `limit` from now (one too far to represent is
    /// no deadline).
    pub(crate) fn new(kill: KillSwitch, limit: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            kill,
            deadline: limit.and_then(|limit| Some((now.checked_add(limit)?, limit))),
            interrupted: None,
        }
    }

    /// Records and returns why the task must stop now, if it must.
    pub(crate) fn check(&mut self) -> Option<Interrupt> {
        let reason = if self.kill.is_killed() {
            Some(Interrupt::Killed)
        } else if self.deadline.is_some_and(|(at, _)| Instant::now() >= at) {
            Some(Interrupt::Deadline)
        } else {
            None
        };
        self.interrupted = self.interrupted.or(reason);
        reason
    }

    /// The deadline's length, for messages.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.deadline.map(|(_, limit)| limit)
    }
}
