//! The `brine` host imports of ABI v1, behind safe wrappers.
//!
//! On `wasm32` these are the real imports. Everywhere else a small thread-local shim
//! stands in for the host (see `crate::testing`), so task code compiles, lints and
//! unit-tests on the developer's machine.

#[cfg(target_arch = "wasm32")]
mod imp {
    // The Rust names differ from the import names on purpose: a task may well be called
    // `panic` or `error`, and its export must not be confused with these imports.
    #[link(wasm_import_module = "brine")]
    unsafe extern "C" {
        #[link_name = "result"]
        fn brine_result(ptr: *const u8, len: usize);
        #[link_name = "error"]
        fn brine_error(ptr: *const u8, len: usize);
        #[link_name = "panic"]
        fn brine_panic(ptr: *const u8, len: usize);
        #[link_name = "progress"]
        safe fn brine_progress(fraction: f64);
        #[link_name = "dataset_len"]
        safe fn brine_dataset_len() -> i64;
        #[link_name = "dataset_read"]
        fn brine_dataset_read(offset: i64, ptr: *mut u8, len: usize) -> i64;
    }

    pub fn result(bytes: &[u8]) {
        // SAFETY: the pointer and length describe a live, initialised slice; the host
        // only reads (copies) it before returning.
        unsafe { brine_result(bytes.as_ptr(), bytes.len()) }
    }

    pub fn error(message: &str) {
        // SAFETY: as in `result`.
        unsafe { brine_error(message.as_ptr(), message.len()) }
    }

    pub fn panic(message: &str) {
        // SAFETY: as in `result`.
        unsafe { brine_panic(message.as_ptr(), message.len()) }
    }

    pub fn progress(fraction: f64) {
        brine_progress(fraction);
    }

    pub fn dataset_len() -> i64 {
        brine_dataset_len()
    }

    pub fn dataset_read(offset: i64, buf: &mut [u8]) -> i64 {
        // SAFETY: the host writes at most `buf.len()` bytes at `buf`'s start, which is
        // a live, exclusively borrowed slice of our memory; any byte value is a valid u8.
        unsafe { brine_dataset_read(offset, buf.as_mut_ptr(), buf.len()) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    //! Host stand-in with the host's documented semantics (ABI.md), state per thread.

    use std::cell::RefCell;

    #[derive(Default)]
    pub struct HostState {
        pub dataset: Vec<u8>,
        pub progress: Vec<f64>,
        pub result: Option<Vec<u8>>,
        pub error: Option<String>,
        pub panic: Option<String>,
    }

    thread_local! {
        pub static STATE: RefCell<HostState> = RefCell::new(HostState::default());
    }

    pub fn result(bytes: &[u8]) {
        STATE.with_borrow_mut(|state| state.result = Some(bytes.to_vec()));
    }

    pub fn error(message: &str) {
        STATE.with_borrow_mut(|state| state.error = Some(message.to_owned()));
    }

    pub fn panic(message: &str) {
        STATE.with_borrow_mut(|state| state.panic = Some(message.to_owned()));
    }

    pub fn progress(fraction: f64) {
        if !fraction.is_nan() {
            STATE.with_borrow_mut(|state| state.progress.push(fraction.clamp(0.0, 1.0)));
        }
    }

    pub fn dataset_len() -> i64 {
        STATE.with_borrow(|state| i64::try_from(state.dataset.len()).unwrap_or(i64::MAX))
    }

    pub fn dataset_read(offset: i64, buf: &mut [u8]) -> i64 {
        let Ok(offset) = usize::try_from(offset) else {
            return -1;
        };
        STATE.with_borrow(|state| {
            let available = state.dataset.get(offset..).unwrap_or(&[]);
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            i64::try_from(n).unwrap_or(i64::MAX)
        })
    }
}

pub(crate) use imp::*;
