use std::fmt;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::Socket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio::time::Instant;

use crate::{Addr, Bind, Error};

/// Where a [`Listener`]'s socket came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Bound by this process.
    Bound,
    /// Passed by systemd socket activation.
    Systemd {
        /// The socket's `FileDescriptorName=` (`"unknown"` when unset).
        name: String,
        /// Its position among the passed sockets.
        index: usize,
    },
    /// Handed over by the process this one replaces, in an upgrade
    /// ([`Upgrader`](crate::upgrade::Upgrader)).
    Handoff {
        /// The name the old process gave it.
        name: String,
    },
}

/// A listening socket as the standard library has it, from
/// [`Listener::into_std`]; non-blocking.
#[derive(Debug)]
#[non_exhaustive]
pub enum StdListener {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

/// A listening socket, whatever its source: bound here
/// ([`bind`](Self::bind), [`builder`](Self::builder)) or inherited
/// ([`from_systemd`](Self::from_systemd),
/// [`inherit_or_bind`](Self::inherit_or_bind)).
///
/// [`accept`](Self::accept) never fails: per-connection errors are retried,
/// and resource exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) backs
/// off with a logged, bounded delay. Serve it with
/// [`Server`](crate::Server).
pub struct Listener {
    inner: Inner,
    source: Source,
    /// Whether this process is the socket's only user once it closes it
    /// (bound here, or handed down from a process that bound it): only
    /// then may a filter go on it.
    exclusive: bool,
    /// Until it fires, accepting waits: an upgraded process takes no
    /// connection before the old one has handed over.
    #[cfg(unix)]
    gate: Option<tokio_util::sync::CancellationToken>,
    backoff: Backoff,
    /// An open descriptor kept in reserve: released when descriptors run
    /// out, so that one queued connection can be accepted and closed.
    #[cfg(unix)]
    reserve: Option<std::fs::File>,
}

enum Inner {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Options for a TCP listener on `addr`; see [`Bind`].
    pub fn builder(addr: SocketAddr) -> Bind {
        Bind::tcp(addr)
    }

    /// Options for a Unix domain socket listener at `path`; see [`Bind`].
    #[cfg(unix)]
    pub fn builder_unix(path: impl Into<std::path::PathBuf>) -> Bind {
        Bind::unix(path)
    }

    /// Binds `addr` with the default options of [`Bind`].
    ///
    /// # Errors
    ///
    /// See [`Bind::bind`].
    pub fn bind(addr: SocketAddr) -> Result<Listener, Error> {
        Bind::tcp(addr).bind()
    }

    /// Takes the socket systemd passed under `name` (its
    /// `FileDescriptorName=`, or `"unknown"` when unset).
    ///
    /// # Errors
    ///
    /// [`Error::is_not_found`] when there is no such socket (or it was taken
    /// already), [`Error::is_environment`] when the variables are malformed,
    /// [`Error::is_inherit`] when the descriptor is not a listening stream
    /// socket.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[cfg(unix)]
    pub fn from_systemd(name: &str) -> Result<Listener, Error> {
        Self::inherit(crate::systemd::Selector::Name(name))
    }

    /// Takes the socket systemd passed at `index` (0 is descriptor 3).
    ///
    /// # Errors
    ///
    /// As [`from_systemd`](Self::from_systemd).
    #[cfg(unix)]
    pub fn from_systemd_index(index: usize) -> Result<Listener, Error> {
        Self::inherit(crate::systemd::Selector::Index(index))
    }

    /// The socket systemd passed under `name` when this process was socket
    /// activated, otherwise a new one bound with `bind`. The same binary
    /// runs under systemd and on a laptop.
    ///
    /// # Errors
    ///
    /// As [`from_systemd`](Self::from_systemd) when activated (a missing
    /// name is an error then, not a reason to bind), as [`Bind::bind`]
    /// otherwise.
    #[cfg(unix)]
    pub fn inherit_or_bind(name: &str, bind: Bind) -> Result<Listener, Error> {
        if crate::systemd::is_activated() {
            Self::from_systemd(name)
        } else {
            bind.bind()
        }
    }

    #[cfg(unix)]
    fn inherit(selector: crate::systemd::Selector<'_>) -> Result<Listener, Error> {
        let (fd, name, index) = crate::systemd::take(selector)?;
        let source = Source::Systemd { name, index };
        Self::from_inherited_fd(fd, source)
    }

    /// Validates an inherited descriptor (a listening stream socket) and
    /// prepares it for tokio: non-blocking, close-on-exec, and for TCP,
    /// `TCP_NODELAY`. The seam for every inherited source.
    #[cfg(unix)]
    pub(crate) fn from_inherited_fd(fd: OwnedFd, source: Source) -> Result<Listener, Error> {
        let socket = Socket::from(fd);
        let described = match &source {
            Source::Systemd { name, index } => format!("systemd socket {name:?} (index {index})"),
            Source::Handoff { name } => format!("socket {name:?} from the previous process"),
            Source::Bound => "socket".to_owned(),
        };
        let invalid = |why: &str, err: Option<io::Error>| {
            Error::inherit(format!("inherited {described} {why}"), err)
        };
        match socket.r#type() {
            Ok(ty) if ty == socket2::Type::STREAM => {}
            Ok(_) => return Err(invalid("is not a stream socket", None)),
            Err(err) => return Err(invalid("is not a socket", Some(err))),
        }
        // SO_ACCEPTCONN through nix: socket2 has it on Linux and FreeBSD
        // only, nix on every Unix.
        if !nix::sys::socket::getsockopt(&socket, nix::sys::socket::sockopt::AcceptConn)
            .map_err(|err| invalid("cannot be inspected", Some(err.into())))?
        {
            return Err(invalid("is not listening", None));
        }
        socket
            .set_nonblocking(true)
            .and_then(|()| socket.set_cloexec(true))
            .map_err(|err| invalid("cannot be made non-blocking", Some(err)))?;
        if !is_unix_domain(&socket) {
            // Production default, as for bound sockets; inherited by accepted ones.
            let _ = socket.set_tcp_nodelay(true);
        }
        let listener = Self::from_socket(socket, source)
            .map_err(|err| invalid("cannot be registered with tokio", Some(err)))?;
        tracing::info!(source = ?listener.source, addr = ?listener.local_addr().ok(), "adopted inherited socket");
        Ok(listener)
    }

    /// Wraps a listening, non-blocking socket.
    pub(crate) fn from_socket(socket: Socket, source: Source) -> io::Result<Listener> {
        #[cfg(unix)]
        let inner = if is_unix_domain(&socket) {
            let std: std::os::unix::net::UnixListener = OwnedFd::from(socket).into();
            Inner::Unix(tokio::net::UnixListener::from_std(std)?)
        } else {
            Inner::Tcp(tokio::net::TcpListener::from_std(socket.into())?)
        };
        #[cfg(not(unix))]
        let inner = Inner::Tcp(tokio::net::TcpListener::from_std(socket.into())?);
        Ok(Listener {
            inner,
            exclusive: source == Source::Bound,
            source,
            #[cfg(unix)]
            gate: None,
            backoff: Backoff::default(),
            #[cfg(unix)]
            reserve: std::fs::File::open("/dev/null").ok(),
        })
    }

    /// The address the socket listens on.
    ///
    /// # Errors
    ///
    /// When the operating system cannot say (rare).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match &self.inner {
            Inner::Tcp(listener) => listener.local_addr().map(Addr::Tcp),
            #[cfg(unix)]
            Inner::Unix(listener) => listener.local_addr().map(unix_addr),
        }
    }

    /// Where the socket came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The socket as the standard library's listener, for a server other
    /// than seaworthy's (actix-web's `HttpServer::listen`, say). The
    /// descriptor is moved, not duplicated: when that server stops and
    /// closes it, new connections are refused at once, instead of waiting
    /// in a queue nobody reads. In an upgrade, waits first until this
    /// process may accept (after [`Upgrader::ready`](crate::upgrade::Upgrader::ready)),
    /// so that the other server too takes no connection before the old
    /// process has handed over.
    ///
    /// What seaworthy's [`Server`](crate::Server) does around the socket
    /// (back-off on `EMFILE`, the SYN filter and queue sweep of the drain)
    /// is then the other server's to do, or not.
    ///
    /// # Errors
    ///
    /// When the socket cannot be made a standard one (rare).
    pub async fn into_std(self) -> io::Result<StdListener> {
        #[cfg(unix)]
        if let Some(gate) = &self.gate {
            gate.cancelled().await;
        }
        match self.inner {
            Inner::Tcp(listener) => listener.into_std().map(StdListener::Tcp),
            #[cfg(unix)]
            Inner::Unix(listener) => listener.into_std().map(StdListener::Unix),
        }
    }

    /// Accepts the next connection, retrying per-connection errors and
    /// backing off on resource exhaustion; never fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is never lost by dropping the future.
    pub async fn accept(&mut self) -> (Stream, Addr) {
        #[cfg(unix)]
        if let Some(gate) = &self.gate {
            gate.cancelled().await;
            self.gate = None;
        }
        loop {
            match self.accept_once().await {
                Ok(accepted) => {
                    self.backoff.recovered();
                    return accepted;
                }
                Err(err) => self.on_error(err).await,
            }
        }
    }

    /// Accepts a connection already waiting in the kernel's queue, with a
    /// direct non-blocking `accept(2)` (not tokio's readiness, which may
    /// not have seen it yet): `None` when the queue is empty.
    pub(crate) fn accept_nonblocking(&self) -> Option<(Stream, Addr)> {
        if self.is_gated() {
            return None;
        }
        match &self.inner {
            Inner::Tcp(listener) => {
                let (socket, peer) = socket2::SockRef::from(listener).accept().ok()?;
                socket.set_nonblocking(true).ok()?;
                let peer = peer.as_socket()?;
                let stream = TcpStream::from_std(socket.into()).ok()?;
                Some((Stream::Tcp(stream), Addr::Tcp(peer)))
            }
            #[cfg(unix)]
            Inner::Unix(listener) => {
                let (socket, peer) = socket2::SockRef::from(listener).accept().ok()?;
                socket.set_nonblocking(true).ok()?;
                let std: std::os::unix::net::UnixStream = OwnedFd::from(socket).into();
                let stream = UnixStream::from_std(std).ok()?;
                Some((
                    Stream::Unix(stream),
                    Addr::Unix(peer.as_pathname().map(Into::into)),
                ))
            }
        }
    }

    /// Makes the kernel stop completing new handshakes on this socket, so
    /// that the accept queue can be emptied before the socket closes: a
    /// socket filter drops incoming SYNs (clients retry, then find the port
    /// closed), while handshakes already under way still complete.
    ///
    /// Only for sockets this process bound: a filter on a socket shared
    /// with systemd would outlive this process. Linux TCP only; returns
    /// whether the filter is in place.
    pub(crate) fn refuse_new_handshakes(&self) -> bool {
        if !self.exclusive || self.is_gated() {
            return false;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Inner::Tcp(listener) = &self.inner {
            use socket2::SockFilter;
            // Classic BPF over the TCP header: drop a packet with SYN set.
            const DROP_SYN: [SockFilter; 4] = [
                SockFilter::new(0x30, 0, 0, 13),       // ldb [13]: the flags byte
                SockFilter::new(0x45, 0, 1, 0x02),     // jset #SYN: drop, else accept
                SockFilter::new(0x06, 0, 0, 0),        // ret #0: drop
                SockFilter::new(0x06, 0, 0, u32::MAX), // ret #-1: accept whole
            ];
            return match socket2::SockRef::from(listener).attach_filter(&DROP_SYN) {
                Ok(()) => true,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot filter new handshakes");
                    false
                }
            };
        }
        false
    }

    /// Whether accepting still waits for an upgrade's hand-over.
    fn is_gated(&self) -> bool {
        #[cfg(unix)]
        if let Some(gate) = &self.gate {
            return !gate.is_cancelled();
        }
        false
    }

    /// Makes accepting wait for `gate`, and says whether the socket is this
    /// process's alone once it closes it (for an upgrade's hand-over).
    #[cfg(unix)]
    pub(crate) fn set_handoff(
        &mut self,
        gate: tokio_util::sync::CancellationToken,
        exclusive: bool,
    ) {
        self.gate = Some(gate);
        self.exclusive = exclusive;
    }

    /// Whether a filter may go on the socket (see `refuse_new_handshakes`).
    #[cfg(unix)]
    pub(crate) fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    async fn accept_once(&mut self) -> io::Result<(Stream, Addr)> {
        std::future::poll_fn(|cx| self.poll_accept_once(cx)).await
    }

    fn poll_accept_once(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(Stream, Addr)>> {
        match &self.inner {
            Inner::Tcp(listener) => listener
                .poll_accept(cx)
                .map_ok(|(stream, peer)| (Stream::Tcp(stream), Addr::Tcp(peer))),
            #[cfg(unix)]
            Inner::Unix(listener) => listener
                .poll_accept(cx)
                .map_ok(|(stream, peer)| (Stream::Unix(stream), unix_addr(peer))),
        }
    }

    async fn on_error(&mut self, err: io::Error) {
        match classify(&err) {
            ErrorClass::Connection => {
                tracing::debug!(error = %err, "accept: connection error, retrying");
            }
            ErrorClass::Resources => {
                let delay = self.backoff.next(&err, "out of resources");
                #[cfg(unix)]
                self.shed_one();
                tokio::time::sleep(delay).await;
            }
            ErrorClass::Other => {
                let delay = self.backoff.next(&err, "unexpected error");
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Frees the reserve descriptor, accepts one waiting connection and
    /// closes it at once (the client learns now, instead of waiting in the
    /// queue), then takes the reserve again.
    #[cfg(unix)]
    fn shed_one(&mut self) {
        if self.reserve.take().is_some() {
            if self.accept_nonblocking().is_some() {
                self.backoff.shed += 1;
            }
            self.reserve = std::fs::File::open("/dev/null").ok();
        }
    }

    /// How many accept errors the current burst has had.
    pub(crate) fn error_count(&self) -> u64 {
        self.backoff.total_errors
    }
}

#[cfg(unix)]
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::Tcp(listener) => listener.as_fd(),
            Inner::Unix(listener) => listener.as_fd(),
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.local_addr().ok())
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorClass {
    /// The error belongs to one connection, which is gone: retry at once.
    Connection,
    /// The process or system is out of something: back off.
    Resources,
    /// Anything else: back off, and say so.
    Other,
}

fn classify(err: &io::Error) -> ErrorClass {
    use io::ErrorKind::*;
    #[cfg(unix)]
    if let Some(code) = err.raw_os_error() {
        match code {
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                return ErrorClass::Resources;
            }
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::EINTR
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH => return ErrorClass::Connection,
            // Linux's "machine is not on the network"; the BSDs and macOS
            // have no such code.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            libc::ENONET => return ErrorClass::Connection,
            _ => {}
        }
    }
    match err.kind() {
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock => {
            ErrorClass::Connection
        }
        OutOfMemory => ErrorClass::Resources,
        _ => ErrorClass::Other,
    }
}

const BACKOFF_START: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Exponential back-off for accept errors, logged once per burst.
#[derive(Debug, Default)]
struct Backoff {
    burst: Option<Burst>,
    shed: u64,
    total_errors: u64,
}

#[derive(Debug)]
struct Burst {
    started: Instant,
    errors: u64,
    delay: Duration,
}

impl Backoff {
    fn next(&mut self, err: &io::Error, what: &str) -> Duration {
        self.total_errors += 1;
        let burst = self.burst.get_or_insert_with(|| {
            tracing::warn!(
                error = %err,
                "accept failed ({what}); backing off, retrying from {BACKOFF_START:?} up to {BACKOFF_MAX:?}"
            );
            Burst {
                started: Instant::now(),
                errors: 0,
                delay: BACKOFF_START,
            }
        });
        burst.errors += 1;
        let delay = burst.delay;
        burst.delay = (burst.delay * 2).min(BACKOFF_MAX);
        delay
    }

    fn recovered(&mut self) {
        if let Some(burst) = self.burst.take() {
            tracing::warn!(
                errors = burst.errors,
                shed = self.shed,
                lasted = ?burst.started.elapsed(),
                "accept recovered"
            );
            self.shed = 0;
        }
    }
}

/// An accepted connection: TCP or Unix.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// The local end's address.
    ///
    /// # Errors
    ///
    /// When the operating system cannot say (rare).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Stream::Tcp(stream) => stream.local_addr().map(Addr::Tcp),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.local_addr().map(unix_addr),
        }
    }

    /// Shuts the write side down at once (a FIN), without waiting.
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(stream) => {
                socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write)
            }
            #[cfg(unix)]
            Stream::Unix(stream) => {
                socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write)
            }
        };
    }
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Tcp($stream) => $call,
            #[cfg(unix)]
            Stream::Unix($stream) => $call,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, stream => Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, stream => Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, stream => Pin::new(stream).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(stream) => stream.is_write_vectored(),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, stream => Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, stream => Pin::new(stream).poll_shutdown(cx))
    }
}

/// Whether `socket` is a Unix domain socket. By its address's family:
/// `SO_DOMAIN` (socket2's `domain()`) exists on Linux and a few others only.
#[cfg(unix)]
fn is_unix_domain(socket: &Socket) -> bool {
    socket
        .local_addr()
        .is_ok_and(|addr| addr.domain() == socket2::Domain::UNIX)
}

/// tokio's Unix socket address as an [`Addr`].
#[cfg(unix)]
fn unix_addr(addr: tokio::net::unix::SocketAddr) -> Addr {
    Addr::from(&std::os::unix::net::SocketAddr::from(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_classified() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc::EMFILE)), ErrorClass::Resources);
        assert_eq!(classify(&os(libc::ENFILE)), ErrorClass::Resources);
        assert_eq!(classify(&os(libc::ENOBUFS)), ErrorClass::Resources);
        assert_eq!(classify(&os(libc::ENOMEM)), ErrorClass::Resources);
        assert_eq!(classify(&os(libc::ECONNABORTED)), ErrorClass::Connection);
        assert_eq!(classify(&os(libc::EINTR)), ErrorClass::Connection);
        assert_eq!(classify(&os(libc::EINVAL)), ErrorClass::Other);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_on_recovery() {
        let mut backoff = Backoff::default();
        let err = io::Error::from_raw_os_error(libc::EMFILE);
        let delays: Vec<_> = (0..10).map(|_| backoff.next(&err, "test")).collect();
        assert_eq!(delays[0], BACKOFF_START);
        assert_eq!(delays[1], BACKOFF_START * 2);
        assert!(delays.windows(2).all(|pair| pair[1] >= pair[0]));
        assert_eq!(*delays.last().unwrap(), BACKOFF_MAX);
        backoff.recovered();
        assert_eq!(backoff.next(&err, "test"), BACKOFF_START);
        assert_eq!(backoff.total_errors, 11);
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod filter_tests {
    use super::*;

    #[tokio::test]
    async fn the_syn_filter_stops_new_handshakes_but_keeps_the_queue() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap().as_tcp().unwrap();
        // Queued before the filter: still there to accept.
        let _queued = std::net::TcpStream::connect(addr).unwrap();
        assert!(listener.refuse_new_handshakes());
        // After it: the SYN is dropped, so the connect neither succeeds nor
        // is refused; it times out.
        let err =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(listener.accept_nonblocking().is_some());
        assert!(listener.accept_nonblocking().is_none());
    }
}
