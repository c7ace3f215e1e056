//! The local master over real HTTP: the replay of every recorded scheduler call of
//! `scheduler-call-responses.json` (both runs), and a hand-written JSON framework.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use brine_local::agent::{AgentResources, CgroupsMode};
use brine_local::{LocalCluster, LocalClusterConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use common::scheduler::{
    Framework, executor_script, executor_task, get, json_headers, offered, post, request,
};
use common::{WAIT, fixtures};

/// A one-agent cluster of the main captures' size; `allocation_interval`: the master's
/// (Mesos's default and the captures' is 1 s).
async fn cluster(dir: &Path, heartbeat: Duration, allocation_interval: Duration) -> LocalCluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = LocalClusterConfig::new(1, dir);
    config.cgroups = CgroupsMode::Off;
    config.heartbeat_interval = heartbeat;
    config.allocation_interval = allocation_interval;
    config.agent_resources = Some(AgentResources {
        cpus: 2.0,
        mem_mb: 2048.0,
        disk_mb: 4096.0,
    });
    config.executor_shutdown_grace_period = Duration::from_secs(2);
    LocalCluster::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_scheduler_call_responses() {
    let records: Vec<Value> = serde_json::from_slice(
        &std::fs::read(fixtures().join("scheduler-call-responses.json")).unwrap(),
    )
    .unwrap();
    for run in ["protobuf-run", "json-run"] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = cluster(dir.path(), Duration::from_secs(15), Duration::from_secs(1)).await;
        let url = cluster.master_url();
        let agent_id = cluster.agents()[0].agent_id().value.clone();
        let encoding = if run == "json-run" {
            "json"
        } else {
            "protobuf"
        };
        let index: Value = serde_json::from_slice(
            &std::fs::read(fixtures().join(format!("scheduler-stream.{encoding}.index.json")))
                .unwrap(),
        )
        .unwrap();
        let recorded_fw0 = index["framework_id"].as_str().unwrap().to_owned();
        let prefix = recorded_fw0.trim_end_matches("-0000").to_owned();
        let recorded_stream0 = index["mesos_stream_id"].as_str().unwrap().to_owned();
        let run_records: Vec<&Value> = records.iter().filter(|r| r["run"] == run).collect();
        // Substitutions: recorded ids → live ids (same lengths, so protobuf bodies stay valid).
        let mut subs: Vec<(String, String)> = vec![
            (format!("{prefix}-S0"), agent_id.clone()),
            (
                "/usr/bin/python3 /opt/brine-capture/capture_executor.py".to_owned(),
                format!("python3 {}", executor_script()),
            ),
        ];
        let mut main = Framework::subscribe(
            &url,
            json!({"user": "root", "name": "capture-scheduler", "roles": ["*"], "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 0.0}),
            vec![("Content-Type".into(), "application/json".into()), ("Accept".into(), "application/json".into())],
        )
        .await;
        subs.push((recorded_fw0.clone(), main.id.clone()));
        subs.push((recorded_stream0.clone(), main.stream_id.clone()));
        let mut offers_seen: Vec<String> = Vec::new();
        let mut second: Option<Framework> = None;
        let mut third: Option<Framework> = None;
        for record in run_records {
            let name = record["name"].as_str().unwrap();
            let sub = |s: &str, subs: &[(String, String)]| {
                subs.iter()
                    .fold(s.to_owned(), |acc, (a, b)| acc.replace(a.as_str(), b))
            };
            let raw_body = record["request_body"].as_str().unwrap();
            let mut body: Vec<u8> = if record["request_body_encoding"] == "base64" {
                base64::engine::general_purpose::STANDARD
                    .decode(raw_body)
                    .unwrap()
            } else {
                raw_body.as_bytes().to_vec()
            };
            // Offer ids: the n-th recorded offer of the main framework is our n-th offer.
            for n in 0..8 {
                let recorded = format!("{prefix}-O{n}");
                if String::from_utf8_lossy(&body).contains(&recorded) {
                    while offers_seen.len() <= n {
                        let offer = main.offer().await;
                        offers_seen.push(offer["id"]["value"].as_str().unwrap().to_owned());
                    }
                    subs.push((recorded, offers_seen[n].clone()));
                }
            }
            if name == "call_while_framework_disconnected" {
                let old_stream = record["request_headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|h| h[0] == "Mesos-Stream-Id")
                    .unwrap()[1]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let fw = Framework::subscribe(
                    &url,
                    json!({"user": "root", "name": "capture-failover", "roles": ["*"], "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 300.0}),
                    json_headers(None).into_iter().chain([("Accept".to_owned(), "application/json".to_owned())]).collect(),
                )
                .await;
                subs.push((format!("{prefix}-0002"), fw.id.clone()));
                subs.push((old_stream, fw.stream_id.clone()));
                fw.disconnect();
                // Bounded wait until the master has seen the disconnection.
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    let state: Value =
                        serde_json::from_str(&get(&url, "/master/state").await).unwrap();
                    let connected = state["frameworks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["name"] == "capture-failover" && f["connected"] == true);
                    if !connected {
                        break;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "disconnect not seen"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            if name == "reconcile_implicit" {
                // The capture client reconciled once task-long-2 ran, long after it had
                // acknowledged task-data-1's TASK_FINISHED (the reader acknowledges every
                // update before passing it on), so Mesos no longer knew task-data-1.
                main.update("task-data-1", "TASK_FINISHED").await;
                main.update("task-long-2", "TASK_RUNNING").await;
            }
            body = sub(&String::from_utf8_lossy(&body), &subs).into_bytes();
            if record["request_body_encoding"] == "base64" {
                // Protobuf bodies: substitute bytes in place (ids have equal lengths).
                let mut raw = base64::engine::general_purpose::STANDARD
                    .decode(raw_body)
                    .unwrap();
                for (a, b) in &subs {
                    if a.len() == b.len() {
                        let (a, b) = (a.as_bytes(), b.as_bytes());
                        let mut i = 0;
                        while i + a.len() <= raw.len() {
                            if &raw[i..i + a.len()] == a {
                                raw[i..i + a.len()].copy_from_slice(b);
                                i += a.len();
                            } else {
                                i += 1;
                            }
                        }
                    }
                }
                body = raw;
            }
            let headers: Vec<(String, String)> = record["request_headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h[0] != "Host" && h[0] != "Content-Length")
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        sub(h[1].as_str().unwrap(), &subs),
                    )
                })
                .collect();
            let method = record["request_line"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned();
            let expected_status = record["status"].as_u64().unwrap() as u16;
            if record["response_was_stream"] == true {
                let fw = Framework::subscribe_raw(&url, body, headers).await;
                if name == "subscribe_without_accept_header" {
                    subs.push((format!("{prefix}-0001"), fw.id.clone()));
                    second = Some(fw);
                } else {
                    assert_eq!(fw.id, sub(&format!("{prefix}-0002"), &subs), "{run} {name}");
                    third = Some(fw);
                }
                continue;
            }
            // Stream ids of the second / third framework.
            let (status, text) = {
                let mut headers = headers;
                for h in headers.iter_mut() {
                    if h.0 == "Mesos-Stream-Id" {
                        if name.starts_with("partition_aware")
                            || name == "teardown_second_framework"
                        {
                            h.1 = second.as_ref().unwrap().stream_id.clone();
                        } else if name == "teardown_third_framework" {
                            h.1 = third.as_ref().unwrap().stream_id.clone();
                        }
                    }
                }
                let (status, _, body_in, _) = request(&url, &method, &headers, body).await;
                let bytes = body_in.collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            };
            let expected_body = sub(record["response_body"].as_str().unwrap(), &subs);
            assert_eq!(status, expected_status, "{run} {name}: {text}");
            assert_eq!(text, expected_body, "{run} {name}");
            let Some(expected_events) = record["resulting_events"].as_array() else {
                continue;
            };
            let fw = if name.starts_with("partition_aware") {
                second.as_mut().unwrap()
            } else {
                &mut main
            };
            for expected in expected_events {
                let want = &expected["event"]["update"]["status"];
                let task = want["task_id"]["value"].as_str().unwrap().to_owned();
                let got = fw
                    .wait(&format!("{run} {name} {task}"), |e| {
                        e["type"] == "UPDATE"
                            && e["update"]["status"]["task_id"]["value"] == task.as_str()
                            && e["update"]["status"]["source"] == "SOURCE_MASTER"
                            && e["update"]["status"]["reason"] == want["reason"]
                    })
                    .await;
                let got = &got["update"]["status"];
                for key in ["state", "reason", "source", "message"] {
                    assert_eq!(
                        got[key],
                        json!(want[key].as_str().map(|s| sub(s, &subs))),
                        "{run} {name} {task} {key}"
                    );
                }
                assert_eq!(
                    got.get("uuid").is_some(),
                    want.get("uuid").is_some(),
                    "{run} {name} {task} uuid"
                );
                assert_eq!(
                    got["agent_id"],
                    json!(
                        want["agent_id"]["value"]
                            .as_str()
                            .map(|s| json!({"value": sub(s, &subs)}))
                            .unwrap_or(Value::Null)
                    ),
                    "{run} {name} {task} agent_id"
                );
                assert_eq!(
                    got.get("executor_id").is_some(),
                    want.get("executor_id").is_some(),
                    "{run} {name} {task} executor_id"
                );
            }
        }
        // TEARDOWN ended the main stream (terminating chunk).
        tokio::time::timeout(WAIT, async { while main.events.recv().await.is_some() {} })
            .await
            .unwrap();
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_framework_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    // Every offer after the first waits for a batch allocation (resources given back
    // are offered at the next tick, as in Mesos); a 100 ms interval keeps the many
    // waits of this test short.
    let cluster = cluster(
        dir.path(),
        Duration::from_millis(300),
        Duration::from_millis(100),
    )
    .await;
    let url = cluster.master_url();
    let mut fw = Framework::subscribe(
        &url,
        json!({"user": "root", "name": "json-client", "roles": ["*"], "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 0.0}),
        json_headers(None),
    )
    .await;
    fw.wait("first HEARTBEAT", |e| e["type"] == "HEARTBEAT")
        .await;
    fw.wait("second HEARTBEAT", |e| e["type"] == "HEARTBEAT")
        .await;
    let offer = fw.offer().await;
    assert_eq!(offered(&offer, "cpus"), 2.0);
    assert_eq!(offer["resources"][0]["allocation_info"]["role"], "*");
    let agent = offer["agent_id"].clone();
    // A long task on a custom executor: offers shrink by task + executor.
    let launch = json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [executor_task("long-1", &agent, "exec-1")]}}],
        "filters": {"refuse_seconds": 0.0}}});
    assert_eq!(fw.call(launch).await.0, 202);
    fw.update("long-1", "TASK_RUNNING").await;
    let offer = fw.offer().await;
    assert_eq!(offered(&offer, "cpus"), 1.7);
    assert_eq!(offer["executor_ids"][0]["value"], "exec-1");
    // A second task on the same executor finishes; a framework message round trip.
    let launch = json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [executor_task("short-2", &agent, "exec-1")]}}],
        "filters": {"refuse_seconds": 0.0}}});
    assert_eq!(fw.call(launch).await.0, 202);
    fw.update("short-2", "TASK_FINISHED").await;
    let data = base64::engine::general_purpose::STANDARD.encode(b"ping");
    let msg = json!({"type": "MESSAGE", "message": {"agent_id": agent, "executor_id": {"value": "exec-1"}, "data": data}});
    assert_eq!(fw.call(msg).await.0, 202);
    let echoed = fw.wait("MESSAGE", |e| e["type"] == "MESSAGE").await;
    assert_eq!(echoed["message"]["data"], json!(data));
    // Reconcile: implicit, then explicit with an unknown task.
    assert_eq!(
        fw.call(json!({"type": "RECONCILE", "reconcile": {"tasks": []}}))
            .await
            .0,
        202
    );
    let r = fw.update("long-1", "TASK_RUNNING").await;
    assert_eq!(r["reason"], "REASON_RECONCILIATION");
    assert!(r.get("uuid").is_none());
    let explicit = json!({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "nope"}, "agent_id": agent}]}});
    assert_eq!(fw.call(explicit).await.0, 202);
    let r = fw.update("nope", "TASK_LOST").await;
    assert_eq!(r["message"], "Reconciliation: Task is unknown to the agent");
    // Kill, then the executor exits on SHUTDOWN → FAILURE; resources grow back.
    assert_eq!(
        fw.call(
            json!({"type": "KILL", "kill": {"task_id": {"value": "long-1"}, "agent_id": agent}})
        )
        .await
        .0,
        202
    );
    fw.update("long-1", "TASK_KILLED").await;
    let state: Value = serde_json::from_str(&get(&url, "/master/state").await).unwrap();
    assert_eq!(state["frameworks"][0]["name"], "json-client");
    assert_eq!(fw.call(json!({"type": "SHUTDOWN", "shutdown": {"executor_id": {"value": "exec-1"}, "agent_id": agent}})).await.0, 202);
    let failure = fw.wait("FAILURE", |e| e["type"] == "FAILURE").await;
    assert_eq!(failure["failure"]["executor_id"]["value"], "exec-1");
    assert_eq!(failure["failure"]["status"], 0);
    // Decline with a filter, suppress and revive.
    // Freed resources came as extra offers: once they add up to the whole agent, give
    // them all back in one DECLINE and get one offer of everything.
    let mut pieces: Vec<Value> = Vec::new();
    while (pieces.iter().map(|o| offered(o, "cpus")).sum::<f64>() * 1000.0).round() < 2000.0 {
        pieces.push(fw.offer().await);
    }
    let ids: Vec<Value> = pieces.iter().map(|o| o["id"].clone()).collect();
    let decline = json!({"type": "DECLINE", "decline": {"offer_ids": ids, "filters": {"refuse_seconds": 0.0}}});
    assert_eq!(fw.call(decline).await.0, 202);
    let whole = fw.offer().await;
    assert_eq!(offered(&whole, "cpus"), 2.0);
    let decline = json!({"type": "DECLINE", "decline": {"offer_ids": [whole["id"]], "filters": {"refuse_seconds": 0.5}}});
    assert_eq!(fw.call(decline).await.0, 202);
    let offer = fw.offer().await;
    assert_eq!(offered(&offer, "cpus"), 2.0);
    assert_eq!(fw.call(json!({"type": "SUPPRESS"})).await.0, 202);
    let decline = json!({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.0}}});
    assert_eq!(fw.call(decline).await.0, 202);
    assert_eq!(fw.call(json!({"type": "REVIVE"})).await.0, 202);
    fw.offer().await;
    let metrics: Value = serde_json::from_str(&get(&url, "/metrics/snapshot").await).unwrap();
    assert_eq!(metrics["master/frameworks_connected"], 1.0);
    assert_eq!(fw.call(json!({"type": "TEARDOWN"})).await.0, 202);
    tokio::time::timeout(WAIT, async { while fw.events.recv().await.is_some() {} })
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_within_and_after_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), Duration::from_secs(15), Duration::from_secs(1)).await;
    let url = cluster.master_url();
    let info = json!({"user": "root", "name": "failover", "roles": ["*"], "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 1.0});
    let mut fw = Framework::subscribe(&url, info.clone(), json_headers(None)).await;
    let offer = fw.offer().await;
    let agent = offer["agent_id"].clone();
    let launch = json!({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [executor_task("long-f", &agent, "exec-f")]}}]}});
    assert_eq!(fw.call(launch).await.0, 202);
    fw.update("long-f", "TASK_RUNNING").await;
    let (id, old_stream) = (fw.id.clone(), fw.stream_id.clone());
    fw.disconnect();
    // Within the timeout: same framework id, new stream, the task is still there.
    let mut info2 = info.clone();
    info2["id"] = json!({"value": id});
    let mut fw = Framework::subscribe(&url, info2.clone(), json_headers(None)).await;
    assert_eq!(fw.id, id);
    assert_ne!(fw.stream_id, old_stream);
    let (status, text) = post(
        &url,
        &json_headers(Some(&old_stream)),
        serde_json::to_vec(&json!({"framework_id": {"value": id}, "type": "REVIVE"})).unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.starts_with("The stream ID"), "{text}");
    assert_eq!(
        fw.call(json!({"type": "RECONCILE", "reconcile": {"tasks": []}}))
            .await
            .0,
        202
    );
    fw.update("long-f", "TASK_RUNNING").await;
    // After the timeout: the executor is shut down and the framework removed.
    let stream = fw.stream_id.clone();
    fw.disconnect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, text) = post(
            &url,
            &json_headers(Some(&stream)),
            serde_json::to_vec(&json!({"framework_id": {"value": id}, "type": "REVIVE"})).unwrap(),
        )
        .await;
        if status == 400 && text == "Framework cannot be found" {
            break;
        }
        // 202 until the master has seen the disconnection, then 403 until the timeout.
        assert!(
            status == 202 || (status, text.as_str()) == (403, "Framework is not subscribed"),
            "{status} {text}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "framework not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cluster.agents()[0].executors().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "executor not shut down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

/// The call types the local master does not implement are refused as Mesos refuses a
/// call type it has no handler for (`Master::Http::scheduler`, `src/master/http.cpp`:
/// `NotImplemented()`, libprocess's `501` with the body `501 Not Implemented.`), after
/// the same framework and stream checks as every other call. Nothing happens, and the
/// subscription and the implemented calls go on as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_calls_get_501() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(
        dir.path(),
        Duration::from_secs(15),
        Duration::from_millis(100),
    )
    .await;
    let url = cluster.master_url();
    let info = json!({"user": "root", "name": "unimplemented", "roles": ["*"], "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 0.0});
    let mut fw = Framework::subscribe(&url, info.clone(), json_headers(None)).await;
    let offer = fw.offer().await;
    let mut renamed = info.clone();
    renamed["name"] = json!("renamed");
    renamed["id"] = json!({"value": fw.id});
    let uuid = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let unimplemented = [
        json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": renamed}}),
        json!({"type": "REQUEST", "request": {"requests": []}}),
        json!({"type": "ACCEPT_INVERSE_OFFERS", "accept_inverse_offers": {"inverse_offer_ids": [{"value": "none"}]}}),
        json!({"type": "DECLINE_INVERSE_OFFERS", "decline_inverse_offers": {"inverse_offer_ids": [{"value": "none"}]}}),
        json!({"type": "RECONCILE_OPERATIONS", "reconcile_operations": {"operations": []}}),
        json!({"type": "ACKNOWLEDGE_OPERATION_STATUS", "acknowledge_operation_status": {"uuid": uuid, "operation_id": {"value": "op"}}}),
        json!({"type": "UNKNOWN"}),
    ];
    for call in unimplemented {
        let (status, body) = fw.call(call.clone()).await;
        assert_eq!(
            (status, body.as_str()),
            (501, "501 Not Implemented."),
            "{call}"
        );
    }
    // The framework and stream checks come first, as for every call.
    let (status, body) = post(
        &url,
        &json_headers(Some(&fw.stream_id)),
        serde_json::to_vec(
            &json!({"framework_id": {"value": "nope"}, "type": "REQUEST", "request": {}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (400, "Framework cannot be found"));
    let (status, body) = post(
        &url,
        &json_headers(Some("not-the-stream")),
        serde_json::to_vec(
            &json!({"framework_id": {"value": fw.id}, "type": "REQUEST", "request": {}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.starts_with("The stream ID"), "{body}");
    // Nothing changed, and the implemented calls still work on the same stream.
    let state: Value = serde_json::from_str(&get(&url, "/master/state").await).unwrap();
    assert_eq!(state["frameworks"][0]["name"], "unimplemented");
    let decline = json!({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.0}}});
    assert_eq!(fw.call(decline).await, (202, String::new()));
    assert_eq!(
        fw.call(json!({"type": "REVIVE"})).await,
        (202, String::new())
    );
    let offer = fw.offer().await;
    assert_eq!(offered(&offer, "cpus"), 2.0);
    fw.teardown().await;
    cluster.shutdown().await;
}
