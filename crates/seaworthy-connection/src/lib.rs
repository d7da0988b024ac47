//! The facts of a connection, shared by seaworthy's listener (which records
//! them) and its layers (which read them), and by any server that wants
//! those layers to see its connections.
//!
//! Three types and no dependencies: [`Addr`], a TCP or Unix socket address,
//! [`ConnectionInfo`], the peer, the local address and whether the
//! connection is TLS, and [`TlsInfo`], what its handshake settled (SNI,
//! ALPN, the verified client certificate). seaworthy-listener's `Server` puts a
//! `ConnectionInfo` in every request's extensions; seaworthy-layers reads
//! it (and axum's `ConnectInfo`) to find the client. They live here, in a
//! leaf both depend on, the way `http` holds the types that hyper, tower
//! and axum share: a tower layer that reads the peer compiles no server.
//!
//! # Example
//!
//! A server of your own that wants seaworthy's layers to know the peer:
//!
//! ```
//! use http::Request;
//! use seaworthy_connection::{Addr, ConnectionInfo};
//!
//! let peer: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
//! let mut request = Request::new(());
//! request
//!     .extensions_mut()
//!     .insert(ConnectionInfo::new(Addr::Tcp(peer), None, false));
//! assert_eq!(
//!     request.extensions().get::<ConnectionInfo>().unwrap().peer_addr().as_tcp(),
//!     Some(peer)
//! );
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | `axum::extract::connect_info::Connected` for [`Addr`], so that `ConnectInfo<Addr>` works under `axum::serve` with a listener whose address is an [`Addr`] (seaworthy-listener's) |
//!
//! With default features this crate has no dependencies.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

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
    ///
    /// # Examples
    ///
    /// ```
    /// use seaworthy_connection::Addr;
    ///
    /// let addr = Addr::Tcp("127.0.0.1:8000".parse().unwrap());
    /// assert_eq!(addr.as_tcp().unwrap().port(), 8000);
    /// ```
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(addr) => Some(*addr),
            #[cfg(unix)]
            Addr::Unix(_) => None,
        }
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

#[cfg(unix)]
impl From<&std::os::unix::net::SocketAddr> for Addr {
    fn from(addr: &std::os::unix::net::SocketAddr) -> Self {
        Addr::Unix(addr.as_pathname().map(Into::into))
    }
}

/// The facts of the connection a request arrived on, in every request's
/// extensions when seaworthy-listener's `Server` serves it.
///
/// Later layers read it: the client-IP layer starts from the peer address,
/// security headers send HSTS only over TLS.
///
/// # Examples
///
/// ```
/// use http::Request;
/// use seaworthy_connection::ConnectionInfo;
///
/// fn peer(request: &Request<()>) -> Option<std::net::SocketAddr> {
///     request.extensions().get::<ConnectionInfo>()?.peer_addr().as_tcp()
/// }
/// # assert_eq!(peer(&Request::new(())), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    peer: Addr,
    local: Option<Addr>,
    tls: bool,
    tls_info: Option<std::sync::Arc<TlsInfo>>,
}

impl ConnectionInfo {
    /// The facts of a connection: for servers other than seaworthy's that
    /// want seaworthy's layers to see them, and for tests.
    pub fn new(peer: Addr, local: Option<Addr>, tls: bool) -> Self {
        ConnectionInfo {
            peer,
            local,
            tls,
            tls_info: None,
        }
    }

    /// These facts with what the TLS handshake settled (the connection is
    /// then TLS).
    ///
    /// # Examples
    ///
    /// ```
    /// use seaworthy_connection::{Addr, ConnectionInfo, TlsInfo};
    ///
    /// let peer = Addr::Tcp("192.0.2.7:40000".parse().unwrap());
    /// let info = ConnectionInfo::new(peer, None, false)
    ///     .with_tls(TlsInfo::new().with_client_subject("CN=billing"));
    /// assert!(info.is_tls());
    /// assert_eq!(info.tls().unwrap().client_subject(), Some("CN=billing"));
    /// ```
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = true;
        self.tls_info = Some(std::sync::Arc::new(tls));
        self
    }

    /// What the TLS handshake settled, when the connection is TLS and the
    /// server recorded it (seaworthy-listener's does).
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls_info.as_deref()
    }

    /// The client's end: the TCP peer address or the Unix socket peer.
    pub fn peer_addr(&self) -> &Addr {
        &self.peer
    }

    /// The server's end, when the operating system could say.
    pub fn local_addr(&self) -> Option<&Addr> {
        self.local.as_ref()
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// What a TLS handshake settled: the name the client asked for, the
/// protocols, and the client's certificate when one was verified (mutual
/// TLS).
///
/// Built by the server that terminated TLS, read by handlers through
/// [`ConnectionInfo::tls`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    server_name: Option<String>,
    alpn: Option<Vec<u8>>,
    version: Option<&'static str>,
    client_subject: Option<String>,
    client_certificate: Option<Vec<u8>>,
}

impl TlsInfo {
    /// Nothing known yet.
    pub fn new() -> Self {
        TlsInfo::default()
    }

    /// With the server name the client sent (SNI).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// With the application protocol agreed by ALPN (`h2`, `http/1.1`).
    pub fn with_alpn(mut self, protocol: impl Into<Vec<u8>>) -> Self {
        self.alpn = Some(protocol.into());
        self
    }

    /// With the protocol version (`TLSv1.3`).
    pub fn with_version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// With the verified client certificate's subject, as RFC 4514 text
    /// (`CN=billing,O=Example`).
    pub fn with_client_subject(mut self, subject: impl Into<String>) -> Self {
        self.client_subject = Some(subject.into());
        self
    }

    /// With the verified client certificate itself (DER).
    pub fn with_client_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.client_certificate = Some(der.into());
        self
    }

    /// The server name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The application protocol agreed by ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// The protocol version, such as `TLSv1.3`.
    pub fn version(&self) -> Option<&'static str> {
        self.version
    }

    /// The subject of the client certificate the server verified (mutual
    /// TLS), as RFC 4514 text. `None` when the client sent none.
    pub fn client_subject(&self) -> Option<&str> {
        self.client_subject.as_deref()
    }

    /// The client certificate the server verified, DER-encoded.
    pub fn client_certificate(&self) -> Option<&[u8]> {
        self.client_certificate.as_deref()
    }
}

#[cfg(feature = "axum")]
mod axum_impl {
    use axum::extract::connect_info::Connected;
    use axum::serve::{IncomingStream, Listener};

    use crate::Addr;

    /// A listener whose connections are addressed by [`Addr`], such as
    /// seaworthy-listener's: `ConnectInfo<Addr>` works under `axum::serve`
    /// with it. Only seaworthy's crates implement it.
    #[doc(hidden)]
    pub trait AddrListener: Listener<Addr = Addr> + private::Sealed {}

    #[doc(hidden)]
    pub mod private {
        /// Not for implementing outside seaworthy.
        pub trait Sealed {}
    }

    /// `ConnectInfo<Addr>` under `axum::serve` with a seaworthy listener.
    impl<L: AddrListener> Connected<IncomingStream<'_, L>> for Addr {
        fn connect_info(stream: IncomingStream<'_, L>) -> Self {
            stream.remote_addr().clone()
        }
    }
}

#[cfg(feature = "axum")]
#[doc(hidden)]
pub use axum_impl::{AddrListener, private};
