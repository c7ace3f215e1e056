//! End-to-end tests across Brine's pieces.
//!
//! Not built yet: they need the executor and the local cluster. Tests of one piece live
//! beside it (`proto/tests`, `executor/tests`, `local/tests`).
