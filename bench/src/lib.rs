//! `brine-bench`: the benchmark harness.
//!
//! Not built yet: it arrives with the benchmark issue. Until then the runtime's own
//! criterion benchmark lives in `executor/benches/`. This crate is empty on purpose.
