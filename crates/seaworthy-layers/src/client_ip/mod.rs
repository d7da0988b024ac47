//! The client's address: the peer, unless the peer is a trusted proxy, in
//! which case the forwarding headers are walked from the right.
//!
//! The decision is [`ClientIpResolver`], a plain value over `http` types
//! (`resolve(peer, &HeaderMap) -> ClientIp`) that any server can call;
//! [`ClientIpLayer`] is its tower skin, which finds the [`Peer`] in the
//! request's extensions and puts the [`ClientIp`] there.
//!
//! # Without a peer address
//!
//! A request whose extensions carry no peer address (plain `axum::serve`
//! without `into_make_service_with_connect_info`, or axum's `ConnectInfo`
//! with this crate's `axum` feature off) has no client the layer could
//! vouch for. It passes without a [`ClientIp`] (forwarding headers are
//! not believed, since nothing says who sent them), and the layer logs one
//! `error!` naming the fix; the rate limit then counts every such request
//! in one shared bucket, so the limit still holds.
//!
//! # Example
//!
//! ```
//! use http::HeaderMap;
//! use seaworthy_layers::client_ip::{ClientIpResolver, Peer, TrustedProxies};
//!
//! let resolver = ClientIpResolver::new(TrustedProxies::private());
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.7".parse().unwrap());
//! headers.insert("x-forwarded-proto", "https".parse().unwrap());
//! // The load balancer at 10.0.0.2 forwarded a client's request:
//! let client = resolver.resolve(Peer::tcp("10.0.0.2".parse().unwrap()), &headers);
//! assert_eq!(client.ip, "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
//! assert!(client.https && client.forwarded);
//! // The same headers from a client on the internet are not believed:
//! let direct = resolver.resolve(Peer::tcp("198.51.100.1".parse().unwrap()), &headers);
//! assert_eq!(direct.ip, "198.51.100.1".parse::<std::net::IpAddr>().unwrap());
//! assert!(!direct.https && !direct.forwarded);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::{Extensions, HeaderMap, HeaderName, Request};

use crate::Once;

mod layer;

pub use layer::{ClientIpLayer, ClientIpService};

/// An address block, such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The block of `addr` with `prefix` leading bits.
    ///
    /// # Errors
    ///
    /// When `prefix` exceeds 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, InvalidNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(InvalidNet(()));
        }
        Ok(IpNet {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as
    /// IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl FromStr for IpNet {
    type Err = InvalidNet;

    fn from_str(text: &str) -> Result<Self, InvalidNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = canonical(addr.parse().map_err(|_| InvalidNet(()))?);
        let prefix = match prefix {
            Some(prefix) => prefix.parse().map_err(|_| InvalidNet(()))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        IpNet::new(addr, prefix)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Not an address block like `10.0.0.0/8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNet(());

impl fmt::Display for InvalidNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address block like 10.0.0.0/8 or 2001:db8::/32")
    }
}

impl std::error::Error for InvalidNet {}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// None: forwarding headers are never believed (the default).
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Loopback: `127.0.0.0/8` and `::1`, for a proxy on the same host.
    pub fn loopback() -> Self {
        TrustedProxies::from_nets(["127.0.0.0/8", "::1/128"])
    }

    /// Private ranges: loopback, `10.0.0.0/8`, `172.16.0.0/12`,
    /// `192.168.0.0/16`, `fc00::/7`: a load balancer inside the VPC.
    pub fn private() -> Self {
        TrustedProxies::from_nets([
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ])
    }

    fn from_nets<const N: usize>(nets: [&str; N]) -> Self {
        TrustedProxies {
            nets: nets
                .iter()
                .map(|net| net.parse().expect("a valid block"))
                .collect(),
        }
    }

    /// These blocks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies {
            nets: nets.into_iter().collect(),
        }
    }

    /// Parses comma-separated blocks (`TRUSTED_PROXIES=10.0.0.0/8,::1`).
    ///
    /// # Errors
    ///
    /// On the first block that does not parse.
    pub fn parse(list: &str) -> Result<Self, InvalidNet> {
        let nets = list
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The blocks, in the order given.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether a block is `/0`: every address on the internet is then a
    /// trusted proxy, so any client chooses its own address with a header.
    /// Worth a loud warning at start.
    pub fn trusts_everyone(&self) -> bool {
        self.nets.iter().any(|net| net.prefix == 0)
    }

    /// Whether none is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidNet;

    /// As [`parse`](TrustedProxies::parse): `10.0.0.0/8, ::1`.
    fn from_str(list: &str) -> Result<Self, InvalidNet> {
        TrustedProxies::parse(list)
    }
}

impl fmt::Display for TrustedProxies {
    /// The blocks, comma-separated: `10.0.0.0/8,::1/128` (parses back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, net) in self.nets.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl FromIterator<IpNet> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = IpNet>>(nets: I) -> Self {
        TrustedProxies::new(nets)
    }
}

/// Which forwarding header a trusted proxy writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (and `X-Forwarded-Proto` for the scheme), every
    /// line of it, walked from the right.
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`, `proto=`), walked from the right.
    Forwarded,
    /// `X-Real-IP`: one address, set by the last proxy.
    XRealIp,
}

/// The client as the resolver decided it, in each request's extensions
/// once [`ClientIpLayer`] has run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp {
    /// The client's address (IPv4-mapped addresses as IPv4).
    pub ip: IpAddr,
    /// Whether the client's request was HTTPS: TLS on the connection, or a
    /// trusted proxy said so.
    pub https: bool,
    /// Whether the address came from a trusted proxy's header.
    pub forwarded: bool,
}

/// The other end of the connection: its address, and whether the
/// connection is TLS.
///
/// A Unix domain socket's peer is a process on this host, so it counts as
/// `127.0.0.1` (a reverse proxy on the same host usually connects that way:
/// trust it with [`TrustedProxies::loopback`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer's address.
    pub ip: IpAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl Peer {
    /// A plain TCP peer.
    pub fn tcp(ip: IpAddr) -> Self {
        Peer { ip, tls: false }
    }

    /// The peer of a connection seaworthy's listener described.
    pub fn from_connection(info: &seaworthy_connection::ConnectionInfo) -> Self {
        let ip = info
            .peer_addr()
            .as_tcp()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |addr| addr.ip());
        Peer {
            ip,
            tls: info.is_tls(),
        }
    }

    /// The peer from a request's extensions, from every source a server
    /// may have put there: seaworthy's
    /// [`ConnectionInfo`](seaworthy_connection::ConnectionInfo) (its
    /// listener's `Server`), and with the `axum` feature axum's
    /// `ConnectInfo<SocketAddr>` and `ConnectInfo<Addr>` (`axum::serve`
    /// with `into_make_service_with_connect_info`, over a tokio or a
    /// seaworthy listener). `None` when there is none of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::Request;
    /// use seaworthy_connection::{Addr, ConnectionInfo};
    /// use seaworthy_layers::client_ip::Peer;
    ///
    /// let mut request = Request::new(());
    /// assert_eq!(Peer::from_extensions(request.extensions()), None);
    /// let addr = "192.0.2.1:5000".parse().unwrap();
    /// request.extensions_mut().insert(ConnectionInfo::new(Addr::Tcp(addr), None, true));
    /// let peer = Peer::from_extensions(request.extensions()).unwrap();
    /// assert_eq!((peer.ip, peer.tls), (addr.ip(), true));
    /// ```
    pub fn from_extensions(extensions: &Extensions) -> Option<Self> {
        if let Some(info) = extensions.get::<seaworthy_connection::ConnectionInfo>() {
            return Some(Peer::from_connection(info));
        }
        #[cfg(feature = "axum")]
        {
            use axum::extract::ConnectInfo;
            if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>() {
                return Some(Peer::tcp(addr.ip()));
            }
            if let Some(ConnectInfo(addr)) =
                extensions.get::<ConnectInfo<seaworthy_connection::Addr>>()
            {
                let ip = addr
                    .as_tcp()
                    .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |addr| addr.ip());
                return Some(Peer::tcp(ip));
            }
        }
        None
    }
}

/// Whether a request was HTTPS, as far as its extensions tell: the
/// resolved [`ClientIp`]'s scheme (a trusted proxy's word counts) when the
/// client-IP layer ran, else the connection's TLS ([`Peer`]); `false` when
/// neither is there.
pub fn is_https(extensions: &Extensions) -> bool {
    extensions
        .get::<ClientIp>()
        .map(|client| client.https)
        .or_else(|| Peer::from_extensions(extensions).map(|peer| peer.tls))
        .unwrap_or(false)
}

/// What the layers log, once, when a request carries no peer address.
pub(crate) const NO_PEER: &str = "a request carries no peer address, so its client is unknown: \
    serve it with seaworthy-listener's Server, or with axum::serve(listener, \
    app.into_make_service_with_connect_info::<SocketAddr>()) and the `axum` feature of \
    seaworthy-layers (or of seaworthy) on; until then the client IP is not resolved and every \
    such request shares one rate-limit bucket";

/// Decides the client's address from the peer and, when the peer is a
/// trusted proxy, its forwarding headers; see the [module docs](self).
///
/// A plain value: configure it, clone it, call [`resolve`](Self::resolve)
/// from any server.
///
/// # Examples
///
/// ```
/// use seaworthy_layers::client_ip::{ClientIpResolver, ForwardedHeader, TrustedProxies};
///
/// // Behind a load balancer in the VPC that appends X-Forwarded-For:
/// let resolver = ClientIpResolver::new(TrustedProxies::private())
///     .header(ForwardedHeader::XForwardedFor)
///     .strip_untrusted(true);
/// # let _ = resolver;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientIpResolver {
    trusted: TrustedProxies,
    header: ForwardedHeader,
    hops: Option<usize>,
    strip_untrusted: bool,
    /// What was logged once (shared by clones).
    logged: Arc<Once>,
}

impl Default for ClientIpResolver {
    fn default() -> Self {
        ClientIpResolver::new(TrustedProxies::none())
    }
}

impl ClientIpResolver {
    /// Believes forwarding headers from `trusted` only; reads
    /// `X-Forwarded-For` by default.
    pub fn new(trusted: TrustedProxies) -> Self {
        ClientIpResolver {
            trusted,
            header: ForwardedHeader::XForwardedFor,
            hops: None,
            strip_untrusted: false,
            logged: Arc::default(),
        }
    }

    /// Which header the trusted proxies write.
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Instead of walking to the first untrusted address, take the address
    /// `hops` entries from the right (1: the one the last proxy appended).
    /// For a fixed chain of proxies whose addresses are not known.
    pub fn hops(mut self, hops: usize) -> Self {
        self.hops = Some(hops.max(1));
        self
    }

    /// Removes forwarding headers from requests of untrusted peers (in
    /// [`apply`](Self::apply)), so that handlers cannot read forged ones.
    pub fn strip_untrusted(mut self, strip: bool) -> Self {
        self.strip_untrusted = strip;
        self
    }

    /// The proxies believed.
    pub fn trusted(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// The client of a request from `peer` with `headers`: the peer
    /// itself, unless it is a trusted proxy; then the forwarding header
    /// walked from the right to the first untrusted address (or
    /// [`hops`](Self::hops) from the right), and the scheme the proxy
    /// reported.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderMap;
    /// use seaworthy_layers::client_ip::{ClientIpResolver, Peer, TrustedProxies};
    ///
    /// let resolver = ClientIpResolver::new(TrustedProxies::loopback());
    /// let mut headers = HeaderMap::new();
    /// // A client's forged entry first, then the one nginx appended:
    /// headers.insert("x-forwarded-for", "6.6.6.6, 198.51.100.2".parse().unwrap());
    /// let client = resolver.resolve(Peer::tcp("127.0.0.1".parse().unwrap()), &headers);
    /// assert_eq!(client.ip.to_string(), "198.51.100.2");
    /// ```
    pub fn resolve(&self, peer: Peer, headers: &HeaderMap) -> ClientIp {
        resolve(self, peer, headers)
    }

    /// [`resolve`](Self::resolve), then strip the forwarding headers of an
    /// untrusted peer when [`strip_untrusted`](Self::strip_untrusted) is on.
    pub fn apply(&self, peer: Peer, headers: &mut HeaderMap) -> ClientIp {
        let client = resolve(self, peer, headers);
        if self.strip_untrusted && !client.forwarded && !self.trusted.contains(peer.ip) {
            for name in [FORWARDED, X_FORWARDED_FOR, X_FORWARDED_PROTO, X_REAL_IP] {
                headers.remove(name);
            }
        }
        client
    }

    /// Resolves the client of `request` into its extensions, from the peer
    /// its extensions carry ([`Peer::from_extensions`]). Without a peer:
    /// `None`, nothing inserted, and one `error!` for the first such
    /// request (see the [module docs](self)).
    pub fn resolve_request<B>(&self, request: &mut Request<B>) -> Option<ClientIp> {
        let Some(peer) = Peer::from_extensions(request.extensions()) else {
            if self.logged.first_of(Once::NO_PEER) {
                tracing::error!("{NO_PEER}");
            }
            return None;
        };
        let client = self.apply(peer, request.headers_mut());
        request.extensions_mut().insert(client);
        Some(client)
    }
}

const FORWARDED: HeaderName = http::header::FORWARDED;
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

fn resolve(config: &ClientIpResolver, peer: Peer, headers: &HeaderMap) -> ClientIp {
    let tls = peer.tls;
    let peer = canonical(peer.ip);
    let direct = ClientIp {
        ip: peer,
        https: tls,
        forwarded: false,
    };
    if !config.trusted.contains(peer) {
        // Cheapest test first: after the one warning, nothing to look up.
        if !config.logged.is_raised(Once::UNTRUSTED_PRIVATE)
            && is_private(peer)
            && headers.contains_key(X_FORWARDED_FOR)
            && config.logged.first_of(Once::UNTRUSTED_PRIVATE)
        {
            tracing::warn!(
                %peer,
                "a request from a private address carries X-Forwarded-For, but the address is \
                 not a trusted proxy: every client behind it shares one client IP (and one \
                 rate-limit key); add it to the trusted proxies if it is your load balancer"
            );
        }
        return direct;
    }
    let (chain, proto) = match config.header {
        ForwardedHeader::XForwardedFor => (
            x_forwarded_for(headers),
            last_value(headers, &X_FORWARDED_PROTO),
        ),
        ForwardedHeader::Forwarded => forwarded(headers),
        ForwardedHeader::XRealIp => (
            headers
                .get(X_REAL_IP)
                .and_then(|value| value.to_str().ok())
                .map(|value| vec![parse_node(value)])
                .unwrap_or_default(),
            None,
        ),
    };
    if chain.is_empty() {
        return direct;
    }
    let https = tls || proto.is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    // The chain as the last proxy saw it: the header's entries, then the peer.
    let client = match config.hops {
        Some(hops) => chain
            .len()
            .checked_sub(hops)
            .and_then(|index| chain[index])
            .or_else(|| chain.iter().flatten().next().copied()),
        None => {
            let mut client = None;
            for entry in chain.iter().rev() {
                match entry {
                    Some(ip) if config.trusted.contains(*ip) => client = Some(*ip),
                    Some(ip) => {
                        client = Some(*ip);
                        break;
                    }
                    // Garbage or an obfuscated node: the walk stops at the
                    // last address that a trusted proxy vouched for.
                    None => break,
                }
            }
            client
        }
    };
    match client {
        Some(ip) => ClientIp {
            ip: canonical(ip),
            https,
            forwarded: true,
        },
        None => ClientIp { https, ..direct },
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn last_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .next_back()
}

/// Every `X-Forwarded-For` entry of every line, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(parse_node).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// Every `Forwarded` element's `for=` in order, and the last `proto=`.
fn forwarded(headers: &HeaderMap) -> (Vec<Option<IpAddr>>, Option<&str>) {
    let mut chain = Vec::new();
    let mut proto = None;
    for value in headers.get_all(FORWARDED) {
        let Ok(text) = value.to_str() else {
            chain.push(None);
            continue;
        };
        for element in text.split(',') {
            let mut node = None;
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => node = Some(parse_node(value)),
                    "proto" => proto = Some(value.trim().trim_matches('"')),
                    _ => {}
                }
            }
            chain.push(node.flatten());
        }
    }
    (chain, proto)
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`, quoted or not. `None` for anything else (`unknown`,
/// `_hidden`, garbage).
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"').trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = text.strip_prefix('[')?;
    inner.split(']').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
        assert_eq!(
            "192.168.1.7/24".parse::<IpNet>().unwrap().to_string(),
            "192.168.1.0/24"
        );
    }

    #[test]
    fn nodes_parse_in_every_form() {
        let v4: IpAddr = "192.0.2.60".parse().unwrap();
        let v6: IpAddr = "2001:db8:cafe::17".parse().unwrap();
        assert_eq!(parse_node("192.0.2.60"), Some(v4));
        assert_eq!(parse_node(" 192.0.2.60:4711 "), Some(v4));
        assert_eq!(parse_node("\"[2001:db8:cafe::17]:4711\""), Some(v6));
        assert_eq!(parse_node("\"[2001:db8:cafe::17]\""), Some(v6));
        assert_eq!(parse_node("2001:db8:cafe::17"), Some(v6));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(parse_node("1.2.3"), None);
    }
}
