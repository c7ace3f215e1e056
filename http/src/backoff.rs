//! Exponential backoff between attempts.

use std::time::Duration;

/// Waits that double from `initial` up to `max`, and start over at `initial` after
/// [`Backoff::reset`] (a success). No jitter: every user retries one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`, never waits longer than `max` (nor less than `initial`,
    /// should `max` be the smaller).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The wait before the next attempt, without using it up.
    pub fn peek(&self) -> Duration {
        self.current
    }

    /// The wait before the next attempt; the one after it is twice as long, up to the
    /// maximum.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        wait
    }

    /// Starts over: the next wait is the initial one.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The first wait.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_max_and_resets() {
        let mut b = Backoff::new(100 * MS, 1000 * MS);
        let waits: Vec<_> = (0..6).map(|_| b.next_wait()).collect();
        assert_eq!(
            waits,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(b.peek(), 1000 * MS);
        b.reset();
        assert_eq!(b.peek(), 100 * MS);
        assert_eq!(b.next_wait(), 100 * MS);
        assert_eq!(b.next_wait(), 200 * MS);
    }

    #[test]
    fn odd_bounds_stay_sane() {
        // A max below the initial wait: the initial wait, always.
        let mut b = Backoff::new(500 * MS, 100 * MS);
        assert_eq!((b.next_wait(), b.next_wait()), (500 * MS, 500 * MS));
        // Doubling never overflows.
        let mut b = Backoff::new(Duration::MAX / 3, Duration::MAX);
        b.next_wait();
        b.next_wait();
        assert_eq!(b.next_wait(), Duration::MAX);
        // Zero stays zero.
        let mut b = Backoff::new(Duration::ZERO, MS);
        assert_eq!(b.next_wait(), Duration::ZERO);
    }
}
