//! Write [Brine](https://example.invalid/brine) tasks: plain Rust functions compiled to a
//! `wasm32-wasip1` module that a Brine executor runs, one fresh instance per task.
//!
//! This crate implements the guest side of the Brine guest ABI v1 (`guest-sdk/ABI.md`):
//!
//! - [`macro@task`] turns `fn name(args: A) -> R` into an export named `name` that decodes
//!   its arguments (postcard or JSON, as the caller chose), runs the function and hands
//!   back the encoded result, an error message, or a panic message;
//! - [`dataset`] reads the executor's shared, read-only dataset without copying all of it;
//! - [`progress`] reports how far a task has got;
//! - [`rng::Rng`] is a deterministic, seedable PRNG for tasks that sample;
//! - [`info!`], [`warn!`], [`error!`] and [`debug!`] write log lines to stderr (while
//!   `println!` writes to the task's stdout).
//!
//! ```no_run
//! use brine_guest::{info, task};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Args {
//!     pub n: u64,
//! }
//!
//! /// Sum of 0..n, reporting progress as it goes.
//! #[task]
//! pub fn triangle(args: Args) -> Result<u64, String> {
//!     info!("summing {} numbers", args.n);
//!     let mut total: u64 = 0;
//!     for i in 0..args.n {
//!         total = total.checked_add(i).ok_or("overflow")?;
//!         if i % 1_000_000 == 0 {
//!             brine_guest::progress(i as f64 / args.n as f64);
//!         }
//!     }
//!     Ok(total)
//! }
//! ```
//!
//! Build the crate as a `cdylib` for `wasm32-wasip1`
//! (`cargo build --release --target wasm32-wasip1`). On any other target the `brine`
//! imports are replaced by a per-thread stand-in (see `testing`, host only), so the same code
//! compiles, lints and unit-tests on the host.

// Lets the `#[task]` expansion's `::brine_guest::…` paths resolve inside this crate's
// own tests and doctests.
extern crate self as brine_guest;

pub mod dataset;
mod encoding;
mod entry;
pub mod log;
pub mod rng;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use encoding::Encoding;

/// Marks a function as a Brine task and generates its ABI v1 export.
///
/// Accepted shapes (`A: serde::de::DeserializeOwned`, `R: serde::Serialize`):
///
/// | signature | arguments | on return |
/// |---|---|---|
/// | `fn name(args: A) -> R` | decoded as `A` | result `R`, return code 0 |
/// | `fn name() -> R` | decoded as `()` (postcard: no bytes; JSON: `null` or nothing) | result `R`, code 0 |
/// | `fn name(..) -> Result<R, E>` with `E: Display` | as above | `Ok(r)`: result `r`, code 0; `Err(e)`: `e.to_string()` through `brine.error`, code 1 |
/// | no return type | as above | result `()`, code 0 |
///
/// A return type whose last path segment is `Result` (`Result<R, E>`, `io::Result<R>`,
/// `anyhow::Result<R>`, …) counts as fallible. Arguments that fail to decode give code 2
/// and a result that fails to encode gives code 3, each with the codec's message. A
/// panic sends its message and location through `brine.panic`, then aborts (a trap).
///
/// The function itself is left untouched, so it stays callable (and unit-testable) as
/// plain Rust. Next to it the attribute adds a hidden
/// `pub unsafe extern "C-unwind" fn __brine_task_<fn name>(args_ptr: *mut u8, args_len: usize,
/// encoding: i32) -> i32`, exported under the task's name on `wasm32` (on other targets it
/// is not exported; `testing::call` can drive it).
///
/// The export name is the function's name, or `#[task(name = "other")]`. Names starting
/// with `_` are reserved by the ABI, and `memory` is taken, so both are compile errors.
/// The function cannot be `async`, `unsafe`, generic or a method, and takes at most one
/// argument (use a struct or tuple for more).
///
/// ```no_run
/// #[brine_guest::task]
/// fn hello() -> String {
///     println!("hello world");
///     "hello world".to_owned()
/// }
///
/// #[brine_guest::task(name = "parse")]
/// fn parse_number(text: String) -> Result<i64, std::num::ParseIntError> {
///     text.trim().parse()
/// }
/// ```
pub use brine_guest_macros::task;

/// Reports how far the running task has got, as a fraction in `0.0..=1.0` (the host
/// clamps values outside that range and ignores NaN). Each report supersedes the last.
///
/// A report is one call into the host; once per percent or so is plenty.
///
/// ```no_run
/// let total = 1_000_000u64;
/// for i in 0..total {
///     // ... work ...
///     if i % (total / 100) == 0 {
///         brine_guest::progress(i as f64 / total as f64);
///     }
/// }
/// brine_guest::progress(1.0);
/// ```
pub fn progress(fraction: f64) {
    sys::progress(fraction);
}

/// Implementation details of the `#[task]` expansion. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{error_message, run_task};
}

#[doc(hidden)]
pub use entry::{__brine_abi_v1, __brine_alloc};

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::testing::{self, Outcome};
    use crate::{Encoding, task};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Pair {
        a: i32,
        b: i32,
    }

    #[task]
    fn add(pair: Pair) -> i32 {
        pair.a + pair.b
    }

    #[task]
    fn greet() -> String {
        "hi".into()
    }

    #[task]
    fn nothing() {}

    #[task(name = "checked")]
    fn checked_div(pair: Pair) -> Result<i32, String> {
        pair.a
            .checked_div(pair.b)
            .ok_or_else(|| format!("cannot divide {} by {}", pair.a, pair.b))
    }

    /// Names that could clash with what the expansion itself uses.
    #[task]
    fn encoding(args: u8) -> u8 {
        args
    }

    #[task]
    fn args_ptr(args: u8) -> u8 {
        args
    }

    #[task(name = "renamed")]
    fn args(encoding: u8) -> u8 {
        encoding
    }

    #[task]
    fn explode() -> u8 {
        panic!("boom {}", 7)
    }

    #[task]
    fn unencodable() -> std::collections::HashMap<(u8, u8), u8> {
        [((1, 2), 3)].into_iter().collect()
    }

    #[task]
    fn reporter(steps: u32) -> u32 {
        for i in 0..=steps {
            crate::progress(f64::from(i) / f64::from(steps));
        }
        crate::progress(f64::NAN);
        crate::progress(7.0);
        steps
    }

    #[test]
    fn functions_stay_plain_rust() {
        assert_eq!(add(Pair { a: 1, b: 2 }), 3);
        assert_eq!(greet(), "hi");
        assert_eq!(checked_div(Pair { a: 6, b: 3 }), Ok(2));
    }

    #[test]
    fn entries_decode_run_and_encode() {
        let pair = Pair { a: 40, b: 2 };
        for encoding in [Encoding::Postcard, Encoding::Json] {
            let sum: i32 = testing::run(__brine_task_add, &pair, encoding).unwrap();
            assert_eq!(sum, 42);
            let text: String = testing::run(__brine_task_greet, &(), encoding).unwrap();
            assert_eq!(text, "hi");
            for entry in [
                __brine_task_encoding,
                __brine_task_args_ptr,
                __brine_task_args,
            ] {
                let same: u8 = testing::run(entry, &9u8, encoding).unwrap();
                assert_eq!(same, 9);
            }
        }
        assert_eq!(
            testing::call(__brine_task_add, br#"{"a": 1, "b": 2}"#, Encoding::Json),
            Outcome::Ok(b"3".to_vec())
        );
        assert_eq!(
            testing::call(__brine_task_greet, b"", Encoding::Json),
            Outcome::Ok(br#""hi""#.to_vec())
        );
        // `()` encodes as no bytes in postcard: still a result.
        assert_eq!(
            testing::call(__brine_task_nothing, b"", Encoding::Postcard),
            Outcome::Ok(Vec::new())
        );
    }

    #[test]
    fn errors_map_to_return_codes() {
        assert_eq!(
            testing::run::<_, i32>(
                __brine_task_checked_div,
                &Pair { a: 1, b: 0 },
                Encoding::Json
            ),
            Err(Outcome::GuestError("cannot divide 1 by 0".into()))
        );
        let Outcome::ArgumentDecode(message) =
            testing::call(__brine_task_add, br#"{"a": 1}"#, Encoding::Json)
        else {
            panic!("expected a decode failure");
        };
        assert!(message.contains("missing field `b`"), "{message}");
        let Outcome::ArgumentDecode(message) =
            testing::call(__brine_task_add, &[1], Encoding::Postcard)
        else {
            panic!("expected a decode failure");
        };
        assert!(message.contains("postcard"), "{message}");
        let Outcome::ArgumentDecode(message) = testing::call_code(__brine_task_greet, b"", 7)
        else {
            panic!("expected a decode failure");
        };
        assert!(message.contains("unknown argument encoding 7"), "{message}");
        let Outcome::ResultEncode(message) =
            testing::call(__brine_task_unencodable, b"null", Encoding::Json)
        else {
            panic!("expected an encode failure");
        };
        assert!(message.contains("JSON"), "{message}");
    }

    #[test]
    fn panics_report_message_and_location() {
        let Outcome::Panic(message) = testing::call(__brine_task_explode, b"", Encoding::Postcard)
        else {
            panic!("expected a panic");
        };
        assert!(message.starts_with("boom 7 at "), "{message}");
        assert!(message.contains("lib.rs:"), "{message}");
    }

    #[test]
    fn progress_is_recorded_like_the_host_does() {
        testing::take_progress();
        let steps: u32 = testing::run(__brine_task_reporter, &4u32, Encoding::Postcard).unwrap();
        assert_eq!(steps, 4);
        assert_eq!(
            testing::take_progress(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
        );
    }
}
