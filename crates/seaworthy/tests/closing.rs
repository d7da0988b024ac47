//! The recipe for a plain `axum::serve` under the shutdown:
//! `with_graceful_shutdown(token.closing())` in a tracked task. Over a real
//! socket: during the drain delay the listener still accepts, a request in
//! flight is answered, then the listener closes and the shutdown is clean.
#![cfg(all(feature = "app", unix))]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use seaworthy::shutdown::{Shutdown, ShutdownReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get_path(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_serve_stops_accepting_at_closing_and_answers_what_is_in_flight() {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let router = Router::new().route("/", get(|| async { "hello" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "slow"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closing = shutdown.token().closing();
    shutdown.spawn("http", async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(closing)
            .await
            .unwrap();
    });

    let slow = tokio::spawn(get_path(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.trigger(ShutdownReason::requested("test"));
    let triggered = Instant::now();
    let waiting = tokio::spawn(shutdown.wait());
    // The drain delay: still accepting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = get_path(addr, "/").await.unwrap();
    assert!(during.ends_with("hello"), "{during}");
    // After it: refused (polled, with a generous bound).
    loop {
        if TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            triggered.elapsed() < Duration::from_secs(5),
            "still accepting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(triggered.elapsed() >= Duration::from_millis(450));
    let answer = slow.await.unwrap().unwrap();
    assert!(answer.ends_with("slow"), "{answer}");
    let report = waiting.await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
