//! The spoofing suite: every way a client tries to choose its own address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use http::{Request, Response};
use seaworthy_connection::{Addr, ConnectionInfo};
use seaworthy_layers::client_ip::ForwardedHeader;
use seaworthy_layers::{ClientIp, ClientIpLayer, TrustedProxies};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Sends a request from `peer` with `headers` through `layer`; returns the
/// resolved client and the forwarding headers the handler saw.
async fn resolve(layer: ClientIpLayer, peer: &str, headers: &[(&str, &str)]) -> (ClientIp, usize) {
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|request: Request<()>| async move {
                let client = *request.extensions().get::<ClientIp>().unwrap();
                let forwarding = request
                    .headers()
                    .keys()
                    .filter(|name| name.as_str().starts_with("x-forwarded"))
                    .count();
                Ok::<_, Infallible>(Response::new((client, forwarding)))
            }));
    let mut request = Request::new(());
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().append(name, value.parse().unwrap());
    }
    let peer: IpAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectionInfo::new(
        Addr::Tcp(SocketAddr::new(peer, 40000)),
        None,
        false,
    ));
    service.oneshot(request).await.unwrap().into_body()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn a_direct_untrusted_peer_cannot_forge_its_address() {
    let layer = ClientIpLayer::new(TrustedProxies::private());
    let (client, _) = resolve(
        layer,
        "203.0.113.50",
        &[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")],
    )
    .await;
    assert_eq!(client.ip, ip("203.0.113.50"));
    assert!(!client.forwarded);
    // Not even with nothing trusted at all.
    let (client, _) = resolve(
        ClientIpLayer::new(TrustedProxies::none()),
        "10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4")],
    )
    .await;
    assert_eq!(client.ip, ip("10.0.0.1"));
}

#[tokio::test]
async fn leftmost_x_forwarded_for_injection_is_ignored() {
    // The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the
    // real address.
    let layer = ClientIpLayer::new(TrustedProxies::private());
    let (client, _) = resolve(
        layer,
        "10.0.0.1",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")],
    )
    .await;
    assert_eq!(client.ip, ip("203.0.113.7"));
    assert!(client.forwarded);
}

#[tokio::test]
async fn every_x_forwarded_for_line_counts_and_the_last_is_rightmost() {
    let layer = ClientIpLayer::new(TrustedProxies::private());
    let (client, _) = resolve(
        layer,
        "10.0.0.1",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(client.ip, ip("203.0.113.7"));
}

#[tokio::test]
async fn a_two_proxy_chain_resolves_to_the_client() {
    // client 203.0.113.7 → proxy 192.168.1.5 → proxy 10.0.0.1 → us
    let layer = ClientIpLayer::new(TrustedProxies::private());
    let (client, _) = resolve(
        layer,
        "10.0.0.1",
        &[("x-forwarded-for", "9.9.9.9, 203.0.113.7, 192.168.1.5")],
    )
    .await;
    assert_eq!(client.ip, ip("203.0.113.7"));
    // A fixed hop count instead of trusted addresses: 2 from the right.
    let layer = ClientIpLayer::new(TrustedProxies::private()).hops(2);
    let (client, _) = resolve(
        layer,
        "10.0.0.1",
        &[("x-forwarded-for", "9.9.9.9, 203.0.113.7, 192.168.1.5")],
    )
    .await;
    assert_eq!(client.ip, ip("203.0.113.7"));
}

#[tokio::test]
async fn forwarded_with_quoted_ipv6_ports_and_proto() {
    let layer = ClientIpLayer::new(TrustedProxies::loopback()).header(ForwardedHeader::Forwarded);
    let (client, _) = resolve(
        layer,
        "127.0.0.1",
        &[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=127.0.0.1",
        )],
    )
    .await;
    assert_eq!(client.ip, ip("2001:db8:cafe::17"));
    assert!(client.https);
}

#[tokio::test]
async fn ipv4_mapped_addresses_are_ipv4() {
    let layer = ClientIpLayer::new(TrustedProxies::parse("10.0.0.0/8").unwrap());
    // A dual-stack socket reports a trusted IPv4 proxy as ::ffff:10.0.0.1.
    let (client, _) = resolve(
        layer,
        "::ffff:10.0.0.1",
        &[("x-forwarded-for", "::ffff:203.0.113.7")],
    )
    .await;
    assert_eq!(client.ip, ip("203.0.113.7"));
    assert!(client.forwarded);
}

#[tokio::test]
async fn garbage_stops_the_walk_at_the_last_vouched_address() {
    let layer = ClientIpLayer::new(TrustedProxies::private());
    let (client, _) = resolve(
        layer,
        "10.0.0.1",
        &[("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.2")],
    )
    .await;
    // 10.0.0.2 is trusted, "garbage" cannot be believed: the last proxy
    // that is known is the client as far as we can tell.
    assert_eq!(client.ip, ip("10.0.0.2"));
}

#[tokio::test]
async fn x_real_ip_from_a_trusted_proxy_and_stripping_for_untrusted() {
    let layer = ClientIpLayer::new(TrustedProxies::loopback()).header(ForwardedHeader::XRealIp);
    let (client, _) = resolve(layer, "127.0.0.1", &[("x-real-ip", "198.51.100.4")]).await;
    assert_eq!(client.ip, ip("198.51.100.4"));

    let layer = ClientIpLayer::new(TrustedProxies::loopback()).strip_untrusted(true);
    let (client, forwarding) = resolve(
        layer,
        "198.51.100.9",
        &[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(client.ip, ip("198.51.100.9"));
    assert!(!client.https, "an untrusted peer cannot claim https");
    assert_eq!(forwarding, 0, "the forged headers were stripped");
}

#[tokio::test]
async fn configuring_a_clone_changes_that_clone_only() {
    let base = ClientIpLayer::new(TrustedProxies::loopback());
    let strict = base.clone().strip_untrusted(true);
    let forged = [("x-forwarded-for", "1.2.3.4")];
    assert_eq!(resolve(base, "198.51.100.9", &forged).await.1, 1);
    assert_eq!(resolve(strict, "198.51.100.9", &forged).await.1, 0);
}

#[tokio::test]
async fn a_unix_socket_peer_is_this_host_and_a_loopback_proxy_there_is_believed() {
    let service = ServiceBuilder::new()
        .layer(ClientIpLayer::new(TrustedProxies::loopback()))
        .service(service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(
                *request.extensions().get::<ClientIp>().unwrap(),
            ))
        }));
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
    request
        .extensions_mut()
        .insert(ConnectionInfo::new(Addr::Unix(None), None, false));
    let client = service.oneshot(request).await.unwrap().into_body();
    assert_eq!(client.ip, ip("203.0.113.5"));
    assert!(client.forwarded);
}

#[tokio::test]
async fn the_headers_layer_inside_the_client_ip_layer_takes_https_from_a_trusted_proxy() {
    use seaworthy_layers::SecurityHeadersLayer;
    let hsts = |outer_client_ip: bool| async move {
        let handler = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
        let client_ip = ClientIpLayer::new(TrustedProxies::loopback());
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert("x-forwarded-proto", "https".parse().unwrap());
        request
            .headers_mut()
            .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
        request.extensions_mut().insert(ConnectionInfo::new(
            Addr::Tcp("127.0.0.1:4000".parse().unwrap()),
            None,
            false,
        ));
        let response = if outer_client_ip {
            ServiceBuilder::new()
                .layer(client_ip)
                .layer(SecurityHeadersLayer::api())
                .service(handler)
                .oneshot(request)
                .await
        } else {
            ServiceBuilder::new()
                .layer(SecurityHeadersLayer::api())
                .layer(client_ip)
                .service(handler)
                .oneshot(request)
                .await
        };
        response
            .unwrap()
            .headers()
            .contains_key("strict-transport-security")
    };
    // The documented order: the proxy's word about https reaches the headers.
    assert!(hsts(true).await);
    // The other way round, only the connection's own TLS counts (plain here).
    assert!(!hsts(false).await);
}

#[test]
fn trusted_proxies_parse_display_and_round_trip() {
    let proxies: TrustedProxies = " 10.0.0.0/8, ::1 ,192.168.1.7".parse().unwrap();
    assert_eq!(proxies.to_string(), "10.0.0.0/8,::1/128,192.168.1.7/32");
    assert_eq!(
        proxies.to_string().parse::<TrustedProxies>().unwrap(),
        proxies
    );
    assert!(proxies.contains("10.1.2.3".parse().unwrap()));
    assert_eq!(proxies.nets().len(), 3);
    assert!(!proxies.trusts_everyone());
    assert!(
        "10.0.0.0/8,0.0.0.0/0"
            .parse::<TrustedProxies>()
            .unwrap()
            .trusts_everyone()
    );
    assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/8,,x", "::1/129"] {
        assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
    }
}
