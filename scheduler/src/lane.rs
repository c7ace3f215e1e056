//! The scheduler's end of the closure lane (`brine_proto::lane`): a TCP listener that
//! executors connect to. Each connection must open with a `Hello` carrying the
//! framework's secret; anything else is answered `Refused` and closed. Accepted
//! connections become [`LaneEvent`]s for the scheduling loop, which decides whether the
//! executor is one of its own and what to send it.
//!
//! Each connection has a reader task (bytes → frames → one event per read, so a burst
//! of results costs one channel message) and a writer task that writes everything
//! queued in one `write_all` (a burst of closures costs one syscall).

use std::net::SocketAddr;
use std::time::Duration;

use brine_proto::lane::{FrameDecoder, ToExecutor, ToScheduler, encode_frame};
use brine_proto::payload::{LaneEndpoint, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 << 10;

/// The writer stops coalescing once this many bytes are buffered.
const WRITE_BATCH: usize = 1 << 20;

/// One accepted connection, numbered in accept order.
pub(crate) type ConnId = u64;

/// What the lane tells the scheduling loop.
pub(crate) enum LaneEvent {
    /// A connection presented the framework's secret.
    Hello {
        conn: ConnId,
        executor_id: String,
        agent_id: String,
        writer: LaneWriter,
    },
    /// Frames read from an accepted connection, in order.
    Frames {
        conn: ConnId,
        frames: Vec<ToScheduler>,
    },
    /// The connection ended (closed, reset, or unreadable).
    Closed { conn: ConnId, why: String },
}

enum Out {
    Frame(ToExecutor),
    Close,
}

/// Sends frames to one executor's connection, in order, without waiting.
#[derive(Clone)]
pub(crate) struct LaneWriter {
    tx: mpsc::UnboundedSender<Out>,
}

impl LaneWriter {
    /// Queues `frame`; false if the connection is gone.
    pub(crate) fn send(&self, frame: ToExecutor) -> bool {
        self.tx.send(Out::Frame(frame)).is_ok()
    }

    /// Writes what is queued, then closes the connection.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Out::Close);
    }
}

/// A lane connection's far end held by a test: what the loop sent down a writer.
#[cfg(test)]
pub(crate) struct TestLane {
    rx: mpsc::UnboundedReceiver<Out>,
}

#[cfg(test)]
impl TestLane {
    /// A writer, and what reads what is written to it.
    pub(crate) fn pair() -> (LaneWriter, TestLane) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LaneWriter { tx }, TestLane { rx })
    }

    /// The frames sent since the last call, and whether the writer was closed.
    pub(crate) fn take(&mut self) -> (Vec<ToExecutor>, bool) {
        let (mut frames, mut closed) = (Vec::new(), false);
        while let Ok(out) = self.rx.try_recv() {
            match out {
                Out::Frame(frame) => frames.push(frame),
                Out::Close => closed = true,
            }
        }
        (frames, closed)
    }
}

/// Binds the lane. `advertise` is where executors are told to connect: a host (the
/// bound port is added) or `host:port`.
pub(crate) async fn bind(
    addr: SocketAddr,
    advertise: &str,
    secret: Secret,
    events: mpsc::UnboundedSender<LaneEvent>,
) -> std::io::Result<(LaneEndpoint, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let endpoint = LaneEndpoint {
        addr: advertised(advertise, bound.port()),
        secret: secret.clone(),
    };
    tokio::spawn(accept(listener, secret, events));
    Ok((endpoint, bound))
}

/// `advertise` as `host:port`: as it is when it names a port (`host:port`,
/// `[v6]:port`), else with `port` added (`[v6]` bracketed).
fn advertised(advertise: &str, port: u16) -> String {
    let names_port = advertise.parse::<SocketAddr>().is_ok()
        || advertise
            .split_once(':')
            .is_some_and(|(host, p)| !host.is_empty() && p.parse::<u16>().is_ok());
    if names_port {
        advertise.to_owned()
    } else if advertise.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{advertise}]:{port}")
    } else {
        format!("{advertise}:{port}")
    }
}

async fn accept(listener: TcpListener, secret: Secret, events: mpsc::UnboundedSender<LaneEvent>) {
    let mut next: ConnId = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // The scheduler is gone (its `Cluster` dropped, shut down or abandoned):
            // closing the listener releases the port.
            () = events.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "lane accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if events.is_closed() {
            return;
        }
        next += 1;
        tokio::spawn(serve(stream, peer, next, secret.clone(), events.clone()));
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    secret: Secret,
    events: mpsc::UnboundedSender<LaneEvent>,
) {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut decoder = FrameDecoder::default();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, first_frame(&mut read, &mut decoder)).await;
    let (executor_id, agent_id) = match hello {
        Ok(Ok(ToScheduler::Hello {
            secret: offered,
            executor_id,
            agent_id,
            ..
        })) if offered.matches(&secret) => (executor_id, agent_id),
        refused => {
            let reason = match refused {
                Ok(Ok(ToScheduler::Hello { .. })) => "wrong secret".to_owned(),
                Ok(Ok(_)) => "the first frame must be a Hello".to_owned(),
                Ok(Err(why)) => why,
                Err(_) => format!("no Hello within {HELLO_TIMEOUT:?}"),
            };
            tracing::warn!(%peer, %reason, "lane connection refused");
            let mut out = Vec::new();
            encode_frame(&ToExecutor::Refused { reason }, &mut out);
            let _ = write.write_all(&out).await;
            let _ = write.shutdown().await;
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(write, rx));
    let hello = LaneEvent::Hello {
        conn,
        executor_id,
        agent_id,
        writer: LaneWriter { tx },
    };
    if events.send(hello).is_err() {
        return;
    }
    let why = read_frames(read, decoder, conn, &events).await;
    let _ = events.send(LaneEvent::Closed { conn, why });
}

/// Reads until one frame is complete.
async fn first_frame(
    read: &mut OwnedReadHalf,
    decoder: &mut FrameDecoder,
) -> Result<ToScheduler, String> {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        if let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
            return Ok(frame);
        }
        match read.read(&mut buf).await {
            Ok(0) => return Err("closed before its Hello".into()),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Forwards frames until the connection ends; returns why it did.
async fn read_frames(
    mut read: OwnedReadHalf,
    mut decoder: FrameDecoder,
    conn: ConnId,
    events: &mpsc::UnboundedSender<LaneEvent>,
) -> String {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let mut frames = Vec::new();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return format!("unreadable frame: {e}"),
            }
        }
        if !frames.is_empty() && events.send(LaneEvent::Frames { conn, frames }).is_err() {
            return "the scheduler stopped".into();
        }
        match read.read(&mut buf).await {
            Ok(0) => return "closed by the executor".into(),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) => return e.to_string(),
        }
    }
}

async fn write_frames(mut write: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut close = false;
        let mut next = Some(first);
        while let Some(out) = next {
            match out {
                Out::Frame(frame) => encode_frame(&frame, &mut buf),
                Out::Close => {
                    close = true;
                    break;
                }
            }
            next = if buf.len() < WRITE_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !buf.is_empty() && write.write_all(&buf).await.is_err() {
            return;
        }
        if close {
            let _ = write.shutdown().await;
            return;
        }
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::advertised;

    #[test]
    fn advertised_addresses_get_the_port_unless_they_name_one() {
        assert_eq!(advertised("10.0.0.5", 4000), "10.0.0.5:4000");
        assert_eq!(advertised("node-3.example", 4000), "node-3.example:4000");
        assert_eq!(advertised("proxy:7000", 4000), "proxy:7000");
        assert_eq!(advertised("::1", 4000), "[::1]:4000");
        assert_eq!(advertised("[::1]:7000", 4000), "[::1]:7000");
    }
}
