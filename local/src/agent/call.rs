//! Reading and validating an executor `Call` exactly as the Mesos agent does
//! (`src/slave/http.cpp` `Http::executor`, `validateExecutorCall`), with Mesos's error
//! texts. JSON is checked the way stout's `protobuf::parse` walks it, so type errors
//! get Mesos's wording.

use brine_proto::codec::{self, CodecError, ContentType};
use brine_proto::mesos::v1::executor::{Call, call};
use brine_proto::mesos::v1::{TaskState, task_status};
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::Value;

/// Decodes a body that the caller has already matched to `content_type`.
pub fn decode(content_type: ContentType, body: &[u8]) -> Result<Call, String> {
    match content_type {
        ContentType::Protobuf => codec::decode_checked::<Call>(ContentType::Protobuf, body)
            .map_err(|_| "Failed to parse body into Call protobuf".to_owned()),
        ContentType::Json => {
            let mut value: Value = serde_json::from_slice(body).map_err(|e| {
                format!(
                    "Failed to parse body into JSON: {}",
                    picojson_error(body, &e)
                )
            })?;
            let convert =
                |detail: String| format!("Failed to convert JSON into Call protobuf: {detail}");
            let descriptor =
                brine_proto::reflect::descriptor::<Call>().map_err(|e| convert(e.to_string()))?;
            match &mut value {
                Value::Object(_) => stout_check(&mut value, &descriptor).map_err(convert)?,
                _ => return Err(convert("Expecting a JSON object".to_owned())),
            }
            let normalized = serde_json::to_vec(&value).map_err(|e| convert(e.to_string()))?;
            codec::decode_checked::<Call>(ContentType::Json, &normalized).map_err(|e| {
                convert(match e {
                    CodecError::MissingRequiredFields { fields, .. } => {
                        format!("Missing required fields: {}", fields.join(", "))
                    }
                    CodecError::JsonSchema { detail, .. } => detail,
                    other => other.to_string(),
                })
            })
        }
    }
}

/// picojson's message: the line of the error, then the rest of that line from where
/// parsing stopped (empty when the input just ended).
fn picojson_error(body: &[u8], error: &serde_json::Error) -> String {
    let line = error.line().max(1);
    let rest = if error.is_eof() {
        String::new()
    } else {
        let text = String::from_utf8_lossy(body);
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        let column = error.column().saturating_sub(1);
        line_text
            .chars()
            .skip(column)
            .filter(|c| *c >= ' ')
            .collect()
    };
    format!("syntax error at line {line} near: {rest}")
}

/// Walks a JSON object against a message descriptor as stout does (keys in sorted
/// order, which is what `serde_json::Map` gives), returning stout's first error, and
/// rewrites `bytes` fields into canonical base64 (stout skips whitespace and stops at
/// '=').
fn stout_check(value: &mut Value, descriptor: &MessageDescriptor) -> Result<(), String> {
    let Value::Object(object) = value else {
        return Ok(());
    };
    for (key, item) in object.iter_mut() {
        let Some(field) = descriptor.get_field_by_name(key) else {
            continue;
        };
        if field.is_map() {
            continue;
        }
        match item {
            Value::Array(items) => {
                if !field.is_list() {
                    return Err(format!("Not expecting a JSON array for field '{key}'"));
                }
                for element in items {
                    check_single(element, &field)?;
                }
            }
            other => check_single(other, &field)?,
        }
    }
    Ok(())
}

fn check_single(value: &mut Value, field: &prost_reflect::FieldDescriptor) -> Result<(), String> {
    let name = field.name();
    match (value, field.kind()) {
        (Value::Null, _) => Ok(()),
        (value @ Value::Object(_), Kind::Message(message)) => stout_check(value, &message),
        (Value::Object(_), _) => Err(format!("Not expecting a JSON object for field '{name}'")),
        (Value::String(text), Kind::Bytes) => {
            let decoded = stout_base64_decode(text)
                .map_err(|e| format!("Failed to base64 decode bytes field '{name}': {e}"))?;
            *text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, decoded);
            Ok(())
        }
        (Value::String(_), Kind::String | Kind::Enum(_)) => Ok(()),
        (Value::String(_), Kind::Message(_)) => {
            Err(format!("Not expecting a JSON string for field '{name}'"))
        }
        (Value::String(text), Kind::Bool) => match text.as_str() {
            "true" | "false" => Ok(()),
            _ => Err(format!(
                "Failed to parse '{text}' as a JSON boolean for field '{name}': syntax error at line 1 near: {text}"
            )),
        },
        (Value::String(text), _) => {
            if matches!(text.as_str(), "Infinity" | "-Infinity") || text.parse::<f64>().is_ok() {
                Ok(())
            } else {
                Err(format!(
                    "Failed to parse '{text}' as a JSON number for field '{name}': syntax error at line 1 near: {text}"
                ))
            }
        }
        (
            Value::Number(_),
            Kind::Bool | Kind::String | Kind::Bytes | Kind::Enum(_) | Kind::Message(_),
        ) => Err(format!("Not expecting a JSON number for field '{name}'")),
        (Value::Number(_), _) => Ok(()),
        (Value::Bool(_), Kind::Bool) => Ok(()),
        (Value::Bool(_), _) => Err(format!("Not expecting a JSON boolean for field '{name}'")),
        (Value::Array(_), _) => Err(format!("Not expecting a JSON array for field '{name}'")),
    }
}

/// stout's `base64::decode`: whitespace skipped, stops at the first '=', any other
/// character outside the alphabet is an error.
fn stout_base64_decode(text: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut quad = [0u8; 4];
    let mut n = 0;
    for c in text.bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let Some(index) = ALPHABET.iter().position(|a| *a == c) else {
            return Err(format!("Invalid character '{}'", c as char));
        };
        quad[n] = index as u8;
        n += 1;
        if n == 4 {
            out.push((quad[0] << 2) | (quad[1] >> 4));
            out.push((quad[1] << 4) | (quad[2] >> 2));
            out.push((quad[2] << 6) | quad[3]);
            n = 0;
        }
    }
    if n > 1 {
        out.push((quad[0] << 2) | (quad[1] >> 4));
    }
    if n > 2 {
        out.push((quad[1] << 4) | (quad[2] >> 2));
    }
    Ok(out)
}

/// `validateExecutorCall`: the text after "Failed to validate Executor::Call: ".
pub fn validate(call: &Call) -> Result<(), String> {
    let Some(kind) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    let eid = &call.executor_id.value;
    let fid = &call.framework_id.value;
    match kind {
        call::Type::Subscribe if call.subscribe.is_none() => {
            Err("Expecting 'subscribe' to be present".to_owned())
        }
        call::Type::Update => {
            let Some(update) = &call.update else {
                return Err("Expecting 'update' to be present".to_owned());
            };
            let status = &update.status;
            let Some(uuid) = &status.uuid else {
                return Err("Expecting 'uuid' to be present".to_owned());
            };
            if uuid.len() != 16 {
                return Err("Not a valid UUID".to_owned());
            }
            if let Some(status_eid) = &status.executor_id
                && status_eid.value != *eid
            {
                return Err(format!(
                    "ExecutorID in Call: {eid} does not match ExecutorID in TaskStatus: {}",
                    status_eid.value
                ));
            }
            if status.source() != task_status::Source::Executor {
                return Err(format!(
                    "Received Call from executor {eid} of framework {fid} with invalid source, \
                     expecting 'SOURCE_EXECUTOR'"
                ));
            }
            if status.state() == TaskState::TaskStaging {
                return Err(format!(
                    "Received TASK_STAGING from executor {eid} of framework {fid} which is not allowed"
                ));
            }
            Ok(())
        }
        call::Type::Message if call.message.is_none() => {
            Err("Expecting 'message' to be present".to_owned())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_like_stout() {
        assert_eq!(stout_base64_decode("aGk=").unwrap_or_default(), b"hi");
        assert_eq!(stout_base64_decode("aG k").unwrap_or_default(), b"hi");
        assert_eq!(
            stout_base64_decode("not base64 !!").err().as_deref(),
            Some("Invalid character '!'")
        );
    }
}
