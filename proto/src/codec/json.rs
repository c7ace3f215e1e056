//! JSON as Mesos writes and reads it (stout's `JSON::protobuf` and `protobuf::parse`),
//! which is not protobuf's canonical JSON mapping.
//!
//! Writing:
//! - field names are the `.proto` names (`framework_id`, not `frameworkId`);
//! - enums are value names; `bytes` are standard base64 with padding;
//! - 64-bit integers are JSON numbers, not strings; doubles keep a decimal point (`32.0`);
//! - fields that are set are written even when equal to their default
//!   (`"failover_timeout":0.0`), since proto2 tracks presence;
//! - unset fields are left out, except that an unset optional field with an explicit
//!   `[default = …]` that is not deprecated is written with that default, as Mesos does
//!   (an agent's `ip_addresses` entries get `"protocol":"IPv4"` in JSON, and nothing on
//!   the protobuf wire); empty repeated fields are left out;
//! - enum numbers this schema does not know (from a newer Mesos) are left out, as a
//!   proto2 parser would have kept them out of the field; in a `required` field they make
//!   encoding fail, as Mesos could not have parsed such a message.
//!
//! Reading:
//! - the body must be a JSON object;
//! - only `.proto` names are fields: any other key, camelCase ones included, is ignored
//!   like any unknown field;
//! - `null` means "not set", in objects and in arrays;
//! - an enum must be a name: a number is refused ("Not expecting a JSON number"), an
//!   unknown name leaves the field unset (or is refused for a `required` field);
//! - numbers may also be given as strings, and integers are accepted for doubles.

use prost_reflect::{
    Cardinality, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    ReflectMessage, SerializeOptions, Value as ReflectValue,
};
use serde_json::{Map, Value};

use crate::message::{CodecError, MesosMessage};
use crate::reflect;

const SERIALIZE: SerializeOptions = SerializeOptions::new()
    .use_proto_field_name(true)
    .use_enum_numbers(false)
    .stringify_64_bit_integers(false)
    .skip_default_fields(true);

/// Encodes `message` as compact JSON.
pub fn to_vec<M: MesosMessage>(message: &M) -> Result<Vec<u8>, CodecError> {
    let encode_error = |detail: String| CodecError::JsonEncode {
        message: M::full_name(),
        detail,
    };
    let mut dynamic = DynamicMessage::new(reflect::descriptor::<M>()?);
    dynamic
        .transcode_from(message)
        .map_err(|e| encode_error(e.to_string()))?;
    prepare_for_mesos(&mut dynamic).map_err(encode_error)?;
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut serializer, &SERIALIZE)
        .map_err(|e| encode_error(e.to_string()))?;
    Ok(out)
}

/// Encodes `message` as a JSON value (handy for tests and logs).
pub fn to_value<M: MesosMessage>(message: &M) -> Result<Value, CodecError> {
    let bytes = to_vec(message)?;
    serde_json::from_slice(&bytes).map_err(|e| CodecError::JsonEncode {
        message: M::full_name(),
        detail: e.to_string(),
    })
}

/// Decodes a JSON body.
pub fn from_slice<M: MesosMessage>(body: &[u8]) -> Result<M, CodecError> {
    let dynamic = dynamic_from_slice(reflect::descriptor::<M>()?, body)?;
    transcode(&dynamic)
}

/// Decodes a JSON value.
pub fn from_value<M: MesosMessage>(value: Value) -> Result<M, CodecError> {
    let dynamic = dynamic_from_value(reflect::descriptor::<M>()?, value)?;
    transcode(&dynamic)
}

pub(super) fn dynamic_from_slice(
    descriptor: MessageDescriptor,
    body: &[u8],
) -> Result<DynamicMessage, CodecError> {
    let value: Value = serde_json::from_slice(body).map_err(|source| CodecError::Json {
        message: descriptor.full_name().to_owned(),
        source,
    })?;
    dynamic_from_value(descriptor, value)
}

fn dynamic_from_value(
    descriptor: MessageDescriptor,
    mut value: Value,
) -> Result<DynamicMessage, CodecError> {
    let name = descriptor.full_name().to_owned();
    let Value::Object(object) = &mut value else {
        return Err(CodecError::JsonSchema {
            message: name,
            detail: "expecting a JSON object".to_owned(),
        });
    };
    normalize_message(object, &descriptor).map_err(|detail| CodecError::JsonSchema {
        message: name.clone(),
        detail,
    })?;
    // What is left uses only known field names and enum names; anything prost-reflect
    // still refuses is a value of the wrong JSON type.
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    DynamicMessage::deserialize_with_options(descriptor, value, &options).map_err(|source| {
        CodecError::Json {
            message: name,
            source,
        }
    })
}

pub(super) fn transcode<M: MesosMessage>(dynamic: &DynamicMessage) -> Result<M, CodecError> {
    dynamic
        .transcode_to::<M>()
        .map_err(|e| CodecError::JsonSchema {
            message: M::full_name(),
            detail: e.to_string(),
        })
}

/// Makes `message`, at every depth, what Mesos's JSON writer would see and write:
/// - unset singular fields with an explicit default, not deprecated, are set to it;
/// - enum values this schema does not know are dropped: proto2 parsers keep them out of
///   the field (Mesos would not write them), and a number could not be read back. In a
///   `required` field that is an error: Mesos could not have parsed the message at all.
fn prepare_for_mesos(message: &mut DynamicMessage) -> Result<(), String> {
    for field in message.descriptor().fields() {
        if let Kind::Enum(enumeration) = field.kind() {
            let known = |value: &ReflectValue| {
                value
                    .as_enum_number()
                    .is_some_and(|number| enumeration.get_value(number).is_some())
            };
            if message.has_field(&field) {
                match message.get_field_mut(&field) {
                    ReflectValue::List(items) => items.retain(known),
                    value if known(value) => {}
                    value if field.cardinality() == Cardinality::Required => {
                        return Err(format!(
                            "required field '{}' holds {value:?}, not a value of {}",
                            field.full_name(),
                            enumeration.full_name()
                        ));
                    }
                    _ => message.clear_field(&field),
                }
            }
        }
        if !field.is_list() && !message.has_field(&field) {
            let proto = field.field_descriptor_proto();
            let deprecated = proto.options.as_ref().is_some_and(|o| o.deprecated());
            if proto.default_value.is_some() && !deprecated {
                message.set_field(&field, field.default_value());
            }
        }
        if !matches!(field.kind(), Kind::Message(_)) || !message.has_field(&field) {
            continue;
        }
        match message.get_field_mut(&field) {
            ReflectValue::Message(inner) => prepare_for_mesos(inner)?,
            ReflectValue::List(items) => {
                for item in items {
                    if let ReflectValue::Message(inner) = item {
                        prepare_for_mesos(inner)?;
                    }
                }
            }
            ReflectValue::Map(entries) => {
                for item in entries.values_mut() {
                    if let ReflectValue::Message(inner) = item {
                        prepare_for_mesos(inner)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Rewrites `object` in place into the subset prost-reflect reads the way Mesos would:
/// drops unknown keys and `null`s, checks enums. Errors are Mesos-style details.
fn normalize_message(
    object: &mut Map<String, Value>,
    descriptor: &MessageDescriptor,
) -> Result<(), String> {
    let mut dropped = Vec::new();
    for (key, value) in object.iter_mut() {
        let keep = match descriptor.get_field_by_name(key) {
            Some(field) => normalize_field(value, &field)?,
            None => false,
        };
        if !keep {
            dropped.push(key.clone());
        }
    }
    for key in dropped {
        object.remove(&key);
    }
    Ok(())
}

/// Returns whether the field should be kept.
fn normalize_field(value: &mut Value, field: &FieldDescriptor) -> Result<bool, String> {
    if value.is_null() {
        return Ok(false);
    }
    if field.is_map() {
        if let (Value::Object(entries), Kind::Message(entry)) = (&mut *value, field.kind()) {
            let value_field = entry.map_entry_value_field();
            let mut dropped = Vec::new();
            for (key, item) in entries.iter_mut() {
                if !normalize_single(item, &value_field)? {
                    dropped.push(key.clone());
                }
            }
            for key in dropped {
                entries.remove(&key);
            }
        }
        return Ok(true);
    }
    if field.is_list() {
        if let Value::Array(items) = value {
            let mut kept = Vec::with_capacity(items.len());
            for mut item in items.drain(..) {
                if normalize_single(&mut item, field)? {
                    kept.push(item);
                }
            }
            *items = kept;
        }
        // A non-array is left for prost-reflect to refuse.
        return Ok(true);
    }
    normalize_single(value, field)
}

/// One value of `field` (an element, for a repeated field). Returns whether to keep it.
fn normalize_single(value: &mut Value, field: &FieldDescriptor) -> Result<bool, String> {
    match (field.kind(), &mut *value) {
        (_, Value::Null) => Ok(false),
        (Kind::Message(message), Value::Object(object)) => {
            normalize_message(object, &message)?;
            Ok(true)
        }
        (Kind::Enum(enumeration), Value::String(name)) => {
            if enumeration.get_value_by_name(name).is_some() {
                Ok(true)
            } else if field.cardinality() == Cardinality::Required {
                Err(format!(
                    "Failed to find enum for '{name}' (field '{}')",
                    field.name()
                ))
            } else {
                Ok(false)
            }
        }
        (Kind::Enum(_), Value::Number(_)) => Err(format!(
            "Not expecting a JSON number for field '{}'",
            field.name()
        )),
        _ => Ok(true),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mesos::v1::{Resource, TaskStatus, executor, scheduler, value};
    use serde_json::json;

    #[test]
    fn writes_mesos_style() {
        let resource = Resource {
            name: "ports".into(),
            r#type: value::Type::Ranges as i32,
            ranges: Some(value::Ranges {
                range: vec![value::Range {
                    begin: 31000,
                    end: u64::MAX,
                }],
            }),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(to_vec(&resource).unwrap()).unwrap(),
            r#"{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":18446744073709551615}]}}"#
        );
        let status = TaskStatus {
            timestamp: Some(0.0),
            uuid: Some(vec![0, 1, 254, 255].into()),
            ..Default::default()
        };
        let value = to_value(&status).unwrap();
        assert_eq!(value["timestamp"], json!(0.0));
        assert_eq!(value["uuid"], json!("AAH+/w=="));
        assert!(value.get("message").is_none());
    }

    #[test]
    fn writes_defaults_like_mesos() {
        use crate::mesos::v1::{CommandInfo, FrameworkInfo, NetworkInfo, network_info};
        let command = CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        };
        // `shell` defaults to true; `uris` is empty and so left out.
        assert_eq!(
            to_value(&command).unwrap(),
            json!({"value": "true", "shell": true})
        );
        let network = NetworkInfo {
            ip_addresses: vec![network_info::IpAddress {
                ip_address: Some("127.0.0.1".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            to_value(&network).unwrap(),
            json!({"ip_addresses": [{"protocol": "IPv4", "ip_address": "127.0.0.1"}]})
        );
        // The deprecated `role` is not written although it has a default.
        let framework = FrameworkInfo {
            user: "root".into(),
            name: "brine".into(),
            ..Default::default()
        };
        assert_eq!(
            to_value(&framework).unwrap(),
            json!({"user": "root", "name": "brine", "failover_timeout": 0.0, "checkpoint": false})
        );
    }

    #[test]
    fn reads_like_mesos() {
        // camelCase is an unknown field; null is unset; unknown enum names are dropped.
        let call: scheduler::Call = from_value(json!({
            "frameworkId": {"value": "camel"},
            "type": "NOT_A_TYPE",
            "subscribe": null,
            "no_such_field": 1,
            "revive": {"roles": ["a", null, "b"]},
        }))
        .unwrap();
        assert_eq!(call.framework_id, None);
        assert_eq!(call.r#type, None);
        assert_eq!(call.revive.unwrap().roles, ["a", "b"]);

        let error = from_value::<executor::Call>(json!({"type": 3})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to convert JSON into mesos.v1.executor.Call: \
             Not expecting a JSON number for field 'type'"
        );
        let error = from_value::<TaskStatus>(json!({"state": "TASK_NOPE"})).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("Failed to find enum for 'TASK_NOPE'")
        );
        assert!(matches!(
            from_value::<TaskStatus>(json!([1])).unwrap_err(),
            CodecError::JsonSchema { .. }
        ));
        assert!(matches!(
            from_value::<TaskStatus>(json!({"message": {"x": 1}})).unwrap_err(),
            CodecError::Json { .. }
        ));
    }

    #[test]
    fn integers_and_strings_for_numbers() {
        let scalar: value::Scalar = from_value(json!({"value": 32})).unwrap();
        assert_eq!(scalar.value, 32.0);
        let range: value::Range = from_value(json!({"begin": "1", "end": 2})).unwrap();
        assert_eq!((range.begin, range.end), (1, 2));
    }
}
