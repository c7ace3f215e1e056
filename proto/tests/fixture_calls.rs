//! Calls sent to a real Mesos 1.12 (subscribe requests and the recorded call/response
//! pairs): their bodies decode, and where Mesos refused a body for a reason the codec
//! can see (content type, JSON syntax, enum spelling, base64, required fields, protobuf
//! garbage), the codec refuses it too, with the matching error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use brine_proto::codec::{self, CodecError, ContentType, MesosMessage, json};
use brine_proto::mesos::v1::{executor, scheduler};
use brine_proto::reflect;
use common::{STREAMS, b64, parse_http, read, read_json, split_records, unb64};
use prost_reflect::DynamicMessage;
use serde_json::Value;

#[test]
fn subscribe_requests_decode() {
    for run in ["protobuf", "json"] {
        let expected = ContentType::from_accept(Some(run_media_type(run).as_bytes())).unwrap();
        for api in ["executor", "scheduler"] {
            let at = format!("{api}-subscribe-request.{run}.http");
            let request = parse_http(&read(&at));
            assert_eq!(
                request.start_line,
                format!("POST /api/v1/{api} HTTP/1.1"),
                "{at}"
            );
            let length: usize = request.header("Content-Length").unwrap().parse().unwrap();
            assert_eq!(length, request.body.len(), "{at}");
            let content_type =
                ContentType::from_content_type(request.header("Content-Type").unwrap().as_bytes())
                    .unwrap();
            // The Accept header picks the encoding the response head then announced.
            let accept =
                ContentType::from_accept(request.header("Accept").map(str::as_bytes)).unwrap();
            assert_eq!(accept, expected, "{at}");
            let head = parse_http(&read(&format!("{api}-subscribe-response-head.{run}.txt")));
            assert_eq!(head.header("Content-Type"), Some(accept.as_str()), "{at}");

            if api == "executor" {
                let call: executor::Call =
                    codec::decode_checked(content_type, &request.body).unwrap();
                assert_eq!(call.r#type(), executor::call::Type::Subscribe);
                let subscribe = call.subscribe.unwrap();
                assert!(subscribe.unacknowledged_tasks.is_empty());
                assert!(subscribe.unacknowledged_updates.is_empty());
                assert_eq!(call.executor_id.value, format!("capture-executor-{run}"));
            } else {
                let call: scheduler::Call =
                    codec::decode_checked(content_type, &request.body).unwrap();
                assert_eq!(call.r#type(), scheduler::call::Type::Subscribe);
                assert!(call.framework_id.is_none());
                let info = call.subscribe.unwrap().framework_info;
                assert_eq!(info.user, "root");
                assert_eq!(info.name, "capture-scheduler");
                assert_eq!(info.roles, ["*"]);
                assert_eq!(info.failover_timeout, Some(0.0));
                assert_eq!(info.checkpoint(), run == "json");
            }
        }
    }
}

fn run_media_type(run: &str) -> &'static str {
    match run {
        "protobuf" => ContentType::Protobuf.as_str(),
        _ => ContentType::Json.as_str(),
    }
}

/// What the codec must make of a recorded call, judging from Mesos's answer.
#[derive(Debug)]
enum Expect {
    /// Nothing to decode (no body or no Content-Type).
    Skip,
    BadContentType,
    BadJson,
    BadJsonSchema(String),
    BadProtobuf,
    Missing(String),
    /// Mesos parsed it (whatever it then thought of the contents).
    Decodes,
}

fn expectation(record: &Value) -> Expect {
    let status = record["status"].as_u64().unwrap();
    let body = record["response_body"].as_str().unwrap();
    let has_content_type = headers(record, "request_headers")
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("Content-Type"));
    let convert = "Failed to convert JSON into Call protobuf: ";
    if status == 405 || !has_content_type || record["request_body"] == "" {
        Expect::Skip
    } else if status == 415 {
        Expect::BadContentType
    } else if body.starts_with("Failed to parse body into JSON") {
        Expect::BadJson
    } else if body.starts_with("Failed to parse body into Call protobuf") {
        Expect::BadProtobuf
    } else if let Some(fields) = body
        .strip_prefix(convert)
        .and_then(|rest| rest.strip_prefix("Missing required fields: "))
    {
        Expect::Missing(fields.to_owned())
    } else if let Some(detail) = body.strip_prefix(convert) {
        if detail.starts_with("Failed to base64 decode") {
            Expect::BadJson
        } else {
            Expect::BadJsonSchema(detail.to_owned())
        }
    } else {
        Expect::Decodes
    }
}

fn headers(record: &Value, key: &str) -> Vec<(String, String)> {
    record[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn body(record: &Value) -> Vec<u8> {
    let text = record["request_body"].as_str().unwrap();
    match record["request_body_encoding"].as_str().unwrap() {
        "base64" => unb64(text),
        _ => text.as_bytes().to_vec(),
    }
}

/// Checks one recorded call; returns the kind of outcome it was.
fn check_call<M: MesosMessage + std::fmt::Debug + PartialEq>(record: &Value) -> &'static str {
    let name = format!(
        "{} {}",
        record["run"].as_str().or(record["side"].as_str()).unwrap(),
        record["name"].as_str().unwrap()
    );
    let expect = expectation(record);
    let label = match &expect {
        Expect::Skip => return "skip",
        Expect::BadContentType => "bad content type",
        Expect::BadJson => "bad JSON",
        Expect::BadJsonSchema(_) => "JSON Mesos cannot convert",
        Expect::BadProtobuf => "bad protobuf",
        Expect::Missing(_) => "missing required fields",
        Expect::Decodes => "decodes",
    };
    let content_type = headers(record, "request_headers")
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, value)| ContentType::from_content_type(value.as_bytes()));
    let content_type = match (expect, content_type) {
        (Expect::BadContentType, Some(Err(CodecError::UnsupportedContentType(_)))) => {
            return label;
        }
        (expect, Some(Ok(content_type))) => (expect, content_type),
        (expect, other) => panic!("{name}: expected {expect:?}, content type gave {other:?}"),
    };
    let (expect, content_type) = content_type;
    let body = body(record);
    let result = codec::decode_checked::<M>(content_type, &body);
    match (&expect, &result) {
        (Expect::Decodes, Ok(call)) => {
            // What we decoded survives our own encodings.
            for ct in [ContentType::Json, ContentType::Protobuf] {
                let again: M = codec::decode(ct, &codec::encode(ct, call).unwrap()).unwrap();
                assert_eq!(
                    json::to_value(&again).unwrap(),
                    json::to_value(call).unwrap(),
                    "{name}"
                );
            }
            if let Some(text) = record["request_body_protoc_text"].as_str() {
                let descriptor = reflect::descriptor::<M>().unwrap();
                let reference: M = DynamicMessage::parse_text_format(descriptor, text)
                    .unwrap()
                    .transcode_to()
                    .unwrap();
                assert_eq!(&reference, call, "{name}");
            }
        }
        (Expect::BadJson, Err(CodecError::Json { .. }))
        | (Expect::BadProtobuf, Err(CodecError::Protobuf { .. })) => {}
        (Expect::BadJsonSchema(detail), Err(error @ CodecError::JsonSchema { .. })) => {
            assert!(
                error.to_string().ends_with(detail.as_str()),
                "{name}: {error}"
            );
        }
        (Expect::Missing(fields), Err(CodecError::MissingRequiredFields { fields: ours, .. })) => {
            assert_eq!(&ours.join(", "), fields, "{name}");
        }
        _ => panic!("{name}: Mesos answer means {expect:?}, the codec gave {result:?}"),
    }
    label
}

fn check_call_file(file: &str, tally: &mut BTreeMap<&'static str, usize>) -> usize {
    let records = read_json(file);
    let records = records.as_array().unwrap();
    for record in records {
        let line = record["request_line"].as_str().unwrap();
        let label = if line.contains("/api/v1/executor") {
            check_call::<executor::Call>(record)
        } else if line.contains("/api/v1/scheduler") {
            check_call::<scheduler::Call>(record)
        } else {
            panic!("{file}: unexpected request line {line}");
        };
        *tally.entry(label).or_default() += 1;
    }
    records.len()
}

#[test]
fn recorded_call_bodies_decode_or_fail_as_mesos_did() {
    let mut tally = BTreeMap::new();
    assert_eq!(
        check_call_file("scheduler-call-responses.json", &mut tally),
        78
    );
    assert_eq!(
        check_call_file("executor-call-responses.json", &mut tally),
        62
    );
    assert_eq!(
        check_call_file("shutdown-scenario/call-responses.json", &mut tally),
        8
    );
    eprintln!("{tally:?}");
    // Both runs: content_type_text_plain and json_with_charset, on both APIs.
    assert_eq!(tally["bad content type"], 8);
    // malformed_json_body on both APIs, and message_data_not_base64.
    assert_eq!(tally["bad JSON"], 6);
    // json_enum_as_number on both APIs.
    assert_eq!(tally["JSON Mesos cannot convert"], 4);
    assert_eq!(tally["bad protobuf"], 4);
    // message_missing_executor_id and the executor's camelCase call.
    assert_eq!(tally["missing required fields"], 4);
    assert!(tally["decodes"] > 100, "{tally:?}");
}

#[test]
fn recorded_event_bodies_decode() {
    let mut streams = 0;
    let mut events = 0;
    for file in [
        "scheduler-call-responses.json",
        "shutdown-scenario/call-responses.json",
    ] {
        for record in read_json(file).as_array().unwrap() {
            let name = record["name"].as_str().unwrap();
            // Subscriptions whose response stream the client read a little of.
            if record["response_was_stream"] == true {
                streams += 1;
                let content_type = headers(record, "response_headers")
                    .into_iter()
                    .find(|(n, _)| n == "Content-Type")
                    .map(|(_, v)| ContentType::from_content_type(v.as_bytes()).unwrap())
                    .unwrap();
                let body = record["response_body"].as_str().unwrap().as_bytes();
                let records = split_records(body);
                assert!(records.len() >= 3, "{name}");
                for (i, payload) in records.iter().enumerate() {
                    let event: scheduler::Event =
                        codec::decode_checked(content_type, payload).unwrap();
                    if i == 0 {
                        assert_eq!(event.r#type(), scheduler::event::Type::Subscribed);
                        let subscribed = event.subscribed.unwrap();
                        assert_eq!(subscribed.heartbeat_interval_seconds, Some(15.0));
                    }
                }
            }
            // The UPDATEs that followed a call, exact JSON where the run was json (or the
            // partition-aware framework's stream, kept only here).
            for resulting in record["resulting_events"].as_array().into_iter().flatten() {
                let exact = record["run"] == "json-run"
                    || name.starts_with("partition_aware")
                    || record["side"].is_string();
                let event = &resulting["event"];
                if !exact {
                    check_partial_against_stream(record, resulting);
                    continue;
                }
                events += 1;
                let decoded: scheduler::Event = json::from_value(event.clone()).unwrap();
                assert_eq!(&json::to_value(&decoded).unwrap(), event, "{name}");
            }
        }
    }
    assert_eq!(streams, 4);
    assert!(events >= 20, "{events}");
}

/// The protobuf run's resulting events are the capture client's partial decoding; check
/// them against the full record of the stream they name.
fn check_partial_against_stream(record: &Value, resulting: &Value) {
    let index = resulting["stream_record_index"].as_u64().unwrap() as usize;
    let payload = &STREAMS[2].records()[index];
    let event: scheduler::Event = codec::decode(ContentType::Protobuf, payload).unwrap();
    let status = event.update.unwrap().status;
    let partial = &resulting["event"]["update"]["status"];
    let name = record["name"].as_str().unwrap();
    assert_eq!(partial["task_id"]["value"], status.task_id.value, "{name}");
    assert_eq!(partial["state"], status.state().as_str_name(), "{name}");
    assert_eq!(partial["source"], status.source().as_str_name(), "{name}");
    assert_eq!(partial["message"], status.message.unwrap(), "{name}");
}

#[test]
fn acknowledged_uuids_are_those_of_the_stream() {
    for (file, stream) in [
        ("scheduler-acks.protobuf-run.json", &STREAMS[2]),
        ("scheduler-acks.json-run.json", &STREAMS[3]),
    ] {
        let records = stream.records();
        let acks = read_json(file);
        for ack in acks.as_array().unwrap() {
            let index = ack["update_record_index"].as_u64().unwrap() as usize;
            let event: scheduler::Event =
                codec::decode(stream.content_type, &records[index]).unwrap();
            let status = event.update.unwrap().status;
            assert_eq!(ack["uuid"], b64(status.uuid.as_ref().unwrap()), "{file}");
            assert_eq!(ack["task_id"], status.task_id.value, "{file}");
            assert_eq!(ack["state"], status.state().as_str_name(), "{file}");
        }
    }
}
