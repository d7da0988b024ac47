//! The serve loop in process, over real sockets: connection facts in each
//! request, max requests, keep-alive timeout, HTTP/2 GOAWAY on drain,
//! Unix sockets, counters.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use seaworthy_listener::{ConnectionInfo, Listener, Server};
use seaworthy_shutdown::{Phase, Shutdown, ShutdownReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn router() -> Router {
    Router::new().route("/", get(|| async { "hello" })).route(
        "/info",
        get(|request: Request| async move {
            let info = request.extensions().get::<ConnectionInfo>().unwrap();
            format!(
                "peer={} local={} tls={}",
                info.peer_addr(),
                info.local_addr().unwrap(),
                info.is_tls()
            )
        }),
    )
}

struct Running {
    shutdown: Shutdown,
    addr: SocketAddr,
    counters: seaworthy_listener::Counters,
}

async fn start(server: Server, drain_delay: Duration) -> Running {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(drain_delay)
        .build()
        .unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let counters = server.counters();
    shutdown.spawn("http", server.serve(listener, router(), shutdown.token()));
    Running {
        shutdown,
        addr,
        counters,
    }
}

/// Sends raw requests and reads until the server closes, or 5 s pass.
async fn exchange(addr: SocketAddr, requests: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn each_request_carries_the_connection_facts() {
    let running = start(Server::new(), Duration::ZERO).await;
    let response = exchange(
        running.addr,
        "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.starts_with("peer=127.0.0.1:"), "{body}");
    assert!(
        body.ends_with(&format!("local={} tls=false", running.addr)),
        "{body}"
    );
    running.shutdown.trigger(ShutdownReason::requested("test"));
    assert!(running.shutdown.wait().await.is_clean());
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_connect_info_works() {
    use axum::extract::ConnectInfo;
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let app = Router::new().route(
        "/",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    shutdown.spawn("http", Server::new().serve(listener, app, shutdown.token()));
    let response = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\r\n\r\n127.0.0.1:"), "{response}");
    shutdown.trigger(ShutdownReason::requested("test"));
    shutdown.wait().await;
}

#[tokio::test]
async fn max_requests_closes_the_connection_after_the_last_one() {
    let running = start(Server::new().max_requests(3).jitter(0.0), Duration::ZERO).await;
    let response = exchange(running.addr, &"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5)).await;
    // Three answers, the last with `connection: close`, then the server
    // closed: the two pipelined extra requests were not served.
    assert_eq!(response.matches("HTTP/1.1 200").count(), 3, "{response}");
    assert_eq!(
        response.matches("connection: close").count(),
        1,
        "{response}"
    );
    running.shutdown.trigger(ShutdownReason::requested("test"));
    running.shutdown.wait().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_keep_alive_timeout() {
    let running = start(
        Server::new().keep_alive_timeout(Duration::from_secs(3)),
        Duration::ZERO,
    )
    .await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("closed by the keep-alive timeout")
        .unwrap();
    // After the timeout, and before twice it (the write that answered the
    // request was once stamped at the idle check's time: 6 s); 2 s of slack
    // for a loaded machine.
    let idle = started.elapsed();
    assert!(idle >= Duration::from_millis(2900), "{idle:?}");
    assert!(idle < Duration::from_secs(5), "{idle:?}");
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
    assert_eq!(running.counters.snapshot().idle_closed, 1);
    running.shutdown.trigger(ShutdownReason::requested("test"));
    running.shutdown.wait().await;
}

#[tokio::test]
async fn http2_connections_get_goaway_while_draining() {
    let running = start(Server::new(), Duration::from_secs(5)).await;
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let closed = tokio::spawn(connection);
    let response = sender
        .send_request(http::Request::get("/").body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );

    let token = running.shutdown.token();
    running.shutdown.trigger(ShutdownReason::requested("test"));
    let wait = tokio::spawn(running.shutdown.wait());
    // The server's GOAWAY ends the connection during the drain delay,
    // long before the listener stops accepting.
    tokio::time::timeout(Duration::from_secs(3), closed)
        .await
        .expect("GOAWAY during the drain delay")
        .unwrap()
        .unwrap();
    assert_eq!(token.phase(), Phase::Draining);
    // New connections are still accepted meanwhile.
    let response = exchange(running.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.contains("connection: close"), "{response}");
    let report = wait.await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(running.counters.snapshot().open, 0);
}

#[tokio::test]
async fn connections_left_at_the_deadline_are_cut_and_counted() {
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let server = Server::new();
    let counters = server.counters();
    // The handler says when the request is in it: then the shutdown finds
    // it in flight (no sleep standing in for that).
    let entered = std::sync::Arc::new(tokio::sync::Notify::new());
    let app = Router::new().route(
        "/forever",
        get({
            let entered = std::sync::Arc::clone(&entered);
            move || async move {
                entered.notify_one();
                std::future::pending::<()>().await;
                "never"
            }
        }),
    );
    shutdown.spawn("http", server.serve(listener, app, shutdown.token()));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), entered.notified())
        .await
        .expect("the handler is entered");
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    assert_eq!(report.connections_cut(), 1, "{report}");
    assert!(report.total() < Duration::from_secs(4), "{report}");
    let snapshot = counters.snapshot();
    assert_eq!(snapshot.closed_at_deadline, 1);
    assert_eq!(snapshot.open, 0);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the cut connection is closed");
}

#[tokio::test]
async fn unix_sockets_are_served_with_their_facts() {
    let path = std::env::temp_dir().join(format!("seaworthy-serve-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let listener = Listener::builder_unix(&path).bind().unwrap();
    shutdown.spawn(
        "http",
        Server::new().serve(listener, router(), shutdown.token()),
    );
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.ends_with(&format!(
            "peer=unix:(unnamed) local=unix:{} tls=false",
            path.display()
        )),
        "{response}"
    );
    shutdown.trigger(ShutdownReason::requested("test"));
    shutdown.wait().await;
    let _ = std::fs::remove_file(&path);
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_serve_accepts_through_the_listener_with_connect_info() {
    use axum::extract::ConnectInfo;
    use seaworthy_listener::Addr;
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let app = Router::new().route(
        "/",
        get(|ConnectInfo(peer): ConnectInfo<Addr>| async move { peer.to_string() }),
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<Addr>())
            .await
            .unwrap();
    });
    let response = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.contains("\r\n\r\n127.0.0.1:"), "{response}");
    server.abort();
}

#[tokio::test]
async fn a_service_that_is_not_sync_is_served() {
    // `Cell` is `Send` but not `Sync`: the service is cloned per
    // connection, never shared between threads.
    let calls = std::cell::Cell::new(0_u64);
    let service = tower::service_fn(move |_: http::Request<hyper::body::Incoming>| {
        calls.set(calls.get() + 1);
        let body = format!("call {}", calls.get());
        async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
    });
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    shutdown.spawn(
        "http",
        Server::new().serve(listener, service, shutdown.token()),
    );
    let response = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("call 1"), "{response}");
    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}
