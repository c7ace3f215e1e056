//! Names and numbers of the guest ABI (`guest-sdk/ABI.md`), in one place.

/// The import module of Brine's own host functions.
pub const BRINE_MODULE: &str = "brine";
/// The only other import module a task may use.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// Import modules a task may use.
pub const ALLOWED_IMPORT_MODULES: [&str; 2] = [BRINE_MODULE, WASI_MODULE];

/// ABI versions this host speaks.
pub const SUPPORTED_VERSIONS: [u32; 1] = [1];
/// Prefix of the marker export naming a module's ABI version (`__brine_abi_v1`).
pub const MARKER_PREFIX: &str = "__brine_abi_v";
/// The marker of the version implemented here.
pub const MARKER_V1: &str = "__brine_abi_v1";

/// The guest's linear memory.
pub const MEMORY: &str = "memory";
/// `func(len: i32) -> i32`: guest-owned space for the argument bytes.
pub const ALLOC: &str = "__brine_alloc";
/// Optional WASI reactor initializer, called once per instance.
pub const INITIALIZE: &str = "_initialize";

/// Entry return codes.
pub const RC_OK: i32 = 0;
pub const RC_GUEST_ERROR: i32 = 1;
pub const RC_ARGUMENT_DECODE: i32 = 2;
pub const RC_RESULT_ENCODE: i32 = 3;

/// Whether an export name is reserved (never a task): `_…` and `__brine…`.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with('_')
}

/// The supported versions, for messages: "1" or "1, 2".
pub fn supported_versions() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
