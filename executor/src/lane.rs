//! The closure lane's connection, executor side: one TCP connection to the scheduler's
//! lane (`brine_proto::lane`), opened while the executor holds a lease.
//!
//! ```text
//! connect (TCP_NODELAY) ─► Hello{secret, ids} ─► Welcome{ping_interval} ─► up
//!                                             └► Refused{reason}: warn, back off
//! up: frames ─► reader task ─► event loop (LaneEvent::Frames)      Ping ─► Pong
//!     event loop ─► channel ─► writer task: everything queued, one write_all
//! lost (EOF, I/O error, bad frame, no Welcome in 10 s, silence for 3 × ping_interval,
//! new endpoint) ─► drop, reconnect after 100 ms, 200 ms, … 2 s (reset once welcomed)
//! ```
//!
//! [`LaneLink`] is the state the event loop owns; it never blocks: the connection runs
//! on two tasks (reader, writer) that report through the loop's channel, every event
//! naming its connection so a late one from a dropped connection is recognised. What
//! comes from the scheduler can end the connection, never the executor.

use std::time::{Duration, Instant};

use brine_http::Backoff;
use brine_proto::lane::{FrameDecoder, LaneEndpoint, ToExecutor, ToScheduler, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The first wait before reconnecting; it doubles after each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before reconnecting.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// From the connection attempt to `Welcome`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The connection is dropped after this many ping intervals without any frame.
pub const SILENT_PINGS: u32 = 3;
/// A smaller `ping_interval` in `Welcome` counts as this (so zero is not "drop at once").
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(100);
/// A write stuck longer than this (a peer that reads nothing) drops the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes gathered into one write.
const MAX_WRITE_BATCH: usize = 1 << 20;
/// Bytes read at a time.
const READ_CHUNK: usize = 64 << 10;

/// What a connection's tasks report to the event loop.
#[derive(Debug)]
pub enum LaneEvent {
    /// Frames read in one go, in order.
    Frames { conn: u64, frames: Vec<ToExecutor> },
    /// The connection failed or ended.
    Closed { conn: u64, reason: String },
}

/// What an event means for the executor.
#[derive(Debug, Default)]
pub struct LaneNews {
    /// The connection the frames came on.
    pub conn: u64,
    /// `Run`, `Kill` and `Release` frames, in order (the link answers the rest).
    pub frames: Vec<ToExecutor>,
    /// An established connection was dropped: its closures are abandoned.
    pub lost: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Connecting, Hello sent or queued, waiting for `Welcome`.
    Handshake {
        since: Instant,
    },
    Up {
        ping_interval: Duration,
    },
}

struct Conn {
    id: u64,
    addr: String,
    state: State,
    last_heard: Instant,
    out: UnboundedSender<ToScheduler>,
    /// Connects, then reads; aborted when the connection is dropped.
    reader: JoinHandle<()>,
    /// Resolves once the writer has ended (flushed, failed or never started).
    writer_done: Option<oneshot::Receiver<()>>,
}

impl Conn {
    fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// When the connection is dropped for lack of news.
    fn deadline(&self) -> Instant {
        match self.state {
            State::Handshake { since } => since + HANDSHAKE_TIMEOUT,
            State::Up { ping_interval } => {
                self.last_heard + ping_interval.max(MIN_PING_INTERVAL) * SILENT_PINGS
            }
        }
    }
}

impl Drop for Conn {
    /// The reader stops at once; the writer writes what is queued, then closes.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The lane link: endpoint, connection and reconnection state. `M` is the event loop's
/// input type, built from a [`LaneEvent`] by `wrap`.
pub struct LaneLink<M> {
    endpoint: Option<LaneEndpoint>,
    framework_id: String,
    executor_id: String,
    agent_id: String,
    conn: Option<Conn>,
    /// The writer of a connection closed for want of a lease, until it has finished.
    closing: Option<oneshot::Receiver<()>>,
    last_id: u64,
    backoff: Backoff,
    retry_at: Option<Instant>,
    events: UnboundedSender<M>,
    wrap: fn(LaneEvent) -> M,
}

impl<M: Send + 'static> LaneLink<M> {
    /// A link with no endpoint yet, reporting to `events`.
    pub fn new(
        framework_id: String,
        executor_id: String,
        events: UnboundedSender<M>,
        wrap: fn(LaneEvent) -> M,
    ) -> Self {
        Self {
            endpoint: None,
            framework_id,
            executor_id,
            agent_id: String::new(),
            conn: None,
            closing: None,
            last_id: 0,
            backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF),
            retry_at: None,
            events,
            wrap,
        }
    }

    /// The agent id sent in `Hello` (from SUBSCRIBED).
    pub fn set_agent_id(&mut self, agent_id: &str) {
        agent_id.clone_into(&mut self.agent_id);
    }

    /// Where the lane is now (from the newest lease or a `SchedulerMessage::Lane`). A
    /// different endpoint drops the connection and connects to it without waiting.
    /// Returns whether an established connection was dropped.
    pub fn set_endpoint(&mut self, endpoint: LaneEndpoint) -> bool {
        if self.endpoint.as_ref() == Some(&endpoint) {
            return false;
        }
        tracing::info!(addr = %endpoint.addr, "lane endpoint");
        self.endpoint = Some(endpoint);
        self.backoff.reset();
        self.retry_at = None;
        self.conn.take().is_some_and(|c| c.is_up())
    }

    /// The connection closures run for, once welcomed.
    pub fn up(&self) -> Option<u64> {
        self.conn.as_ref().filter(|c| c.is_up()).map(|c| c.id)
    }

    pub fn connected(&self) -> bool {
        self.up().is_some()
    }

    /// Queues a frame if the connection is up; returns whether it was queued.
    pub fn send(&self, frame: ToScheduler) -> bool {
        match &self.conn {
            Some(c) if c.is_up() => c.out.send(frame).is_ok(),
            _ => false,
        }
    }

    /// Connects, closes or drops the connection as `now` and `wanted` (a lease is held)
    /// ask. Returns whether an established connection was dropped.
    pub fn poll(&mut self, now: Instant, wanted: bool) -> bool {
        if !wanted {
            self.retry_at = None;
            self.backoff.reset();
            return match self.conn.take() {
                Some(mut c) => {
                    tracing::debug!(addr = %c.addr, "closing the lane: no lease held");
                    self.closing = c.writer_done.take();
                    c.is_up()
                }
                None => false,
            };
        }
        if let Some(conn) = &self.conn {
            if now < conn.deadline() {
                return false;
            }
            let why = match conn.state {
                State::Handshake { .. } => format!("no Welcome within {HANDSHAKE_TIMEOUT:?}"),
                State::Up { ping_interval } => format!(
                    "nothing heard for {SILENT_PINGS} ping intervals of {:?}",
                    ping_interval.max(MIN_PING_INTERVAL)
                ),
            };
            return self.drop_conn(now, &why);
        }
        if self.endpoint.is_some() && self.retry_at.is_none_or(|at| at <= now) {
            self.connect(now);
        }
        false
    }

    /// When [`poll`](Self::poll) next has something to do (with a lease held).
    pub fn next_wake(&self, wanted: bool) -> Option<Instant> {
        if !wanted {
            return None;
        }
        match &self.conn {
            Some(conn) => Some(conn.deadline()),
            None => self.retry_at.filter(|_| self.endpoint.is_some()),
        }
    }

    /// Takes in what a connection task reported.
    pub fn on_event(&mut self, event: LaneEvent, now: Instant) -> LaneNews {
        let current = self.conn.as_ref().map(|c| c.id);
        let mut news = LaneNews::default();
        match event {
            LaneEvent::Closed { conn, reason } if Some(conn) == current => {
                news.conn = conn;
                news.lost = self.drop_conn(now, &reason);
            }
            LaneEvent::Frames { conn, frames } if Some(conn) == current => {
                news.conn = conn;
                for frame in frames {
                    if let Some(drop) = self.take_frame(frame, now, &mut news.frames) {
                        news.lost = self.drop_conn(now, &drop);
                        break;
                    }
                }
            }
            LaneEvent::Closed { .. } | LaneEvent::Frames { .. } => {
                tracing::trace!("ignoring an event of a dropped lane connection");
            }
        }
        news
    }

    /// Handles one frame of the current connection; returns why to drop it, if so.
    fn take_frame(
        &mut self,
        frame: ToExecutor,
        now: Instant,
        out: &mut Vec<ToExecutor>,
    ) -> Option<String> {
        let conn = self.conn.as_mut()?;
        conn.last_heard = now;
        match (conn.state, frame) {
            (State::Handshake { .. }, ToExecutor::Welcome { ping_interval }) => {
                tracing::info!(addr = %conn.addr, ?ping_interval, "lane connected");
                conn.state = State::Up { ping_interval };
                self.backoff.reset();
                None
            }
            (_, ToExecutor::Refused { reason }) => {
                Some(format!("the scheduler refused this executor: {reason}"))
            }
            (State::Handshake { .. }, other) => Some(format!(
                "expected Welcome or Refused, got {}",
                frame_name(&other)
            )),
            (State::Up { .. }, ToExecutor::Welcome { .. }) => {
                tracing::debug!("a second Welcome on the lane; ignored");
                None
            }
            (State::Up { .. }, ToExecutor::Ping { nonce }) => {
                let _ = conn.out.send(ToScheduler::Pong { nonce });
                None
            }
            (State::Up { .. }, frame) => {
                out.push(frame);
                None
            }
        }
    }

    /// Drops the current connection and schedules the next attempt. Returns whether it
    /// was established.
    fn drop_conn(&mut self, now: Instant, reason: &str) -> bool {
        let Some(conn) = self.conn.take() else {
            return false;
        };
        tracing::warn!(
            addr = %conn.addr,
            retry_in = ?self.backoff.peek(),
            "lane connection lost: {reason}"
        );
        self.retry_at = Some(now + self.backoff.next_wait());
        conn.is_up()
    }

    fn connect(&mut self, now: Instant) {
        let Some(endpoint) = &self.endpoint else {
            return;
        };
        self.last_id += 1;
        let id = self.last_id;
        let (out, queued) = mpsc::unbounded_channel();
        // The first frame; the writer sends it as soon as the TCP connection is up.
        let _ = out.send(ToScheduler::Hello {
            secret: endpoint.secret.clone(),
            framework_id: self.framework_id.clone(),
            executor_id: self.executor_id.clone(),
            agent_id: self.agent_id.clone(),
        });
        let (done, writer_done) = oneshot::channel();
        let addr = endpoint.addr.clone();
        tracing::debug!(%addr, conn = id, "connecting to the lane");
        let reader = tokio::spawn(serve(
            id,
            addr.clone(),
            queued,
            done,
            self.events.clone(),
            self.wrap,
        ));
        self.retry_at = None;
        self.conn = Some(Conn {
            id,
            addr,
            state: State::Handshake { since: now },
            last_heard: now,
            out,
            reader,
            writer_done: Some(writer_done),
        });
    }

    /// Closes the connection, waiting at most `limit` for queued frames to be written,
    /// also those of a connection just closed for want of a lease (the executor is
    /// exiting).
    pub async fn close(&mut self, limit: Duration) {
        let done = match self.conn.take() {
            Some(mut conn) => conn.writer_done.take(),
            None => self.closing.take(),
        };
        if let Some(done) = done {
            let _ = tokio::time::timeout(limit, done).await;
        }
    }
}

fn frame_name(frame: &ToExecutor) -> &'static str {
    match frame {
        ToExecutor::Welcome { .. } => "Welcome",
        ToExecutor::Refused { .. } => "Refused",
        ToExecutor::Run { .. } => "Run",
        ToExecutor::Kill { .. } => "Kill",
        ToExecutor::Release { .. } => "Release",
        ToExecutor::Ping { .. } => "Ping",
    }
}

/// One connection: connect, start the writer, read until the end; report why.
async fn serve<M: Send + 'static>(
    conn: u64,
    addr: String,
    queued: UnboundedReceiver<ToScheduler>,
    done: oneshot::Sender<()>,
    events: UnboundedSender<M>,
    wrap: fn(LaneEvent) -> M,
) {
    let reason = match TcpStream::connect(&addr).await {
        Ok(stream) => {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on the lane: {e}");
            }
            let (read, write) = stream.into_split();
            tokio::spawn(write_frames(
                conn,
                write,
                queued,
                done,
                events.clone(),
                wrap,
            ));
            read_frames(conn, read, &events, wrap).await
        }
        Err(e) => format!("cannot connect to {addr}: {e}"),
    };
    let _ = events.send(wrap(LaneEvent::Closed { conn, reason }));
}

/// Reads frames until the connection ends or a frame is bad; returns why it ended.
async fn read_frames<M>(
    conn: u64,
    mut read: OwnedReadHalf,
    events: &UnboundedSender<M>,
    wrap: fn(LaneEvent) -> M,
) -> String {
    let mut decoder = FrameDecoder::default();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) => return "the scheduler closed the connection".to_owned(),
            Ok(n) => n,
            Err(e) => return format!("read failed: {e}"),
        };
        decoder.push(&buf[..n]);
        let mut frames = Vec::new();
        let bad = loop {
            match decoder.next_frame::<ToExecutor>() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break None,
                Err(e) => break Some(format!("bad frame: {e}")),
            }
        };
        if !frames.is_empty()
            && events
                .send(wrap(LaneEvent::Frames { conn, frames }))
                .is_err()
        {
            return "the executor is exiting".to_owned();
        }
        if let Some(bad) = bad {
            return bad;
        }
    }
}

/// Writes queued frames, all that are waiting in one `write_all`, until the link drops
/// the sender (then it closes the connection) or a write fails.
async fn write_frames<M>(
    conn: u64,
    mut write: OwnedWriteHalf,
    mut queued: UnboundedReceiver<ToScheduler>,
    _done: oneshot::Sender<()>,
    events: UnboundedSender<M>,
    wrap: fn(LaneEvent) -> M,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    while let Some(first) = queued.recv().await {
        buf.clear();
        encode_frame(&first, &mut buf);
        while buf.len() < MAX_WRITE_BATCH
            && let Ok(next) = queued.try_recv()
        {
            encode_frame(&next, &mut buf);
        }
        let failed = match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&buf)).await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("write failed: {e}"),
            Err(_) => format!("a write took longer than {WRITE_TIMEOUT:?}"),
        };
        let _ = events.send(wrap(LaneEvent::Closed {
            conn,
            reason: failed,
        }));
        return;
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use brine_proto::payload::Secret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const BOUND: Duration = Duration::from_secs(20);

    struct Peer {
        stream: TcpStream,
        decoder: FrameDecoder,
    }

    impl Peer {
        async fn accept(listener: &TcpListener) -> Self {
            let (stream, _) = tokio::time::timeout(BOUND, listener.accept())
                .await
                .expect("a connection in time")
                .expect("accept");
            Self {
                stream,
                decoder: FrameDecoder::default(),
            }
        }

        /// The next frame, `None` at the end of the stream.
        async fn recv(&mut self) -> Option<ToScheduler> {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(frame) = self.decoder.next_frame().expect("a good frame") {
                    return Some(frame);
                }
                let n = tokio::time::timeout(BOUND, self.stream.read(&mut buf))
                    .await
                    .expect("a frame in time")
                    .expect("read");
                if n == 0 {
                    return None;
                }
                self.decoder.push(&buf[..n]);
            }
        }

        async fn send(&mut self, frame: &ToExecutor) {
            let mut wire = Vec::new();
            encode_frame(frame, &mut wire);
            self.stream.write_all(&wire).await.expect("write");
        }
    }

    /// The next event from the link's tasks.
    async fn event(rx: &mut UnboundedReceiver<LaneEvent>) -> LaneEvent {
        tokio::time::timeout(BOUND, rx.recv())
            .await
            .expect("an event in time")
            .expect("the channel is open")
    }

    fn link() -> (LaneLink<LaneEvent>, UnboundedReceiver<LaneEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut link = LaneLink::new("fw".into(), "ex".into(), tx, |e| e);
        link.set_agent_id("ag");
        (link, rx)
    }

    #[tokio::test]
    async fn hello_welcome_ping_silence_and_reconnect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let secret = Secret([5; 32]);
        let (mut link, mut rx) = link();
        let start = Instant::now();
        assert!(!link.poll(start, true), "no endpoint: nothing to do");
        assert_eq!(link.next_wake(true), None);
        link.set_endpoint(LaneEndpoint {
            addr: listener.local_addr().unwrap().to_string(),
            secret: secret.clone(),
        });
        link.poll(start, true);
        let mut peer = Peer::accept(&listener).await;
        let Some(ToScheduler::Hello {
            secret: got,
            framework_id,
            executor_id,
            agent_id,
        }) = peer.recv().await
        else {
            panic!("Hello first")
        };
        assert!(got.matches(&secret));
        assert_eq!(
            (&*framework_id, &*executor_id, &*agent_id),
            ("fw", "ex", "ag")
        );
        assert!(!link.send(ToScheduler::Pong { nonce: 0 }), "not up yet");

        let ping_interval = Duration::from_millis(200);
        peer.send(&ToExecutor::Welcome { ping_interval }).await;
        peer.send(&ToExecutor::Ping { nonce: 42 }).await;
        peer.send(&ToExecutor::Release { lease: "l".into() }).await;
        let mut frames = Vec::new();
        while frames.is_empty() {
            let news = link.on_event(event(&mut rx).await, start);
            assert!(!news.lost);
            frames = news.frames;
        }
        assert_eq!(frames, [ToExecutor::Release { lease: "l".into() }]);
        assert_eq!(link.up(), Some(1));
        assert_eq!(peer.recv().await, Some(ToScheduler::Pong { nonce: 42 }));

        // Silence for 3 intervals drops it; the peer sees the connection close.
        let silent = start + ping_interval * SILENT_PINGS;
        assert_eq!(link.next_wake(true), Some(silent));
        assert!(!link.poll(silent - Duration::from_millis(1), true));
        assert!(link.poll(silent, true), "dropped for silence");
        assert_eq!(peer.recv().await, None);
        // Reconnects after the first backoff, with the same Hello.
        assert_eq!(link.next_wake(true), Some(silent + FIRST_BACKOFF));
        link.poll(silent + FIRST_BACKOFF, true);
        let mut peer = Peer::accept(&listener).await;
        assert!(
            matches!(peer.recv().await, Some(ToScheduler::Hello { secret: s, .. }) if s.matches(&secret))
        );

        // A bad frame drops the connection (the executor carries on).
        peer.send(&ToExecutor::Welcome { ping_interval }).await;
        peer.stream
            .write_all(&[0, 0, 0, 2, 0xff, 0xff])
            .await
            .unwrap();
        let mut lost = false;
        while !lost {
            lost = link.on_event(event(&mut rx).await, silent).lost;
        }
        assert_eq!(link.up(), None);
        // It had been welcomed, so the backoff started over.
        assert_eq!(link.next_wake(true), Some(silent + FIRST_BACKOFF));
    }

    #[tokio::test]
    async fn refusals_and_unreachable_endpoints_back_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (mut link, mut rx) = link();
        let now = Instant::now();
        link.set_endpoint(LaneEndpoint {
            addr: addr.clone(),
            secret: Secret([1; 32]),
        });
        link.poll(now, true);
        let mut peer = Peer::accept(&listener).await;
        assert!(matches!(peer.recv().await, Some(ToScheduler::Hello { .. })));
        peer.send(&ToExecutor::Refused {
            reason: "wrong secret".into(),
        })
        .await;
        let news = link.on_event(event(&mut rx).await, now);
        assert!(!news.lost, "never up, nothing lost");
        assert_eq!(link.next_wake(true), Some(now + FIRST_BACKOFF));

        // Nobody listening: each failure doubles the wait, up to the maximum.
        drop(listener);
        let mut at = now;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let Some(next) = link.next_wake(true) else {
                panic!("a retry is scheduled")
            };
            waits.push(next - at);
            at = next;
            link.poll(at, true);
            while link.up().is_none() && link.conn.is_some() {
                link.on_event(event(&mut rx).await, at);
            }
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);

        // Not wanted any more: no connection, nothing scheduled.
        assert!(!link.poll(at, false));
        assert_eq!(link.next_wake(false), None);
    }

    #[tokio::test]
    async fn without_a_lease_the_lane_closes_after_writing_what_is_queued() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut link, mut rx) = link();
        let now = Instant::now();
        link.set_endpoint(LaneEndpoint {
            addr: listener.local_addr().unwrap().to_string(),
            secret: Secret([3; 32]),
        });
        link.poll(now, true);
        let mut peer = Peer::accept(&listener).await;
        peer.recv().await;
        peer.send(&ToExecutor::Welcome {
            ping_interval: Duration::from_secs(5),
        })
        .await;
        while link.up().is_none() {
            link.on_event(event(&mut rx).await, now);
        }
        for nonce in 0..100 {
            assert!(link.send(ToScheduler::Pong { nonce }));
        }
        assert!(link.poll(now, false), "closed: it was up");
        assert_eq!(link.next_wake(false), None);
        tokio::time::timeout(BOUND, link.close(BOUND))
            .await
            .unwrap();
        for nonce in 0..100 {
            assert_eq!(peer.recv().await, Some(ToScheduler::Pong { nonce }));
        }
        assert_eq!(peer.recv().await, None);
    }

    #[tokio::test]
    async fn a_new_endpoint_replaces_the_connection() {
        let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut link, mut rx) = link();
        let now = Instant::now();
        let endpoint = |l: &TcpListener| LaneEndpoint {
            addr: l.local_addr().unwrap().to_string(),
            secret: Secret([2; 32]),
        };
        link.set_endpoint(endpoint(&first));
        link.poll(now, true);
        let mut peer = Peer::accept(&first).await;
        peer.recv().await;
        peer.send(&ToExecutor::Welcome {
            ping_interval: Duration::from_secs(5),
        })
        .await;
        while link.up().is_none() {
            link.on_event(event(&mut rx).await, now);
        }
        assert!(!link.set_endpoint(endpoint(&first)), "the same endpoint");
        assert!(
            link.set_endpoint(endpoint(&second)),
            "the connection was up"
        );
        assert_eq!(peer.recv().await, None, "the old connection is closed");
        link.poll(now, true);
        let mut peer = Peer::accept(&second).await;
        assert!(matches!(peer.recv().await, Some(ToScheduler::Hello { .. })));
    }
}
