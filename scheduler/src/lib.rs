//! The Brine scheduler library.
//!
//! Not built yet: the scheduler library, its Mesos v1 scheduler client and the `brine`
//! command line arrive with the "Submitting closures" issue. This crate is empty on purpose.
