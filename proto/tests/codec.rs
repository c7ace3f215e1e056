//! The codec: content types as Mesos reads them, and JSON that follows Mesos's rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use brine_proto::codec::{self, CodecError, ContentType, json};
use brine_proto::mesos::v1::{
    AgentId, ExecutorId, FrameworkId, Offer, OfferId, Resource, TaskId, TaskState, TaskStatus,
    executor, offer, scheduler, task_status, value,
};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn content_types_match_exactly_like_mesos() {
    assert_eq!(
        ContentType::from_content_type(b"application/json").unwrap(),
        ContentType::Json
    );
    assert_eq!(
        ContentType::from_content_type(b"application/x-protobuf").unwrap(),
        ContentType::Protobuf
    );
    // Mesos 1.12 answered 415 to each of these.
    for refused in [
        &b"application/json; charset=utf-8"[..],
        b"application/json;charset=utf-8",
        b"text/plain",
        b"Application/JSON",
        b" application/json",
        b"application/json ",
        b"application/protobuf",
        b"",
        b"\xff\xfe",
    ] {
        let error = ContentType::from_content_type(refused).unwrap_err();
        assert!(
            matches!(error, CodecError::UnsupportedContentType(_)),
            "{error}"
        );
    }
    let error = "application/json; charset=utf-8"
        .parse::<ContentType>()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unsupported content type \"application/json; charset=utf-8\": expected exactly \
         \"application/x-protobuf\" or \"application/json\""
    );
    assert_eq!(ContentType::Json.to_string(), "application/json");
    assert_eq!(ContentType::Protobuf.as_str(), "application/x-protobuf");
}

#[test]
fn accept_header_negotiation() {
    let accept = |value: &str| ContentType::from_accept(Some(value.as_bytes()));
    assert_eq!(
        accept("application/x-protobuf").unwrap(),
        ContentType::Protobuf
    );
    assert_eq!(accept("application/json").unwrap(), ContentType::Json);
    // Mesos answered a SUBSCRIBE without Accept with a JSON stream.
    assert_eq!(ContentType::from_accept(None).unwrap(), ContentType::Json);
    let error = accept("text/plain").unwrap_err();
    assert!(matches!(error, CodecError::NotAcceptable(_)), "{error}");
}

fn running_update() -> TaskStatus {
    TaskStatus {
        task_id: TaskId {
            value: "task-1".into(),
        },
        state: TaskState::TaskRunning as i32,
        data: Some(vec![0, 1, 2, 0xfe, 0xff].into()),
        message: Some("running".into()),
        agent_id: Some(AgentId { value: "S0".into() }),
        timestamp: Some(1_795_289_389.540_299_2),
        executor_id: Some(ExecutorId {
            value: "brine-executor".into(),
        }),
        source: Some(task_status::Source::Executor as i32),
        uuid: Some(vec![7; 16].into()),
        ..Default::default()
    }
}

#[test]
fn json_follows_mesos_conventions() {
    let call = executor::Call {
        executor_id: ExecutorId {
            value: "brine-executor".into(),
        },
        framework_id: FrameworkId {
            value: "fw-0000".into(),
        },
        r#type: Some(executor::call::Type::Update as i32),
        update: Some(executor::call::Update {
            status: running_update(),
        }),
        ..Default::default()
    };
    let value = json::to_value(&call).unwrap();
    assert_eq!(
        value,
        json!({
            "executor_id": {"value": "brine-executor"},
            "framework_id": {"value": "fw-0000"},
            "type": "UPDATE",
            "update": {"status": {
                "task_id": {"value": "task-1"},
                "state": "TASK_RUNNING",
                "data": "AAEC/v8=",
                "message": "running",
                "agent_id": {"value": "S0"},
                "timestamp": 1_795_289_389.540_299_2,
                "executor_id": {"value": "brine-executor"},
                "source": "SOURCE_EXECUTOR",
                "uuid": "BwcHBwcHBwcHBwcHBwcHBw==",
            }},
        })
    );
    // Compact, with a decimal point on doubles.
    let text = String::from_utf8(codec::encode(ContentType::Json, &call).unwrap()).unwrap();
    assert!(!text.contains(' '), "{text}");
    assert!(text.contains(r#""timestamp":1795289389.5402992"#), "{text}");

    let back: executor::Call = codec::decode_checked(ContentType::Json, text.as_bytes()).unwrap();
    assert_eq!(back, call);
}

#[test]
fn sixty_four_bit_integers_are_numbers() {
    let ports = Resource {
        name: "ports".into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range {
                begin: 31000,
                end: 32000,
            }],
        }),
        ..Default::default()
    };
    let text = String::from_utf8(json::to_vec(&ports).unwrap()).unwrap();
    assert!(text.contains(r#"{"begin":31000,"end":32000}"#), "{text}");
    // Strings are read too (Mesos's parser accepts them).
    let read: Resource = json::from_value(json!({
        "name": "ports", "type": "RANGES",
        "ranges": {"range": [{"begin": "31000", "end": 32000}]},
    }))
    .unwrap();
    assert_eq!(read, ports);
}

#[test]
fn unknown_fields_are_ignored_on_input() {
    let body =
        br#"{"framework_id":{"value":"fw","extra":[1,2]},"type":"REVIVE","no_such_field":1}"#;
    let call: scheduler::Call = codec::decode(ContentType::Json, body).unwrap();
    assert_eq!(call.r#type(), scheduler::call::Type::Revive);
    assert_eq!(call.framework_id.unwrap().value, "fw");
    // And in protobuf: a field number we do not know is skipped.
    let mut bytes = codec::encode(ContentType::Protobuf, &running_update()).unwrap();
    bytes.extend_from_slice(&[0xf8, 0x3f, 0x01]); // field 1023, varint 1
    let status: TaskStatus = codec::decode(ContentType::Protobuf, &bytes).unwrap();
    assert_eq!(status, running_update());
}

#[test]
fn unset_fields_are_omitted_and_set_defaults_kept() {
    let decline = scheduler::Call {
        framework_id: Some(FrameworkId { value: "fw".into() }),
        r#type: Some(scheduler::call::Type::Decline as i32),
        decline: Some(scheduler::call::Decline {
            offer_ids: vec![OfferId { value: "O1".into() }],
            filters: Some(brine_proto::mesos::v1::Filters {
                refuse_seconds: None,
            }),
        }),
        ..Default::default()
    };
    // `refuse_seconds` has a default (5.0) and Mesos writes unset defaults out.
    assert_eq!(
        json::to_value(&decline).unwrap(),
        json!({
            "framework_id": {"value": "fw"},
            "type": "DECLINE",
            "decline": {"offer_ids": [{"value": "O1"}], "filters": {"refuse_seconds": 5.0}},
        })
    );
    let failure = scheduler::Event {
        r#type: Some(scheduler::event::Type::Failure as i32),
        failure: Some(scheduler::event::Failure {
            status: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A set zero stays: proto2 knows it was set.
    assert_eq!(
        json::to_value(&failure).unwrap(),
        json!({"type": "FAILURE", "failure": {"status": 0}})
    );
}

#[test]
fn enum_rules_on_input() {
    let number = br#"{"type": 5}"#;
    let error = codec::decode::<scheduler::Call>(ContentType::Json, number).unwrap_err();
    assert!(matches!(error, CodecError::JsonSchema { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("Not expecting a JSON number for field 'type'")
    );
    // An unknown name leaves the (optional) field unset, as in Mesos.
    let unknown = br#"{"type": "NOT_A_TYPE"}"#;
    let call: scheduler::Call = codec::decode(ContentType::Json, unknown).unwrap();
    assert_eq!(call.r#type, None);
    // Unknown enum numbers from protobuf are not written to JSON.
    let status = TaskStatus {
        reason: Some(999),
        ..running_update()
    };
    let value = json::to_value(&status).unwrap();
    assert!(value.get("reason").is_none(), "{value}");
    // ... except in a required field, where Mesos could not have parsed the message.
    let status = TaskStatus {
        state: 99,
        ..running_update()
    };
    let error = json::to_vec(&status).unwrap_err();
    assert!(matches!(error, CodecError::JsonEncode { .. }), "{error}");
    assert!(
        error.to_string().contains("mesos.v1.TaskStatus.state"),
        "{error}"
    );
}

#[test]
fn required_fields_are_checked_on_request() {
    let body = br#"{"type": "MESSAGE", "message": {"data": "eA=="}}"#;
    // Plain decode is lenient (prost semantics) ...
    let call: executor::Call = codec::decode(ContentType::Json, body).unwrap();
    assert_eq!(call.executor_id.value, "");
    // ... decode_checked refuses like Mesos ("Missing required fields: ...").
    let error = codec::decode_checked::<executor::Call>(ContentType::Json, body).unwrap_err();
    assert_eq!(
        error.to_string(),
        "mesos.v1.executor.Call is missing required fields: executor_id, framework_id"
    );
    // Nested paths, in protobuf too.
    let update = scheduler::Event {
        r#type: Some(scheduler::event::Type::Offers as i32),
        offers: Some(scheduler::event::Offers {
            offers: vec![Offer::default()],
        }),
        ..Default::default()
    };
    let mut text = json::to_value(&update).unwrap();
    text["offers"]["offers"][0] = json!({"hostname": "h"});
    let error =
        codec::decode_checked::<scheduler::Event>(ContentType::Json, text.to_string().as_bytes())
            .unwrap_err();
    let CodecError::MissingRequiredFields { fields, .. } = error else {
        panic!("{error}");
    };
    assert_eq!(
        fields,
        [
            "offers.offers[0].id",
            "offers.offers[0].framework_id",
            "offers.offers[0].agent_id"
        ]
    );
    // protobuf: an empty body lacks executor_id and framework_id.
    let error = codec::decode_checked::<executor::Call>(ContentType::Protobuf, b"").unwrap_err();
    assert!(matches!(error, CodecError::MissingRequiredFields { .. }));
}

#[test]
fn malformed_input_gives_typed_errors() {
    let error = codec::decode::<scheduler::Call>(ContentType::Json, b"{\"type\":").unwrap_err();
    assert!(matches!(error, CodecError::Json { .. }), "{error}");
    let error = codec::decode::<scheduler::Call>(ContentType::Json, b"[]").unwrap_err();
    assert!(matches!(error, CodecError::JsonSchema { .. }), "{error}");
    let error =
        codec::decode::<scheduler::Call>(ContentType::Json, br#"{"framework_id": 3}"#).unwrap_err();
    assert!(matches!(error, CodecError::Json { .. }), "{error}");
    let garbage = b"\xff\xff\xff\xff\x0f\x00garbage";
    let error = codec::decode::<scheduler::Call>(ContentType::Protobuf, garbage).unwrap_err();
    assert!(matches!(error, CodecError::Protobuf { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("failed to decode mesos.v1.scheduler.Call")
    );
}

#[test]
fn launch_group_and_accept_round_trip() {
    let task = brine_proto::mesos::v1::TaskInfo {
        name: "t".into(),
        task_id: TaskId { value: "t".into() },
        agent_id: AgentId { value: "S0".into() },
        data: Some(b"spec".to_vec().into()),
        limits: [("mem".to_owned(), value::Scalar { value: 64.0 })].into(),
        ..Default::default()
    };
    let accept = scheduler::Call {
        framework_id: Some(FrameworkId { value: "fw".into() }),
        r#type: Some(scheduler::call::Type::Accept as i32),
        accept: Some(scheduler::call::Accept {
            offer_ids: vec![OfferId { value: "O1".into() }],
            operations: vec![offer::Operation {
                r#type: Some(offer::operation::Type::Launch as i32),
                launch: Some(offer::operation::Launch {
                    task_infos: vec![task],
                }),
                ..Default::default()
            }],
            filters: Some(brine_proto::mesos::v1::Filters {
                refuse_seconds: Some(1.0),
            }),
        }),
        ..Default::default()
    };
    for content_type in [ContentType::Json, ContentType::Protobuf] {
        let bytes = content_type.encode(&accept).unwrap();
        let back: scheduler::Call = content_type.decode(&bytes).unwrap();
        assert_eq!(back, accept, "{content_type}");
    }
    let value = json::to_value(&accept).unwrap();
    assert_eq!(
        value["accept"]["operations"][0]["launch"]["task_infos"][0]["limits"],
        json!({"mem": {"value": 64.0}})
    );
}

fn task_status_strategy() -> impl Strategy<Value = TaskStatus> {
    let states = prop::sample::select(vec![
        TaskState::TaskStaging,
        TaskState::TaskRunning,
        TaskState::TaskFinished,
        TaskState::TaskFailed,
        TaskState::TaskKilled,
        TaskState::TaskLost,
        TaskState::TaskUnknown,
    ]);
    (
        "\\PC{0,20}",
        states,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        prop::option::of("\\PC{0,40}"),
        prop::option::of(-1e12f64..1e12),
        prop::option::of(prop::collection::vec(any::<u8>(), 16)),
        prop::option::of(any::<bool>()),
        prop::option::of(0i32..35),
    )
        .prop_map(
            |(task, state, data, message, timestamp, uuid, healthy, reason)| TaskStatus {
                task_id: TaskId { value: task },
                state: state as i32,
                data: data.map(Into::into),
                message,
                timestamp,
                uuid: uuid.map(Into::into),
                healthy,
                // 0..35 minus the numbers Mesos never assigned.
                reason: reason.filter(|r| task_status::Reason::try_from(*r).is_ok()),
                source: Some(task_status::Source::Executor as i32),
                ..Default::default()
            },
        )
}

proptest! {
    #[test]
    fn task_status_round_trips_in_both_encodings(status in task_status_strategy()) {
        for content_type in [ContentType::Json, ContentType::Protobuf] {
            let bytes = codec::encode(content_type, &status).unwrap();
            let back: TaskStatus = codec::decode_checked(content_type, &bytes).unwrap();
            prop_assert_eq!(&back, &status);
        }
    }

    #[test]
    fn json_decoding_never_panics(text in "\\PC{0,200}") {
        let _ = codec::decode::<scheduler::Event>(ContentType::Json, text.as_bytes());
        let _ = codec::decode_checked::<executor::Call>(ContentType::Json, text.as_bytes());
    }

    #[test]
    fn protobuf_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = codec::decode::<scheduler::Event>(ContentType::Protobuf, &bytes);
        let _ = codec::decode_checked::<executor::Event>(ContentType::Protobuf, &bytes);
    }
}
