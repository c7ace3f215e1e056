//! Latency series: every sample kept (for the JSON and the plot) and summarised through
//! an HDR histogram, per round and over all rounds, so the report can show both the
//! percentiles and how much they move from one round to the next.

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Nanoseconds from 1 ns to 1000 s at 3 significant digits: every latency measured
/// here fits, and 3 digits keep the percentiles exact to 0.1 %.
const HIGHEST_NS: u64 = 1_000_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// One measured quantity, between two named points.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Short key (`warm.launch_to_entry`).
    pub key: String,
    /// What it measures, for the table.
    pub label: String,
    /// Between which two points, exactly.
    pub between: String,
    /// Samples in nanoseconds, grouped by round (repeated runs of the same loop).
    pub rounds: Vec<Vec<u64>>,
}

/// Percentiles of a series (nanoseconds).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// How the rounds' medians and p99s spread.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Spread {
    pub rounds: usize,
    pub p50_min: u64,
    pub p50_max: u64,
    pub p99_min: u64,
    pub p99_max: u64,
}

impl Series {
    pub fn new(key: &str, label: &str, between: &str) -> Self {
        Self {
            key: key.to_owned(),
            label: label.to_owned(),
            between: between.to_owned(),
            rounds: Vec::new(),
        }
    }

    /// Starts a new round; following [`record`](Self::record)s go into it.
    pub fn start_round(&mut self) {
        self.rounds.push(Vec::new());
    }

    pub fn record(&mut self, ns: u64) {
        if self.rounds.is_empty() {
            self.start_round();
        }
        if let Some(round) = self.rounds.last_mut() {
            round.push(ns);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rounds.iter().all(Vec::is_empty)
    }

    /// All samples, every round.
    pub fn samples(&self) -> impl Iterator<Item = u64> + '_ {
        self.rounds.iter().flatten().copied()
    }

    pub fn summary(&self) -> anyhow::Result<Summary> {
        summarize(self.samples())
    }

    pub fn spread(&self) -> anyhow::Result<Spread> {
        let mut spread = Spread::default();
        for round in self.rounds.iter().filter(|r| !r.is_empty()) {
            let s = summarize(round.iter().copied())?;
            if spread.rounds == 0 {
                spread = Spread {
                    rounds: 0,
                    p50_min: s.p50,
                    p50_max: s.p50,
                    p99_min: s.p99,
                    p99_max: s.p99,
                };
            }
            spread.rounds += 1;
            spread.p50_min = spread.p50_min.min(s.p50);
            spread.p50_max = spread.p50_max.max(s.p50);
            spread.p99_min = spread.p99_min.min(s.p99);
            spread.p99_max = spread.p99_max.max(s.p99);
        }
        Ok(spread)
    }
}

fn summarize(samples: impl Iterator<Item = u64>) -> anyhow::Result<Summary> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, HIGHEST_NS, SIGNIFICANT_DIGITS)
        .context("cannot create a histogram")?;
    for ns in samples {
        histogram
            .record(ns.clamp(1, HIGHEST_NS))
            .context("cannot record a sample")?;
    }
    if histogram.is_empty() {
        return Ok(Summary::default());
    }
    Ok(Summary {
        count: histogram.len(),
        min: histogram.min(),
        p50: histogram.value_at_quantile(0.50),
        p90: histogram.value_at_quantile(0.90),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
        mean: histogram.mean(),
    })
}

/// A duration in ns for a table: µs below 10 ms, ms below 10 s, else s.
pub fn human(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 10_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 10_000_000_000.0 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.1} s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_spread() -> anyhow::Result<()> {
        let mut s = Series::new("k", "l", "a → b");
        s.start_round();
        for v in 1..=1000u64 {
            s.record(v * 1000);
        }
        s.start_round();
        for v in 1..=1000u64 {
            s.record(v * 2000);
        }
        let sum = s.summary()?;
        assert_eq!(sum.count, 2000);
        assert!((sum.max as f64 - 2e6).abs() / 2e6 < 0.001, "{sum:?}");
        let spread = s.spread()?;
        assert_eq!(spread.rounds, 2);
        assert!(spread.p50_min < spread.p50_max);
        assert_eq!(human(1500), "1.5 µs");
        assert_eq!(human(25_000_000), "25.0 ms");
        Ok(())
    }
}
