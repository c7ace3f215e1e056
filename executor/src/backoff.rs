//! Re-subscription after a disconnection, as Mesos's reference executor library
//! (`src/executor/executor.cpp`) does it: on losing the agent, a checkpointing
//! executor starts one recovery timer of `MESOS_RECOVERY_TIMEOUT` and retries, waiting
//! a random duration uniformly drawn from `0..=MESOS_SUBSCRIPTION_BACKOFF_MAX` between
//! attempts ("linear" backoff in the library's words: the bound does not grow). When
//! the timer runs out before a subscription succeeds, the executor shuts down.

use std::time::{Duration, Instant};

/// The retry schedule of one disconnection.
#[derive(Debug, Clone)]
pub struct Reconnect {
    deadline: Instant,
    backoff_max: Duration,
    attempts: u32,
}

impl Reconnect {
    /// A schedule starting at `now` (the moment the disconnection was noticed).
    pub fn new(now: Instant, recovery_timeout: Duration, backoff_max: Duration) -> Self {
        Self {
            deadline: now
                .checked_add(recovery_timeout)
                .unwrap_or(now + Duration::from_secs(u32::MAX.into())),
            backoff_max,
            attempts: 0,
        }
    }

    /// When the recovery timeout runs out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt, drawn with `unit` (a random number in `0..=1`),
    /// or `None` when the recovery timeout has passed at `now`. Never waits past the
    /// deadline.
    pub fn next_delay_with(&mut self, now: Instant, unit: f64) -> Option<Duration> {
        if now >= self.deadline {
            return None;
        }
        self.attempts = self.attempts.saturating_add(1);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let wait = self.backoff_max.mul_f64(unit);
        Some(wait.min(self.deadline - now))
    }

    /// [`next_delay_with`](Self::next_delay_with) with a fresh random number.
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        self.next_delay_with(now, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_maximum_and_the_deadline() {
        let start = Instant::now();
        let mut r = Reconnect::new(start, Duration::from_secs(10), Duration::from_secs(2));
        for i in 0..1000 {
            let d = r.next_delay(start).unwrap_or_default();
            assert!(d <= Duration::from_secs(2), "attempt {i}: {d:?}");
        }
        assert_eq!(r.next_delay_with(start, 1.0), Some(Duration::from_secs(2)));
        assert_eq!(r.next_delay_with(start, 0.0), Some(Duration::ZERO));
        assert_eq!(r.next_delay_with(start, f64::NAN), Some(Duration::ZERO));
        let near_end = start + Duration::from_millis(9_500);
        assert_eq!(
            r.next_delay_with(near_end, 1.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            r.next_delay_with(start + Duration::from_secs(10), 0.5),
            None
        );
    }
}
