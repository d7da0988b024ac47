//! One connection's task: serve it, retire it, time it out, cut it.

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, RandomState};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use seaworthy_shutdown::DrainGuard;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::futures::Notified;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::WaitForCancellationFuture;

use super::io::{ConnIo, ConnState, Transport};
use super::service::ConnService;
use super::{BoxError, HttpService, ServedBody, Shared};
use crate::{Addr, ConnectionInfo, Stream};

/// How a connection task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// hyper finished: the client closed, or we closed after a response.
    Done,
    /// A request head did not arrive within the header-read timeout.
    HeaderTimeout,
    /// The peer read nothing of a response within the write timeout.
    WriteTimeout,
    /// The shutdown's deadline: closed as it was.
    Cut,
}

/// Serves one connection: the TLS handshake, then HTTP until hyper is done,
/// a timeout fires, or the shutdown cuts it; then counts how it ended. The
/// permit and the per-client place are held to the end.
pub(crate) async fn serve<S: HttpService<B>, B: ServedBody>(
    shared: Arc<Shared>,
    service: S,
    stream: Stream,
    peer: Addr,
    permit: Option<OwnedSemaphorePermit>,
    place: Option<super::per_ip::Place>,
    guard: DrainGuard,
) {
    if let Some((transport, info)) = handshake(&shared, stream, &peer).await {
        let end = drive(&shared, service, transport, info, guard).await;
        count_end(&shared, &peer, end);
    }
    shared.counters.closed();
    drop(permit);
    drop(place);
}

/// The transport and the connection's facts: after the TLS handshake when
/// the server has TLS (`None` when it failed: counted and logged).
async fn handshake(
    shared: &Shared,
    stream: Stream,
    peer: &Addr,
) -> Option<(Transport, ConnectionInfo)> {
    let local = stream.local_addr().ok();
    #[cfg(feature = "tls")]
    if let Some(tls) = &shared.config.tls {
        return match tls.accept(stream, &shared.signals.cut).await {
            Ok((stream, tls_info)) => {
                shared.counters.tls_handshake();
                Some((
                    Transport::Tls(Box::new(stream)),
                    ConnectionInfo::new(peer.clone(), local, true).with_tls(tls_info),
                ))
            }
            Err(err) => {
                handshake_failed(shared, peer, err);
                None
            }
        };
    }
    #[cfg(not(feature = "tls"))]
    let _ = shared;
    Some((
        Transport::Plain(stream),
        ConnectionInfo::new(peer.clone(), local, false),
    ))
}

/// Serves HTTP on the transport until it ends: hyper's connection, polled
/// together with the connection's rare events ([`Control`]). A little over
/// 80 lines: the events' futures are pinned on this frame (no allocation
/// per connection), so they are made here, not in a constructor.
async fn drive<S: HttpService<B>, B: ServedBody>(
    shared: &Shared,
    service: S,
    transport: Transport,
    info: ConnectionInfo,
    guard: DrainGuard,
) -> End {
    let config = &shared.config;
    let signals = &shared.signals;
    let state = Arc::new(ConnState::new(shared.token.clone()));
    let service = ConnService {
        inner: service,
        state: Arc::clone(&state),
        info,
        max_requests: config
            .max_requests
            .map(|max| jittered_count(max, config.jitter)),
    };
    let io = ConnIo::new(
        transport,
        Arc::clone(&state),
        (config.header_read_timeout, config.write_timeout),
        config.linger,
        signals.cut.clone(),
        guard,
    );
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    // Boxed so that it can be dropped (closing the socket) before the task
    // ends: after `close_hard`, or at once when hyper is done.
    let mut conn = Box::pin(conn);

    let control_waker = Arc::new(ControlWaker::default());
    let draining = pin!(signals.draining.cancelled());
    let closing = pin!(signals.closing.cancelled());
    let cut = pin!(signals.cut.cancelled());
    let retirement = pin!(state.retire.notified());
    let body_waits = pin!(state.body_waits.notified());
    let timer = pin!(sleep_until(state.started));
    let mut control = Control {
        draining,
        closing,
        cut,
        retirement,
        body_waits,
        timer,
        state: &state,
        shared,
        max_age_at: config
            .max_age
            .map(|age| state.started + jittered_duration(age, config.jitter)),
        retired: false,
        close_idle: false,
        shut_down: false,
    };
    let waker = Waker::from(Arc::clone(&control_waker));
    let mut registered = false;
    let end = poll_fn(|cx| {
        if !registered {
            registered = true;
            control_waker.register(cx.waker());
        }
        if control_waker.take()
            && let Some(end) = control.look(&waker, conn.as_mut())
        {
            return Poll::Ready(end);
        }
        let result = ready!(conn.as_mut().poll(cx));
        if state.header_timed_out() {
            return Poll::Ready(End::HeaderTimeout);
        }
        if state.write_timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(End::WriteTimeout);
        }
        if let Err(err) = result {
            log_connection_error(&*err);
        }
        Poll::Ready(End::Done)
    })
    .await;
    drop(conn);
    end
}

/// Counts and logs how a connection ended.
fn count_end(shared: &Shared, peer: &Addr, end: End) {
    match end {
        End::Done => {}
        End::HeaderTimeout => {
            shared.counters.header_timeout();
            tracing::debug!(%peer, "request head not received in time; closed");
        }
        End::WriteTimeout => {
            shared.counters.write_timeout();
            tracing::debug!(%peer, "the peer read nothing within the write timeout; closed");
        }
        End::Cut => shared.counters.closed_at_deadline(),
    }
}

/// A connection's rare events (the shutdown's phases, a retirement, its
/// timers), polled only when their own waker fired, not on every wake-up
/// of the busy connection: a plain `select!` would poll all of them, and
/// lock their waiter lists, for every request.
struct Control<'p, 's> {
    draining: Pin<&'p mut WaitForCancellationFuture<'s>>,
    closing: Pin<&'p mut WaitForCancellationFuture<'s>>,
    cut: Pin<&'p mut WaitForCancellationFuture<'s>>,
    retirement: Pin<&'p mut Notified<'s>>,
    body_waits: Pin<&'p mut Notified<'s>>,
    /// Set to the next moment something may be due.
    timer: Pin<&'p mut Sleep>,
    state: &'s ConnState,
    shared: &'s Shared,
    max_age_at: Option<Instant>,
    /// Retired: `Connection: close` on the next response, or GOAWAY.
    retired: bool,
    /// Closing: an idle connection closes after the idle grace.
    close_idle: bool,
    /// hyper was told to shut the connection down.
    shut_down: bool,
}

impl Control<'_, '_> {
    /// Looks at every event: the connection's end when one ends it (the
    /// shutdown's cut, a body stalled past the write timeout); otherwise
    /// retires, closes an idle connection, and sets the timer.
    /// `waker` is the events' own, so that they wake the connection
    /// through [`ControlWaker`].
    fn look<C: GracefulShutdown>(&mut self, waker: &Waker, mut conn: Pin<&mut C>) -> Option<End> {
        let mut cx = Context::from_waker(waker);
        if self.cut.as_mut().poll(&mut cx).is_ready() {
            self.state.close_hard();
            return Some(End::Cut);
        }
        self.follow_shutdown(&mut cx, conn.as_mut());
        if self.timer.as_mut().poll(&mut cx).is_ready() {
            self.on_timer(conn.as_mut());
        }
        if self.body_stalled(&mut cx) {
            self.state.write_timed_out.store(true, Ordering::Relaxed);
            self.state.close_hard();
            return Some(End::WriteTimeout);
        }
        self.set_timer(&mut cx);
        None
    }

    /// Draining or a retirement (the request limit, on HTTP/2) retires the
    /// connection; closing also closes it once idle.
    fn follow_shutdown<C: GracefulShutdown>(&mut self, cx: &mut Context<'_>, conn: Pin<&mut C>) {
        let draining_now = !self.retired && self.draining.as_mut().poll(cx).is_ready();
        let retiring_now = !self.retired && self.retirement.as_mut().poll(cx).is_ready();
        if !self.close_idle && self.closing.as_mut().poll(cx).is_ready() {
            self.close_idle = true;
        }
        if draining_now || retiring_now || (self.close_idle && !self.retired) {
            self.retired = true;
            retire(self.state, conn, &mut self.shut_down);
        }
    }

    /// The timer fired: the max age retires the connection; an idle
    /// connection past its limit is closed.
    fn on_timer<C: GracefulShutdown>(&mut self, mut conn: Pin<&mut C>) {
        if !self.retired && self.max_age_at.is_some_and(|at| Instant::now() >= at) {
            self.retired = true;
            self.close_idle = true;
            retire(self.state, conn.as_mut(), &mut self.shut_down);
        }
        let now = self.state.now_ms();
        if !self.shut_down
            && self
                .state
                .idle_since()
                .is_some_and(|since| now >= since + self.idle_limit())
        {
            self.shared.counters.idle_closed();
            // Nothing was just written and nothing is unread, but the
            // client may be sending its next request right now.
            self.state.close_idle();
            self.shut_down = true;
            conn.graceful_shutdown();
        }
    }

    /// Whether an HTTP/2 response body has waited the write timeout for
    /// the connection to take its next chunk: the peer keeps its
    /// flow-control window shut. (HTTP/1, and a peer that stops reading the
    /// socket, fail in the I/O's own write timeout.)
    fn body_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.body_waits.as_mut().poll(cx).is_ready() {
            self.body_waits.set(self.state.body_waits.notified());
            let _ = self.body_waits.as_mut().poll(cx);
        }
        let write_limit = millis(self.shared.config.write_timeout);
        self.state
            .oldest_waiting_body()
            .is_some_and(|since| self.state.now_ms() >= since + write_limit)
    }

    /// How long the connection may sit idle now: the idle grace once
    /// closing; for a new connection, its first byte within the
    /// header-read timeout, as a head; else the keep-alive timeout.
    fn idle_limit(&self) -> u64 {
        let config = &self.shared.config;
        millis(if self.close_idle {
            config.idle_grace
        } else if self.state.has_sent_nothing() {
            config.header_read_timeout.min(config.keep_alive_timeout)
        } else {
            config.keep_alive_timeout
        })
    }

    /// Sets the timer to the next moment something may be due: the idle
    /// limit, the max age, a waiting body's write timeout. While a request
    /// is in flight or a head arrives, look again after the idle limit.
    fn set_timer(&mut self, cx: &mut Context<'_>) {
        let state = self.state;
        let now = state.now_ms();
        let idle_limit = self.idle_limit();
        let due = state
            .idle_since()
            .map_or(now + idle_limit.max(1), |since| since + idle_limit);
        let mut wake = state.at(due.max(now + 1));
        if let Some(at) = self.max_age_at.filter(|_| !self.retired) {
            wake = wake.min(at);
        }
        if let Some(since) = state.oldest_waiting_body() {
            wake = wake.min(state.at(since + millis(self.shared.config.write_timeout)));
        }
        if self.timer.deadline() != wake || self.timer.is_elapsed() {
            self.timer.as_mut().reset(wake);
            // Register the reset timer with the control waker.
            let _ = self.timer.as_mut().poll(cx);
        }
    }
}

/// Counts and logs (at debug: a port scan must not flood the logs) a TLS
/// handshake that did not complete.
#[cfg(feature = "tls")]
fn handshake_failed(shared: &Shared, peer: &Addr, err: crate::tls::HandshakeError) {
    use crate::tls::HandshakeError;
    match err {
        HandshakeError::TimedOut => {
            shared.counters.tls_handshake_timeout();
            tracing::debug!(%peer, "TLS handshake not completed within the handshake timeout; closed");
        }
        HandshakeError::Cut => shared.counters.closed_at_deadline(),
        HandshakeError::Failed(err) => {
            shared.counters.tls_handshake_failure();
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
        }
        HandshakeError::Challenge => {
            tracing::info!(%peer, "answered a TLS-ALPN-01 validation");
        }
    }
}

/// A waker for the connection's rare events: marks that they need a look,
/// then wakes the connection task.
#[derive(Debug, Default)]
struct ControlWaker {
    flagged: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl ControlWaker {
    /// Remembers the task's waker (a spawned task's waker does not change)
    /// and flags a first look.
    fn register(&self, waker: &Waker) {
        *self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(waker.clone());
        self.flagged.store(true, Ordering::Release);
    }

    /// Whether an event fired since the last look. (A plain load first: this
    /// runs on every wake-up of the connection.)
    fn take(&self) -> bool {
        self.flagged.load(Ordering::Acquire) && self.flagged.swap(false, Ordering::AcqRel)
    }
}

impl Wake for ControlWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flagged.store(true, Ordering::Release);
        if let Some(task) = &*self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            task.wake_by_ref();
        }
    }
}

/// Retires a connection: HTTP/2 gets GOAWAY now; HTTP/1 answers its next
/// response with `Connection: close` (the service wrapper sees the flag).
fn retire<F: GracefulShutdown>(
    state: &ConnState,
    conn: std::pin::Pin<&mut F>,
    shut_down: &mut bool,
) {
    state.set_retiring();
    if state.is_http2() && !*shut_down {
        *shut_down = true;
        conn.graceful_shutdown();
    }
}

/// hyper-util's connection futures, for [`retire`].
trait GracefulShutdown {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E, B> GracefulShutdown
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

fn log_connection_error(err: &(dyn StdError + 'static)) {
    // Clients going away mid-request are routine; log them quietly.
    tracing::debug!(error = %err, "connection ended with an error");
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

/// A number in [0, 1), different for each call.
fn random_unit() -> f64 {
    (RandomState::new().hash_one(0_u8) >> 11) as f64 / (1_u64 << 53) as f64
}

/// `max` lowered by up to `jitter` of itself, at random; at least 1.
fn jittered_count(max: u64, jitter: f64) -> u64 {
    let cut = (max as f64 * jitter * random_unit()) as u64;
    max.saturating_sub(cut).max(1)
}

/// `age` shortened by up to `jitter` of itself, at random.
fn jittered_duration(age: Duration, jitter: f64) -> Duration {
    age.mul_f64(1.0 - jitter * random_unit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_share() {
        for _ in 0..1000 {
            let count = jittered_count(1000, 0.1);
            assert!((900..=1000).contains(&count), "{count}");
            let age = jittered_duration(Duration::from_secs(100), 0.1);
            assert!(age > Duration::from_secs(90) && age <= Duration::from_secs(100));
        }
        assert_eq!(jittered_count(1, 1.0), 1);
        assert_eq!(jittered_count(50, 0.0), 50);
    }

    #[test]
    fn jitter_spreads() {
        let counts: std::collections::HashSet<u64> =
            (0..100).map(|_| jittered_count(10_000, 0.5)).collect();
        assert!(counts.len() > 50, "{}", counts.len());
    }
}
