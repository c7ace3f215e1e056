//! What the scheduler shows of itself: [`ClusterStatus`], from
//! [`crate::Cluster::status`] and from `GET /status` on the address advertised as the
//! framework's `webui_url` (which `brine status` finds in the master's state).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Asks the scheduler's loop for its status (the answer comes on the sender); false
/// once the loop has stopped.
pub(crate) type AskStatus = Arc<dyn Fn(oneshot::Sender<ClusterStatus>) -> bool + Send + Sync>;

/// The scheduler's view of its jobs and executors. More fields may come (it is
/// `#[non_exhaustive]`); its JSON (`GET /status`) only gains fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The FrameworkID the master gave this scheduler.
    pub framework_id: String,
    /// Subscribed to a master now.
    pub connected: bool,
    /// How many jobs are in each state.
    pub jobs: JobCounts,
    /// Current executors (one per agent), then the last few gone or presumed lost.
    pub executors: Vec<ExecutorStatus>,
    /// Agents set aside for failing too many jobs.
    pub set_aside_agents: Vec<String>,
}

/// Jobs by state; `succeeded` and `failed` count since the scheduler started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobCounts {
    /// Waiting for an offer (or a lease slot).
    pub pending: u64,
    /// Launched, not reported running yet.
    pub staging: u64,
    /// Running on an executor.
    pub running: u64,
    /// Ended with a result.
    pub succeeded: u64,
    /// Ended with an error.
    pub failed: u64,
    /// Answers that came for closures already written off and sent elsewhere (their
    /// lane or executor was presumed lost): work that ran to completion twice. The
    /// job took the first answer it got; these were dropped.
    #[serde(default)]
    pub completed_twice: u64,
}

/// One executor of this framework, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutorStatus {
    /// The agent it runs on.
    pub agent_id: String,
    /// Its id, `brine-<agent>-<generation>`.
    pub executor_id: String,
    /// Its live tasks.
    pub tasks: Vec<String>,
    /// CPUs it holds (its own and its tasks'), from its last heartbeat.
    pub cpus: f64,
    /// Memory it holds in MB (its own and its tasks'), from its last heartbeat.
    pub mem_mb: f64,
    /// When its last heartbeat was sent (executor clock, Unix ms).
    pub last_heartbeat_unix_ms: Option<u64>,
    /// Modules it holds compiled.
    pub modules: usize,
    /// Presumed lost for missing its heartbeats (and shut down).
    pub lost: bool,
    /// Leases it holds for this framework (lease mode).
    #[serde(default)]
    pub leases: usize,
    /// Its closure lane is connected.
    #[serde(default)]
    pub lane_connected: bool,
    /// Lane closures running, from its last heartbeat.
    #[serde(default)]
    pub lane_running: u32,
}

/// Serves `GET /status` on `listener` until the scheduler stops: until `stopped`'s
/// sender is dropped, which the scheduler's task does when its loop ends (the last
/// `Cluster` dropped, `shutdown`, `abandon`). Then the listener is closed (the port
/// released) and open connections are cut. `ask` must hold no strong reference to the
/// loop, so that the endpoint never keeps the scheduler alive.
pub(crate) fn serve(listener: TcpListener, ask: AskStatus, stopped: watch::Receiver<()>) {
    tokio::spawn(async move {
        let mut stop = stopped.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // Only ever an `Err`: nothing is sent, the sender is dropped.
                _ = stop.changed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "status endpoint: accept failed");
                    continue;
                }
            };
            let ask = Arc::clone(&ask);
            let mut stop = stopped.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(request, Arc::clone(&ask)));
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    _ = stop.changed() => {}
                }
            });
        }
    });
}

async fn answer(
    request: Request<Incoming>,
    ask: AskStatus,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    if request.method() != Method::GET || request.uri().path() != "/status" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"try GET /status\n".to_vec(),
        );
    }
    let (tx, rx) = oneshot::channel();
    let sent = ask(tx);
    if !sent {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"scheduler stopped\n".to_vec(),
        );
    }
    match rx.await {
        Ok(status) => match serde_json::to_vec_pretty(&status) {
            Ok(body) => reply(StatusCode::OK, "application/json", body),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string().into_bytes(),
            ),
        },
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"scheduler stopped\n".to_vec(),
        ),
    }
}

/// The URL advertised for `addr` (an unspecified address is shown as loopback).
pub(crate) fn webui_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}/")
}
