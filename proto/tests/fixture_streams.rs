//! Wire compatibility with real Mesos 1.12 event streams (executor and scheduler, protobuf
//! and JSON, the main runs and the shutdown scenario).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use brine_proto::codec::{self, ContentType, MesosMessage, json};
use brine_proto::mesos::v1::{TaskState, executor, scheduler, task_status};
use brine_proto::reflect;
use bytes::Bytes;
use common::{Api, STREAMS, Stream, b64, protoc_records};
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, ReflectMessage as _, Value as ReflectValue};
use serde_json::{Value, json};

fn decode_all<M: MesosMessage>(stream: &Stream) -> Vec<M> {
    stream
        .records()
        .iter()
        .enumerate()
        .map(|(i, record)| {
            codec::decode_checked(stream.content_type, record)
                .unwrap_or_else(|e| panic!("{} record {i}: {e}", stream.stem))
        })
        .collect()
}

/// What the capture index says about a record, rebuilt from our own decoding.
fn executor_summary(event: &executor::Event) -> Value {
    let mut out = json!({ "type": event.r#type().as_str_name() });
    let task_id = event
        .launch
        .as_ref()
        .map(|l| &l.task.task_id)
        .or(event.acknowledged.as_ref().map(|a| &a.task_id))
        .or(event.kill.as_ref().map(|k| &k.task_id));
    if let Some(task_id) = task_id {
        out["task_id"] = json!(task_id.value);
    }
    if let Some(ack) = &event.acknowledged {
        out["uuid"] = json!(b64(&ack.uuid));
    }
    if let Some(message) = &event.message {
        out["data_b64"] = json!(b64(&message.data));
    }
    out
}

fn scheduler_summary(event: &scheduler::Event) -> Value {
    let mut out = json!({ "type": event.r#type().as_str_name() });
    if let Some(offers) = &event.offers {
        out["offer_ids"] = json!(
            offers
                .offers
                .iter()
                .map(|o| o.id.value.clone())
                .collect::<Vec<_>>()
        );
    }
    if let Some(update) = &event.update {
        let status = &update.status;
        out["task_id"] = json!(status.task_id.value);
        out["state"] = json!(status.state().as_str_name());
        out["reason"] = json!(status.reason.map(|_| status.reason().as_str_name()));
        out["source"] = json!(status.source.map(|_| status.source().as_str_name()));
        out["has_uuid"] = json!(status.uuid.is_some());
        out["message"] = json!(status.message);
    }
    if let Some(message) = &event.message {
        out["data_b64"] = json!(b64(&message.data));
    }
    if let Some(failure) = &event.failure {
        out["agent_id"] = json!({ "value": failure.agent_id.as_ref().unwrap().value });
        out["executor_id"] = json!({ "value": failure.executor_id.as_ref().unwrap().value });
        out["status"] = json!(failure.status);
    }
    out
}

/// Keys of an index entry that describe the record's place in the file or the capture,
/// not its content.
const INDEX_BOOKKEEPING: [&str; 6] = [
    "index",
    "offset",
    "payload_offset",
    "prefix_len",
    "length",
    "t",
];

#[test]
fn every_record_decodes_and_matches_the_capture_index() {
    for stream in &STREAMS {
        let bin = stream.bin();
        let records = stream.records();
        let index = stream.index();
        let entries = index["records"].as_array().unwrap();
        assert_eq!(records.len(), entries.len(), "{}", stream.stem);
        assert_eq!(
            index["content_type"].as_str(),
            Some(stream.content_type.as_str())
        );

        let summaries: Vec<Value> = match stream.api {
            Api::Executor => decode_all::<executor::Event>(stream)
                .iter()
                .map(executor_summary)
                .collect(),
            Api::Scheduler => decode_all::<scheduler::Event>(stream)
                .iter()
                .map(scheduler_summary)
                .collect(),
        };
        for (i, ((record, entry), summary)) in
            records.iter().zip(entries).zip(&summaries).enumerate()
        {
            let at = format!("{} record {i}", stream.stem);
            // Our framing agrees with the capture's.
            let start = entry["payload_offset"].as_u64().unwrap() as usize;
            let length = entry["length"].as_u64().unwrap() as usize;
            assert_eq!(&bin[start..start + length], &record[..], "{at}");
            let offset = entry["offset"].as_u64().unwrap() as usize;
            let prefix = entry["prefix_len"].as_u64().unwrap() as usize;
            assert_eq!(offset + prefix, start, "{at}");
            assert_eq!(
                &bin[offset..start],
                format!("{length}\n").as_bytes(),
                "{at}"
            );

            // Every content key of the index entry is reproduced by our decoding.
            for (key, expected) in entry.as_object().unwrap() {
                if INDEX_BOOKKEEPING.contains(&key.as_str()) || key == "acknowledges" {
                    continue;
                }
                assert_eq!(
                    summary.get(key),
                    Some(expected),
                    "{at}: index key {key:?}; our decoding: {summary}"
                );
            }
        }
    }
}

fn decode_text<M: MesosMessage>(text: &str) -> M {
    // protoc prints fields unknown to the Mesos schema by number (`7: 1`); the text-format
    // parser has no syntax for those, and prost drops them anyway.
    let known: String = text
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line
                .split(':')
                .next()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let descriptor = reflect::descriptor::<M>().unwrap();
    // A field protoc printed that our subset lacks fails here: that would be a loss.
    let dynamic = DynamicMessage::parse_text_format(descriptor, &known)
        .unwrap_or_else(|e| panic!("protoc text does not fit our schema: {e}\n{known}"));
    dynamic.transcode_to().unwrap()
}

fn check_against_protoc<M: MesosMessage + std::fmt::Debug + PartialEq>(stream: &Stream) {
    let ours = decode_all::<M>(stream);
    let reference = protoc_records(stream.stem);
    assert_eq!(reference.len(), ours.len(), "{}", stream.stem);
    for (i, (index, text)) in reference.iter().enumerate() {
        assert_eq!(*index, i);
        assert_eq!(
            decode_text::<M>(text),
            ours[i],
            "{} record {i}",
            stream.stem
        );
    }
}

#[test]
fn protobuf_records_equal_protocs_reference_decoding() {
    check_against_protoc::<executor::Event>(&STREAMS[0]);
    check_against_protoc::<scheduler::Event>(&STREAMS[2]);
}

/// Paths of the fields our schema does not know, e.g. `subscribed.agent_info.7`.
fn unknown_fields(message: &DynamicMessage, prefix: &str, out: &mut Vec<String>) {
    for field in message.unknown_fields() {
        out.push(format!("{prefix}{}", field.number()));
    }
    for (field, value) in message.fields() {
        if !matches!(field.kind(), Kind::Message(_)) {
            continue;
        }
        let values: Vec<&ReflectValue> = match value {
            ReflectValue::List(items) => items.iter().collect(),
            other => vec![other],
        };
        for value in values {
            if let ReflectValue::Message(inner) = value {
                unknown_fields(inner, &format!("{prefix}{}.", field.name()), out);
            }
        }
    }
}

fn check_reencoding<M: MesosMessage + std::fmt::Debug + PartialEq>(
    stream: &Stream,
    expected_unknown: &[(usize, &str)],
) {
    let descriptor = reflect::descriptor::<M>().unwrap();
    for (i, record) in stream.records().iter().enumerate() {
        let at = format!("{} record {i}", stream.stem);
        let dynamic = DynamicMessage::decode(descriptor.clone(), record.clone()).unwrap();
        let mut unknown = Vec::new();
        unknown_fields(&dynamic, "", &mut unknown);
        let expected: Vec<String> = expected_unknown
            .iter()
            .filter(|(index, _)| *index == i)
            .map(|(_, path)| (*path).to_owned())
            .collect();
        assert_eq!(unknown, expected, "{at}: fields outside our schema");

        let decoded = M::decode(record.clone()).unwrap();
        let reencoded = decoded.encode_to_vec();
        if unknown.is_empty() {
            // Fields in number order: prost writes what the C++ serializer wrote.
            assert_eq!(reencoded, &record[..], "{at}: not byte-identical");
        } else {
            assert_eq!(M::decode(&reencoded[..]).unwrap(), decoded, "{at}");
        }
    }
}

#[test]
fn protobuf_records_reencode_byte_for_byte() {
    // A real agent's AgentInfo carries field 7, which Mesos's own v1 schema lacks too.
    check_reencoding::<executor::Event>(&STREAMS[0], &[(0, "subscribed.agent_info.7")]);
    check_reencoding::<scheduler::Event>(&STREAMS[2], &[]);
}

fn check_json_reencoding<M: MesosMessage + std::fmt::Debug + PartialEq>(stream: &Stream) {
    for (i, record) in stream.records().iter().enumerate() {
        let at = format!("{} record {i}", stream.stem);
        let original: Value = serde_json::from_slice(record).unwrap();
        let decoded: M = codec::decode(ContentType::Json, record).unwrap();
        let reencoded = codec::encode(ContentType::Json, &decoded).unwrap();
        let reencoded: Value = serde_json::from_slice(&reencoded).unwrap();
        // Same fields, same values, same presence: nothing lost or added.
        assert_eq!(reencoded, original, "{at}");
        // And across encodings.
        let protobuf = codec::encode(ContentType::Protobuf, &decoded).unwrap();
        let back: M = codec::decode(ContentType::Protobuf, &protobuf).unwrap();
        assert_eq!(back, decoded, "{at}");
    }
}

#[test]
fn json_records_reencode_to_the_same_json() {
    for stream in STREAMS
        .iter()
        .filter(|s| s.content_type == ContentType::Json)
    {
        match stream.api {
            Api::Executor => check_json_reencoding::<executor::Event>(stream),
            Api::Scheduler => check_json_reencoding::<scheduler::Event>(stream),
        }
    }
}

#[test]
fn protobuf_records_survive_a_trip_through_json() {
    fn check<M: MesosMessage + std::fmt::Debug + PartialEq>(stream: &Stream) {
        for (i, decoded) in decode_all::<M>(stream).into_iter().enumerate() {
            let text = codec::encode(ContentType::Json, &decoded).unwrap();
            let back: M = codec::decode_checked(ContentType::Json, &text).unwrap();
            // JSON spells out unset fields that have defaults (as Mesos does), so `back`
            // may hold `Some(default)` where `decoded` has `None`: same meaning, same JSON.
            assert_eq!(
                json::to_value(&back).unwrap(),
                json::to_value(&decoded).unwrap(),
                "{} record {i}",
                stream.stem
            );
        }
    }
    check::<executor::Event>(&STREAMS[0]);
    check::<scheduler::Event>(&STREAMS[2]);
}

/// A record's content with what differs between two runs of the same script taken out:
/// IDs generated by Mesos (only their suffix such as `-S0` or `-O3` is kept), the
/// encoding's name, times, UUIDs, pids, and the checkpoint flag (on in the json run).
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| {
                    !matches!(
                        key.as_str(),
                        "timestamp" | "uuid" | "executor_pid" | "checkpoint"
                    )
                })
                .map(|(key, value)| (key.clone(), normalized(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::String(text) => {
            let looks_like_uuid = text.len() >= 36
                && text.as_bytes()[8] == b'-'
                && text[..36]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == '-');
            let text = if looks_like_uuid { &text[36..] } else { text };
            let text = text
                .strip_suffix("protobuf")
                .or_else(|| text.strip_suffix("json"))
                .map_or_else(|| text.to_owned(), |stem| format!("{stem}<encoding>"));
            Value::String(text)
        }
        other => other.clone(),
    }
}

fn normalized_run<M: MesosMessage>(stream: &Stream) -> Vec<Value> {
    decode_all::<M>(stream)
        .iter()
        .map(|event| normalized(&json::to_value(event).unwrap()))
        .collect()
}

#[test]
fn protobuf_and_json_runs_agree() {
    let executor_pb = normalized_run::<executor::Event>(&STREAMS[0]);
    let executor_js = normalized_run::<executor::Event>(&STREAMS[1]);
    assert_eq!(executor_pb, executor_js);

    let mut scheduler_pb = normalized_run::<scheduler::Event>(&STREAMS[2]);
    let mut scheduler_js = normalized_run::<scheduler::Event>(&STREAMS[3]);
    assert_eq!(scheduler_pb.len(), scheduler_js.len());
    // Records 11-14 race (updates of different tasks, messages): same set, any order.
    let sort = |records: &mut [Value]| records.sort_by_key(|v| v.to_string());
    sort(&mut scheduler_pb[11..=14]);
    sort(&mut scheduler_js[11..=14]);
    for (i, (pb, js)) in scheduler_pb.iter().zip(&scheduler_js).enumerate() {
        assert_eq!(pb, js, "scheduler record {i}");
    }
}

#[test]
fn status_updates_follow_the_documented_quirks() {
    // Updates without a uuid are exactly the master's own; those must not be acknowledged.
    for stream in STREAMS.iter().filter(|s| s.api == Api::Scheduler) {
        for event in decode_all::<scheduler::Event>(stream) {
            let Some(update) = event.update else { continue };
            let status = update.status;
            let from_master = status.source() == task_status::Source::Master;
            assert_eq!(status.uuid.is_none(), from_master, "{status:?}");
            if let Some(uuid) = &status.uuid {
                assert_eq!(uuid.len(), 16);
            }
            assert!(status.timestamp.is_some());
            // No TASK_STARTING is generated for a custom executor's task.
            if status.task_id.value.starts_with("task-data")
                || status.task_id.value.starts_with("task-long")
            {
                assert_ne!(status.state(), TaskState::TaskStarting);
            }
        }
    }
    // The stubborn executor: SIGKILLed after the grace period, reported as TASK_FAILED by
    // the agent, not TASK_LOST as the docs say.
    let shutdown = decode_all::<scheduler::Event>(&STREAMS[6]);
    let failed = shutdown
        .iter()
        .filter_map(|e| e.update.as_ref())
        .find(|u| u.status.state() == TaskState::TaskFailed)
        .unwrap();
    assert_eq!(failed.status.source(), task_status::Source::Agent);
    assert_eq!(
        failed.status.reason(),
        task_status::Reason::ExecutorTerminated
    );
    let failure = shutdown.iter().find_map(|e| e.failure.as_ref()).unwrap();
    assert_eq!(failure.status, Some(9));
}

#[test]
fn executor_events_carry_what_brine_relies_on() {
    let events = decode_all::<executor::Event>(&STREAMS[0]);
    let subscribed = events[0].subscribed.as_ref().unwrap();
    assert!(subscribed.container_id.is_some());
    assert_eq!(subscribed.agent_info.port(), 5051);
    assert_eq!(
        subscribed.executor_info.r#type(),
        brine_proto::mesos::v1::executor_info::Type::Custom
    );
    // Task data arrives byte for byte, and is shared with the record, not copied.
    let record: Bytes = STREAMS[0].records()[1].clone();
    let launch: executor::Event =
        codec::decode_bytes(ContentType::Protobuf, record.clone()).unwrap();
    let data = launch.launch.unwrap().task.data.unwrap();
    assert_eq!(&data[..], b"task data bytes \x00\x01\x02\xfe\xff end");
    let record_range = record.as_ptr() as usize..record.as_ptr() as usize + record.len();
    assert!(record_range.contains(&(data.as_ptr() as usize)));
    // KILL carries only the task id; SHUTDOWN nothing but its type.
    let kill = events[7].kill.as_ref().unwrap();
    assert!(kill.kill_policy.is_none());
    assert_eq!(events[9].encode_to_vec(), b"\x08\x07");
    // JSON field names are the .proto names.
    let text = json::to_value(&events[0]).unwrap();
    assert!(text["subscribed"]["executor_info"]["executor_id"].is_object());
    assert_eq!(
        events[0].descriptor_name(),
        "mesos.v1.executor.Event",
        "sanity"
    );
}

trait DescriptorName {
    fn descriptor_name(&self) -> String;
}

impl<M: MesosMessage> DescriptorName for M {
    fn descriptor_name(&self) -> String {
        reflect::descriptor::<M>().unwrap().full_name().to_owned()
    }
}

#[test]
fn reflect_descriptors_match_dynamic_messages() {
    // The pool's descriptors are the ones prost-reflect uses for dynamic messages.
    let descriptor = reflect::descriptor::<scheduler::Call>().unwrap();
    let dynamic = DynamicMessage::new(descriptor.clone());
    assert_eq!(dynamic.descriptor(), descriptor);
}
