//! Replays `subscribe-validation.json`: the 16 SUBSCRIBE requests (FrameworkInfo
//! variants) a real Mesos 1.12 master answered, in the captured order, against one
//! brine-local master over HTTP (one agent of the captured size: cpus 2, mem 4096,
//! disk 10000, ports [31000-32000]).
//!
//! For every variant: the same status; a `400` has the same body and Mesos's error
//! headers; a `200` has the streaming head (`Transfer-Encoding: chunked`, a fresh
//! `Mesos-Stream-Id`, `Content-Type: application/json`) and then either
//! - the refusal: one ERROR record with the same message, then the terminating chunk, or
//! - the subscription: the same records in the same order (SUBSCRIBED, HEARTBEAT,
//!   OFFERS; for `m_multi_role_empty_roles` no OFFERS during the captured 0.5 s), each
//!   equal as JSON to the captured one (same fields and values, integers and doubles
//!   told apart), the master's view of the framework (`/master/state`) with the
//!   captured values, and a TEARDOWN answered `202` that ends the stream with no other
//!   record.
//!
//! Ids are Mesos's scheme in both (`<master>-0000`, `<master>-O0`, `<master>-S0`), so
//! the captured master id becomes ours; the captured ports 5050 / 5051 become the live
//! master's and agent's. The master runs with `allocation_interval` 100 ms (instead of
//! 1 s) so that the 0.5 s during which `m` must get no offer spans several batch
//! allocations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{Value, json};

use common::scheduler::{captured_cluster, get, json_headers, post, read_events, request};
use common::{WAIT, fixtures};

/// Applies `(from, to)` substitutions in order.
fn sub(text: &str, subs: &[(String, String)]) -> String {
    subs.iter()
        .fold(text.to_owned(), |acc, (a, b)| acc.replace(a.as_str(), b))
}

fn header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers.iter().map(|(k, _)| k.to_lowercase()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_subscribe_validation() {
    let fixture: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("subscribe-validation.json")).unwrap(),
    )
    .unwrap();
    let variants = fixture["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 16);
    let dir = tempfile::tempdir().unwrap();
    let cluster = captured_cluster(dir.path(), Duration::from_millis(100)).await;
    let url = cluster.master_url();
    let master = cluster.master().unwrap();
    let agent_port = cluster.agents()[0].endpoint().port();
    // The captured master id: the prefix of the first framework id Mesos assigned.
    let recorded_master = variants
        .iter()
        .find_map(|v| v["framework_id"].as_str())
        .unwrap()
        .trim_end_matches("-0000")
        .to_owned();
    let subs = vec![
        (recorded_master.clone(), master.id().to_owned()),
        (
            "master@127.0.0.1:5050".to_owned(),
            format!("master@{}", master.endpoint()),
        ),
        (
            r#""ip":"127.0.0.1","port":5050"#.to_owned(),
            format!(r#""ip":"127.0.0.1","port":{}"#, master.endpoint().port()),
        ),
        (
            r#""port":5050"#.to_owned(),
            format!(r#""port":{}"#, master.endpoint().port()),
        ),
        (
            r#""port":5051"#.to_owned(),
            format!(r#""port":{agent_port}"#),
        ),
    ];
    for variant in variants {
        let name = variant["name"].as_str().unwrap();
        let body = sub(variant["request_body"].as_str().unwrap(), &subs);
        let headers: Vec<(String, String)> = variant["request_headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] != "Host" && h[0] != "Content-Length")
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let (status, stream_id, body, response_headers) =
            request(&url, "POST", &headers, body.into_bytes()).await;
        assert_eq!(
            u64::from(status),
            variant["status"].as_u64().unwrap(),
            "{name}: status"
        );
        let got_headers: Vec<(String, String)> = response_headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let want_headers: Vec<(String, String)> = variant["response_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            header_names(&got_headers),
            header_names(&want_headers),
            "{name}: headers"
        );
        let content_type = response_headers["content-type"].to_str().unwrap();
        assert_eq!(
            content_type, variant["content_type"],
            "{name}: Content-Type"
        );
        if status != 200 {
            let text = body.collect().await.unwrap().to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&text),
                variant["response_body"].as_str().unwrap(),
                "{name}: body"
            );
            assert!(stream_id.is_empty(), "{name}: no Mesos-Stream-Id");
            continue;
        }
        assert_eq!(response_headers["transfer-encoding"], "chunked", "{name}");
        assert!(
            uuid::Uuid::parse_str(&stream_id).is_ok(),
            "{name}: stream id {stream_id}"
        );
        let subscribed = variant["subscribed"].as_bool().unwrap();
        let (mut events, ended, _reader) =
            read_events(body, subscribed.then(|| (url.clone(), stream_id.clone())));
        let expected = variant["stream"]["records"].as_array().unwrap();
        if !subscribed {
            // The refusal: ERROR, then the terminating chunk; nothing else.
            let (_, error) = tokio::time::timeout(WAIT, events.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(error["type"], "ERROR", "{name}: {error}");
            assert_eq!(
                error["error"]["message"], variant["error_event_message"],
                "{name}: ERROR message"
            );
            assert_eq!(expected.len(), 1, "{name}: captured records");
            assert_eq!(
                error,
                serde_json::from_str::<Value>(expected[0]["payload"].as_str().unwrap()).unwrap(),
                "{name}: ERROR record"
            );
            let rest = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
            assert!(rest.is_none(), "{name}: a record after ERROR: {rest:?}");
            assert!(
                tokio::time::timeout(WAIT, ended).await.unwrap().unwrap(),
                "{name}: the stream did not end with the terminating chunk"
            );
            continue;
        }
        // The subscription: the same records, in order, equal as JSON.
        for record in expected {
            let (_, got) = tokio::time::timeout(WAIT, events.recv())
                .await
                .unwrap()
                .unwrap();
            let want: Value =
                serde_json::from_str(&sub(record["payload"].as_str().unwrap(), &subs)).unwrap();
            assert_eq!(got, want, "{name}: record {}", record["index"]);
        }
        // Nothing else while the capture client kept reading (0.5 s).
        let observed = variant["stream"]["observed_for_s"].as_f64().unwrap();
        let last = expected.last().unwrap()["t_rel_s"].as_f64().unwrap();
        let quiet = Duration::from_secs_f64((observed - last).max(0.0));
        if let Ok(extra) = tokio::time::timeout(quiet, events.recv()).await {
            panic!("{name}: unexpected record {extra:?}");
        }
        // The master's view of the framework.
        let framework_id = sub(variant["framework_id"].as_str().unwrap(), &subs);
        let state: Value = serde_json::from_str(&get(&url, "/master/state").await).unwrap();
        let view = state["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == framework_id.as_str())
            .unwrap_or_else(|| panic!("{name}: {framework_id} not in /master/state"))
            .clone();
        let want = &variant["master_framework_view"];
        for key in [
            "id",
            "name",
            "user",
            "role",
            "roles",
            "capabilities",
            "failover_timeout",
            "checkpoint",
            "hostname",
            "webui_url",
            "active",
            "connected",
            "recovered",
        ] {
            let want = match &want[key] {
                Value::String(s) => json!(sub(s, &subs)),
                other => other.clone(),
            };
            assert_eq!(view[key], want, "{name}: /master/state {key}");
        }
        for key in ["offered_resources", "used_resources"] {
            for resource in ["cpus", "mem", "disk", "ports"] {
                let want = &want[key][resource];
                let got = &view[key][resource];
                // Mesos lists no `ports` when there are none; we list none either.
                assert_eq!(got, want, "{name}: /master/state {key}.{resource}");
            }
        }
        // TEARDOWN: 202, then the terminating chunk and no record.
        let teardown = json!({"framework_id": {"value": framework_id}, "type": "TEARDOWN"});
        let (status, text) = post(
            &url,
            &json_headers(Some(&stream_id)),
            serde_json::to_vec(&teardown).unwrap(),
        )
        .await;
        let want = &variant["teardown"];
        assert_eq!(
            u64::from(status),
            want["status"].as_u64().unwrap(),
            "{name}: TEARDOWN"
        );
        assert_eq!(
            text,
            want["response_body"].as_str().unwrap(),
            "{name}: TEARDOWN body"
        );
        let after = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
        assert!(
            after.is_none(),
            "{name}: a record after TEARDOWN: {after:?}"
        );
        assert!(
            want["stream_after_teardown"]["records"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(
            tokio::time::timeout(WAIT, ended).await.unwrap().unwrap(),
            "{name}: the stream did not end with the terminating chunk"
        );
    }
    cluster.shutdown().await;
}
