//! `sum`: adds up whitespace-separated integers, failing (as a guest error) on a token
//! that is not an integer or on overflow.

use std::fmt;

/// Why a sum failed; its `Display` is the task's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SumError {
    /// A token that is not a (64-bit signed) integer.
    NotAnInteger(String),
    /// The running total left the `i64` range.
    Overflow,
}

impl fmt::Display for SumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnInteger(token) => write!(f, "not an integer: {token:?}"),
            Self::Overflow => f.write_str("the sum overflows a 64-bit integer"),
        }
    }
}

impl std::error::Error for SumError {}

/// Task `sum`: argument `String` (e.g. `"1 2 3"`), result `i64` (e.g. `6`).
#[brine_guest::task]
pub fn sum(numbers: String) -> Result<i64, SumError> {
    sum_str(&numbers)
}

/// The sum of the whitespace-separated integers in `text`.
pub fn sum_str(text: &str) -> Result<i64, SumError> {
    text.split_whitespace().try_fold(0i64, |total, token| {
        let value: i64 = token
            .parse()
            .map_err(|_| SumError::NotAnInteger(token.to_owned()))?;
        total.checked_add(value).ok_or(SumError::Overflow)
    })
}

// Host tests: they use the host stand-in for the `brine` imports.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use brine_guest::{Encoding, testing};

    use super::*;

    #[test]
    fn sums() {
        assert_eq!(sum_str("1 2 3"), Ok(6));
        assert_eq!(sum_str("4 5 6"), Ok(15));
        assert_eq!(sum_str("7 8 9"), Ok(24));
        assert_eq!(sum_str(""), Ok(0));
        assert_eq!(sum_str("  -5\t\n+7  "), Ok(2));
        assert_eq!(sum_str(&i64::MIN.to_string()), Ok(i64::MIN));
    }

    #[test]
    fn bad_tokens_are_named() {
        let error = sum_str("1 two 3").unwrap_err();
        assert_eq!(error, SumError::NotAnInteger("two".into()));
        assert!(error.to_string().contains("\"two\""));
        assert!(sum_str("1.5").is_err());
        assert!(sum_str("99999999999999999999").is_err());
    }

    #[test]
    fn overflow_is_an_error() {
        let text = format!("{} 1", i64::MAX);
        assert_eq!(sum_str(&text), Err(SumError::Overflow));
        let text = format!("{} -1", i64::MIN);
        assert_eq!(sum_str(&text), Err(SumError::Overflow));
    }

    #[test]
    fn through_the_entry() {
        let total: i64 = testing::run(__brine_task_sum, "4 5 6", Encoding::Postcard).unwrap();
        assert_eq!(total, 15);
        assert_eq!(
            testing::call(__brine_task_sum, br#""7 8 9""#, Encoding::Json),
            testing::Outcome::Ok(b"24".to_vec())
        );
        assert_eq!(
            testing::call(__brine_task_sum, br#""1 x""#, Encoding::Json),
            testing::Outcome::GuestError("not an integer: \"x\"".into())
        );
    }
}
