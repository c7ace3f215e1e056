//! Generates the Mesos v1 message types from `proto/` with protox (a pure-Rust protobuf
//! compiler, so no system `protoc` is needed) and prost, and writes the file descriptor
//! set that the JSON codec reflects over.

use std::env;
use std::error::Error;
use std::fs;
use std::path::PathBuf;

use prost::Message as _;

const PROTOS: [&str; 3] = [
    "mesos/v1/mesos.proto",
    "mesos/v1/executor/executor.proto",
    "mesos/v1/scheduler/scheduler.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let include = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");

    let mut compiler = protox::Compiler::new([&include])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();

    // The embedded copy drops source info (comments, spans): reflection needs none of it.
    let mut embedded = fds.clone();
    for file in &mut embedded.file {
        file.source_code_info = None;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("mesos_v1_descriptor_set.bin"),
        embedded.encode_to_vec(),
    )?;

    prost_build::Config::new()
        // `prost::Name` gives every message its full protobuf name, which is how the JSON
        // codec finds the message's descriptor.
        .enable_type_names()
        // `bytes::Bytes` so that `data` fields decoded from a `Bytes` buffer share it
        // instead of being copied (task payloads may carry whole modules).
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
