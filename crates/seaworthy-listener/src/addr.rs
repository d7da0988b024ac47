use std::fmt;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;

/// The address of either end of a connection, or of a listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket, by path (`None` for an unnamed socket, such as
    /// the client end of most connections).
    #[cfg(unix)]
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(addr) => Some(*addr),
            #[cfg(unix)]
            Addr::Unix(_) => None,
        }
    }

    #[cfg(unix)]
    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Self {
        Addr::Unix(addr.as_pathname().map(Into::into))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            Addr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            #[cfg(unix)]
            Addr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        Addr::Tcp(addr)
    }
}
