//! `App` alone, as a user builds it (not the flagship): its own settings,
//! a check, a worker, the access log left out; a real socket, a real
//! SIGTERM to this process. (One test in this binary: the signal is the
//! process's.)
#![cfg(all(feature = "app", unix))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use seaworthy::health::{Check, CheckResult};
use seaworthy::{App, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get_path(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_serves_a_router_with_its_pieces_and_exits_zero_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = Settings::default();
    settings.port = port;
    settings.shutdown_drain_delay = Duration::ZERO;
    settings.rate_limit = "1/min".parse().unwrap();
    settings.rate_limit_burst = 1;
    let stopped = Arc::new(AtomicBool::new(false));
    let worker_stopped = Arc::clone(&stopped);
    let app = App::new(settings)
        .commands(false)
        .access_log(false)
        .check(Check::new("queue", || async {
            Ok::<_, std::io::Error>(CheckResult::pass().with_output("queue reachable"))
        }))
        .worker("consumer", move |token| async move {
            token.cancelled().await;
            worker_stopped.store(true, Ordering::SeqCst);
        });
    let router = Router::new().route("/", get(|| async { "mine" }));
    let serving = tokio::spawn(app.serve(router));

    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hello = get_path(port, "/").await;
    assert!(hello.starts_with("HTTP/1.1 200"), "{hello}");
    assert!(hello.ends_with("mine"), "{hello}");
    for header in [
        "x-request-id: ",
        "x-content-type-options: nosniff",
        "content-security-policy: ",
    ] {
        assert!(hello.contains(header), "{header}: {hello}");
    }
    // The burst is used up: the router is limited, the probes are not, and
    // they carry the check (details for this loopback client).
    let limited = get_path(port, "/").await;
    let limited = get_path(port, "/").await + &limited;
    assert!(limited.contains("HTTP/1.1 429"), "{limited}");
    // The path guard (on by default) answers before routing.
    let smuggled = get_path(port, "/a/%2e%2e/b").await;
    assert!(smuggled.starts_with("HTTP/1.1 400"), "{smuggled}");
    let ready = get_path(port, "/health/ready").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("queue reachable"), "{ready}");

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let code = tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("serve returns after SIGTERM")
        .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(
        stopped.load(Ordering::SeqCst),
        "the worker saw the shutdown"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}
