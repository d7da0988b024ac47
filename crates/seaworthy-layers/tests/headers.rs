//! Security headers over real HTTP: a panic's 500, a handler's own CSP,
//! the web preset's nonce.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Extension;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::routing::get;
use seaworthy_layers::tower_http::catch_panic::CatchPanicLayer;
use seaworthy_layers::{CspNonce, SecurityHeadersLayer};
use seaworthy_listener::{Listener, Server};
use seaworthy_shutdown::{Shutdown, ShutdownReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceBuilder;

async fn get_raw(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.to_ascii_lowercase()
}

async fn serve(layer: SecurityHeadersLayer) -> (SocketAddr, Shutdown) {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler bug");
                }
                "never"
            }),
        )
        .route(
            "/own-csp",
            get(|| async { ([(CONTENT_SECURITY_POLICY, "default-src 'self'")], "mine") }),
        )
        .route(
            "/nonce",
            get(|Extension(CspNonce(nonce)): Extension<CspNonce>| async move { nonce }),
        );
    let service = ServiceBuilder::new()
        .layer(layer)
        .layer(CatchPanicLayer::new())
        .service(app);
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    shutdown.spawn(
        "http",
        Server::new().serve(listener, service, shutdown.token()),
    );
    (addr, shutdown)
}

#[tokio::test]
async fn a_panic_500_carries_the_headers_and_a_handler_csp_is_kept() {
    let (addr, shutdown) = serve(SecurityHeadersLayer::api()).await;
    let panic = get_raw(addr, "/panic").await;
    assert!(panic.starts_with("http/1.1 500"), "{panic}");
    for name in [
        "content-security-policy: default-src 'none'",
        "x-content-type-options: nosniff",
        "x-xss-protection: 0",
    ] {
        assert_eq!(panic.matches(name).count(), 1, "{name}: {panic}");
    }
    let own = get_raw(addr, "/own-csp").await;
    assert_eq!(own.matches("content-security-policy").count(), 1, "{own}");
    assert!(
        own.contains("content-security-policy: default-src 'self'"),
        "{own}"
    );
    assert!(!own.contains("strict-transport-security"), "{own}");
    shutdown.trigger(ShutdownReason::requested("test"));
    shutdown.wait().await;
}

#[tokio::test]
async fn the_web_preset_puts_a_fresh_nonce_in_the_policy_and_the_request() {
    let (addr, shutdown) = serve(SecurityHeadersLayer::web()).await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let response = get_raw(addr, "/nonce").await;
        let body = response.split("\r\n\r\n").nth(1).unwrap().to_owned();
        // The header was lowercased with the rest; compare lowercased.
        assert!(response.contains(&format!("'nonce-{body}'")), "{response}");
        nonces.push(body);
    }
    assert_ne!(nonces[0], nonces[1]);
    shutdown.trigger(ShutdownReason::requested("test"));
    shutdown.wait().await;
}
