//! Request ids: a trusted proxy's kept, a client's replaced, nonsense
//! replaced, every id echoed and unique.

use std::collections::HashSet;
use std::net::SocketAddr;

use http::{Request, Response};
use seaworthy_connection::{Addr, ConnectionInfo};
use seaworthy_layers::TrustedProxies;
use seaworthy_layers::request_id::{RequestId, RequestIdLayer};
use tower::{ServiceBuilder, ServiceExt, service_fn};

async fn id_of(layer: &RequestIdLayer, peer: &str, sent: Option<&[u8]>) -> (String, String) {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|request: Request<()>| async move {
            let seen = request.extensions().get::<RequestId>().unwrap().to_string();
            assert_eq!(request.headers()["x-request-id"], seen.as_str());
            Ok::<_, std::convert::Infallible>(Response::new(seen))
        }));
    let mut request = Request::get("/").body(()).unwrap();
    if let Some(sent) = sent {
        request
            .headers_mut()
            .insert("x-request-id", http::HeaderValue::from_bytes(sent).unwrap());
    }
    let peer: SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(ConnectionInfo::new(Addr::Tcp(peer), None, false));
    let response = service.oneshot(request).await.unwrap();
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (echoed, response.into_body())
}

#[tokio::test]
async fn a_trusted_proxys_id_is_kept_and_anything_else_is_replaced() {
    let layer = RequestIdLayer::new("10.0.0.0/8".parse().unwrap());
    let (echoed, seen) = id_of(&layer, "10.1.2.3:5000", Some(b"lb-7f3a")).await;
    assert_eq!((echoed.as_str(), seen.as_str()), ("lb-7f3a", "lb-7f3a"));
    // The same id from a client directly: replaced.
    let (echoed, seen) = id_of(&layer, "203.0.113.5:5000", Some(b"lb-7f3a")).await;
    assert_ne!(echoed, "lb-7f3a");
    assert_eq!(echoed, seen);
    // From the proxy, but nonsense: too long, spaces, empty.
    let long = [b'a'; 129];
    for bad in [&long[..], b"two words", b""] {
        let (echoed, _) = id_of(&layer, "10.1.2.3:5000", Some(bad)).await;
        assert_eq!(echoed.len(), 32, "{bad:?}");
        assert!(echoed.bytes().all(|b| b.is_ascii_hexdigit()), "{echoed}");
    }
    // None sent: generated, and all different.
    let mut ids = HashSet::new();
    for _ in 0..1000 {
        ids.insert(id_of(&layer, "203.0.113.5:5000", None).await.0);
    }
    assert_eq!(ids.len(), 1000);
    // Nobody trusted: even a proxy's is replaced.
    let none = RequestIdLayer::new(TrustedProxies::none());
    assert_ne!(
        id_of(&none, "10.1.2.3:5000", Some(b"lb-7f3a")).await.0,
        "lb-7f3a"
    );
}
