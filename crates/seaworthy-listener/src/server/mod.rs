//! The serve loop: accept with a limit, serve hyper 1 (HTTP/1.1 and HTTP/2),
//! drain through seaworthy-shutdown's phases.

mod conn;
mod counters;
mod io;
mod per_ip;
mod service;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use seaworthy_shutdown::{Phase, ShutdownReason, ShutdownToken};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

pub use counters::{Counters, CountersSnapshot};

use crate::Listener;

type BoxError = Box<dyn StdError + Send + Sync>;

/// nginx's `large_client_header_buffers 4 8k`.
const DEFAULT_MAX_HEADER_SIZE: usize = 32 * 1024;
/// hyper's smallest HTTP/1 read buffer.
const MIN_HEADER_SIZE: usize = 8 * 1024;

/// The final sweep of the accept queue: at most this many rounds...
const SWEEP_ROUNDS: u32 = 20;
/// ...this far apart.
const SWEEP_INTERVAL: Duration = Duration::from_millis(5);

/// Serves a [`Listener`] with hyper (HTTP/1.1 and HTTP/2, detected per
/// connection, h2c included) and any tower service, draining through the
/// phases of a [`seaworthy_shutdown::Shutdown`].
///
/// # Defaults
///
/// | setting | default | |
/// |---|---|---|
/// | [`max_connections`](Self::max_connections) | 10 000 | past it, accept waits (no busy loop) |
/// | [`max_connections_per_ip`](Self::max_connections_per_ip) | none | nginx's `limit_conn`: one client's connections past it are closed at once |
/// | [`header_read_timeout`](Self::header_read_timeout) | 10 s | a request head must arrive within it (slowloris), and a new connection's first byte too |
/// | [`max_header_size`](Self::max_header_size) | 32 KiB | a larger request head is answered 431 (nginx allows 4 × 8 KiB) |
/// | [`write_timeout`](Self::write_timeout) | 30 s | a peer that reads nothing of a response for it is cut (nginx's `send_timeout`) |
/// | [`keep_alive_timeout`](Self::keep_alive_timeout) | 75 s | idle HTTP/1 connections are closed after it; above common load balancers' 60 s |
/// | [`http2_keep_alive`](Self::http2_keep_alive) | ping every 20 s, 20 s to answer | dead HTTP/2 peers are found |
/// | [`max_requests`](Self::max_requests) | none | gunicorn's `max_requests`, with jitter |
/// | [`max_age`](Self::max_age) | none | a connection is retired after it, with jitter |
/// | [`idle_grace`](Self::idle_grace) | 250 ms | while draining, a connection idle this long is closed |
/// | [`linger`](Self::linger) | 2 s | after closing, unread input is read and dropped this long, so that no RST truncates a response |
///
/// # The drain
///
/// | phase | accepting | open connections |
/// |---|---|---|
/// | running | yes | served; idle HTTP/1 closed after the keep-alive timeout |
/// | draining | yes | every response gets `Connection: close` (HTTP/1); HTTP/2 gets GOAWAY |
/// | closing | no | requests in flight finish; a connection idle for `idle_grace` is closed; one mid-head is cut by the header-read timeout |
/// | cancelling | no | whatever is left is closed and counted in [`CountersSnapshot::closed_at_deadline`] |
///
/// An idle connection is closed only once no byte has moved on it for the
/// grace, never while a request is being read or answered, so a client
/// sending its next request at that moment is answered (with
/// `Connection: close`) rather than reset.
///
/// When accepting stops, a socket this process bound first refuses new
/// handshakes (a socket filter drops SYNs on Linux), then the connections
/// already queued in the kernel are accepted and served, so none is reset
/// with the socket. When the shutdown's reason is
/// [`ShutdownReason::Upgrade`], the socket and its queue belong to the new
/// process: accepting stops at once (no drain delay), with no filter and no
/// sweep, and the open connections drain as above.
///
/// An upgraded connection (a WebSocket) belongs to its handler once
/// upgraded: it holds the drain open until it closes, and is counted as cut
/// if it outlives the connection drain. End it from the handler when the
/// shutdown token's phase reaches [`Closing`](Phase::Closing).
///
/// # Examples
///
/// ```no_run
/// use seaworthy_listener::{Listener, Server};
/// use seaworthy_shutdown::Shutdown;
///
/// # async fn run(router: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
/// let shutdown = Shutdown::builder().drain_delay(std::time::Duration::from_secs(5)).build()?;
/// let listener = Listener::bind("127.0.0.1:8000".parse()?)?;
/// shutdown.spawn("http", Server::new().serve(listener, router, shutdown.token()));
/// std::process::exit(shutdown.wait().await.exit_code());
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a server does nothing until `serve` is called"]
pub struct Server {
    pub(crate) config: Config,
    counters: Counters,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) per_ip_exempt: Option<per_ip::Exempt>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_size: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) http2_keep_alive_interval: Option<Duration>,
    pub(crate) http2_keep_alive_timeout: Duration,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) jitter: f64,
    pub(crate) idle_grace: Duration,
    pub(crate) linger: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Tls>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            config: Config {
                max_connections: 10_000,
                max_connections_per_ip: None,
                per_ip_exempt: None,
                header_read_timeout: Duration::from_secs(10),
                max_header_size: DEFAULT_MAX_HEADER_SIZE,
                write_timeout: Duration::from_secs(30),
                keep_alive_timeout: Duration::from_secs(75),
                http2_keep_alive_interval: Some(Duration::from_secs(20)),
                http2_keep_alive_timeout: Duration::from_secs(20),
                max_requests: None,
                max_age: None,
                jitter: 0.1,
                idle_grace: Duration::from_millis(250),
                linger: Duration::from_secs(2),
                #[cfg(feature = "tls")]
                tls: None,
            },
            counters: Counters::default(),
        }
    }
}

impl Server {
    /// A server with the defaults in the table above.
    pub fn new() -> Self {
        Server::default()
    }

    /// The most connections open at once; past it, accept waits for one to
    /// close. Default 10 000. Clamped to at least 1 and to tokio's most
    /// semaphore permits (`usize::MAX >> 3`): a larger number is no limit
    /// in practice, and would make the serve loop panic.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// At most `max` connections open at once from one client address
    /// (IPv6 by /64), nginx's `limit_conn`: past it, a new connection from
    /// that client is closed as soon as it is accepted, and a warning is
    /// logged (at most every 10 s). Default: no limit.
    ///
    /// The limit in force is also at most half of
    /// [`max_connections`](Self::max_connections) and half of the process's
    /// descriptor limit (`RLIMIT_NOFILE`), so that one client can never take
    /// the whole pool, or every descriptor, from the others: a flood of idle
    /// sockets from one address leaves room for the health probes. Exempt
    /// the proxies that bring many clients over their connections with
    /// [`per_ip_exempt`](Self::per_ip_exempt). Unix-socket peers are not
    /// counted.
    pub fn max_connections_per_ip(mut self, max: usize) -> Self {
        self.config.max_connections_per_ip = Some(max.max(1));
        self
    }

    /// Peers the [per-client limit](Self::max_connections_per_ip) does not
    /// apply to: the trusted proxies in front, say.
    pub fn per_ip_exempt(
        mut self,
        exempt: impl Fn(std::net::IpAddr) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config.per_ip_exempt = Some(per_ip::Exempt(Arc::new(exempt)));
        self
    }

    /// How long a client may take to send a complete request head, counted
    /// from its first byte. A client that trickles header bytes (slowloris)
    /// is cut at it. A new connection that has sent nothing at all is
    /// closed after it too (not after the keep-alive timeout): an idle
    /// socket costs the client nothing, and a flood of them would hold the
    /// pool for 75 s each. Default 10 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout;
        self
    }

    /// The largest request head (request line and headers) read, in bytes:
    /// a larger one is answered `431 Request Header Fields Too Large` (HTTP/1)
    /// or refused (HTTP/2's header list). This bounds what a client sending
    /// a head slowly can make the server hold: without it hyper buffers
    /// about 400 KiB per connection. Default 32 KiB, at least 8 KiB.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.config.max_header_size = bytes.max(MIN_HEADER_SIZE);
        self
    }

    /// How long a write may wait for the peer to read (nginx's
    /// `send_timeout`, between two successful writes, not for the whole
    /// response): a client that sends requests and never reads the
    /// responses is cut after it, and what the responses held is freed.
    /// Default 30 s.
    ///
    /// This covers a peer that stops reading the socket, over HTTP/1 and
    /// HTTP/2. An HTTP/2 peer that keeps reading the socket but never opens
    /// its flow-control windows makes no write wait: its streams are
    /// bounded by HTTP/2's concurrent-stream limit, and the connection by
    /// its PINGs and the per-client connection limit.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// How long an HTTP/1 connection may sit idle between requests. Keep it
    /// above the idle timeout of the load balancer in front (60 s for most),
    /// or the balancer may send a request on a connection being closed.
    /// Default 75 s.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.config.keep_alive_timeout = timeout;
        self
    }

    /// HTTP/2 keep-alive: a PING every `interval` (`None`: never), and the
    /// connection closed when one is not answered within `timeout`.
    pub fn http2_keep_alive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.config.http2_keep_alive_interval = interval;
        self.config.http2_keep_alive_timeout = timeout;
        self
    }

    /// Retires a connection after this many requests (lowered by up to the
    /// [jitter](Self::jitter) per connection, so that connections opened
    /// together do not all close together): the last response carries
    /// `Connection: close`, or HTTP/2 gets GOAWAY. Clients reconnect, and
    /// load spreads over instances added since. Default: no limit.
    pub fn max_requests(mut self, max: u64) -> Self {
        self.config.max_requests = Some(max.max(1));
        self
    }

    /// Retires a connection after it has been open this long (shortened by
    /// up to the [jitter](Self::jitter)). Default: no limit.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.config.max_age = Some(age);
        self
    }

    /// The share (0 to 1) by which max requests and max age are lowered at
    /// random per connection. Default 0.1.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.config.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// While draining, how long a connection must have been idle (no byte
    /// in either direction, no request in flight) to be closed. Default
    /// 250 ms.
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.config.idle_grace = grace;
        self
    }

    /// After a connection is closed, how long its unread input is read and
    /// dropped (lingering close). Zero turns it off. Default 2 s. An idle
    /// connection closed while draining lingers at most 250 ms if it is
    /// HTTP/2 (so a stream opened just then is refused by the GOAWAY, not
    /// reset) and not at all if it is HTTP/1.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Terminates TLS on every connection with `tls` (see [`crate::tls`]):
    /// the handshake, within its timeout and limit, runs on the
    /// connection's own task, then HTTP/1.1 or HTTP/2 (by ALPN) is served
    /// over it. Requests' [`ConnectionInfo`](crate::ConnectionInfo) say
    /// TLS and carry what the handshake settled.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: crate::tls::Tls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// The counters of this server: open, accepted, closed at the deadline,
    /// and more. Take them before [`serve`](Self::serve).
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Serves `listener` with `service` until the shutdown behind `token`
    /// passes [`Closing`](Phase::Closing) and every connection has closed
    /// (or was cut when [`Cancelling`](Phase::Cancelling) began).
    ///
    /// Each request carries a [`ConnectionInfo`](crate::ConnectionInfo)
    /// extension; with the `axum` feature, also axum's
    /// `ConnectInfo<SocketAddr>` for TCP connections.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting and drops the listener;
    /// connections already accepted run on until they close or the shutdown
    /// cuts them.
    ///
    /// The service is cloned for each connection (as hyper-util's and
    /// axum's servers do), so it need not be `Sync`.
    pub async fn serve<S, B>(self, mut listener: Listener, service: S, token: ShutdownToken)
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let shared = Arc::new(Shared::new(self.config, self.counters, &token));
        let phases = tokio::spawn(follow_phases(token.clone(), shared.signals.clone()));
        let connections = TaskTracker::new();
        // The accept loop counts as a connection of the shutdown's drain
        // until the queue is swept: otherwise the drain could end in an
        // instant when every open connection had just closed, while
        // connections still waited in the queue (a clean-clone CI run cut
        // 16 that way).
        let accepting = token.drain_guard();
        let addr = listener.local_addr().ok();
        tracing::info!(addr = ?addr.as_ref().map(ToString::to_string), "serving");
        let mut serving = Serving {
            shared: &shared,
            service,
            connections: &connections,
            token: &token,
        };

        serving.accept_until_closing(&mut listener).await;
        let handed_over = token.reason() == Some(ShutdownReason::Upgrade);
        let (filtered, swept) = serving.sweep_queue(&listener, handed_over).await;
        shared.counters.set_accept_errors(listener.error_count());
        tracing::info!(
            addr = ?addr.as_ref().map(ToString::to_string),
            open = shared.counters.snapshot().open,
            swept,
            handed_over,
            "stopped accepting"
        );
        // Every queued connection now has a guard of its own.
        drop(accepting);
        connections.close();
        if filtered {
            serving.serve_late_handshakes(&listener).await;
        }
        drop(listener);
        connections.wait().await;
        phases.abort();
        let counters = shared.counters.snapshot();
        tracing::info!(
            accepted = counters.accepted,
            closed_at_deadline = counters.closed_at_deadline,
            "all connections closed"
        );
    }
}

/// One [`Server::serve`]'s parts, for its steps. The steps take `&mut
/// self`: the service is only `Send`, and a shared reference to it held
/// across an await would need it `Sync`.
struct Serving<'a, S> {
    shared: &'a Arc<Shared>,
    service: S,
    connections: &'a TaskTracker,
    token: &'a ShutdownToken,
}

impl<S> Serving<'_, S> {
    /// Accepts (within the connection limit) and spawns each connection's
    /// task until the shutdown reaches `Closing`.
    async fn accept_until_closing<B: ServedBody>(&mut self, listener: &mut Listener)
    where
        S: HttpService<B>,
    {
        let shared = self.shared;
        let limit = Arc::new(Semaphore::new(shared.config.max_connections));
        loop {
            let permit = match Arc::clone(&limit).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    shared.counters.limit_reached();
                    tokio::select! {
                        permit = Arc::clone(&limit).acquire_owned() => {
                            permit.expect("the semaphore is never closed")
                        }
                        () = shared.signals.closing.cancelled() => return,
                    }
                }
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = shared.signals.closing.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            shared.counters.accepted();
            shared.counters.set_accept_errors(listener.error_count());
            let Some(place) = shared.admit(&peer) else {
                drop(stream);
                continue;
            };
            self.connections.spawn(conn::serve(
                Arc::clone(shared),
                self.service.clone(),
                stream,
                peer,
                Some(permit),
                place,
                self.token.drain_guard(),
            ));
        }
    }

    /// Connections that completed the handshake before we stopped are
    /// served (with `Connection: close`), not reset with the socket. With
    /// new handshakes refused, the queue can be emptied for good: sweep
    /// until it has stayed empty a little while (handshakes already under
    /// way complete within a round trip). After an upgrade, the socket and
    /// its queue belong to the new process: no filter, no sweep. Returns
    /// whether new handshakes are refused, and how many were swept.
    async fn sweep_queue<B: ServedBody>(
        &mut self,
        listener: &Listener,
        handed_over: bool,
    ) -> (bool, usize)
    where
        S: HttpService<B>,
    {
        let filtered = !handed_over && listener.refuse_new_handshakes();
        let mut swept = 0;
        let mut quiet = 0;
        for _ in 0..if handed_over { 0 } else { SWEEP_ROUNDS } {
            let found = self.sweep(listener);
            swept += found;
            quiet = if found == 0 { quiet + 1 } else { 0 };
            if !filtered || quiet >= 2 {
                break;
            }
            tokio::time::sleep(SWEEP_INTERVAL).await;
        }
        (filtered, swept)
    }

    /// With new handshakes refused, keeps the socket open while the
    /// connections drain and keeps sweeping: a handshake whose last ACK the
    /// kernel processed late (softirqs starved on a busy machine) is served
    /// instead of reset when the socket closes.
    async fn serve_late_handshakes<B: ServedBody>(&mut self, listener: &Listener)
    where
        S: HttpService<B>,
    {
        let connections = self.connections;
        let mut drained = std::pin::pin!(connections.wait());
        loop {
            tokio::select! {
                () = &mut drained => return,
                () = tokio::time::sleep(SWEEP_INTERVAL) => {
                    let late = self.sweep(listener);
                    if late > 0 {
                        tracing::debug!(late, "late handshakes served after the sweep");
                    }
                }
            }
        }
    }

    /// Accepts and serves every connection already in the kernel's queue
    /// (with a direct `accept(2)`); returns how many.
    fn sweep<B: ServedBody>(&mut self, listener: &Listener) -> usize
    where
        S: HttpService<B>,
    {
        let mut found = 0;
        while let Some((stream, peer)) = listener.accept_nonblocking() {
            found += 1;
            self.shared.counters.accepted();
            let Some(place) = self.shared.admit(&peer) else {
                continue;
            };
            self.connections.spawn(conn::serve(
                Arc::clone(self.shared),
                self.service.clone(),
                stream,
                peer,
                None,
                place,
                self.token.drain_guard(),
            ));
        }
        found
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("counters", &self.counters.snapshot())
            .finish()
    }
}

impl Shared {
    /// A place for a connection from `peer` under the per-client limit:
    /// `None` when the client is at its limit (counted; the caller closes
    /// the connection).
    fn admit(&self, peer: &crate::Addr) -> Option<Option<per_ip::Place>> {
        let Some(table) = &self.per_ip else {
            return Some(None);
        };
        match table.admit(peer) {
            Ok(place) => Some(place),
            Err(()) => {
                self.counters.refused_per_ip();
                self.counters.closed();
                None
            }
        }
    }
}

/// What serving needs of a service: [`Server::serve`]'s bounds on it,
/// written once for the private functions that pass it on.
pub(crate) trait HttpService<B>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + 'static
{
}

/// What serving needs of a response body: [`Server::serve`]'s bounds on
/// it, written once.
pub(crate) trait ServedBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ServedBody for B where B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{}

/// The shutdown phases as three tokens, fired in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Signals {
    /// Draining: responses carry `Connection: close`, HTTP/2 gets GOAWAY.
    pub(crate) draining: CancellationToken,
    /// Closing: accepting stops, idle connections close after the grace.
    pub(crate) closing: CancellationToken,
    /// Cancelling: whatever is left is closed now.
    pub(crate) cut: CancellationToken,
}

async fn follow_phases(token: ShutdownToken, signals: Signals) {
    token.reached(Phase::Draining).await;
    tracing::debug!("draining: closing connections after their current request");
    signals.draining.cancel();
    token.reached(Phase::Closing).await;
    signals.closing.cancel();
    token.reached(Phase::Cancelling).await;
    signals.cut.cancel();
}

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) builder: auto::Builder<TokioExecutor>,
    pub(crate) per_ip: Option<Arc<per_ip::PerIp>>,
    pub(crate) signals: Signals,
    pub(crate) token: ShutdownToken,
}

impl Shared {
    fn new(config: Config, counters: Counters, token: &ShutdownToken) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // Our own timer covers the head only, not the idle time before it.
            .header_read_timeout(None)
            // The read buffer's cap: a head that does not fit is a 431.
            .max_buf_size(config.max_header_size)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX))
            .keep_alive_interval(config.http2_keep_alive_interval)
            .keep_alive_timeout(config.http2_keep_alive_timeout);
        let per_ip = config.max_connections_per_ip.map(|max| {
            let pool = (config.max_connections / 2).max(1);
            let descriptors = per_ip::descriptor_limit().map_or(usize::MAX, |limit| {
                usize::try_from(limit / 2).unwrap_or(usize::MAX)
            });
            let cap = max.min(pool).min(descriptors).max(1);
            if cap < max {
                tracing::info!(
                    configured = max,
                    cap,
                    "per-client connection limit lowered to half of the pool or of the \
                     descriptor limit"
                );
            }
            Arc::new(per_ip::PerIp::new(cap, config.per_ip_exempt.clone()))
        });
        let signals = Signals::default();
        // A server started after the shutdown began drains from the start.
        if token.is_shutting_down() {
            signals.draining.cancel();
        }
        Shared {
            config,
            counters,
            builder,
            per_ip,
            signals,
            token: token.clone(),
        }
    }
}
