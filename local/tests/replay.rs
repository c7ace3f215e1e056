//! Replays every executor call a real Mesos 1.12 agent answered
//! (`executor-call-responses.json`, both runs) against the local agent, in the
//! fixture's order, and expects the same status code and body text, and Mesos's
//! headers (`text/plain; charset=utf-8` errors, `Content-Length: 0` on 202, `Allow:
//! POST` on 405). The agent is set up with the fixture's framework and executor ids
//! (the executor process is a `sleep`; the test plays the executor over HTTP).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::executor::event;
use brine_proto::mesos::v1::{ExecutorInfo, TaskState};
use bytes::Bytes;
use common::*;
use serde_json::Value;

fn field<'a>(record: &'a Value, name: &str) -> &'a str {
    record[name].as_str().unwrap_or_default()
}

fn body_of(record: &Value, name: &str, encoding: &str) -> Bytes {
    let text = field(record, name);
    match field(record, encoding) {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
            .into(),
        _ => Bytes::copy_from_slice(text.as_bytes()),
    }
}

async fn replay_run(run: &str, accept: ContentType, checkpoint: bool) {
    let records: Vec<Value> = serde_json::from_slice(
        &std::fs::read(fixtures().join("executor-call-responses.json")).unwrap(),
    )
    .unwrap();
    let records: Vec<&Value> = records.iter().filter(|r| r["run"] == run).collect();
    assert_eq!(records.len(), 31, "{run}: records");

    // The fixture's ids.
    let first: Value = serde_json::from_str(field(records[0], "request_body")).unwrap();
    let fid = first["framework_id"]["value"].as_str().unwrap().to_owned();
    let eid = first["executor_id"]["value"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let (agent, mut events) = start_agent(dir.path(), |_| {}).await;
    let framework = framework(&fid, checkpoint);
    let executor: ExecutorInfo = executor_info(&eid, "exec sleep 600");
    agent
        .launch(
            framework.clone(),
            executor.clone(),
            task("task-data-1", 0.2, 32.0),
        )
        .await
        .unwrap();

    wait_until("the executor process runs", || {
        agent.executors().first().is_some_and(|e| e.pid.is_some())
    })
    .await;
    let mut stream = None;
    let mut acked = Vec::new();
    for record in &records {
        let name = field(record, "name");
        if name == "update_valid_task_running" {
            // The real SUBSCRIBE happened here in the capture.
            let mut s = subscribe(&agent, &subscribe_call(&fid, &eid), accept).await;
            assert_eq!(s.status, 200);
            assert_eq!(s.headers["content-type"], accept.as_str());
            assert_eq!(s.headers["transfer-encoding"], "chunked");
            let subscribed = s.next().await;
            assert_eq!(subscribed.r#type(), event::Type::Subscribed);
            let sub = subscribed.subscribed.unwrap();
            assert_eq!(sub.executor_info.executor_id.value, eid);
            assert_eq!(sub.framework_info.id.unwrap().value, fid);
            assert_eq!(sub.agent_info.id.as_ref(), Some(agent.agent_id()));
            assert!(sub.container_id.is_some());
            let launch = s.next().await;
            assert_eq!(launch.r#type(), event::Type::Launch);
            assert_eq!(launch.launch.unwrap().task.task_id.value, "task-data-1");
            stream = Some(s);
        }
        if name == "update_valid_task_running_second_task" {
            agent
                .launch(
                    framework.clone(),
                    executor.clone(),
                    task("task-long-2", 0.2, 32.0),
                )
                .await
                .unwrap();
            let s = stream.as_mut().unwrap();
            loop {
                let e = s.next().await;
                if e.r#type() == event::Type::Acknowledged {
                    acked.push(e.acknowledged.clone().unwrap().task_id.value);
                }
                if e.r#type() == event::Type::Launch {
                    assert_eq!(e.launch.unwrap().task.task_id.value, "task-long-2");
                    break;
                }
            }
        }
        let method = field(record, "request_line")
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let headers: Vec<(String, String)> = record["request_headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| matches!(h[0].as_str(), Some("Content-Type" | "Accept")))
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let body = body_of(record, "request_body", "request_body_encoding");
        let (status, response_headers, response_body) =
            request(&agent, &method, &headers, body).await;
        let expected_status = record["status"].as_u64().unwrap() as u16;
        let expected_body = body_of(record, "response_body", "response_body_encoding");
        assert_eq!(status, expected_status, "{run} {name}: status");
        assert_eq!(
            String::from_utf8_lossy(&response_body),
            String::from_utf8_lossy(&expected_body),
            "{run} {name}: body"
        );
        match status {
            202 => assert_eq!(response_headers["content-length"], "0", "{name}"),
            _ => {
                assert_eq!(
                    response_headers["content-type"], "text/plain; charset=utf-8",
                    "{name}"
                );
                assert_eq!(
                    response_headers["content-length"],
                    expected_body.len().to_string().as_str(),
                    "{name}"
                );
            }
        }
        if status == 405 {
            assert_eq!(response_headers["allow"], "POST");
        }
    }

    // What the accepted calls did: the executor got ACKNOWLEDGED for its three real
    // updates of known tasks and none for the unknown task; upstream got the updates
    // and the messages.
    let s = stream.as_mut().unwrap();
    while acked.len() < 4 {
        let e = s.next().await;
        if e.r#type() == event::Type::Acknowledged {
            acked.push(e.acknowledged.unwrap().task_id.value);
        }
    }
    assert_eq!(
        acked,
        ["task-data-1", "task-data-1", "task-long-2", "task-long-2"]
    );
    assert!(
        s.one_record_per_chunk
            .load(std::sync::atomic::Ordering::SeqCst)
    );

    let mut messages = 0;
    let mut unknown_task_seen = false;
    let mut first_running = None;
    while messages < 3 || !unknown_task_seen || first_running.is_none() {
        let e = next_event(&mut events, |_| true).await;
        match &e {
            brine_local::agent::AgentEvent::ExecutorMessage { .. } => messages += 1,
            brine_local::agent::AgentEvent::StatusUpdate { status, .. } => {
                if status.task_id.value == "no-such-task-from-executor" {
                    unknown_task_seen = true;
                    assert!(status.container_status.is_none());
                    assert!(status.uuid.is_some());
                }
                if status.task_id.value == "task-data-1" {
                    assert_eq!(
                        status.state(),
                        TaskState::TaskRunning,
                        "next update is held back"
                    );
                    first_running = Some(status.clone());
                    let cs = status.container_status.as_ref().unwrap();
                    assert!(cs.container_id.is_some());
                    assert!(cs.executor_pid.is_some());
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_protobuf_run() {
    init_tracing();
    replay_run("protobuf-run", ContentType::Protobuf, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_json_run() {
    init_tracing();
    replay_run("json-run", ContentType::Json, true).await;
}
