use crate::Addr;

/// The facts of the connection a request arrived on, added to every
/// request's extensions by [`Server`](crate::Server).
///
/// Later layers read it: the client-IP layer starts from the peer address,
/// security headers send HSTS only over TLS.
///
/// # Examples
///
/// ```
/// use http::Request;
/// use seaworthy_listener::ConnectionInfo;
///
/// fn peer(request: &Request<()>) -> Option<std::net::SocketAddr> {
///     request.extensions().get::<ConnectionInfo>()?.peer_addr().as_tcp()
/// }
/// # assert_eq!(peer(&Request::new(())), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub(crate) peer: Addr,
    pub(crate) local: Option<Addr>,
    pub(crate) tls: bool,
}

impl ConnectionInfo {
    /// The facts of a connection: for tests and for servers other than
    /// [`Server`](crate::Server) that want seaworthy's layers to see them.
    pub fn new(peer: Addr, local: Option<Addr>, tls: bool) -> Self {
        ConnectionInfo { peer, local, tls }
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
