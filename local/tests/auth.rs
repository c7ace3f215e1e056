//! HTTP framework authentication on the local master, over real HTTP: the answers of a
//! Mesos master run with `--authenticate_http_frameworks
//! --http_framework_authenticators=basic --credentials=<file>` (libprocess's basic
//! authenticator: 401, `WWW-Authenticate: Basic realm="mesos-master-scheduler"`, body
//! `401 Unauthorized.`), and the credentials file as Mesos reads it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use brine_local::master::{Credentials, Master, MasterConfig};
use brine_proto::codec::{self, ContentType};
use brine_proto::mesos::v1::FrameworkInfo;
use brine_proto::mesos::v1::scheduler::{Call, call};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

const WAIT: Duration = Duration::from_secs(20);

async fn master() -> Master {
    let config = MasterConfig {
        credentials: Some(Credentials::new([
            ("fw".to_owned(), "s3cret".to_owned()),
            ("other".to_owned(), "pw".to_owned()),
        ])),
        ..MasterConfig::default()
    };
    Master::start(config, Vec::new()).await.unwrap()
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn subscribe(principal: Option<&str>) -> Bytes {
    let call = Call {
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: FrameworkInfo {
                user: "root".into(),
                name: "auth-test".into(),
                principal: principal.map(str::to_owned),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Bytes::from(codec::encode(ContentType::Protobuf, &call).unwrap())
}

/// One request on a fresh connection: status, headers and (for non-200) the body; a
/// 200 SUBSCRIBE stream is not read.
async fn send(
    master: &Master,
    method: &str,
    authorization: Option<&str>,
    body: Bytes,
) -> (u16, http::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(master.endpoint())
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri("/api/v1/scheduler")
        .header("Host", master.endpoint().to_string())
        .header("Content-Type", "application/x-protobuf")
        .header("Accept", "application/x-protobuf");
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    let response = tokio::time::timeout(
        WAIT,
        sender.send_request(req.body(Full::new(body)).unwrap()),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = if status == 200 {
        String::new()
    } else {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    conn.abort();
    (status, headers, body)
}

fn assert_unauthorized(answer: &(u16, http::HeaderMap, String), what: &str) {
    let (status, headers, body) = answer;
    assert_eq!(*status, 401, "{what}: {body}");
    assert_eq!(
        headers
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"mesos-master-scheduler\""),
        "{what}"
    );
    assert_eq!(
        headers.get("Content-Type").and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert_eq!(body, "401 Unauthorized.", "{what}");
}

#[tokio::test]
async fn unauthenticated_and_badly_authenticated_requests_get_mesos_401() {
    let master = master().await;
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("wrong secret", Some(basic("fw:wrong"))),
        ("unknown principal", Some(basic("nobody:s3cret"))),
        ("another principal's secret", Some(basic("other:s3cret"))),
        ("no colon", Some(basic("fws3cret"))),
        ("two colons", Some(basic("fw:s3cret:x"))),
        ("not Basic", Some(format!("Bearer {}", basic("fw:s3cret")))),
        (
            "lower-case scheme",
            Some(basic("fw:s3cret").replace("Basic", "basic")),
        ),
        ("two spaces", Some(basic("fw:s3cret").replace(' ', "  "))),
        ("not base64", Some("Basic !!!".to_owned())),
    ];
    for (what, authorization) in &cases {
        let answer = send(&master, "POST", authorization.as_deref(), subscribe(None)).await;
        assert_unauthorized(&answer, what);
    }
    // libprocess authenticates before the route's handler: even a GET gets 401, not 405.
    let answer = send(&master, "GET", None, Bytes::new()).await;
    assert_unauthorized(&answer, "GET without credentials");
    // A GET with good credentials reaches the handler.
    let (status, _, _) = send(&master, "GET", Some(&basic("fw:s3cret")), Bytes::new()).await;
    assert_eq!(status, 405);
    master.shutdown().await;
}

#[tokio::test]
async fn the_right_credentials_subscribe_and_the_principal_must_match() {
    let master = master().await;
    let good = basic("fw:s3cret");

    // No principal in FrameworkInfo: the master takes the authenticated one.
    let (status, headers, body) = send(&master, "POST", Some(&good), subscribe(None)).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("Mesos-Stream-Id"));

    let (status, _, body) = send(&master, "POST", Some(&good), subscribe(Some("fw"))).await;
    assert_eq!(status, 200, "{body}");

    // Mesos's validation text for a FrameworkInfo naming someone else.
    let (status, _, body) = send(&master, "POST", Some(&good), subscribe(Some("other"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "Failed to validate scheduler::Call: Authenticated principal 'fw' does not match \
         principal 'other' set in `FrameworkInfo`"
    );
    master.shutdown().await;
}

#[tokio::test]
async fn without_credentials_nothing_is_asked() {
    let master = Master::start(MasterConfig::default(), Vec::new())
        .await
        .unwrap();
    let (status, _, body) = send(&master, "POST", None, subscribe(None)).await;
    assert_eq!(status, 200, "{body}");
    master.shutdown().await;
}

#[test]
fn credentials_files_read_as_mesos_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.json");
    std::fs::write(
        &path,
        r#"{"credentials":[{"principal":"fw","secret":"s3cret"},{"principal":"b","secret":"x"}]}"#,
    )
    .unwrap();
    let credentials = Credentials::read(&path).unwrap();
    assert!(credentials.check("fw", "s3cret"));
    assert!(credentials.check("b", "x"));
    assert!(!credentials.check("fw", "x"));
    assert!(!format!("{credentials:?}").contains("s3cret"));
    // `file://` paths, as Mesos's path flags take them.
    let url = format!("file://{}", path.display());
    assert!(Credentials::read(std::path::Path::new(&url)).is_ok());

    let err = |text: &str| Credentials::from_json(text).err().map(|e| e.to_string());
    assert_eq!(
        err(""),
        Some("Credentials file must contain at least one credential".into())
    );
    assert_eq!(
        err(r#"{"credentials":[]}"#),
        Some("Credentials file must contain at least one credential".into())
    );
    assert!(err("{nope").is_some_and(|e| e.starts_with("Invalid json format: ")));
    assert!(
        err(r#"{"credentials":[{"secret":"x"}]}"#)
            .is_some_and(|e| e.starts_with("Failed to parse credentials: "))
    );
    let missing = Credentials::read(&dir.path().join("absent.json"))
        .err()
        .map(|e| e.to_string());
    assert!(
        missing.is_some_and(|e| e.starts_with("Failed to read credentials file '")),
        "a missing file is a clear error"
    );
}
