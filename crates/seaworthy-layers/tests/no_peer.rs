//! The layers as a stranger uses them: plain `axum::serve`, with and
//! without connect info, and a seaworthy listener under `axum::serve`. The
//! rate limit never turns itself off, and a missing peer is never silent.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use seaworthy_layers::{ClientIp, ClientIpLayer, Quota, RateLimitLayer, TrustedProxies};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Every event logged while the guard lives, as (level, message), on this
/// thread: the tests run on a current-thread runtime, so the server's
/// tasks log here too.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message.0));
    }
}

impl Events {
    fn capture() -> (Events, tracing::subscriber::DefaultGuard) {
        let events = Events::default();
        let subscriber = tracing_subscriber::registry().with(events.clone());
        (events, tracing::subscriber::set_default(subscriber))
    }

    fn errors(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, _)| *level == tracing::Level::ERROR)
            .map(|(_, message)| message.clone())
            .collect()
    }
}

/// `GET path` from `from` (a loopback address of the client's choosing):
/// the status and the body.
async fn get_from(from: IpAddr, addr: SocketAddr, path: &str) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

const ONE: &str = "127.0.0.1";
const TWO: &str = "127.0.0.2";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A route that says which client it saw, if any, behind the client-IP
/// layer and a limit of one request an hour.
fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|client: Option<Extension<ClientIp>>| async move {
                client.map_or("none".to_owned(), |Extension(client)| client.ip.to_string())
            }),
        )
        .route(
            "/needs-ip",
            get(|Extension(client): Extension<ClientIp>| async move { client.ip.to_string() }),
        )
        .layer(RateLimitLayer::new(Quota::per_hour(1)).skip_paths(["/needs-ip"]))
        .layer(ClientIpLayer::new(TrustedProxies::none()))
}

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn without_connect_info_the_limit_holds_in_one_shared_bucket_and_says_why_once() {
    let (events, _guard) = Events::capture();
    let (listener, addr) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });

    let mut statuses = Vec::new();
    for from in [ONE, TWO, ONE, TWO, ONE, TWO, ONE, TWO, ONE, TWO] {
        statuses.push(get_from(ip(from), addr, "/").await.0);
    }
    // One request an hour for the whole server: not ten, not one per client.
    assert_eq!(
        statuses.iter().filter(|&&status| status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&status| status == 429).count(),
        9,
        "{statuses:?}"
    );

    // The handler saw no client, and a handler that insists gets a 500 that
    // the log explains.
    let (status, _) = get_from(ip(ONE), addr, "/needs-ip").await;
    assert_eq!(status, 500);
    let errors = events.errors();
    // Once per layer (the client-IP layer and the rate limit), not once per
    // request; each names the fix.
    assert_eq!(errors.len(), 2, "{errors:?}");
    for error in &errors {
        assert!(
            error.contains("into_make_service_with_connect_info"),
            "{error}"
        );
        assert!(error.contains("`axum` feature"), "{error}");
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn with_axum_connect_info_each_client_has_its_own_bucket_and_nothing_is_logged() {
    let (events, _guard) = Events::capture();
    let (listener, addr) = bind().await;
    let service = app().into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

    assert_eq!(get_from(ip(ONE), addr, "/").await, (200, ONE.to_owned()));
    assert_eq!(get_from(ip(ONE), addr, "/").await.0, 429);
    assert_eq!(get_from(ip(TWO), addr, "/").await, (200, TWO.to_owned()));
    assert_eq!(get_from(ip(TWO), addr, "/").await.0, 429);
    assert_eq!(
        get_from(ip(TWO), addr, "/needs-ip").await,
        (200, TWO.to_owned())
    );
    assert_eq!(events.errors(), Vec::<String>::new());
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn a_seaworthy_listener_under_axum_serve_gives_connect_info_addr() {
    let (events, _guard) = Events::capture();
    let listener = seaworthy_listener::Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let service = app().into_make_service_with_connect_info::<seaworthy_connection::Addr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

    assert_eq!(get_from(ip(ONE), addr, "/").await, (200, ONE.to_owned()));
    assert_eq!(get_from(ip(ONE), addr, "/").await.0, 429);
    assert_eq!(get_from(ip(TWO), addr, "/").await, (200, TWO.to_owned()));
    assert_eq!(events.errors(), Vec::<String>::new());
}
