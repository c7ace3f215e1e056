//! The module-level exports of ABI v1 and the body of every task entry.

use std::fmt::Display;
use std::io::Write as _;
use std::panic::PanicHookInfo;
use std::sync::Once;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Encoding, sys};

/// Return codes of a task entry (ABI.md, "The entry's return code").
pub(crate) const RC_OK: i32 = 0;
pub(crate) const RC_TASK_ERROR: i32 = 1;
pub(crate) const RC_DECODE: i32 = 2;
pub(crate) const RC_ENCODE: i32 = 3;

/// Marker export: the module speaks Brine ABI version 1. Never called.
///
/// Defined here, once, so every module linking `brine-guest` carries it; `no_mangle`
/// items of dependencies are exported from a `cdylib`, and rustc passes them to the
/// linker as explicit exports, so they are not garbage-collected.
#[doc(hidden)]
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub extern "C" fn __brine_abi_v1() {}

/// WASI reactor initialisation: runs the module's static constructors (wasi-libc's).
/// The host calls it once per instance, before any other export.
///
/// Defining it also matters for how the module is linked: a `cdylib` that never calls
/// `__wasm_call_ctors` is linked "command-style", with every export wrapped to run the
/// constructors (if any) before and the destructors (libc's exit handlers) after each
/// call, so `__brine_alloc` would tear libc down before the entry even starts. Calling it here
/// makes it a plain reactor: exports are the functions themselves.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    unsafe extern "C" {
        /// Synthesised by the linker: calls every static constructor once.
        fn __wasm_call_ctors();
    }
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: the linker-generated constructor list is meant to be run exactly once
        // per instance, before other code; the `Once` keeps a repeated call harmless.
        unsafe { __wasm_call_ctors() }
    });
}

/// Allocates `len` bytes for the host to write a task's arguments into; the entry the
/// pointer is then passed to takes the buffer back and frees it.
///
/// `len` 0 returns a non-null dangling pointer that must not be written. Running out of
/// memory aborts (a trap), which the host reports as the memory limit.
#[doc(hidden)]
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub extern "C" fn __brine_alloc(len: usize) -> *mut u8 {
    // Zeroed, so the buffer is initialised memory whatever the host writes into it.
    let buffer: Box<[u8]> = vec![0u8; len].into_boxed_slice();
    Box::into_raw(buffer).cast::<u8>()
}

/// Takes back the argument buffer handed out by [`__brine_alloc`].
///
/// # Safety
///
/// Unless `len` is 0 or `ptr` is null, `ptr` must have been returned by
/// `__brine_alloc(len)` and not been taken back before.
unsafe fn take_args(ptr: *mut u8, len: usize) -> Box<[u8]> {
    if len == 0 || ptr.is_null() {
        return Box::default();
    }
    // SAFETY: by the contract above, `ptr` is the start of a `Box<[u8]>` of exactly `len`
    // bytes leaked by `__brine_alloc`, and we are its only owner.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) }
}

/// The body of every `#[task]` entry: decode, run, encode, report, return the code.
///
/// # Safety
///
/// `args_ptr`/`args_len` as for [`take_args`].
#[doc(hidden)]
pub unsafe fn run_task<A, R, F>(args_ptr: *mut u8, args_len: usize, encoding: i32, task: F) -> i32
where
    A: DeserializeOwned,
    R: Serialize,
    F: FnOnce(A) -> Result<R, String>,
{
    install_panic_hook();
    // SAFETY: forwarded from this function's contract.
    let bytes = unsafe { take_args(args_ptr, args_len) };
    let code = match Encoding::from_code(encoding) {
        None => {
            sys::error(&format!(
                "unknown argument encoding {encoding} (expected 0 = postcard or 1 = JSON)"
            ));
            RC_DECODE
        }
        Some(encoding) => {
            let decoded = encoding.decode::<A>(&bytes);
            // The arguments are owned by now; give their memory back before the task runs.
            drop(bytes);
            match decoded {
                Err(message) => {
                    sys::error(&format!(
                        "cannot decode the arguments as {encoding}: {message}"
                    ));
                    RC_DECODE
                }
                Ok(args) => match task(args) {
                    Err(message) => {
                        sys::error(&message);
                        RC_TASK_ERROR
                    }
                    Ok(value) => match encoding.encode(&value) {
                        Ok(encoded) => {
                            sys::result(&encoded);
                            RC_OK
                        }
                        Err(message) => {
                            sys::error(&format!(
                                "cannot encode the result as {encoding}: {message}"
                            ));
                            RC_ENCODE
                        }
                    },
                },
            }
        }
    };
    // The instance is thrown away after the entry returns: push out what `print!` buffered.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

/// How a task's `Err(e)` becomes the message of return code 1.
#[doc(hidden)]
pub fn error_message<E: Display>(error: E) -> String {
    error.to_string()
}

/// Sends every panic's message, with its location, to the host before the abort that
/// follows it (panics abort on wasm32-wasip1), then lets the previous hook print it to
/// stderr as usual.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            sys::panic(&panic_message(info));
            previous(info);
            let _ = std::io::stdout().flush();
        }));
    });
}

/// `"<message> at <file>:<line>:<column>"`.
fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
    match info.location() {
        Some(location) => format!(
            "{message} at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        ),
        None => message.to_owned(),
    }
}
