use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use crate::{Error, Listener, Source};

/// The backlog when the kernel's `net.core.somaxconn` cannot be read.
const FALLBACK_BACKLOG: u32 = 1024;

/// Options for binding a new listening socket; ends in [`bind`](Self::bind).
///
/// The defaults are production's, not the operating system's:
///
/// | option | default | why |
/// |---|---|---|
/// | `SO_REUSEADDR` | on | rebinding right after a restart does not fail on `TIME_WAIT` |
/// | `SO_REUSEPORT` | off | opt in: two processes on one port split new connections |
/// | backlog | the kernel's `net.core.somaxconn` (fallback 1024) | not 128: bursts wait in the queue instead of being refused |
/// | `TCP_NODELAY` | on | no 40 ms Nagle delay on small responses; accepted sockets inherit it |
/// | TCP keep-alive | after 60 s idle, every 10 s | dead peers behind NAT are found; accepted sockets inherit it |
/// | IPv6 | IPv6 only | dual stack is an explicit [`dual_stack(true)`](Self::dual_stack) |
///
/// # Examples
///
/// ```
/// use seaworthy_listener::Listener;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seaworthy_listener::Error> {
/// let listener = Listener::builder("127.0.0.1:0".parse().unwrap())
///     .reuse_port(true)
///     .backlog(4096)
///     .bind()?;
/// assert!(listener.local_addr().unwrap().as_tcp().unwrap().port() > 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "nothing is bound until `bind` is called"]
pub struct Bind {
    target: Target,
    reuse_address: bool,
    #[cfg(unix)]
    reuse_port: bool,
    backlog: Option<u32>,
    nodelay: bool,
    keepalive: Option<Duration>,
    dual_stack: bool,
}

#[derive(Clone, Debug)]
enum Target {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

impl Bind {
    /// Options for a TCP listener on `addr`.
    pub fn tcp(addr: SocketAddr) -> Self {
        Bind::new(Target::Tcp(addr))
    }

    /// Options for a Unix domain socket listener at `path`. A stale socket
    /// file left by a process that is gone is removed first; one that a live
    /// process listens on is an "address in use" error.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Bind::new(Target::Unix(path.into()))
    }

    fn new(target: Target) -> Self {
        Bind {
            target,
            reuse_address: true,
            #[cfg(unix)]
            reuse_port: false,
            backlog: None,
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            dual_stack: false,
        }
    }

    /// `SO_REUSEADDR` (default on).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT` (default off): lets several sockets bind the same
    /// address, the kernel spreading new connections among them.
    ///
    /// It is no zero-downtime restart on its own: closing one of the sockets
    /// resets the connections waiting in its own accept queue.
    #[cfg(unix)]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// The accept backlog. Default: the kernel's `net.core.somaxconn` (the
    /// most the kernel allows anyway), or 1024 where it cannot be read.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// `TCP_NODELAY` on the listener, inherited by accepted sockets
    /// (default on).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// TCP keep-alive: probes start after `idle` without traffic (default
    /// 60 s), then every 10 s; `None` turns it off.
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// For an IPv6 address: whether IPv4 clients are accepted too, as
    /// IPv4-mapped addresses (default off: IPv6 only, whatever the system's
    /// `net.ipv6.bindv6only` says).
    pub fn dual_stack(mut self, on: bool) -> Self {
        self.dual_stack = on;
        self
    }

    /// Creates, configures, binds and listens.
    ///
    /// # Errors
    ///
    /// [`Error::is_bind`]: the address is in use, not available, or not
    /// permitted.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn bind(self) -> Result<Listener, Error> {
        let backlog = self.backlog.unwrap_or_else(somaxconn);
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        match &self.target {
            Target::Tcp(addr) => {
                let addr = *addr;
                let fail = |err| Error::bind(format!("cannot bind {addr}"), err);
                let socket = Socket::new(
                    Domain::for_address(addr),
                    stream_type(),
                    Some(Protocol::TCP),
                )
                .map_err(fail)?;
                socket.set_reuse_address(self.reuse_address).map_err(fail)?;
                #[cfg(unix)]
                if self.reuse_port {
                    socket.set_reuse_port(true).map_err(fail)?;
                }
                if addr.is_ipv6() {
                    socket.set_only_v6(!self.dual_stack).map_err(fail)?;
                }
                socket.set_tcp_nodelay(self.nodelay).map_err(fail)?;
                if let Some(idle) = self.keepalive {
                    socket.set_tcp_keepalive(&keepalive(idle)).map_err(fail)?;
                }
                socket.bind(&addr.into()).map_err(fail)?;
                socket.listen(backlog).map_err(fail)?;
                let listener = Listener::from_socket(socket, Source::Bound).map_err(fail)?;
                tracing::debug!(%addr, backlog, "bound");
                Ok(listener)
            }
            #[cfg(unix)]
            Target::Unix(path) => {
                let fail = |err| Error::bind(format!("cannot bind unix:{}", path.display()), err);
                remove_stale_socket(path).map_err(fail)?;
                let socket = Socket::new(Domain::UNIX, stream_type(), None).map_err(fail)?;
                let addr = socket2::SockAddr::unix(path).map_err(fail)?;
                socket.bind(&addr).map_err(fail)?;
                socket.listen(backlog).map_err(fail)?;
                Listener::from_socket(socket, Source::Bound).map_err(fail)
            }
        }
    }
}

fn stream_type() -> Type {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let ty = Type::STREAM.nonblocking().cloexec();
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let ty = Type::STREAM;
    ty
}

pub(crate) fn keepalive(idle: Duration) -> TcpKeepalive {
    let keepalive = TcpKeepalive::new().with_time(idle);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd"
    ))]
    let keepalive = keepalive.with_interval(Duration::from_secs(10));
    keepalive
}

/// The kernel's limit on accept backlogs, or the fallback.
pub(crate) fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|&value: &u32| value > 0)
        .unwrap_or(FALLBACK_BACKLOG)
}

/// Removes a socket file that no process listens on any more.
#[cfg(unix)]
fn remove_stale_socket(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process listens on this socket",
        )),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::debug!(path = %path.display(), "removing stale socket file");
            std::fs::remove_file(path)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn somaxconn_reads_the_kernel_value() {
        let value = somaxconn();
        assert!(value > 128, "somaxconn {value}");
        if let Ok(text) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") {
            assert_eq!(value, text.trim().parse::<u32>().unwrap());
        }
    }
}
