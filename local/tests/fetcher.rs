//! The fetcher against real files and a loopback HTTP server (behind a TLS terminator
//! for `https://`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brine_local::agent::fetcher::{Fetched, fetch, fetch_with};
use brine_proto::mesos::v1::command_info::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn uri(value: &str) -> Uri {
    Uri {
        value: value.into(),
        ..Default::default()
    }
}

/// Serves `files` (path → bytes) over HTTP/1.0-style one-shot connections; counts hits.
async fn serve(files: Vec<(&'static str, Vec<u8>)>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let files = Arc::new(files);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let files = files.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf[read..]).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    read += n;
                }
                let head = String::from_utf8_lossy(&buf[..read]).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let response = match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None if path == "/redirect" => b"HTTP/1.1 302 Found\r\nLocation: /plain.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = socket.write_all(&response).await;
            });
        }
    });
    (addr, hits)
}

fn tar_gz() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let data = b"inside the tarball\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "dir/in-tar.txt", &data[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

fn zip_bytes() -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("in-zip.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"inside the zip\n").unwrap();
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn fetches_paths_files_http_archives_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = dir.path().join("sandbox");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&sandbox).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("plain.bin"), b"plain").unwrap();
    std::fs::write(src.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(src.join("bundle.tar.gz"), tar_gz()).unwrap();

    // Plain path; file://; executable.
    fetch(
        &uri(src.join("plain.bin").to_str().unwrap()),
        &sandbox,
        &cache,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(sandbox.join("plain.bin")).unwrap(), b"plain");
    let mut script = uri(&format!("file://{}", src.join("script.sh").display()));
    script.executable = Some(true);
    script.output_file = Some("run.sh".into());
    fetch(&script, &sandbox, &cache).await.unwrap();
    assert_eq!(
        std::fs::metadata(sandbox.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );

    // .tar.gz extracted (archive kept); extract=false leaves it alone.
    fetch(
        &uri(src.join("bundle.tar.gz").to_str().unwrap()),
        &sandbox,
        &cache,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(sandbox.join("dir/in-tar.txt")).unwrap(),
        b"inside the tarball\n"
    );
    assert!(sandbox.join("bundle.tar.gz").exists());
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut no_extract = uri(src.join("bundle.tar.gz").to_str().unwrap());
    no_extract.extract = Some(false);
    fetch(&no_extract, &other, &cache).await.unwrap();
    assert!(other.join("bundle.tar.gz").exists());
    assert!(!other.join("dir").exists());

    // http:// from a loopback server: a .zip, a redirect, a 404, and the cache.
    let (addr, hits) = serve(vec![
        ("/pack.zip", zip_bytes()),
        ("/plain.txt", b"over http".to_vec()),
    ])
    .await;
    fetch(&uri(&format!("http://{addr}/pack.zip")), &sandbox, &cache)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.join("in-zip.txt")).unwrap(),
        b"inside the zip\n"
    );
    fetch(&uri(&format!("http://{addr}/redirect")), &sandbox, &cache)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.join("redirect")).unwrap(),
        b"over http"
    );
    let missing = fetch(
        &uri(&format!("http://{addr}/missing.txt")),
        &sandbox,
        &cache,
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("/missing.txt"));
    assert!(missing.to_string().contains("404"));

    let mut cached = uri(&format!("http://{addr}/plain.txt"));
    cached.cache = Some(true);
    let before = hits.load(Ordering::SeqCst);
    assert_eq!(
        fetch(&cached, &sandbox, &cache).await.unwrap(),
        Fetched::Downloaded
    );
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
    std::fs::remove_file(sandbox.join("plain.txt")).unwrap();
    assert_eq!(
        fetch(&cached, &sandbox, &cache).await.unwrap(),
        Fetched::FromCache
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before + 1,
        "a cache hit does not reach the server"
    );
    assert_eq!(
        std::fs::read(sandbox.join("plain.txt")).unwrap(),
        b"over http"
    );

    // Relative paths and unknown schemes are refused, naming the URI.
    assert!(
        fetch(&uri("relative/x"), &sandbox, &cache)
            .await
            .unwrap_err()
            .to_string()
            .contains("relative/x")
    );
    assert!(fetch(&uri("ftp://h/x"), &sandbox, &cache).await.is_err());
}

/// `https://` with the fetcher's own client (rustls), not `curl`: the server's
/// certificate comes from a test CA only the fetcher is told to trust.
#[tokio::test]
async fn fetches_https_with_its_own_tls_client() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = dir.path().join("sandbox");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&sandbox).unwrap();
    let (addr, hits) = serve(vec![("/plain.txt", b"over https".to_vec())]).await;
    let pki = brine_tests::tls::pki();
    let tls = brine_tests::tls::terminator(&pki, addr).await;
    let roots = vec![pki.ca_pem.clone().into_bytes()];

    let url = format!("https://localhost:{}/plain.txt", tls.addr.port());
    fetch_with(&uri(&url), &sandbox, &cache, &roots)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.join("plain.txt")).unwrap(),
        b"over https"
    );
    // A path-only redirect stays on https (and on the IP address the certificate names).
    let redirect = format!("https://127.0.0.1:{}/redirect", tls.addr.port());
    fetch_with(&uri(&redirect), &sandbox, &cache, &roots)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.join("redirect")).unwrap(),
        b"over https"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(tls.handshakes(), 3);

    // Without the test CA (only the Mozilla roots) the certificate is refused, and the
    // error names the URI and says why.
    let refused = fetch(&uri(&url), &sandbox, &cache)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains(&url), "{refused}");
    assert!(refused.contains("TLS handshake"), "{refused}");
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // A 404 over https is reported as over http.
    let missing = format!("https://localhost:{}/missing.txt", tls.addr.port());
    let missing = fetch_with(&uri(&missing), &sandbox, &cache, &roots)
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("404"), "{missing}");
}
