//! The fetcher: brings `CommandInfo.uris` into the sandbox before the executor starts,
//! as Mesos's `mesos-fetcher` does.
//!
//! - Sources: absolute plain paths, `file://` URIs, and `http://` and `https://` with the
//!   built-in client (`brine-http`: rustls for `https`, trusting the Mozilla root set
//!   and the PEM bundle `$SSL_CERT_FILE` names, which curl, and so Mesos's fetcher,
//!   honours too; [`fetch_with`] adds roots). Redirects are followed, at most [`MAX_REDIRECTS`], and
//!   may switch between `http` and `https`. Relative paths are refused (Mesos needs
//!   `--frameworks_home` for them).
//! - The file is named by `output_file` when set, else by the URI's last path component.
//! - `executable`: mode 0755, no extraction. Otherwise, unless `extract` is false,
//!   `.tar`, `.tar.gz`, `.tgz` and `.zip` are extracted into the sandbox (the archive
//!   stays, as in Mesos).
//! - `cache`: the fetched bytes are kept in the fetcher cache directory under the
//!   SHA-256 of the URI; later fetches of the same URI copy from there.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use brine_http::{Connector, Scheme, Target};
use brine_proto::mesos::v1::command_info::Uri;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use sha2::{Digest, Sha256};

/// Why a URI could not be fetched; the message names the URI.
#[derive(Debug, thiserror::Error)]
#[error("Failed to fetch '{uri}': {reason}")]
pub struct FetchError {
    pub uri: String,
    pub reason: String,
}

fn err(uri: &str, reason: impl ToString) -> FetchError {
    FetchError {
        uri: uri.to_owned(),
        reason: reason.to_string(),
    }
}

/// What happened for one URI (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    Downloaded,
    FromCache,
}

/// Most redirects followed for one URI.
pub const MAX_REDIRECTS: usize = 10;

/// Fetches every URI into `sandbox`, in order; stops at the first failure.
pub async fn fetch_all(
    uris: &[Uri],
    sandbox: &Path,
    cache_dir: &Path,
) -> Result<Vec<Fetched>, FetchError> {
    let mut out = Vec::with_capacity(uris.len());
    for uri in uris {
        out.push(fetch(uri, sandbox, cache_dir).await?);
    }
    Ok(out)
}

/// Fetches one URI into `sandbox`; `https://` trusts the Mozilla root set and the
/// bundle `$SSL_CERT_FILE` names, if any.
pub async fn fetch(uri: &Uri, sandbox: &Path, cache_dir: &Path) -> Result<Fetched, FetchError> {
    let extra_roots = match std::env::var_os("SSL_CERT_FILE") {
        Some(file) if uri.value.starts_with("https://") => {
            let bundle = fs::read(&file).map_err(|e| {
                err(
                    &uri.value,
                    format!(
                        "cannot read $SSL_CERT_FILE {}: {e}",
                        Path::new(&file).display()
                    ),
                )
            })?;
            vec![bundle]
        }
        _ => Vec::new(),
    };
    fetch_with(uri, sandbox, cache_dir, &extra_roots).await
}

/// [`fetch`], trusting `extra_roots` (PEM texts of `CERTIFICATE`s: a private CA, a
/// self-signed server) for `https://` on top of the Mozilla root set.
pub async fn fetch_with(
    uri: &Uri,
    sandbox: &Path,
    cache_dir: &Path,
    extra_roots: &[Vec<u8>],
) -> Result<Fetched, FetchError> {
    let value = uri.value.as_str();
    let name = match &uri.output_file {
        Some(name) => name.clone(),
        None => basename(value).ok_or_else(|| err(value, "cannot name the fetched file"))?,
    };
    let destination = safe_join(sandbox, &name)
        .ok_or_else(|| err(value, format!("output file '{name}' leaves the sandbox")))?;
    if let Some(parent) = destination.parent() {
        fs::create_dir_all(parent).map_err(|e| err(value, e))?;
    }

    let how = if uri.cache() {
        let cached = cache_dir.join(hex::encode(Sha256::digest(value.as_bytes())));
        if cached.is_file() {
            tracing::debug!(uri = value, cache = %cached.display(), "fetcher cache hit");
            place(&cached, &destination, true).map_err(|e| err(value, e))?;
            Fetched::FromCache
        } else {
            fs::create_dir_all(cache_dir).map_err(|e| err(value, e))?;
            let partial = cached.with_extension(format!("partial-{}", uuid::Uuid::new_v4()));
            download(value, &partial, extra_roots).await?;
            fs::rename(&partial, &cached).map_err(|e| err(value, e))?;
            place(&cached, &destination, true).map_err(|e| err(value, e))?;
            Fetched::Downloaded
        }
    } else {
        download(value, &destination, extra_roots).await?;
        Fetched::Downloaded
    };

    if uri.executable() {
        fs::set_permissions(&destination, fs::Permissions::from_mode(0o755))
            .map_err(|e| err(value, e))?;
    } else if uri.extract() {
        let archive = destination.clone();
        let into = sandbox.to_path_buf();
        let uri_text = value.to_owned();
        tokio::task::spawn_blocking(move || extract(&archive, &into))
            .await
            .map_err(|e| err(&uri_text, e))?
            .map_err(|e| err(value, format!("failed to extract: {e}")))?;
    }
    tracing::info!(uri = value, file = %destination.display(), ?how, "fetched");
    Ok(how)
}

/// The name a fetched file gets when its URI has no `output_file`: the last path
/// component of the URI or path (query and fragment ignored).
pub fn basename(value: &str) -> Option<String> {
    let path = match value.split_once("://") {
        Some((_, rest)) => {
            let rest = rest.split(['?', '#']).next().unwrap_or(rest);
            rest.split_once('/').map(|(_, p)| p).unwrap_or("")
        }
        None => value,
    };
    path.rsplit('/')
        .find(|c| !c.is_empty())
        .filter(|c| *c != "." && *c != "..")
        .map(str::to_owned)
}

fn safe_join(base: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative);
    if relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Some(base.join(relative))
    } else {
        None
    }
}

async fn download(value: &str, to: &Path, extra_roots: &[Vec<u8>]) -> Result<(), FetchError> {
    if let Some((scheme, rest)) = value.split_once("://") {
        match scheme.to_ascii_lowercase().as_str() {
            "file" => copy_local(value, Path::new(rest), to),
            "http" | "https" => http_get(value, to, extra_roots).await,
            other => Err(err(value, format!("unsupported URI scheme '{other}'"))),
        }
    } else if Path::new(value).is_absolute() {
        copy_local(value, Path::new(value), to)
    } else {
        Err(err(
            value,
            "A relative path was passed for the resource but the Mesos framework home \
             was not specified. Please either provide this config option or avoid using \
             a relative path",
        ))
    }
}

fn copy_local(value: &str, from: &Path, to: &Path) -> Result<(), FetchError> {
    if !from.is_file() {
        return Err(err(value, format!("'{}' is not a file", from.display())));
    }
    let executable = fs::metadata(from).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    place(from, to, executable).map_err(|e| err(value, e))
}

/// Puts a copy of `from` (a whole file, not being written) at `to`: a hard link where
/// one can be made, else a copy.
///
/// A link writes nothing, and that matters for executables. A file this process has
/// open for writing is held open, until they exec, by the children any other thread
/// forks meanwhile (the descriptor is close-on-exec, not close-on-fork); executing the
/// file then fails with ETXTBSY (exit status 126 from `sh -c 'exec ./brine-executor'`),
/// which a copy made just before the launch hit now and then. `link` is false for a
/// user's file that is not executable: it is copied, so that making the sandbox's file
/// executable does not change the mode of the user's file.
fn place(from: &Path, to: &Path, link: bool) -> io::Result<()> {
    if link {
        // Whatever was there (a fetch retried into the same sandbox) is replaced.
        let _ = fs::remove_file(to);
        match fs::hard_link(from, to) {
            Ok(()) => return Ok(()),
            // Another filesystem (EXDEV), or links not allowed: copy.
            Err(e) => tracing::debug!(error = %e, from = %from.display(), "no hard link; copying"),
        }
    }
    fs::copy(from, to).map(|_| ())
}

/// GETs `value` into `to`, following redirects (which may switch between `http` and
/// `https`). The TLS configuration is built at the first `https` URL.
async fn http_get(value: &str, to: &Path, extra_roots: &[Vec<u8>]) -> Result<(), FetchError> {
    let mut target = Target::parse(value).map_err(|e| err(value, e))?;
    let mut connector = Connector::plain();
    for _ in 0..=MAX_REDIRECTS {
        if target.scheme() == Scheme::Https && !connector.has_tls() {
            connector = Connector::with_tls(extra_roots)
                .map_err(|e| err(value, format!("cannot fetch {target}: {e}")))?;
        }
        let (mut sender, driver) = connector.open(&target).await.map_err(|e| err(value, e))?;
        let request = http::Request::get(target.path())
            .header(http::header::HOST, target.host_header())
            .header(http::header::USER_AGENT, "brine-local-fetcher")
            .body(Empty::<Bytes>::new())
            .map_err(|e| err(value, e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| err(value, format!("GET {target}: {e}")))?;
        let status = response.status();
        if status.is_redirection() {
            driver.abort();
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| err(value, format!("redirect {status} without Location")))?;
            target = target.redirect(location).map_err(|e| {
                err(
                    value,
                    format!("redirect {status} to an unusable Location: {e}"),
                )
            })?;
            continue;
        }
        if status != http::StatusCode::OK {
            driver.abort();
            return Err(err(
                value,
                format!(
                    "Error downloading resource, received HTTP return code {}",
                    status.as_u16()
                ),
            ));
        }
        let mut body = response.into_body();
        let mut file = tokio::fs::File::create(to)
            .await
            .map_err(|e| err(value, e))?;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| err(value, e))?;
            if let Ok(data) = frame.into_data() {
                tokio::io::AsyncWriteExt::write_all(&mut file, &data)
                    .await
                    .map_err(|e| err(value, e))?;
            }
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|e| err(value, e))?;
        driver.abort();
        return Ok(());
    }
    Err(err(value, format!("more than {MAX_REDIRECTS} redirects")))
}

/// Extracts a recognised archive into `into`; other files are left alone.
fn extract(archive: &Path, into: &Path) -> io::Result<()> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let file = fs::File::open(archive)?;
        tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(into)
    } else if name.ends_with(".tar") {
        tar::Archive::new(fs::File::open(archive)?).unpack(into)
    } else if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(fs::File::open(archive)?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        zip.extract(into)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(basename("http://h:1/a/b.tgz?x=1").as_deref(), Some("b.tgz"));
        assert_eq!(basename("file:///tmp/x").as_deref(), Some("x"));
        assert_eq!(basename("/tmp/dir/").as_deref(), Some("dir"));
        assert_eq!(basename("http://h/").as_deref(), None);
        assert_eq!(
            basename("http://files:8080/d/corpus.txt?v=2#x").as_deref(),
            Some("corpus.txt")
        );
        assert_eq!(basename("hdfs://nn/d/").as_deref(), Some("d"));
        assert_eq!(basename("http://files:8080/"), None);
        assert!(safe_join(Path::new("/s"), "../x").is_none());
        assert!(safe_join(Path::new("/s"), "a/b").is_some());
    }
}
