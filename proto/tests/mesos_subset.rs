//! Checks that our `.proto` files are a true subset of Mesos's own: every message, field
//! and enum value we declare exists in Mesos with the same name, number, type, label,
//! default and deprecation (the last two change Mesos's JSON), and every enum keeps
//! Mesos's first (default) value.
//!
//! Mesos's own `.proto` files are not part of this repository (they are Mesos's code):
//! `MESOS_PROTO_DIR` names the `include/` directory of a Mesos checkout, and
//! `make test-mesos-protos MESOS_PROTO_DIR=…/mesos/include` runs this test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use brine_proto::reflect::descriptor_pool;
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

const FILES: [&str; 3] = [
    "mesos/v1/mesos.proto",
    "mesos/v1/executor/executor.proto",
    "mesos/v1/scheduler/scheduler.proto",
];

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
        other => format!("{other:?}"),
    }
}

fn field_signature(field: &FieldDescriptor) -> String {
    let proto = field.field_descriptor_proto();
    format!(
        "{} {:?} {} map={} packed={} default={:?} deprecated={}",
        field.name(),
        field.cardinality(),
        kind_name(&field.kind()),
        field.is_map(),
        field.is_packed(),
        proto.default_value,
        proto.options.as_ref().is_some_and(|o| o.deprecated()),
    )
}

fn compare_enum(ours: &EnumDescriptor, theirs: &EnumDescriptor, problems: &mut Vec<String>) {
    for value in ours.values() {
        match theirs.get_value_by_name(value.name()) {
            Some(t) if t.number() == value.number() => {}
            Some(t) => problems.push(format!(
                "{}: number {} here, {} in Mesos",
                value.full_name(),
                value.number(),
                t.number()
            )),
            None => problems.push(format!("{}: not in Mesos", value.full_name())),
        }
    }
    if ours.default_value().name() != theirs.default_value().name() {
        problems.push(format!(
            "{}: first (default) value {} here, {} in Mesos",
            ours.full_name(),
            ours.default_value().name(),
            theirs.default_value().name()
        ));
    }
}

fn compare_message(
    ours: &MessageDescriptor,
    theirs: &MessageDescriptor,
    problems: &mut Vec<String>,
    omitted: &mut Vec<String>,
) {
    for field in ours.fields() {
        match theirs.get_field(field.number()) {
            Some(t) if field_signature(&t) == field_signature(&field) => {}
            Some(t) => problems.push(format!(
                "{} = {}: here `{}`, in Mesos `{}`",
                field.full_name(),
                field.number(),
                field_signature(&field),
                field_signature(&t)
            )),
            None => problems.push(format!(
                "{} = {}: no such field number in Mesos",
                field.full_name(),
                field.number()
            )),
        }
    }
    for field in theirs.fields() {
        if ours.get_field(field.number()).is_none() {
            omitted.push(format!("{} = {}", field.full_name(), field.number()));
        }
    }
}

#[test]
#[ignore = "needs Mesos's .proto files: make test-mesos-protos MESOS_PROTO_DIR=<mesos checkout>/include"]
fn our_protos_are_a_subset_of_mesos() {
    let dir = std::env::var_os("MESOS_PROTO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("set MESOS_PROTO_DIR to the include/ directory of a Mesos checkout")
        });
    let compiled = protox::Compiler::new([&dir]).and_then(|mut compiler| {
        compiler.open_files(FILES)?;
        Ok(compiler)
    });
    let compiler =
        compiled.unwrap_or_else(|e| panic!("Mesos's .proto files in {}: {e}", dir.display()));
    let mesos: DescriptorPool = compiler.descriptor_pool();
    let ours = descriptor_pool().unwrap();

    let mut problems = Vec::new();
    let mut omitted = Vec::new();
    let mut messages = 0;
    for message in ours.all_messages() {
        if message.is_map_entry() {
            continue;
        }
        messages += 1;
        match mesos.get_message_by_name(message.full_name()) {
            Some(theirs) => compare_message(&message, &theirs, &mut problems, &mut omitted),
            None => problems.push(format!("message {}: not in Mesos", message.full_name())),
        }
    }
    let mut enums = 0;
    for enumeration in ours.all_enums() {
        enums += 1;
        match mesos.get_enum_by_name(enumeration.full_name()) {
            Some(theirs) => compare_enum(&enumeration, &theirs, &mut problems),
            None => problems.push(format!("enum {}: not in Mesos", enumeration.full_name())),
        }
    }
    eprintln!("checked {messages} messages and {enums} enums; fields of kept messages left out:");
    for field in &omitted {
        eprintln!("  {field}");
    }
    assert!(
        problems.is_empty(),
        "differences from Mesos:\n{}",
        problems.join("\n")
    );
}
