//! The agent's HTTP server: `POST /api/v1/executor` answered exactly as a Mesos 1.12
//! agent answers (order of checks, status codes and plain-text messages from
//! `Http::executor` in `src/slave/http.cpp`), plus `GET /state` and
//! `GET /metrics/snapshot`.

use std::sync::Arc;

use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::executor::Call;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::web::{self, ResponseBody, accepted, json_response, plain};

use super::call;
use super::inner::{Inner, Reply};

pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>, stop: watch::Receiver<bool>) {
    web::serve(listener, stop, move |req| handle(Arc::clone(&inner), req)).await;
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<ResponseBody> {
    match req.uri().path() {
        "/api/v1/executor" => executor_endpoint(inner, req).await,
        "/state" | "/state.json" | "/slave(1)/state" => json_response(state_json(&inner)),
        "/metrics/snapshot" => json_response(serde_json::Value::Object(inner.metrics())),
        _ => plain(StatusCode::NOT_FOUND, ""),
    }
}

/// For fuzzing and tests: what `POST /api/v1/executor` does with a request's
/// `Content-Type` and body before it needs the agent's state (the `Accept` header left
/// out): the content type, the `Call` decoded as [`web::read_call`] decodes it (protobuf,
/// or JSON walked as stout walks it), then `validateExecutorCall`. Returns the call, or
/// the status and text the endpoint answers with. Never panics, whatever the bytes.
pub fn check_executor_call(content_type: &[u8], body: &[u8]) -> Result<Call, (StatusCode, String)> {
    let Ok(content_type) = ContentType::from_content_type(content_type) else {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf".to_owned(),
        ));
    };
    let call = web::decode_call::<Call>(content_type, body)
        .map_err(|message| (StatusCode::BAD_REQUEST, message))?;
    call::validate(&call).map_err(|message| {
        (
            StatusCode::BAD_REQUEST,
            format!("Failed to validate Executor::Call: {message}"),
        )
    })?;
    Ok(call)
}

async fn executor_endpoint(inner: Arc<Inner>, req: Request<Incoming>) -> Response<ResponseBody> {
    let (call, headers) = match web::read_call::<Call>(req).await {
        Ok(pair) => pair,
        Err(response) => return response,
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
        Type::Subscribe => match web::stream_type(&headers) {
            Ok(ct) => stream_type = ct,
            Err(response) => return response,
        },
        // Answered before any lookup: executors may send made-up ids.
        Type::Heartbeat => return accepted(),
        _ => {}
    }
    match inner.executor_call(call, stream_type) {
        Ok(Reply::Accepted) => accepted(),
        Ok(Reply::Stream(rx, ct, guard)) => web::stream_response(rx, guard, ct),
        Err((status, message)) => plain(status, &message),
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
            "tasks": e.tasks.iter().filter(|(_, s)| !s.is_terminal()).map(|(id, s)| json!({"id": id.value, "state": s.as_str_name()})).collect::<Vec<_>>(),
            "completed_tasks": e.tasks.iter().filter(|(_, s)| s.is_terminal()).map(|(id, s)| json!({"id": id.value, "state": s.as_str_name()})).collect::<Vec<_>>(),
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
        "unacknowledged_status_updates": inner.pending_updates(),
        "frameworks": frameworks,
        "completed_executors": completed,
    })
}
