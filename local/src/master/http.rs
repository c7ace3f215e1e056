//! `POST /api/v1/scheduler` with the order of checks and the texts of
//! `Master::Http::scheduler` (`src/master/http.cpp`), plus `GET /master/state`,
//! `GET /metrics/snapshot` and `GET /version`.
//!
//! With credentials configured, `/api/v1/scheduler` is behind libprocess's HTTP basic
//! authenticator in the `mesos-master-scheduler` realm
//! (`3rdparty/libprocess/src/authenticator.cpp`), checked before anything else, as
//! libprocess authenticates a request before its route's handler runs.

use std::sync::Arc;

use base64::Engine;
use brine_proto::mesos::v1::scheduler::{Call, call};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::Credentials;
use super::command::Command;
use super::validation;
use crate::web::{
    ResponseBody, accepted, json_response, plain, read_call, stream_response, stream_type,
};

/// `DEFAULT_HTTP_FRAMEWORK_AUTHENTICATION_REALM` (`src/master/constants.hpp`).
const FRAMEWORK_REALM: &str = "mesos-master-scheduler";

pub async fn handle(
    tx: mpsc::UnboundedSender<Command>,
    credentials: Arc<Option<Credentials>>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    match req.uri().path() {
        "/api/v1/scheduler" => {
            let principal = match credentials.as_ref() {
                None => None,
                Some(credentials) => match authenticate(credentials, req.headers()) {
                    Some(principal) => Some(principal),
                    None => return unauthorized(),
                },
            };
            scheduler(tx, principal, req).await
        }
        crate::link::SUBSCRIBE_PATH => super::remote::subscribe(tx, req).await,
        crate::link::EVENTS_PATH => super::remote::events(tx, req).await,
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

/// libprocess's `BasicAuthenticatorProcess::authenticate`: the principal, or `None` for
/// a 401. The header must be exactly `Basic <base64>` (split on single spaces), and the
/// decoded text exactly `principal:secret` (split on every `:`).
fn authenticate(credentials: &Credentials, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let components: Vec<&str> = value.split(' ').collect();
    if components.len() != 2 || components[0] != "Basic" {
        return None;
    }
    let decoded = stout_base64(components[1])?;
    let decoded = String::from_utf8(decoded).ok()?;
    let parts: Vec<&str> = decoded.split(':').collect();
    if parts.len() != 2 || !credentials.check(parts[0], parts[1]) {
        return None;
    }
    Some(parts[0].to_owned())
}

/// stout's `base64::decode`: whitespace skipped, everything from the first `=` ignored,
/// any other character outside the alphabet an error.
fn stout_base64(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text
        .split('=')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(cleaned).ok()
}

/// libprocess's `Unauthorized`: 401, the realm's challenge, body `401 Unauthorized.`.
fn unauthorized() -> Response<ResponseBody> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized.");
    if let Ok(challenge) = HeaderValue::from_str(&format!("Basic realm=\"{FRAMEWORK_REALM}\"")) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
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

/// For fuzzing and tests: what `POST /api/v1/scheduler` does with a request's
/// `Content-Type` and body before it needs the master's state (authentication and the
/// `Accept` / `Mesos-Stream-Id` headers left out): the content type, the `Call` decoded as
/// [`read_call`] decodes it (protobuf, or JSON walked as stout walks it), then
/// `scheduler::call::validate`, and for SUBSCRIBE the `FrameworkInfo` checks of
/// `Master::subscribe` that need no state (`validateFramework`, the suppressed roles).
/// Returns the call, or the status and text the endpoint answers with; a SUBSCRIBE
/// refused by those last checks is `200 OK` (the refusal is an ERROR event on the
/// stream). Never panics, whatever the bytes.
pub fn check_scheduler_call(
    content_type: &[u8],
    body: &[u8],
) -> Result<Call, (StatusCode, String)> {
    let Ok(content_type) = brine_proto::codec::ContentType::from_content_type(content_type) else {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf".to_owned(),
        ));
    };
    let call = crate::web::decode_call::<Call>(content_type, body)
        .map_err(|message| (StatusCode::BAD_REQUEST, message))?;
    validation::validate_call(&call).map_err(|message| {
        (
            StatusCode::BAD_REQUEST,
            format!("Failed to validate scheduler::Call: {message}"),
        )
    })?;
    if call.r#type() == call::Type::Subscribe
        && let Some(subscribe) = &call.subscribe
    {
        let refused = |message| (StatusCode::OK, message);
        validation::validate_framework(&subscribe.framework_info).map_err(refused)?;
        validation::validate_suppressed_roles(
            &subscribe.framework_info,
            &subscribe.suppressed_roles,
        )
        .map_err(refused)?;
    }
    Ok(call)
}

/// `principal`: who authenticated, when authentication is on.
async fn scheduler(
    tx: mpsc::UnboundedSender<Command>,
    principal: Option<String>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let (mut call, headers) = match read_call::<Call>(req).await {
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
    if call.r#type() == call::Type::Subscribe
        && let Some(principal) = &principal
        && let Some(info) = call.subscribe.as_mut().map(|s| &mut s.framework_info)
    {
        // `validation::scheduler::call::validate` with a principal, then the handler
        // fills in a missing `FrameworkInfo.principal` (Mesos logs a warning).
        match &info.principal {
            Some(declared) if declared != principal => {
                let _ = tx.send(Command::InvalidCall);
                return plain(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Failed to validate scheduler::Call: Authenticated principal \
                         '{principal}' does not match principal '{declared}' set in \
                         `FrameworkInfo`"
                    ),
                );
            }
            Some(_) => {}
            None => {
                tracing::warn!(
                    %principal,
                    "Setting 'principal' in FrameworkInfo because the framework \
                     authenticated with that principal but did not set it in FrameworkInfo"
                );
                info.principal = Some(principal.clone());
            }
        }
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
