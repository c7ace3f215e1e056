//! Log lines on the task's stderr, which the executor captures per task and returns the
//! tail of with a failure. (Plain `println!` goes to the task's stdout.)
//!
//! ```no_run
//! use brine_guest::{info, warn};
//!
//! info!("starting on {} bytes", brine_guest::dataset::len());
//! warn!("skipping malformed record at offset {}", 42);
//! ```

use std::fmt;
use std::io::Write as _;

/// How important a log line is; it prefixes the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd that the task survives.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        })
    }
}

/// Writes one line, `"<LEVEL> <message>"`, to stderr. The line is formatted first and
/// written with a single call, so it is never interleaved or cut by the host's capture.
/// Write errors are ignored: logging must not fail a task.
pub fn write(level: Level, message: fmt::Arguments<'_>) {
    let line = format!("{level} {message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Logs a `DEBUG` line to stderr; takes `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Debug, ::core::format_args!($($arg)*))
    };
}

/// Logs an `INFO` line to stderr; takes `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Info, ::core::format_args!($($arg)*))
    };
}

/// Logs a `WARN` line to stderr; takes `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Warn, ::core::format_args!($($arg)*))
    };
}

/// Logs an `ERROR` line to stderr; takes `format!` arguments. (This only logs; to fail
/// the task, return `Err` from it.)
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Error, ::core::format_args!($($arg)*))
    };
}
