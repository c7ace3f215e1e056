//! The agent's HTTP server: `POST /api/v1/executor` answered exactly as a Mesos 1.12
//! agent answers (order of checks, status codes and plain-text messages from
//! `Http::executor` in `src/slave/http.cpp`), plus `GET /state` and
//! `GET /metrics/snapshot`.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use brine_proto::codec::ContentType;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::call;
use super::executor::{Inner, Reply, StreamItem};
use super::status_updates::is_terminal;

type ResponseBody = BoxBody<Bytes, io::Error>;

/// Largest request body accepted (inline modules and task results ride in calls).
const MAX_BODY: usize = 256 << 20;

pub(crate) async fn serve(
    listener: TcpListener,
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let inner = Arc::clone(&inner);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let inner = Arc::clone(&inner);
                async move { Ok::<_, Infallible>(handle(inner, req).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<ResponseBody> {
    match req.uri().path() {
        "/api/v1/executor" => executor_endpoint(inner, req).await,
        "/state" | "/state.json" | "/slave(1)/state" => json_response(state_json(&inner)),
        "/metrics/snapshot" => json_response(serde_json::Value::Object(inner.metrics())),
        _ => plain(StatusCode::NOT_FOUND, ""),
    }
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An error answer as Mesos gives it: `text/plain; charset=utf-8` and the message.
fn plain(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(full(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn accepted() -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn json_response(value: serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(full(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn executor_endpoint(inner: Arc<Inner>, req: Request<Incoming>) -> Response<ResponseBody> {
    if req.method() != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{}'.",
                req.method()
            ),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE).cloned() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        );
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .map(|v| v.as_bytes().to_vec());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("Failed to read request body: {e}"),
            );
        }
    };
    let Ok(content_type) = ContentType::from_content_type(content_type.as_bytes()) else {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        );
    };
    let call = match call::decode(content_type, &body) {
        Ok(call) => call,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    if let Err(message) = call::validate(&call) {
        inner.count_invalid(
            call.r#type
                .and_then(|t| brine_proto::mesos::v1::executor::call::Type::try_from(t).ok()),
        );
        return plain(
            StatusCode::BAD_REQUEST,
            &format!("Failed to validate Executor::Call: {message}"),
        );
    }
    use brine_proto::mesos::v1::executor::call::Type;
    let mut stream_type = ContentType::Json;
    match call.r#type() {
        Type::Subscribe => match ContentType::from_accept(accept.as_deref()) {
            Ok(ct) => stream_type = ct,
            Err(_) => {
                return plain(
                    StatusCode::NOT_ACCEPTABLE,
                    "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
                );
            }
        },
        // Answered before any lookup: executors may send made-up ids.
        Type::Heartbeat => return accepted(),
        _ => {}
    }
    match inner.executor_call(call, stream_type) {
        Ok(Reply::Accepted) => accepted(),
        Ok(Reply::Stream(rx, ct, guard)) => {
            let mut response = Response::new(BoxBody::new(EventStream { rx, _guard: guard }));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct.as_str()));
            response
        }
        Err((status, message)) => plain(status, &message),
    }
}

/// The SUBSCRIBE response body: one RecordIO record per data frame (so per HTTP
/// chunk); ends when the agent drops the sender; an error item aborts the connection.
struct EventStream {
    rx: mpsc::UnboundedReceiver<StreamItem>,
    _guard: tokio::sync::oneshot::Sender<()>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

fn state_json(inner: &Inner) -> serde_json::Value {
    use serde_json::json;
    let snapshot_json = |e: &super::ExecutorSnapshot| {
        json!({
            "id": e.executor_id.value,
            "framework_id": e.framework_id.value,
            "container": e.container_id.value,
            "directory": e.sandbox.display().to_string(),
            "pid": e.pid,
            "state": format!("{:?}", e.state).to_uppercase(),
            "subscribed": e.subscribed,
            "resources": {"cpus": e.allocation.cpus, "mem": e.allocation.mem_mb, "disk": e.allocation.disk_mb},
            "cgroup": e.cgroup.as_ref().map(|c| json!({
                "cpu": c.cpu.display().to_string(),
                "memory": c.memory.display().to_string(),
            })),
            "tasks": e.tasks.iter().filter(|(_, s)| !is_terminal(*s)).map(|(id, s)| json!({"id": id.value, "state": s.as_str_name()})).collect::<Vec<_>>(),
            "completed_tasks": e.tasks.iter().filter(|(_, s)| is_terminal(*s)).map(|(id, s)| json!({"id": id.value, "state": s.as_str_name()})).collect::<Vec<_>>(),
        })
    };
    let frameworks: Vec<_> = inner
        .frameworks_json()
        .into_iter()
        .map(|(info, executors)| {
            json!({
                "id": info.id.as_ref().map(|i| i.value.clone()),
                "name": info.name,
                "user": info.user,
                "checkpoint": info.checkpoint(),
                "executors": executors.iter().map(snapshot_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let completed: Vec<_> = inner
        .completed_executors()
        .iter()
        .map(snapshot_json)
        .collect();
    let r = inner.config.resources;
    json!({
        "version": "1.12.0",
        "id": inner.agent_id.value,
        "pid": format!("slave(1)@{}:{}", inner.config.listen.ip(), inner.info.port.unwrap_or(0)),
        "hostname": inner.info.hostname,
        "port": inner.info.port,
        "resources": {"cpus": r.cpus, "mem": r.mem_mb, "disk": r.disk_mb},
        "flags": {
            "work_dir": inner.config.work_dir.display().to_string(),
            "fetcher_cache_dir": inner.config.fetcher_cache_dir.display().to_string(),
            "executor_registration_timeout": brine_proto::duration::format(inner.config.executor_registration_timeout),
            "executor_shutdown_grace_period": brine_proto::duration::format(inner.config.executor_shutdown_grace_period),
            "executor_reregistration_timeout": brine_proto::duration::format(inner.config.executor_reregistration_timeout),
            "recovery_timeout": brine_proto::duration::format(inner.config.recovery_timeout),
        },
        "cgroups_enforced": inner.cgroups.enabled(),
        "frameworks": frameworks,
        "completed_executors": completed,
    })
}
