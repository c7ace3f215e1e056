//! Host-side stand-in for the executor, for unit tests of task code (not on `wasm32`).
//!
//! Off `wasm32`, the `brine` imports are served from per-thread state: set the dataset
//! with [`set_dataset`], read progress reports back with [`take_progress`]. Task
//! functions are plain Rust functions, so most tests just call them; [`call`] and
//! [`run`] go through a task's generated ABI entry instead, exactly as the executor
//! would (allocate, copy the arguments in, call, collect the result or error).
//!
//! ```
//! use brine_guest::{Encoding, testing};
//!
//! #[brine_guest::task]
//! fn double(x: u32) -> u32 {
//!     x * 2
//! }
//!
//! assert_eq!(double(4), 8);
//! let result: u32 = testing::run(__brine_task_double, &21u32, Encoding::Postcard).unwrap();
//! assert_eq!(result, 42);
//! let outcome = testing::call(__brine_task_double, b"\"x\"", Encoding::Json);
//! assert!(matches!(outcome, testing::Outcome::ArgumentDecode(_)));
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Encoding;
use crate::entry::{__brine_alloc, RC_DECODE, RC_ENCODE, RC_OK, RC_TASK_ERROR};
use crate::sys::STATE;

/// The type of a task's generated entry, `__brine_task_<name>`.
pub type Entry = unsafe extern "C-unwind" fn(*mut u8, usize, i32) -> i32;

/// Makes `bytes` the dataset that this thread's tasks see.
pub fn set_dataset(bytes: impl Into<Vec<u8>>) {
    let bytes = bytes.into();
    STATE.with_borrow_mut(|state| state.dataset = bytes);
}

/// Removes this thread's dataset (as if the executor had none).
pub fn clear_dataset() {
    STATE.with_borrow_mut(|state| state.dataset = Vec::new());
}

/// Returns and forgets the progress reported on this thread so far, oldest first, as the
/// host would have recorded them (clamped to `0.0..=1.0`, NaN dropped).
pub fn take_progress() -> Vec<f64> {
    STATE.with_borrow_mut(|state| std::mem::take(&mut state.progress))
}

/// What a call through a task entry came to, named after the executor's error kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Return code 0: the encoded result.
    Ok(Vec<u8>),
    /// Return code 1: the task returned `Err` with this message.
    GuestError(String),
    /// Return code 2: the arguments did not decode.
    ArgumentDecode(String),
    /// Return code 3: the result did not encode.
    ResultEncode(String),
    /// The task panicked (a trap on wasm); the message as sent through `brine.panic`.
    Panic(String),
    /// The entry broke the ABI (e.g. returned 0 without a result); what went wrong.
    Invalid(String),
}

/// Calls a task's entry with raw argument bytes, as the executor would.
pub fn call(entry: Entry, args: &[u8], encoding: Encoding) -> Outcome {
    call_code(entry, args, encoding.code())
}

/// [`call`] with a raw `encoding` code, including ones the ABI does not define.
pub fn call_code(entry: Entry, args: &[u8], encoding: i32) -> Outcome {
    STATE.with_borrow_mut(|state| {
        state.result = None;
        state.error = None;
        state.panic = None;
    });
    let ptr = __brine_alloc(args.len());
    if !args.is_empty() {
        // SAFETY: `__brine_alloc` returned a fresh, exclusively owned buffer of exactly
        // `args.len()` bytes, which cannot overlap `args`.
        unsafe { std::ptr::copy_nonoverlapping(args.as_ptr(), ptr, args.len()) };
    }
    // SAFETY: `ptr` comes from `__brine_alloc(args.len())` and is handed over once.
    let code = catch_unwind(AssertUnwindSafe(|| unsafe {
        entry(ptr, args.len(), encoding)
    }));
    let (result, error, panic) = STATE
        .with_borrow_mut(|state| (state.result.take(), state.error.take(), state.panic.take()));
    let message = || error.clone().unwrap_or_default();
    match code {
        Err(_) => Outcome::Panic(panic.unwrap_or_default()),
        Ok(RC_OK) => match result {
            Some(bytes) => Outcome::Ok(bytes),
            None => Outcome::Invalid("return code 0 without a result".into()),
        },
        Ok(code) if error.is_none() => {
            Outcome::Invalid(format!("return code {code} without an error message"))
        }
        Ok(RC_TASK_ERROR) => Outcome::GuestError(message()),
        Ok(RC_DECODE) => Outcome::ArgumentDecode(message()),
        Ok(RC_ENCODE) => Outcome::ResultEncode(message()),
        Ok(code) => Outcome::Invalid(format!("unknown return code {code}")),
    }
}

/// Encodes `args`, calls the entry and decodes its result; any other outcome is the error.
pub fn run<A, R>(entry: Entry, args: &A, encoding: Encoding) -> Result<R, Outcome>
where
    A: Serialize + ?Sized,
    R: DeserializeOwned,
{
    let bytes = encoding.encode(args).map_err(Outcome::Invalid)?;
    match call(entry, &bytes, encoding) {
        Outcome::Ok(result) => encoding.decode(&result).map_err(Outcome::Invalid),
        other => Err(other),
    }
}
