//! A hand-written v1 scheduler client over real HTTP/1.1 (hyper), as the fixtures'
//! capture client behaved: every call on its own connection, JSON bodies, events read
//! from the SUBSCRIBE stream as JSON with the time each record was complete, and every
//! UPDATE with a uuid acknowledged as it arrives.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use brine_local::agent::{AgentResources, CgroupsMode};
use brine_local::{LocalCluster, LocalClusterConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::WAIT;

/// A master with one agent of the size the later captures used
/// (`subscribe-validation.json`, `allocation-timing.json`): cpus 2, mem 4096, disk
/// 10000, ports [31000-32000]; cgroups off; the given allocation interval.
pub async fn captured_cluster(dir: &Path, allocation_interval: Duration) -> LocalCluster {
    super::init_tracing();
    let mut config = LocalClusterConfig::new(1, dir);
    config.cgroups = CgroupsMode::Off;
    config.allocation_interval = allocation_interval;
    config.agent_resources = Some(AgentResources {
        cpus: 2.0,
        mem_mb: 4096.0,
        disk_mb: 10000.0,
    });
    config.agent_ports = vec![(31000, 32000)];
    config.executor_shutdown_grace_period = Duration::from_secs(2);
    LocalCluster::start(config).await.unwrap()
}

/// `python3 <this>` runs the stdlib JSON executor of `tests/data/json_executor.py`.
pub fn executor_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/json_executor.py")
        .display()
        .to_string()
}

/// A plain HTTP/1.1 request to `/api/v1/scheduler` on a fresh connection: status, the
/// `Mesos-Stream-Id` (or ""), the body, the headers.
pub async fn request(
    url: &str,
    method: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String, hyper::body::Incoming, http::HeaderMap) {
    let addr = url.trim_start_matches("http://").to_owned();
    let mut sender = super::connect(&addr).await;
    let mut builder = http::Request::builder()
        .method(method)
        .uri("/api/v1/scheduler")
        .header("Host", addr);
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let stream_id = headers
        .get("Mesos-Stream-Id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, stream_id, response.into_body(), headers)
}

/// POST, whole answer: status and body text.
pub async fn post(url: &str, headers: &[(String, String)], body: Vec<u8>) -> (u16, String) {
    let (status, _, body, _) = request(url, "POST", headers, body).await;
    let bytes = body.collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// GET `path` of the master, the body as text.
pub async fn get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://").to_owned();
    let mut sender = super::connect(&addr).await;
    let req = http::Request::get(path)
        .header("Host", addr)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

pub fn json_headers(stream_id: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(id) = stream_id {
        h.push(("Mesos-Stream-Id".to_owned(), id.to_owned()));
    }
    h
}

/// Reads a SUBSCRIBE response body: each RecordIO record as JSON with the instant its
/// chunk arrived, in order; the channel closes when the body ends. `ended` says how:
/// `true` for the terminating chunk, `false` for a cut connection. With `ack`
/// (master URL, stream id), every UPDATE carrying a uuid is acknowledged (202) before
/// it is passed on.
pub fn read_events(
    mut body: hyper::body::Incoming,
    ack: Option<(String, String)>,
) -> (
    mpsc::UnboundedReceiver<(Instant, Value)>,
    oneshot::Receiver<bool>,
    tokio::task::JoinHandle<()>,
) {
    // One task reads and timestamps the records as they come (so acknowledging never
    // delays a timestamp), another acknowledges and passes them on, in order.
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<(Instant, Value)>();
    let (ended_tx, ended_rx) = oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut decoder = brine_proto::recordio::Decoder::new();
        let clean = loop {
            let frame = match body.frame().await {
                None => break true,
                Some(Err(_)) => break false,
                Some(Ok(frame)) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let at = Instant::now();
            for record in decoder.decode(&data).unwrap() {
                let event: Value = serde_json::from_slice(&record).unwrap();
                if raw_tx.send((at, event)).is_err() {
                    return;
                }
            }
        };
        let _ = ended_tx.send(clean);
    });
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut framework_id = String::new();
        while let Some((at, event)) = raw_rx.recv().await {
            if event["type"] == "SUBSCRIBED" {
                framework_id = event["subscribed"]["framework_id"]["value"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
            let status = &event["update"]["status"];
            if let Some((url, stream_id)) = &ack
                && event["type"] == "UPDATE"
                && status.get("uuid").is_some()
            {
                let ack = json!({"framework_id": {"value": framework_id}, "type": "ACKNOWLEDGE",
                    "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}});
                let (code, _) = post(
                    url,
                    &json_headers(Some(stream_id)),
                    serde_json::to_vec(&ack).unwrap(),
                )
                .await;
                assert_eq!(code, 202);
            }
            if tx.send((at, event)).is_err() {
                return;
            }
        }
    });
    (rx, ended_rx, reader)
}

/// A subscribed framework: its events as JSON (with arrival instants); every UPDATE
/// with a uuid is acknowledged.
pub struct Framework {
    pub url: String,
    pub id: String,
    pub stream_id: String,
    pub events: mpsc::UnboundedReceiver<(Instant, Value)>,
    pub seen: VecDeque<(Instant, Value)>,
    /// The SUBSCRIBED event and when it arrived.
    pub subscribed: (Instant, Value),
    reader: tokio::task::JoinHandle<()>,
}

impl Framework {
    /// SUBSCRIBE with `info` (its `id`, if any, also as the call's `framework_id`).
    pub async fn subscribe(url: &str, info: Value, headers: Vec<(String, String)>) -> Framework {
        let mut body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}});
        if let Some(id) = info.get("id") {
            body["framework_id"] = id.clone();
        }
        Self::subscribe_raw(url, serde_json::to_vec(&body).unwrap(), headers).await
    }

    /// SUBSCRIBE with this exact body; expects 200 and SUBSCRIBED first.
    pub async fn subscribe_raw(
        url: &str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Framework {
        let (status, stream_id, body, _) = request(url, "POST", &headers, body).await;
        assert_eq!(status, 200);
        let (mut rx, _ended, reader) = read_events(body, Some((url.to_owned(), stream_id.clone())));
        let first = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.1["type"], "SUBSCRIBED", "{}", first.1);
        let id = first.1["subscribed"]["framework_id"]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        Framework {
            url: url.to_owned(),
            id,
            stream_id,
            events: rx,
            seen: VecDeque::new(),
            subscribed: first,
            reader,
        }
    }

    /// The next event (in order) matching `pred`, with its arrival instant, if one
    /// arrives before `deadline`; events skipped stay available.
    pub async fn wait_until(
        &mut self,
        deadline: tokio::time::Instant,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        if let Some(i) = self.seen.iter().position(|(_, e)| pred(e)) {
            return self.seen.remove(i);
        }
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e.1) => return Some(e),
                Ok(Some(e)) => self.seen.push_back(e),
                Ok(None) => panic!("stream ended; seen {}", self.describe_seen()),
                Err(_) => return None,
            }
        }
    }

    /// As [`Framework::wait_until`], bounded by [`WAIT`]; panics on timeout.
    pub async fn wait_timed(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Instant, Value) {
        let deadline = tokio::time::Instant::now() + WAIT;
        match self.wait_until(deadline, pred).await {
            Some(e) => e,
            None => panic!(
                "timed out waiting for {what}; seen {}",
                self.describe_seen()
            ),
        }
    }

    /// The next event (in order) matching `pred`; events skipped stay available.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_timed(what, pred).await.1
    }

    /// Every event that arrives before `deadline` (and those already seen).
    pub async fn events_until(&mut self, deadline: tokio::time::Instant) -> Vec<(Instant, Value)> {
        let mut out: Vec<(Instant, Value)> = self.seen.drain(..).collect();
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            out.push(e);
        }
        out
    }

    fn describe_seen(&self) -> String {
        format!(
            "{:?}",
            self.seen
                .iter()
                .map(|(_, e)| format!(
                    "{} {} {}",
                    e["type"], e["update"]["status"]["task_id"], e["update"]["status"]["state"]
                ))
                .collect::<Vec<_>>()
        )
    }

    /// The first offer of the next OFFERS event.
    pub async fn offer(&mut self) -> Value {
        let e = self.wait("OFFERS", |e| e["type"] == "OFFERS").await;
        e["offers"]["offers"][0].clone()
    }

    /// The first offer of the next OFFERS event and when it arrived.
    pub async fn offer_timed(&mut self) -> (Instant, Value) {
        let (at, e) = self.wait_timed("OFFERS", |e| e["type"] == "OFFERS").await;
        (at, e["offers"]["offers"][0].clone())
    }

    /// The status of the next UPDATE of `task` in `state`.
    pub async fn update(&mut self, task: &str, state: &str) -> Value {
        self.update_timed(task, state).await.1
    }

    /// As [`Framework::update`], with the instant the UPDATE arrived.
    pub async fn update_timed(&mut self, task: &str, state: &str) -> (Instant, Value) {
        let (at, e) = self
            .wait_timed(&format!("{task} {state}"), |e| {
                e["type"] == "UPDATE"
                    && e["update"]["status"]["task_id"]["value"] == task
                    && e["update"]["status"]["state"] == state
            })
            .await;
        (at, e["update"]["status"].clone())
    }

    /// A call of this framework (its `framework_id` and stream id added): status, body.
    pub async fn call(&self, body: Value) -> (u16, String) {
        let mut body = body;
        body["framework_id"] = json!({"value": self.id});
        post(
            &self.url,
            &json_headers(Some(&self.stream_id)),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    /// TEARDOWN (202), then the stream ends with the terminating chunk.
    pub async fn teardown(mut self) {
        assert_eq!(self.call(json!({"type": "TEARDOWN"})).await.0, 202);
        tokio::time::timeout(WAIT, async { while self.events.recv().await.is_some() {} })
            .await
            .expect("stream not ended after TEARDOWN");
    }

    /// Drops the connection.
    pub fn disconnect(self) {
        self.reader.abort();
    }
}

pub fn scalar(name: &str, v: f64) -> Value {
    json!({"name": name, "type": "SCALAR", "scalar": {"value": v}})
}

/// A task (cpus 0.2, mem 32) on the JSON executor `executor` (cpus 0.1, mem 32).
pub fn executor_task(task: &str, agent: &Value, executor: &str) -> Value {
    json!({"name": task, "task_id": {"value": task}, "agent_id": agent,
        "resources": [scalar("cpus", 0.2), scalar("mem", 32.0)],
        "executor": {"executor_id": {"value": executor}, "type": "CUSTOM",
            "command": {"shell": true, "value": format!("python3 {}", executor_script())},
            "resources": [scalar("cpus", 0.1), scalar("mem", 32.0)]}})
}

/// The scalar `name` of an offer (0 if absent).
pub fn offered(offer: &Value, name: &str) -> f64 {
    offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["scalar"]["value"].as_f64().unwrap())
        .unwrap_or(0.0)
}
