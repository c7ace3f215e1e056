//! Tasks that misbehave on purpose, one export each, for testing how an executor
//! contains and reports them:
//!
//! | task | arguments | what it does | expected report |
//! |---|---|---|---|
//! | `loop_forever` | none | spins without allocating or calling the host | deadline / kill |
//! | `allocate_forever` | none | allocates and touches 1 MiB blocks until memory runs out | memory limit |
//! | `panic` | none | panics with "deliberate panic" | guest panic |
//! | `trap` | none | executes a wasm `unreachable` (not a Rust panic) | trap |
//! | `fail` | none | returns `Err("deliberate failure")` | guest error |
//! | `spin` | `u64` milliseconds | busy-waits that long, reporting progress, then returns the loop count | success (slow) |

use std::hint::black_box;
use std::time::{Duration, Instant};

/// What `panic` panics with.
pub const PANIC_MESSAGE: &str = "deliberate panic";
/// What `fail` fails with.
pub const FAILURE_MESSAGE: &str = "deliberate failure";
/// Size of each block `allocate_forever` takes.
pub const BLOCK: usize = 1 << 20;

/// Task `loop_forever`: never returns. `black_box` keeps the loop (and its counter)
/// opaque to the optimizer, and the loop neither allocates nor calls out.
#[brine_guest::task]
pub fn loop_forever() {
    let mut spins: u64 = 0;
    loop {
        spins = black_box(spins.wrapping_add(1));
    }
}

/// Task `allocate_forever`: never returns; keeps allocating 1 MiB blocks, writing to every
/// page of each and keeping them all, until the allocator aborts (a trap once memory
/// growth is refused).
#[brine_guest::task]
pub fn allocate_forever() {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        for page in block.chunks_mut(4096) {
            page[0] = 0xA5;
        }
        blocks.push(black_box(block));
        if blocks.len().is_multiple_of(16) {
            brine_guest::info!("allocated {} MiB", (blocks.len() * BLOCK) >> 20);
        }
    }
}

/// Task `panic`: panics with [`PANIC_MESSAGE`].
#[brine_guest::task]
pub fn panic() {
    panic!("{PANIC_MESSAGE}")
}

/// Task `trap`: a genuine wasm trap (`unreachable`), which is not a Rust panic, so no
/// panic message is sent. (Off wasm it aborts the process.)
#[brine_guest::task]
pub fn trap() {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Task `fail`: returns `Err(`[`FAILURE_MESSAGE`]`)`, a guest error (return code 1).
#[brine_guest::task]
pub fn fail() -> Result<(), String> {
    Err(FAILURE_MESSAGE.to_owned())
}

/// Task `spin`: argument `u64` milliseconds; busy-waits that long on the WASI clock,
/// reporting progress, and returns how many times it looped. A task that finishes, but
/// slowly: for testing kills, deadlines and heartbeats without a task that never ends.
#[brine_guest::task]
pub fn spin(millis: u64) -> u64 {
    let total = Duration::from_millis(millis);
    let start = Instant::now();
    let mut spins: u64 = 0;
    let mut reported = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= total {
            brine_guest::progress(1.0);
            return spins;
        }
        let percent = (elapsed.as_millis() * 100 / total.as_millis().max(1)) as u32;
        if percent > reported {
            reported = percent;
            brine_guest::progress(f64::from(percent) / 100.0);
        }
        spins = black_box(spins + 1);
    }
}

// Host tests: they use the host stand-in for the `brine` imports.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use brine_guest::{Encoding, testing};

    use super::*;

    #[test]
    #[should_panic(expected = "deliberate panic")]
    fn panics() {
        panic();
    }

    #[test]
    fn panic_through_the_entry_reports_the_message() {
        let testing::Outcome::Panic(message) =
            testing::call(__brine_task_panic, b"", Encoding::Postcard)
        else {
            panic!("expected a panic");
        };
        assert!(message.starts_with("deliberate panic at "), "{message}");
        assert!(message.contains("lib.rs"), "{message}");
    }

    #[test]
    fn fails() {
        assert_eq!(fail(), Err("deliberate failure".to_owned()));
        assert_eq!(
            testing::call(__brine_task_fail, b"null", Encoding::Json),
            testing::Outcome::GuestError("deliberate failure".into())
        );
    }

    #[test]
    fn spins_for_a_while() {
        testing::take_progress();
        let start = Instant::now();
        let spins: u64 = testing::run(__brine_task_spin, &30u64, Encoding::Postcard).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(spins > 0);
        let progress = testing::take_progress();
        assert_eq!(progress.last(), Some(&1.0));
        assert!(spin(0) == 0);
    }
}
