//! The connection's I/O: records activity for the idle and header timers,
//! and closes with a lingering read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use seaworthy_shutdown::{DrainGuard, ShutdownToken};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::Stream;

/// A connection's byte stream: plain, or TLS over it.
pub(crate) enum Transport {
    Plain(Stream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<Stream>>),
}

macro_rules! transport {
    ($this:expr, $io:ident => $call:expr) => {
        match $this.get_mut() {
            Transport::Plain($io) => {
                let $io = Pin::new($io);
                $call
            }
            #[cfg(feature = "tls")]
            Transport::Tls($io) => {
                let $io = Pin::new(&mut **$io);
                $call
            }
        }
    };
}

impl Transport {
    /// Ends our side: FIN, after TLS's `close_notify` (sent within the
    /// lingering read's time, by the caller's bound).
    async fn close_write(&mut self) {
        match self {
            Transport::Plain(stream) => stream.shutdown_write(),
            #[cfg(feature = "tls")]
            Transport::Tls(stream) => {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut **stream).await;
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        transport!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        transport!(self, io => io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        transport!(self, io => io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
            #[cfg(feature = "tls")]
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        transport!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        transport!(self, io => io.poll_shutdown(cx))
    }
}

/// `ConnState::head_since` when no request head is being read.
const NO_HEAD: u64 = u64::MAX;

/// What the connection task, the I/O and the service share about one
/// connection. Times are milliseconds since `started`.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) started: Instant,
    last_io: AtomicU64,
    head_since: AtomicU64,
    in_flight: AtomicU32,
    pub(crate) requests: AtomicU64,
    retiring: AtomicBool,
    http2: AtomicBool,
    eof: AtomicBool,
    no_linger: AtomicBool,
    /// An HTTP/2 connection closed for being idle: linger briefly (see
    /// `close_idle`).
    idle_close: AtomicBool,
    header_timed_out: AtomicBool,
    pub(crate) write_timed_out: AtomicBool,
    /// Wakes the connection task to retire an HTTP/2 connection.
    pub(crate) retire: Notify,
    /// HTTP/2 response bodies that gave data and have more, waiting for
    /// the connection to take the next (it takes it as the peer's
    /// flow-control window allows): body id → since when, in ms.
    waiting_bodies: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    next_body: AtomicU64,
    /// Wakes the connection task when a body starts waiting.
    pub(crate) body_waits: Notify,
    /// The process's shutdown: once triggered, every HTTP/1 response closes
    /// its connection, from the very next one on.
    shutdown: ShutdownToken,
}

impl ConnState {
    pub(crate) fn new(shutdown: ShutdownToken) -> Self {
        ConnState {
            shutdown,
            started: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(NO_HEAD),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            retiring: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            eof: AtomicBool::new(false),
            no_linger: AtomicBool::new(false),
            idle_close: AtomicBool::new(false),
            header_timed_out: AtomicBool::new(false),
            write_timed_out: AtomicBool::new(false),
            retire: Notify::new(),
            waiting_bodies: std::sync::Mutex::default(),
            next_body: AtomicU64::new(0),
            body_waits: Notify::new(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    fn on_read(&self, bytes: &[u8]) {
        let now = self.now_ms();
        self.last_io.store(now, Relaxed);
        if bytes.is_empty() {
            self.eof.store(true, Relaxed);
            return;
        }
        if self.in_flight.load(Relaxed) == 0 && self.head_since.load(Relaxed) == NO_HEAD {
            if self.requests.load(Relaxed) == 0 && bytes.starts_with(b"PRI ") {
                // The HTTP/2 preface: no request heads to time.
                self.http2.store(true, Relaxed);
            }
            self.head_since.store(now, Relaxed);
        }
    }

    /// A write counts as activity, at the time it happened. (Taking it
    /// lazily, when the idle check next looked, once stamped a response
    /// written at 0 s with the check's 75 s: idle connections lived twice
    /// the keep-alive timeout.)
    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Relaxed);
    }

    /// The service was called: a head was read, a request is in flight.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_since.store(NO_HEAD, Relaxed);
    }

    /// The response head is ready (or the request was abandoned).
    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.last_io.store(self.now_ms(), Relaxed);
    }

    /// When the current request head started arriving, if one is.
    pub(crate) fn head_since(&self) -> Option<u64> {
        if self.is_http2() {
            return None;
        }
        Some(self.head_since.load(Relaxed)).filter(|&since| since != NO_HEAD)
    }

    /// When the connection last moved a byte, if it is idle now (nothing
    /// in flight, no head arriving).
    pub(crate) fn idle_since(&self) -> Option<u64> {
        if self.in_flight.load(Relaxed) > 0 || self.head_since.load(Relaxed) != NO_HEAD {
            return None;
        }
        Some(self.last_io.load(Relaxed))
    }

    /// An id for an HTTP/2 response body.
    pub(crate) fn body_id(&self) -> u64 {
        self.next_body.fetch_add(1, Relaxed)
    }

    fn bodies(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u64>> {
        self.waiting_bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Body `id` gave data and has more: it waits for the connection.
    pub(crate) fn body_waiting(&self, id: u64) {
        let now = self.now_ms();
        let first = {
            let mut bodies = self.bodies();
            bodies.insert(id, now);
            bodies.len() == 1
        };
        if first {
            self.body_waits.notify_one();
        }
    }

    /// Body `id` was polled again (or is gone).
    pub(crate) fn body_resumed(&self, id: u64) {
        self.bodies().remove(&id);
    }

    /// Since when the longest-waiting response body has waited, if any.
    pub(crate) fn oldest_waiting_body(&self) -> Option<u64> {
        self.bodies().values().min().copied()
    }

    /// Whether the client has not sent a single byte yet.
    pub(crate) fn has_sent_nothing(&self) -> bool {
        self.requests.load(Relaxed) == 0
            && !self.is_http2()
            && self.head_since.load(Relaxed) == NO_HEAD
            && !self.eof.load(Relaxed)
    }

    pub(crate) fn is_http2(&self) -> bool {
        self.http2.load(Relaxed)
    }

    pub(crate) fn set_retiring(&self) {
        self.retiring.store(true, Relaxed);
    }

    /// Whether responses should close the connection: it is retiring, or
    /// the process is shutting down.
    pub(crate) fn is_retiring(&self) -> bool {
        self.retiring.load(Relaxed) || self.shutdown.is_shutting_down()
    }

    /// Closes without the lingering read: the peer misbehaved, or time is up.
    pub(crate) fn close_hard(&self) {
        self.no_linger.store(true, Relaxed);
    }

    /// Closes an idle connection. HTTP/2 lingers briefly ([`IDLE_LINGER`]):
    /// a client that opened a stream just as the connection closed then
    /// reads the GOAWAY saying the stream was not processed (and retries
    /// it) instead of a reset that would destroy it. HTTP/1 closes plainly:
    /// a request racing the close fails either way, and a lingering read
    /// would hold the drain while idle clients keep their end open (1000
    /// idle connections: 265 ms to exit instead of 14 ms).
    pub(crate) fn close_idle(&self) {
        if self.is_http2() {
            self.idle_close.store(true, Relaxed);
        } else {
            self.close_hard();
        }
    }

    /// Whether the connection ended because a request head was too slow.
    pub(crate) fn header_timed_out(&self) -> bool {
        self.header_timed_out.load(Relaxed)
    }
}

/// Polls a timer kept for `deadline`, created on first use and moved when
/// the deadline moves, on the caller's waker.
fn poll_deadline(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let timer = match timer {
        Some(timer) => {
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            timer
        }
        None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
    };
    timer.as_mut().poll(cx)
}

/// The stream as hyper sees it.
pub(crate) struct ConnIo {
    stream: Option<Transport>,
    state: Arc<ConnState>,
    header_read_timeout: Duration,
    /// Armed only while a request head is partly read.
    head_timer: Option<Pin<Box<Sleep>>>,
    write_timeout: Duration,
    /// Armed only while a write waits for the peer to read.
    write_timer: Option<Pin<Box<Sleep>>>,
    /// When the current wait for the peer began.
    write_blocked_since: Option<Instant>,
    linger: Duration,
    cut: CancellationToken,
    guard: Option<DrainGuard>,
}

impl ConnIo {
    pub(crate) fn new(
        stream: Transport,
        state: Arc<ConnState>,
        timeouts: (Duration, Duration),
        linger: Duration,
        cut: CancellationToken,
        guard: DrainGuard,
    ) -> Self {
        let (header_read_timeout, write_timeout) = timeouts;
        ConnIo {
            stream: Some(stream),
            state,
            header_read_timeout,
            head_timer: None,
            write_timeout,
            write_timer: None,
            write_blocked_since: None,
            linger,
            cut,
            guard: Some(guard),
        }
    }

    /// While a request head is partly read, times it: the read fails with
    /// `TimedOut` once the header-read timeout has passed since its first
    /// byte. The timer is armed only then, on the read's own waker.
    fn poll_head_timer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(since) = self.state.head_since() else {
            return Poll::Pending;
        };
        let deadline = self.state.at(since) + self.header_read_timeout;
        ready!(poll_deadline(&mut self.head_timer, deadline, cx));
        self.state.header_timed_out.store(true, Relaxed);
        self.state.close_hard();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received within the header-read timeout",
        )))
    }

    /// Counts a write's outcome: progress ends a wait for the peer; a wait
    /// (`Pending`) starts or goes on, and fails the write with `TimedOut`
    /// once the peer has read nothing for the write timeout (nginx's
    /// `send_timeout`): a client that never reads cannot hold the response,
    /// and the memory behind it, for ever.
    fn account_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Ok(value)) => {
                self.write_blocked_since = None;
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let since = *self.write_blocked_since.get_or_insert_with(Instant::now);
                let deadline = since + self.write_timeout;
                ready!(poll_deadline(&mut self.write_timer, deadline, cx));
                self.state.write_timed_out.store(true, Relaxed);
                self.state.close_hard();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer read nothing within the write timeout",
                )))
            }
        }
    }

    fn stream(&mut self) -> Pin<&mut Transport> {
        Pin::new(
            self.stream
                .as_mut()
                .expect("the stream is taken only on drop"),
        )
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = this.stream().poll_read(cx, buf);
        match result {
            Poll::Ready(Ok(())) => this.state.on_read(&buf.filled()[before..]),
            Poll::Pending => return this.poll_head_timer(cx),
            Poll::Ready(Err(_)) => {}
        }
        result
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = this.stream().poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = result {
            this.state.on_write();
        }
        this.account_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = this.stream().poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = result {
            this.state.on_write();
        }
        this.account_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = this.stream().poll_flush(cx);
        this.account_write(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_shutdown(cx)
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let state = &self.state;
        if self.linger.is_zero()
            || state.eof.load(Relaxed)
            || state.no_linger.load(Relaxed)
            || self.cut.is_cancelled()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let duration = if state.idle_close.load(Relaxed) {
            self.linger.min(IDLE_LINGER)
        } else {
            self.linger
        };
        runtime.spawn(linger(
            stream,
            duration,
            self.cut.clone(),
            self.guard.take(),
        ));
    }
}

/// The lingering read after closing an idle connection: long enough for a
/// request already on the wire, short enough not to hold the drain.
const IDLE_LINGER: Duration = Duration::from_millis(250);

/// Lingering close: send FIN, then read and drop whatever the client still
/// sends until it closes too, `linger` passes, or the shutdown cuts it. A
/// close with unread input would send RST, which can destroy a response the
/// client has not read yet.
async fn linger(
    mut stream: Transport,
    linger: Duration,
    cut: CancellationToken,
    guard: Option<DrainGuard>,
) {
    let drain = async {
        stream.close_write().await;
        let mut sink = [0_u8; 1024];
        while let Ok(1..) = stream.read(&mut sink).await {}
    };
    tokio::select! {
        () = drain => {}
        () = tokio::time::sleep(linger) => {}
        () = cut.cancelled() => {}
    }
    drop(guard);
}
