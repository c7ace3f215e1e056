//! Helpers shared by the tests that read the Mesos 1.12 captures in
//! `tests/fixtures/mesos-1.12` at the repository root (see its README for what each file holds).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use brine_proto::codec::ContentType;
use brine_proto::recordio::Decoder;
use bytes::Bytes;
use serde_json::Value;

/// Environment variable that overrides where the captures are.
pub const FIXTURES_ENV: &str = "BRINE_MESOS_FIXTURES";

/// The capture directory: `$BRINE_MESOS_FIXTURES`, else the repository's own
/// `tests/fixtures/mesos-1.12`.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os(FIXTURES_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mesos-1.12")
        });
    assert!(
        dir.join("README.md").is_file(),
        "Mesos 1.12 fixtures not found at {} (set {FIXTURES_ENV} to override)",
        dir.display()
    );
    dir
}

pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    assert!(path.is_file(), "missing fixture file {}", path.display());
    path
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

pub fn read_json(name: &str) -> Value {
    serde_json::from_slice(&read(name)).unwrap()
}

/// Which API a stream or call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Executor,
    Scheduler,
}

/// One captured SUBSCRIBE stream: `<stem>.bin`, `<stem>.index.json`, `<stem>.http.raw`.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub stem: &'static str,
    pub api: Api,
    pub content_type: ContentType,
}

pub const STREAMS: [Stream; 7] = [
    Stream {
        stem: "executor-stream.protobuf",
        api: Api::Executor,
        content_type: ContentType::Protobuf,
    },
    Stream {
        stem: "executor-stream.json",
        api: Api::Executor,
        content_type: ContentType::Json,
    },
    Stream {
        stem: "scheduler-stream.protobuf",
        api: Api::Scheduler,
        content_type: ContentType::Protobuf,
    },
    Stream {
        stem: "scheduler-stream.json",
        api: Api::Scheduler,
        content_type: ContentType::Json,
    },
    Stream {
        stem: "shutdown-scenario/executor-stubborn-stream.json",
        api: Api::Executor,
        content_type: ContentType::Json,
    },
    Stream {
        stem: "shutdown-scenario/executor-teardown-stream.json",
        api: Api::Executor,
        content_type: ContentType::Json,
    },
    Stream {
        stem: "shutdown-scenario/scheduler-stream.json",
        api: Api::Scheduler,
        content_type: ContentType::Json,
    },
];

impl Stream {
    pub fn bin(&self) -> Vec<u8> {
        read(&format!("{}.bin", self.stem))
    }

    pub fn index(&self) -> Value {
        read_json(&format!("{}.index.json", self.stem))
    }

    pub fn raw(&self) -> Vec<u8> {
        read(&format!("{}.http.raw", self.stem))
    }

    /// The records of the `.bin` file, split by our decoder in one go.
    pub fn records(&self) -> Vec<Bytes> {
        split_records(&self.bin())
    }
}

/// Splits a whole RecordIO stream, insisting that it ends on a record boundary.
pub fn split_records(stream: &[u8]) -> Vec<Bytes> {
    let mut decoder = Decoder::new();
    let records = decoder.decode(stream).unwrap();
    decoder.finish().unwrap();
    records
}

/// An HTTP/1.1 message as captured: head lines and body bytes.
pub struct HttpMessage {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `bytes` at the blank line that ends an HTTP head.
pub fn parse_http(bytes: &[u8]) -> HttpMessage {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head ends with CRLF CRLF");
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let start_line = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    HttpMessage {
        start_line,
        headers,
        body: bytes[end + 4..].to_vec(),
    }
}

/// A chunked body split into its chunks' data, and whether the terminating zero-size
/// chunk was present.
pub struct Chunks {
    pub data: Vec<Vec<u8>>,
    pub terminated: bool,
}

/// Undoes HTTP/1.1 chunked transfer coding (no extensions or trailers in the captures).
pub fn dechunk(mut body: &[u8]) -> Chunks {
    let mut data = Vec::new();
    loop {
        if body.is_empty() {
            return Chunks {
                data,
                terminated: false,
            };
        }
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line ends with CRLF");
        let size_text = std::str::from_utf8(&body[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            assert!(
                body.is_empty() || body == b"\r\n",
                "bytes after the last chunk"
            );
            return Chunks {
                data,
                terminated: true,
            };
        }
        data.push(body[..size].to_vec());
        assert_eq!(&body[size..size + 2], b"\r\n", "chunk data ends with CRLF");
        body = &body[size + 2..];
    }
}

/// Standard base64, as Mesos and the capture files use it.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The protoc text decodings of `<stem>.decoded.txt`, one string per record, with the
/// record index given in each `### record N:` header.
pub fn protoc_records(stem: &str) -> Vec<(usize, String)> {
    let text = String::from_utf8(read(&format!("{stem}.decoded.txt"))).unwrap();
    let mut records: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("### record ") {
            let index = header.split(':').next().unwrap().parse().unwrap();
            records.push((index, String::new()));
        } else if line.starts_with('#') {
            continue;
        } else if let Some((_, body)) = records.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    records
}
