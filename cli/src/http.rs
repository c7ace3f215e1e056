//! A small HTTP GET of JSON, for `brine status` (the master's `/master/state`, the
//! scheduler's `/status`). Plain `http://` only; bounded in time and size, because the
//! answer comes from another process. Connections, redirects and the `Basic` header are
//! `brine-http`'s.

use std::time::Duration;

use anyhow::{Context, bail};
use brine_http::{Connector, Scheme, Target};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty, Limited};
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
    let mut target = Target::parse(url)?;
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) = tokio::time::timeout(timeout, get(&target, credential))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {target} within {timeout:?}"))??;
        if status.is_redirection()
            && let Some(location) = location
        {
            target = target
                .redirect(&location)
                .with_context(|| format!("GET {target} answered {status}"))?;
            continue;
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            bail!("GET {target} answered {status}: {}", text.trim());
        }
        return serde_json::from_slice(&body)
            .with_context(|| format!("GET {target} did not answer the expected JSON"));
    }
    bail!("GET {url}: more than {MAX_REDIRECTS} redirects")
}

async fn get(
    target: &Target,
    credential: Option<&(String, String)>,
) -> anyhow::Result<(StatusCode, Option<String>, Bytes)> {
    if target.scheme() != Scheme::Http {
        bail!(
            "{target}: brine status speaks plain http only, not {}",
            target.scheme()
        );
    }
    let (mut sender, driver) = Connector::plain().open(target).await?;
    let mut request = http::Request::get(target.path())
        .header(http::header::HOST, target.host_header())
        .header(http::header::ACCEPT, "application/json");
    if let Some((principal, secret)) = credential {
        request = request.header(
            http::header::AUTHORIZATION,
            brine_http::basic_authorization(principal, secret)?,
        );
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new())?)
        .await
        .with_context(|| format!("GET {target}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer of GET {target}: {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, location, body))
}
