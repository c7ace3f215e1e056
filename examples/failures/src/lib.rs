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
//! | `print_lines` | `u64` n | prints n lines ([`line`]) with `println!` and n with `eprintln!`, returns n | success (chatty) |
//! | `print_lines_then_fail` | `u64` n | as `print_lines`, then returns `Err` | guest error, with the stderr tail |
//! | `recurse` | `u64` depth | recursion that many calls deep (no shadow stack), returns the depth | success, or a stack overflow trap (`call stack exhausted`) |
//! | `recurse_with_frames` | `u64` depth | recursion with a 4 KiB array in each frame (the shadow stack in linear memory) | success, or a trap when the 1 MiB shadow stack runs out |
//! | `big_result` | `u64` n | returns `n` bytes (`Vec<u8>`) | success, or `result_encode` above the host's result cap |
//! | `bad_abi_call` | `u32` case | calls a `brine` import with a pointer range outside its memory | trap (`out of bounds`) |
//! | `probe_wasi` | `String` path | tries files, directories, sockets, environment, arguments, stdin, and reports what it saw ([`WasiProbe`]) | success: every attempt denied |

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

/// Bytes in each line `print_lines` prints, newline included.
pub const LINE_BYTES: usize = 121;

/// Line `i` (0-based) of `stream` (`"stdout"` or `"stderr"`) as `print_lines` prints it,
/// without its newline: [`LINE_BYTES`]` - 1` bytes, padded with `.`.
pub fn line(stream: &str, i: u64) -> String {
    let mut line = format!("{stream} line {i:>12} ");
    let width = LINE_BYTES - 1;
    line.extend(std::iter::repeat_n('.', width.saturating_sub(line.len())));
    line.truncate(width);
    line
}

/// Task `print_lines`: argument `u64` n; prints n lines to stdout (`println!`) and n to
/// stderr (`eprintln!`, unbuffered: every line reaches the host as its own writes), as
/// [`line`] makes them, and returns n.
#[brine_guest::task]
pub fn print_lines(n: u64) -> u64 {
    for i in 0..n {
        println!("{}", line("stdout", i));
        eprintln!("{}", line("stderr", i));
    }
    n
}

/// Task `print_lines_then_fail`: as [`print_lines`], then returns `Err("printed n lines")`,
/// so the failure carries the tail of stderr.
#[brine_guest::task]
pub fn print_lines_then_fail(n: u64) -> Result<u64, String> {
    print_lines(n);
    Err(format!("printed {n} lines"))
}

/// One level of [`recurse`]: called through a function pointer the optimizer cannot see
/// through, so it can neither inline the recursion nor turn it into a loop, and with
/// only integers in its frame, which live in wasm locals (the native stack), not on the
/// shadow stack in linear memory.
type Level = fn(Level2, u64) -> u64;
/// [`Level`] again (a type cannot name itself).
#[derive(Clone, Copy)]
pub struct Level2(Level);

fn level(next: Level2, depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    (next.0)(next, depth - 1).wrapping_add(1)
}

/// Task `recurse`: argument `u64` depth; recurses that deep and returns the depth. Deep
/// enough (a few tens of thousands) it exhausts the host's wasm stack: a trap.
#[brine_guest::task]
pub fn recurse(depth: u64) -> u64 {
    let first: Level = black_box(level);
    first(Level2(first), depth)
}

/// Bytes of the array each [`recurse_with_frames`] level keeps in linear memory.
pub const FRAME_BYTES: usize = 4096;

#[inline(never)]
fn level_with_frame(depth: u64) -> u64 {
    let mut frame = [0u8; FRAME_BYTES];
    frame[0] = depth as u8;
    // The array's address escapes: it must live on the shadow stack.
    let frame = black_box(&mut frame);
    if depth == 0 {
        return u64::from(frame[0]);
    }
    level_with_frame(depth - 1).wrapping_add(u64::from(frame[FRAME_BYTES - 1]) + 1)
}

/// Task `recurse_with_frames`: argument `u64` depth; recurses that deep with a
/// [`FRAME_BYTES`] array in each frame, on the 1 MiB shadow stack Rust keeps at the
/// bottom of linear memory; past about 250 levels the stack pointer runs below address
/// 0 and the next store is out of bounds (a trap).
#[brine_guest::task]
pub fn recurse_with_frames(depth: u64) -> u64 {
    level_with_frame(depth)
}

/// Task `big_result`: argument `u64` n; returns `n` bytes (`0, 1, 2, …` wrapping), which
/// postcard encodes as a length and the bytes themselves.
#[brine_guest::task]
pub fn big_result(n: u64) -> Result<Vec<u8>, String> {
    let n = usize::try_from(n).map_err(|e| e.to_string())?;
    Ok((0..n).map(|i| i as u8).collect())
}

/// What [`bad_abi_call`] does for each case: a `brine` import called with a pointer
/// range outside the guest's memory.
pub const BAD_ABI_CALLS: [&str; 6] = [
    "result: a range past the end of memory",
    "result: a pointer that wraps around the 32-bit address space",
    "error: a 4 GiB - 1 length",
    "panic: one byte past the end of memory",
    "dataset_read: a destination past the end of memory",
    "result: a pointer at the end of memory, length 1",
];

#[cfg(target_arch = "wasm32")]
mod raw {
    //! The `brine` imports with plain integer pointers and lengths, so a task can pass
    //! anything (the guest SDK's wrappers only pass slices it owns).
    #[link(wasm_import_module = "brine")]
    unsafe extern "C" {
        #[link_name = "result"]
        pub fn raw_result(ptr: u32, len: u32);
        #[link_name = "error"]
        pub fn raw_error(ptr: u32, len: u32);
        #[link_name = "panic"]
        pub fn raw_panic(ptr: u32, len: u32);
        #[link_name = "dataset_read"]
        pub fn raw_dataset_read(offset: i64, ptr: u32, len: u32) -> i64;
    }

    /// The size of the guest's memory in bytes.
    pub fn memory_bytes() -> u32 {
        (core::arch::wasm32::memory_size(0) as u32).wrapping_mul(65_536)
    }
}

/// Task `bad_abi_call`: argument `u32` case (an index into [`BAD_ABI_CALLS`]); makes that
/// call, which the host refuses with a trap. An unknown case returns `Err`. (Off wasm
/// there are no raw imports: it returns `Err`.)
#[brine_guest::task]
pub fn bad_abi_call(case: u32) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    {
        use raw::*;
        let end = memory_bytes();
        // SAFETY: none of these calls lets the host write into memory the guest uses:
        // every range lies (at least partly) outside the guest's memory, which is what
        // the host must refuse.
        unsafe {
            match case {
                0 => raw_result(end - 16, 64),
                1 => raw_result(u32::MAX - 3, 16),
                2 => raw_error(16, u32::MAX),
                3 => raw_panic(end, 1),
                4 => {
                    raw_dataset_read(0, end - 8, 64);
                }
                5 => raw_result(end, 1),
                _ => {}
            }
        }
    }
    Err(format!(
        "bad_abi_call({case}) returned: unknown case or the host accepted the call"
    ))
}

/// What [`probe_wasi`] saw; each `String` is the error the guest got (`Debug` of the
/// `std::io::Error`), or `"ok: …"` when something unexpectedly worked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WasiProbe {
    /// `File::open(path)`.
    pub open: String,
    /// `File::create(path + ".new")`.
    pub create: String,
    /// `read_dir("/")`.
    pub read_dir: String,
    /// `read_dir(".")`.
    pub read_dir_current: String,
    /// `TcpStream::connect("127.0.0.1:1")`.
    pub tcp_connect: String,
    /// `TcpListener::bind("127.0.0.1:0")`.
    pub tcp_bind: String,
    /// `UdpSocket::bind("127.0.0.1:0")`.
    pub udp_bind: String,
    /// Number of `std::env::vars()`.
    pub env_vars: usize,
    /// `std::env::var("PATH")`.
    pub env_path: String,
    /// Number of `std::env::args()`.
    pub args: usize,
    /// Bytes read from stdin (`read_to_end`), or the error.
    pub stdin: String,
    /// `std::env::current_dir()`.
    pub current_dir: String,
    /// Raw WASI errno of `fd_prestat_get(3)` (8 = `badf`: no preopened directory).
    pub prestat_fd3: u16,
    /// Raw WASI errno of `path_open(3, "etc/passwd")` (8 = `badf`).
    pub path_open_fd3: u16,
    /// Raw WASI errno of `sock_accept(3)` (8 = `badf`).
    pub sock_accept_fd3: u16,
    /// Raw WASI errno of `sock_accept(1)` on stdout (58 = `notsup`, or 8 = `badf`).
    pub sock_accept_stdout: u16,
}

fn outcome<T: std::fmt::Debug>(result: std::io::Result<T>) -> String {
    match result {
        Ok(value) => format!("ok: {value:?}"),
        Err(error) => format!("{:?}: {error}", error.kind()),
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi_raw {
    //! Raw WASI preview 1 calls (the signatures `wasi_snapshot_preview1` declares).
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        pub fn fd_prestat_get(fd: i32, buf: *mut u8) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn path_open(
            fd: i32,
            dirflags: i32,
            path: *const u8,
            path_len: usize,
            oflags: i32,
            rights_base: i64,
            rights_inheriting: i64,
            fdflags: i32,
            opened: *mut i32,
        ) -> i32;
        pub fn sock_accept(fd: i32, flags: i32, accepted: *mut i32) -> i32;
    }

    pub fn errnos() -> [u16; 4] {
        let mut buf = [0u8; 8];
        let mut fd = -1i32;
        let path = b"etc/passwd";
        // SAFETY: every pointer is to a live local of the size WASI writes there.
        unsafe {
            [
                fd_prestat_get(3, buf.as_mut_ptr()) as u16,
                // Rights: `fd_read` only (all bits set is not a valid rights value,
                // and wasmtime traps on it).
                path_open(3, 0, path.as_ptr(), path.len(), 0, 2, 0, 0, &mut fd) as u16,
                sock_accept(3, 0, &mut fd) as u16,
                sock_accept(1, 0, &mut fd) as u16,
            ]
        }
    }
}

/// Task `probe_wasi`: argument a host path; tries to reach the world outside the sandbox
/// through WASI and reports what it got ([`WasiProbe`]).
#[brine_guest::task]
pub fn probe_wasi(path: String) -> WasiProbe {
    use std::io::Read as _;
    #[cfg(target_arch = "wasm32")]
    let [
        prestat_fd3,
        path_open_fd3,
        sock_accept_fd3,
        sock_accept_stdout,
    ] = wasi_raw::errnos();
    #[cfg(not(target_arch = "wasm32"))]
    let [
        prestat_fd3,
        path_open_fd3,
        sock_accept_fd3,
        sock_accept_stdout,
    ] = [0u16; 4];
    let mut stdin = Vec::new();
    let probe = WasiProbe {
        open: outcome(std::fs::File::open(&path)),
        create: outcome(std::fs::File::create(format!("{path}.new"))),
        read_dir: outcome(std::fs::read_dir("/").map(|d| d.count())),
        read_dir_current: outcome(std::fs::read_dir(".").map(|d| d.count())),
        tcp_connect: outcome(std::net::TcpStream::connect("127.0.0.1:1")),
        tcp_bind: outcome(std::net::TcpListener::bind("127.0.0.1:0")),
        udp_bind: outcome(std::net::UdpSocket::bind("127.0.0.1:0")),
        env_vars: std::env::vars_os().count(),
        env_path: format!("{:?}", std::env::var("PATH")),
        args: std::env::args_os().count(),
        stdin: outcome(std::io::stdin().read_to_end(&mut stdin)),
        current_dir: outcome(std::env::current_dir()),
        prestat_fd3,
        path_open_fd3,
        sock_accept_fd3,
        sock_accept_stdout,
    };
    let _ = std::io::stdout().flush();
    probe
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
    fn lines_are_121_bytes_with_their_newline() {
        for i in [0, 7, 99_999, u64::MAX] {
            let line = line("stderr", i);
            assert_eq!(line.len() + 1, LINE_BYTES);
            assert!(line.starts_with("stderr line "), "{line}");
        }
        assert_eq!(print_lines(2), 2);
        assert_eq!(
            testing::call(__brine_task_print_lines_then_fail, b"1", Encoding::Json),
            testing::Outcome::GuestError("printed 1 lines".into())
        );
    }

    #[test]
    fn recursion_and_results_work_in_moderation() {
        assert_eq!(recurse(1000), 1000);
        assert_eq!(recurse_with_frames(10), 10);
        let bytes = big_result(300).unwrap();
        assert_eq!(bytes.len(), 300);
        assert_eq!(bytes[257], 1);
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
