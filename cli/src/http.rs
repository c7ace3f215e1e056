//! A small HTTP GET of JSON, for `brine status` (the master's `/master/state`, the
//! scheduler's `/status`). Plain `http://` only; bounded in time and size, because the
//! answer comes from another process.

use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// Largest answer read: a big cluster's `/master/state` is a few MB.
const MAX_BODY: usize = 64 << 20;
/// Most `307` redirects followed (a non-leading master redirects to the leader).
const MAX_REDIRECTS: usize = 5;

/// GETs `url` and decodes its JSON body, following redirects; `credential` is sent as
/// HTTP basic authentication.
pub async fn get_json<T: DeserializeOwned>(
    url: &str,
    credential: Option<&(String, String)>,
    timeout: Duration,
) -> anyhow::Result<T> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) = tokio::time::timeout(timeout, get(&url, credential))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {url} within {timeout:?}"))??;
        if status.is_redirection()
            && let Some(location) = location
        {
            url = redirect(&url, &location)?;
            continue;
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            bail!("GET {url} answered {status}: {}", text.trim());
        }
        return serde_json::from_slice(&body)
            .with_context(|| format!("GET {url} did not answer the expected JSON"));
    }
    bail!("GET {url}: more than {MAX_REDIRECTS} redirects")
}

async fn get(
    url: &str,
    credential: Option<&(String, String)>,
) -> anyhow::Result<(StatusCode, Option<String>, Bytes)> {
    let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => bail!("{url}: brine status speaks plain http only, not {other}"),
        None => bail!("{url}: no scheme (expected http://host:port)"),
    }
    let authority = uri
        .authority()
        .with_context(|| format!("{url}: no host"))?
        .clone();
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP handshake with {address}"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::ACCEPT, "application/json");
    if let Some((principal, secret)) = credential {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"));
        request = request.header(http::header::AUTHORIZATION, format!("Basic {token}"));
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new())?)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer of GET {url}: {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, location, body))
}

/// Resolves a `Location` header; Mesos sends `//host:port/path` (scheme-relative).
fn redirect(from: &str, location: &str) -> anyhow::Result<String> {
    if location.starts_with("//") {
        return Ok(format!("http:{location}"));
    }
    if location.starts_with('/') {
        let uri: Uri = from.parse()?;
        let authority = uri.authority().context("no host")?;
        return Ok(format!("http://{authority}{location}"));
    }
    Ok(location.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_like_mesos_sends_them() {
        let from = "http://a:5050/master/state";
        assert_eq!(
            redirect(from, "//b:5050/master/state").ok().as_deref(),
            Some("http://b:5050/master/state")
        );
        assert_eq!(
            redirect(from, "/master/state").ok().as_deref(),
            Some("http://a:5050/master/state")
        );
        assert_eq!(
            redirect(from, "http://c:1/x").ok().as_deref(),
            Some("http://c:1/x")
        );
    }
}
