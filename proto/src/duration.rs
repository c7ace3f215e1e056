//! Mesos duration strings (`5secs`, `15mins`, `100ms`, `2.5hrs`), as stout's `Duration`
//! parses and prints them. Agents pass durations to executors this way
//! (`MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs`), and Mesos users write flags this way.
//!
//! ```
//! use std::time::Duration;
//! use brine_proto::duration::{format, parse};
//!
//! assert_eq!(parse("5secs").unwrap(), Duration::from_secs(5));
//! assert_eq!(parse("2.5mins").unwrap(), Duration::from_secs(150));
//! assert_eq!(format(Duration::from_millis(1500)), "1500ms");
//! assert!(parse("5 seconds").is_err());
//! ```

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration '{0}': expected a number followed by a unit, e.g. '5secs'")]
    Invalid(String),
    #[error("invalid duration '{0}': '{1}' is not a number")]
    NotANumber(String, String),
    #[error(
        "unknown duration unit '{unit}' in '{input}'; supported units are \
         'ns', 'us', 'ms', 'secs', 'mins', 'hrs', 'days', and 'weeks'"
    )]
    UnknownUnit { input: String, unit: String },
    #[error("duration '{0}' is too large")]
    TooLarge(String),
}

const NS: u128 = 1;
const US: u128 = 1_000 * NS;
const MS: u128 = 1_000 * US;
const SECS: u128 = 1_000 * MS;
const MINS: u128 = 60 * SECS;
const HRS: u128 = 60 * MINS;
const DAYS: u128 = 24 * HRS;
const WEEKS: u128 = 7 * DAYS;

/// Units from the largest down, as stout names them.
const UNITS: [(&str, u128); 8] = [
    ("weeks", WEEKS),
    ("days", DAYS),
    ("hrs", HRS),
    ("mins", MINS),
    ("secs", SECS),
    ("ms", MS),
    ("us", US),
    ("ns", NS),
];

/// Parses a Mesos duration string: a non-negative decimal number directly followed by one
/// of `ns`, `us`, `ms`, `secs`, `mins`, `hrs`, `days`, `weeks`. Like stout, it refuses
/// negative values, spaces and missing units, and caps at what an `int64_t` of
/// nanoseconds holds.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let split = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::Invalid(input.to_owned()))?;
    let (number, unit) = input.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(input.to_owned(), number.to_owned()))?;
    let factor = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, factor)| factor)
        .ok_or_else(|| DurationError::UnknownUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        })?;
    let nanos = value * factor as f64;
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return Err(DurationError::TooLarge(input.to_owned()));
    }
    // `nanos` is finite, non-negative and below i64::MAX, so the cast is exact enough and
    // cannot wrap.
    Ok(Duration::from_nanos(nanos as u64))
}

/// Prints a duration as stout does: in the largest unit in which it is at least one,
/// unless a unit one step smaller gives a whole number where that one does not.
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    for window in UNITS.windows(2) {
        let [(unit, factor), (smaller_unit, smaller)] = [window[0], window[1]];
        if nanos >= factor {
            return if !nanos.is_multiple_of(factor) && nanos.is_multiple_of(smaller) {
                render(nanos, smaller, smaller_unit)
            } else {
                render(nanos, factor, unit)
            };
        }
    }
    format!("{nanos}ns")
}

/// `nanos / factor` with up to 15 significant digits, as stout's stream precision gives.
fn render(nanos: u128, factor: u128, unit: &str) -> String {
    if nanos.is_multiple_of(factor) {
        return format!("{}{unit}", nanos / factor);
    }
    let value = nanos as f64 / factor as f64;
    let digits = 15usize.saturating_sub(value.abs().log10().floor().max(0.0) as usize + 1);
    let text = format!("{value:.digits$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("7us"), Ok(Duration::from_micros(7)));
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("5secs"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("15mins"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("2hrs"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1days"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("1weeks"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse("0.5secs"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn refuses_what_stout_refuses() {
        for bad in [
            "",
            "5",
            "secs",
            "5 secs",
            "-5secs",
            "5seconds",
            "1.2.3secs",
            "5Secs",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(matches!(
            parse("5seconds"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "seconds"
        ));
        assert!(matches!(
            parse("1000000weeks"),
            Err(DurationError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_like_stout() {
        assert_eq!(format(Duration::from_secs(5)), "5secs");
        assert_eq!(format(Duration::from_secs(900)), "15mins");
        assert_eq!(format(Duration::from_secs(60)), "1mins");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(90)), "90secs");
        assert_eq!(format(Duration::from_secs(86_400 * 10)), "10days");
        assert_eq!(format(Duration::from_nanos(1_000_001)), "1.000001ms");
        assert_eq!(format(Duration::from_nanos(999)), "999ns");
        assert_eq!(format(Duration::ZERO), "0ns");
    }

    #[test]
    fn round_trips() {
        for nanos in [
            1,
            999,
            1_000,
            1_500_000,
            5_000_000_000,
            90_000_000_000,
            3_600_000_000_000,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
    }
}
