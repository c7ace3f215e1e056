//! `POST /api/v1/scheduler` with the order of checks and the texts of
//! `Master::Http::scheduler` (`src/master/http.cpp`), plus `GET /master/state`,
//! `GET /metrics/snapshot` and `GET /version`.

use brine_proto::codec::ContentType;
use brine_proto::mesos::v1::scheduler::{Call, call};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::core::Command;
use super::validation;
use crate::web::{
    RecordStream, ResponseBody, accepted, decode_call, json_response, plain, post_only, read_body,
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
    if req.method() != Method::POST {
        return post_only(req.method());
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
    let stream_id = req
        .headers()
        .get("Mesos-Stream-Id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(content_type) = ContentType::from_content_type(content_type.as_bytes()) else {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        );
    };
    let call: Call = match decode_call(content_type, &body) {
        Ok(call) => call,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    if let Err(message) = validation::validate_call(&call) {
        let _ = tx.send(Command::InvalidCall);
        return plain(
            StatusCode::BAD_REQUEST,
            &format!("Failed to validate scheduler::Call: {message}"),
        );
    }
    if call.r#type() == call::Type::Subscribe {
        let Ok(stream_type) = ContentType::from_accept(accept.as_deref()) else {
            return plain(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
            );
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
        let mut response = Response::new(BoxBody::new(RecordStream {
            rx: subscribed.rx,
            _guard: subscribed.guard,
        }));
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&subscribed.stream_id) {
            headers.insert("Mesos-Stream-Id", value);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(subscribed.content_type.as_str()),
        );
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
