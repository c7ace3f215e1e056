//! Run-time descriptors of the generated Mesos messages.
//!
//! The generated structs know how to read and write protobuf, but JSON needs field names
//! and enum value names, and Mesos-style validation needs to know which fields are
//! `required`. Both come from the file descriptor set that `build.rs` embeds.

use std::sync::OnceLock;

use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage,
    Value,
};

use crate::mesos::FILE_DESCRIPTOR_SET;
use crate::message::{CodecError, MesosMessage};

/// The descriptors of `mesos.v1`, `mesos.v1.executor` and `mesos.v1.scheduler`.
pub fn descriptor_pool() -> Result<&'static DescriptorPool, CodecError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|detail| CodecError::Descriptor(detail.clone()))
}

/// The descriptor of a generated message type.
pub fn descriptor<M: MesosMessage>() -> Result<MessageDescriptor, CodecError> {
    let name = M::full_name();
    descriptor_pool()?
        .get_message_by_name(&name)
        .ok_or(CodecError::UnknownMessageType(name))
}

/// Paths of the `required` fields that are absent, in protobuf's notation
/// (`update.status.task_id`, `resources[1].name`), in field order.
///
/// Presence is only known for a message read off the wire: a generated struct always
/// writes its required fields, so check the [`DynamicMessage`] before converting it.
pub(crate) fn missing_required_fields(message: &DynamicMessage) -> Vec<String> {
    let mut missing = Vec::new();
    collect_missing(message, "", &mut missing);
    missing
}

fn collect_missing(message: &DynamicMessage, prefix: &str, missing: &mut Vec<String>) {
    for field in message.descriptor().fields() {
        if field.cardinality() == Cardinality::Required && !message.has_field(&field) {
            missing.push(format!("{prefix}{}", field.name()));
            continue;
        }
        if !matches!(field.kind(), Kind::Message(_)) || !message.has_field(&field) {
            continue;
        }
        match message.get_field(&field).as_ref() {
            Value::Message(inner) => {
                collect_missing(inner, &format!("{prefix}{}.", field.name()), missing);
            }
            Value::List(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let Value::Message(inner) = item {
                        let prefix = format!("{prefix}{}[{index}].", field.name());
                        collect_missing(inner, &prefix, missing);
                    }
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    if let Value::Message(inner) = value {
                        let key = match key {
                            MapKey::String(key) => key.clone(),
                            other => format!("{other:?}"),
                        };
                        let prefix = format!("{prefix}{}[{key}].", field.name());
                        collect_missing(inner, &prefix, missing);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mesos::v1::{TaskStatus, executor, scheduler};

    #[test]
    fn pool_knows_every_package() {
        let pool = descriptor_pool().unwrap();
        let packages: Vec<_> = pool.files().map(|f| f.package_name().to_owned()).collect();
        for package in ["mesos.v1", "mesos.v1.executor", "mesos.v1.scheduler"] {
            assert!(packages.iter().any(|p| p == package), "{package}");
        }
        assert_eq!(
            descriptor::<TaskStatus>().unwrap().full_name(),
            "mesos.v1.TaskStatus"
        );
        assert_eq!(
            descriptor::<executor::event::Subscribed>()
                .unwrap()
                .full_name(),
            "mesos.v1.executor.Event.Subscribed"
        );
        assert_eq!(
            descriptor::<scheduler::call::reconcile::Task>()
                .unwrap()
                .full_name(),
            "mesos.v1.scheduler.Call.Reconcile.Task"
        );
    }
}
