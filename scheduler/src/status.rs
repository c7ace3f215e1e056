//! What the scheduler shows of itself: [`ClusterStatus`], from
//! [`crate::Cluster::status`] and from `GET /status` on the address advertised as the
//! framework's `webui_url` (which `brine status` finds in the master's state).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::scheduler::Command;

/// The scheduler's view of its jobs and executors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub framework_id: String,
    /// Subscribed to a master now.
    pub connected: bool,
    pub jobs: JobCounts,
    /// Current executors (one per agent), then the last few gone or presumed lost.
    pub executors: Vec<ExecutorStatus>,
    /// Agents set aside for failing too many jobs.
    pub set_aside_agents: Vec<String>,
}

/// Jobs by state; `succeeded` and `failed` count since the scheduler started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    pub pending: u64,
    pub staging: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorStatus {
    pub agent_id: String,
    pub executor_id: String,
    /// Its live tasks.
    pub tasks: Vec<String>,
    /// What it holds (its own resources and its tasks'), from its last heartbeat.
    pub cpus: f64,
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

/// Serves `GET /status` on `listener` until the scheduler stops.
pub(crate) fn serve(listener: TcpListener, commands: mpsc::UnboundedSender<Command>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "status endpoint: accept failed");
                    continue;
                }
            };
            if commands.is_closed() {
                return;
            }
            let commands = commands.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(request, commands.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
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
    if commands.send(Command::Status(tx)).is_err() {
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
