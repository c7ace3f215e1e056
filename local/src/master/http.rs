//! `POST /api/v1/scheduler` with the order of checks and the texts of
//! `Master::Http::scheduler` (`src/master/http.cpp`), plus `GET /master/state`,
//! `GET /metrics/snapshot` and `GET /version`.

use brine_proto::mesos::v1::scheduler::{Call, call};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::core::Command;
use super::validation;
use crate::web::{
    ResponseBody, accepted, json_response, plain, read_call, stream_response, stream_type,
};

pub async fn handle(
    tx: mpsc::UnboundedSender<Command>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    match req.uri().path() {
        "/api/v1/scheduler" => scheduler(tx, req).await,
        "/master/state" | "/state" | "/master/state.json" | "/state.json" => {
            query(&tx, Command::State).await
        }
        "/metrics/snapshot" => {
            let (reply, rx) = oneshot::channel();
            if tx.send(Command::Metrics(reply)).is_err() {
                return unavailable();
            }
            match rx.await {
                Ok(map) => json_response(serde_json::Value::Object(map)),
                Err(_) => unavailable(),
            }
        }
        "/version" => json_response(json!({
            "build_date": "",
            "build_time": 0.0,
            "build_user": "",
            "version": "1.12.0",
        })),
        _ => plain(StatusCode::NOT_FOUND, ""),
    }
}

fn unavailable() -> Response<ResponseBody> {
    plain(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down")
}

async fn query(
    tx: &mpsc::UnboundedSender<Command>,
    make: fn(oneshot::Sender<serde_json::Value>) -> Command,
) -> Response<ResponseBody> {
    let (reply, rx) = oneshot::channel();
    if tx.send(make(reply)).is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(value) => json_response(value),
        Err(_) => unavailable(),
    }
}

async fn scheduler(
    tx: mpsc::UnboundedSender<Command>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let (call, headers) = match read_call::<Call>(req).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let stream_id = headers
        .get("Mesos-Stream-Id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Err(message) = validation::validate_call(&call) {
        let _ = tx.send(Command::InvalidCall);
        return plain(
            StatusCode::BAD_REQUEST,
            &format!("Failed to validate scheduler::Call: {message}"),
        );
    }
    if call.r#type() == call::Type::Subscribe {
        let stream_type = match stream_type(&headers) {
            Ok(stream_type) => stream_type,
            Err(response) => return response,
        };
        if stream_id.is_some() {
            return plain(
                StatusCode::BAD_REQUEST,
                "Subscribe calls should not include the 'Mesos-Stream-Id' header",
            );
        }
        let (reply, rx) = oneshot::channel();
        if tx
            .send(Command::Subscribe {
                call,
                content_type: stream_type,
                reply,
            })
            .is_err()
        {
            return unavailable();
        }
        let Ok(subscribed) = rx.await else {
            return unavailable();
        };
        let mut response =
            stream_response(subscribed.rx, subscribed.guard, subscribed.content_type);
        if let Ok(value) = HeaderValue::from_str(&subscribed.stream_id) {
            response.headers_mut().insert("Mesos-Stream-Id", value);
        }
        return response;
    }
    let (reply, rx) = oneshot::channel();
    if tx
        .send(Command::Call {
            call,
            stream_id,
            reply,
        })
        .is_err()
    {
        return unavailable();
    }
    match rx.await {
        Ok(Ok(())) => accepted(),
        Ok(Err((status, message))) => plain(status, &message),
        Err(_) => unavailable(),
    }
}
