//! The generated Mesos v1 message types, one module per protobuf package.
//!
//! The types come from `proto/mesos/v1/**.proto` (Brine's subset of Mesos's own files,
//! with the same names, numbers and types), compiled by `build.rs`. Protobuf `bytes`
//! fields are [`bytes::Bytes`]; proto2 `optional` fields are `Option`s, with accessors
//! (e.g. `TaskStatus::source()`) that return the proto2 default when unset.

/// Package `mesos.v1`: identifiers, resources, offers, tasks, statuses.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

    /// Package `mesos.v1.executor`: the executor API's `Call` and `Event`.
    pub mod executor {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.executor.rs"));
    }

    /// Package `mesos.v1.scheduler`: the scheduler API's `Call` and `Event`.
    pub mod scheduler {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
    }
}

/// The encoded `FileDescriptorSet` of the three packages (without source info), for
/// reflection: see [`crate::reflect::descriptor_pool`].
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mesos_v1_descriptor_set.bin"));
