//! `pi`: a Monte Carlo estimate of π from `samples` points in the unit square, drawn by
//! a small deterministic PRNG so the same seed always gives the same answer.
//!
//! To spread one estimate over many tasks, give each task its own seed and add up
//! `inside` and `samples` over the results: π ≈ 4 · Σinside / Σsamples.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Arguments of `pi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiArgs {
    /// How many points to draw (at least 1).
    pub samples: u64,
    /// PRNG seed; use a different one per task.
    pub seed: u64,
}

/// Result of `pi`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PiResult {
    /// Points that fell inside the quarter circle.
    pub inside: u64,
    /// Points drawn (the argument, echoed so results can be summed on their own).
    pub samples: u64,
    /// `4 * inside / samples`.
    pub estimate: f64,
}

/// The only way `pi` fails: asking for no samples (the estimate would be 0/0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSamples;

impl fmt::Display for NoSamples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("samples must be at least 1")
    }
}

impl std::error::Error for NoSamples {}

/// Task `pi`: [`PiArgs`] → [`PiResult`], reporting progress about every 1%.
#[brine_guest::task]
pub fn pi(args: PiArgs) -> Result<PiResult, NoSamples> {
    estimate(args, brine_guest::progress)
}

/// The estimate, calling `on_progress` with the fraction done after about every 1%.
pub fn estimate(args: PiArgs, mut on_progress: impl FnMut(f64)) -> Result<PiResult, NoSamples> {
    if args.samples == 0 {
        return Err(NoSamples);
    }
    let mut rng = Rng::new(args.seed);
    // At most 100 reports: one per (rounded-up) percent.
    let step = args.samples.div_ceil(100);
    let mut inside = 0;
    let mut done = 0;
    while done < args.samples {
        let n = step.min(args.samples - done);
        inside += count_inside(&mut rng, n);
        done += n;
        on_progress(done as f64 / args.samples as f64);
    }
    Ok(PiResult {
        inside,
        samples: args.samples,
        estimate: 4.0 * inside as f64 / args.samples as f64,
    })
}

/// Draws `n` points in `[0, 1)²` and counts those with `x² + y² < 1`.
pub fn count_inside(rng: &mut Rng, n: u64) -> u64 {
    let mut inside = 0;
    for _ in 0..n {
        let x = rng.next_f64();
        let y = rng.next_f64();
        inside += u64::from(x * x + y * y < 1.0);
    }
    inside
}

/// The SDK's xoshiro256++ (seeded through splitmix64), re-exported for callers of
/// [`count_inside`].
pub use brine_guest::rng::Rng;

// Host tests: they use the host stand-in for the `brine` imports.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use brine_guest::{Encoding, testing};

    use super::*;

    #[test]
    fn deterministic_per_seed() {
        let args = PiArgs {
            samples: 100_000,
            seed: 7,
        };
        let a = estimate(args, |_| ()).unwrap();
        let b = estimate(args, |_| ()).unwrap();
        assert_eq!(a, b);
        let c = estimate(PiArgs { seed: 8, ..args }, |_| ()).unwrap();
        assert_ne!(a.inside, c.inside);
    }

    #[test]
    fn close_to_pi() {
        let result = estimate(
            PiArgs {
                samples: 2_000_000,
                seed: 1,
            },
            |_| (),
        )
        .unwrap();
        assert_eq!(result.samples, 2_000_000);
        assert!(
            (result.estimate - std::f64::consts::PI).abs() < 0.01,
            "{result:?}"
        );
        // Many small tasks with distinct seeds combine into one estimate.
        let (inside, samples) = (0..20)
            .map(|seed| {
                estimate(
                    PiArgs {
                        samples: 100_000,
                        seed,
                    },
                    |_| (),
                )
                .unwrap()
            })
            .fold((0, 0), |(i, s), r| (i + r.inside, s + r.samples));
        let combined = 4.0 * inside as f64 / samples as f64;
        assert!((combined - std::f64::consts::PI).abs() < 0.01, "{combined}");
    }

    #[test]
    fn progress_every_percent() {
        let mut reports = Vec::new();
        estimate(
            PiArgs {
                samples: 1_000,
                seed: 3,
            },
            |f| reports.push(f),
        )
        .unwrap();
        assert_eq!(reports.len(), 100);
        assert!(reports.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(reports.last(), Some(&1.0));

        let mut reports = Vec::new();
        estimate(
            PiArgs {
                samples: 1_050,
                seed: 3,
            },
            |f| reports.push(f),
        )
        .unwrap();
        assert!((95..=100).contains(&reports.len()), "{}", reports.len());
        assert_eq!(reports.last(), Some(&1.0));

        let mut reports = Vec::new();
        estimate(
            PiArgs {
                samples: 3,
                seed: 3,
            },
            |f| reports.push(f),
        )
        .unwrap();
        assert_eq!(reports.len(), 3);
    }

    #[test]
    fn zero_samples_is_an_error() {
        assert_eq!(
            estimate(
                PiArgs {
                    samples: 0,
                    seed: 0
                },
                |_| ()
            ),
            Err(NoSamples)
        );
    }

    #[test]
    fn through_the_entry() {
        testing::take_progress();
        let args = PiArgs {
            samples: 10_000,
            seed: 42,
        };
        let result: PiResult = testing::run(__brine_task_pi, &args, Encoding::Postcard).unwrap();
        assert_eq!(result, estimate(args, |_| ()).unwrap());
        assert_eq!(testing::take_progress().len(), 100);
        assert_eq!(
            testing::run::<_, PiResult>(
                __brine_task_pi,
                &PiArgs {
                    samples: 0,
                    seed: 1
                },
                Encoding::Json
            ),
            Err(testing::Outcome::GuestError(
                "samples must be at least 1".into()
            ))
        );
    }
}
