//! One connection's task: serve it, retire it, time it out, cut it.

use std::error::Error as StdError;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use seaworthy_shutdown::DrainGuard;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until};
use tower_service::Service;

use super::io::{ConnIo, ConnState};
use super::service::ConnService;
use super::{BoxError, Shared};
use crate::{Addr, ConnectionInfo, Stream};

/// How a connection task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// hyper finished: the client closed, or we closed after a response.
    Done,
    /// A request head did not arrive within the header-read timeout.
    HeaderTimeout,
    /// The shutdown's deadline: closed as it was.
    Cut,
}

pub(crate) async fn serve<S, B>(
    shared: Arc<Shared<S>>,
    stream: Stream,
    peer: Addr,
    permit: Option<OwnedSemaphorePermit>,
    guard: DrainGuard,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let config = &shared.config;
    let signals = &shared.signals;
    let state = Arc::new(ConnState::new());
    let info = ConnectionInfo {
        peer: peer.clone(),
        local: stream.local_addr().ok(),
        tls: false,
    };
    let service = ConnService {
        inner: shared.service.clone(),
        state: Arc::clone(&state),
        info,
        max_requests: config
            .max_requests
            .map(|max| jittered_count(max, config.jitter)),
        shutdown: shared.token.clone(),
    };
    let io = ConnIo::new(
        stream,
        Arc::clone(&state),
        config.header_read_timeout,
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

    let end = loop {
        let idle_limit = millis(if close_idle {
            config.idle_grace
        } else {
            config.keep_alive_timeout
        });
        let now = state.now_ms();
        // The next moment something may be due: the idle limit, the max age.
        // While a request is in flight or a head arrives, look again after
        // the idle limit. (The I/O times request heads itself.)
        let due = state
            .idle_since()
            .map_or(now + idle_limit.max(1), |since| since + idle_limit);
        let mut wake = state.at(due);
        if let Some(at) = max_age_at.filter(|_| !retired) {
            wake = wake.min(at);
        }

        tokio::select! {
            result = conn.as_mut() => {
                if state.header_timed_out() {
                    break End::HeaderTimeout;
                }
                if let Err(err) = result {
                    log_connection_error(&*err);
                }
                break End::Done;
            }
            () = signals.draining.cancelled(), if !retired => {
                retired = true;
                retire(&state, conn.as_mut(), &mut shut_down);
            }
            () = signals.closing.cancelled(), if !close_idle => {
                close_idle = true;
                if !retired {
                    retired = true;
                    retire(&state, conn.as_mut(), &mut shut_down);
                }
            }
            () = signals.cut.cancelled() => {
                state.close_hard();
                break End::Cut;
            }
            () = state.retire.notified(), if !retired => {
                retired = true;
                retire(&state, conn.as_mut(), &mut shut_down);
            }
            () = sleep_until(wake) => {
                let now = state.now_ms();
                if !retired && max_age_at.is_some_and(|at| Instant::now() >= at) {
                    retired = true;
                    close_idle = true;
                    retire(&state, conn.as_mut(), &mut shut_down);
                }
                if !shut_down && state.idle_since().is_some_and(|since| now >= since + idle_limit) {
                    shared.counters.idle_closed();
                    shut_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    };

    drop(conn);
    match end {
        End::Done => {}
        End::HeaderTimeout => {
            shared.counters.header_timeout();
            tracing::debug!(%peer, "request head not received in time; closed");
        }
        End::Cut => shared.counters.closed_at_deadline(),
    }
    shared.counters.closed();
    drop(permit);
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
