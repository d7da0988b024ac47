//! One connection's task: serve it, retire it, time it out, cut it.

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, RandomState};
use std::pin::pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use seaworthy_shutdown::DrainGuard;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until};

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

pub(crate) async fn serve<S: HttpService<B>, B: ServedBody>(
    shared: Arc<Shared>,
    service: S,
    stream: Stream,
    peer: Addr,
    permit: Option<OwnedSemaphorePermit>,
    place: Option<super::per_ip::Place>,
    guard: DrainGuard,
) {
    let config = &shared.config;
    let signals = &shared.signals;
    let local = stream.local_addr().ok();
    #[cfg(feature = "tls")]
    let (stream, info) = match &config.tls {
        None => (
            Transport::Plain(stream),
            ConnectionInfo::new(peer.clone(), local, false),
        ),
        Some(tls) => match tls.accept(stream, &signals.cut).await {
            Ok((stream, tls_info)) => {
                shared.counters.tls_handshake();
                (
                    Transport::Tls(Box::new(stream)),
                    ConnectionInfo::new(peer.clone(), local, true).with_tls(tls_info),
                )
            }
            Err(err) => {
                handshake_failed(&shared, &peer, err);
                shared.counters.closed();
                return;
            }
        },
    };
    #[cfg(not(feature = "tls"))]
    let (stream, info) = (
        Transport::Plain(stream),
        ConnectionInfo::new(peer.clone(), local, false),
    );
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
        stream,
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

    let max_age_at = config
        .max_age
        .map(|age| state.started + jittered_duration(age, config.jitter));
    let mut retired = false;
    let mut close_idle = false;
    let mut shut_down = false;

    // The rare events (the phases, a retirement, the timers) are polled
    // only when their own waker fired, not on every wake-up of the busy
    // connection: a plain `select!` would poll all of them, and lock their
    // waiter lists, for every request.
    let control = Arc::new(ControlWaker::default());
    let control_waker = Waker::from(Arc::clone(&control));
    let mut draining = pin!(signals.draining.cancelled());
    let mut closing = pin!(signals.closing.cancelled());
    let mut cut = pin!(signals.cut.cancelled());
    let mut retirement = pin!(state.retire.notified());
    let mut body_waits = pin!(state.body_waits.notified());
    let mut timer = pin!(sleep_until(state.started));
    let mut registered = false;
    let idle_limit = |close_idle: bool| {
        millis(if close_idle {
            config.idle_grace
        } else if state.has_sent_nothing() {
            // A new connection owes its first byte within the header-read
            // timeout, as a head does.
            config.header_read_timeout.min(config.keep_alive_timeout)
        } else {
            config.keep_alive_timeout
        })
    };

    let end = poll_fn(|cx| {
        if !registered {
            registered = true;
            control.register(cx.waker());
        }
        if control.take() {
            let mut ccx = Context::from_waker(&control_waker);
            if cut.as_mut().poll(&mut ccx).is_ready() {
                state.close_hard();
                return Poll::Ready(End::Cut);
            }
            let draining_now = !retired && draining.as_mut().poll(&mut ccx).is_ready();
            let retiring_now = !retired && retirement.as_mut().poll(&mut ccx).is_ready();
            if !close_idle && closing.as_mut().poll(&mut ccx).is_ready() {
                close_idle = true;
            }
            if draining_now || retiring_now || (close_idle && !retired) {
                retired = true;
                retire(&state, conn.as_mut(), &mut shut_down);
            }
            if timer.as_mut().poll(&mut ccx).is_ready() {
                if !retired && max_age_at.is_some_and(|at| Instant::now() >= at) {
                    retired = true;
                    close_idle = true;
                    retire(&state, conn.as_mut(), &mut shut_down);
                }
                let idle_limit = idle_limit(close_idle);
                let now = state.now_ms();
                if !shut_down
                    && state
                        .idle_since()
                        .is_some_and(|since| now >= since + idle_limit)
                {
                    shared.counters.idle_closed();
                    // Nothing was just written and nothing is unread, but
                    // the client may be sending its next request right now.
                    state.close_idle();
                    shut_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            // An HTTP/2 response body that has waited the write timeout
            // for the connection to take its next chunk: the peer keeps its
            // flow-control window shut. Cut: what the streams hold is freed.
            // (HTTP/1, and a peer that stops reading the socket, fail in the
            // I/O's own write timeout.)
            if body_waits.as_mut().poll(&mut ccx).is_ready() {
                body_waits.set(state.body_waits.notified());
                let _ = body_waits.as_mut().poll(&mut ccx);
            }
            let write_limit = millis(config.write_timeout);
            let stalled_since = state.oldest_waiting_body();
            if stalled_since.is_some_and(|since| state.now_ms() >= since + write_limit) {
                state
                    .write_timed_out
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                state.close_hard();
                return Poll::Ready(End::WriteTimeout);
            }
            // The next moment something may be due: the idle limit, the max
            // age, a waiting body's write timeout. While a request is in
            // flight or a head arrives, look again after the idle limit.
            // (The I/O times request heads itself.)
            let idle_limit = idle_limit(close_idle);
            let now = state.now_ms();
            let due = state
                .idle_since()
                .map_or(now + idle_limit.max(1), |since| since + idle_limit);
            let mut wake = state.at(due.max(now + 1));
            if let Some(at) = max_age_at.filter(|_| !retired) {
                wake = wake.min(at);
            }
            if let Some(since) = stalled_since {
                wake = wake.min(state.at(since + write_limit));
            }
            if timer.deadline() != wake || timer.is_elapsed() {
                timer.as_mut().reset(wake);
                // Register the reset timer with the control waker.
                let _ = timer.as_mut().poll(&mut ccx);
            }
        }
        match conn.as_mut().poll(cx) {
            Poll::Ready(result) => {
                if state.header_timed_out() {
                    return Poll::Ready(End::HeaderTimeout);
                }
                if state
                    .write_timed_out
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    return Poll::Ready(End::WriteTimeout);
                }
                if let Err(err) = result {
                    log_connection_error(&*err);
                }
                Poll::Ready(End::Done)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await;

    drop(conn);
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
    shared.counters.closed();
    drop(permit);
    drop(place);
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
