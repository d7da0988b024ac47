//! The whole layer stack under wrk: bare axum; the handler writing the
//! security headers itself (the floor any header layer pays); tower-http's
//! SetResponseHeader ×8 + tower_governor + body limit + timeout; and
//! seaworthy's stack (headers, catch-panic, client IP, path guard, rate
//! limit, body limit, timeout). All under `axum::serve` with connect info,
//! one worker thread, wrk on the other core, rounds alternating.
//!
//! `cargo bench -p seaworthy-benches --bench stack` (needs `wrk`).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::get;
use seaworthy::layers::tower_http::catch_panic::CatchPanicLayer;
use seaworthy::layers::tower_http::timeout::TimeoutLayer;
use seaworthy::layers::{
    ClientIpLayer, PathGuardLayer, Quota, RateLimitLayer, SecurityHeadersLayer, TrustedProxies,
};
use seaworthy_benches::wrk;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

const HEADERS: [(&str, &str); 8] = [
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    ("x-xss-protection", "0"),
];

#[derive(Clone, Copy, Debug)]
enum Stack {
    Bare,
    HandlerHeaders,
    TowerHttpGovernor,
    Seaworthy,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare axum",
            Stack::HandlerHeaders => "handler writes the 8 headers (floor)",
            Stack::TowerHttpGovernor => {
                "tower-http headers x8 + tower_governor + body limit + timeout"
            }
            Stack::Seaworthy => "seaworthy stack",
        }
    }

    fn router(self) -> Router {
        let hello = Router::new().route("/", get(|| async { "hello" }));
        match self {
            Stack::Bare => hello,
            Stack::HandlerHeaders => Router::new().route(
                "/",
                get(|| async {
                    let mut response =
                        axum::response::Response::new(axum::body::Body::from("hello"));
                    for (name, value) in HEADERS {
                        response.headers_mut().insert(
                            HeaderName::from_static(name),
                            HeaderValue::from_static(value),
                        );
                    }
                    response
                }),
            ),
            Stack::TowerHttpGovernor => {
                let config = tower_governor::governor::GovernorConfigBuilder::default()
                    .per_nanosecond(1)
                    .burst_size(u32::MAX)
                    .finish()
                    .unwrap();
                let mut router = hello
                    .layer(TimeoutLayer::with_status_code(
                        StatusCode::GATEWAY_TIMEOUT,
                        Duration::from_secs(30),
                    ))
                    .layer(RequestBodyLimitLayer::new(1 << 20))
                    .layer(tower_governor::GovernorLayer::new(config));
                for (name, value) in HEADERS {
                    router = router.layer(SetResponseHeaderLayer::overriding(
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    ));
                }
                router.layer(SetResponseHeaderLayer::overriding(
                    header::SERVER,
                    HeaderValue::from_static("x"),
                ))
            }
            Stack::Seaworthy => hello
                .layer(
                    ServiceBuilder::new()
                        .layer(RateLimitLayer::new(
                            Quota::per_second(u32::MAX).burst(u32::MAX / 2),
                        ))
                        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
                        .layer(TimeoutLayer::with_status_code(
                            StatusCode::GATEWAY_TIMEOUT,
                            Duration::from_secs(30),
                        )),
                )
                .layer(PathGuardLayer::new())
                .layer(ClientIpLayer::new(TrustedProxies::none()))
                .layer(CatchPanicLayer::new())
                .layer(SecurityHeadersLayer::api()),
        }
    }
}

fn serve(stack: Stack) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ready_tx.send(listener.local_addr().unwrap()).unwrap();
            let app = stack
                .router()
                .into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (ready_rx.recv().unwrap(), stop_tx)
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let stacks = [
        Stack::Bare,
        Stack::HandlerHeaders,
        Stack::TowerHttpGovernor,
        Stack::Seaworthy,
    ];
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); stacks.len()];
    for _round in 0..3 {
        for (index, stack) in stacks.iter().enumerate() {
            let (addr, stop) = serve(*stack);
            wrk(addr, 64, 2);
            let (rps, p99) = wrk(addr, 64, 8);
            let run = (rps, p99.as_secs_f64() * 1e3);
            eprintln!(
                "{}: {:.0} requests/s, p99 {:.2} ms",
                stack.name(),
                run.0,
                run.1
            );
            results[index].push(run);
            let _ = stop.send(());
            thread::sleep(Duration::from_millis(200));
        }
    }
    let bare = results[0].iter().map(|run| run.0).sum::<f64>() / 3.0;
    println!("| stack | requests/s (mean of 3) | vs bare | p99 ms (median of 3) |");
    println!("|---|---|---|---|");
    for (index, stack) in stacks.iter().enumerate() {
        let rps = results[index].iter().map(|run| run.0).sum::<f64>() / 3.0;
        let mut p99: Vec<f64> = results[index].iter().map(|run| run.1).collect();
        p99.sort_by(f64::total_cmp);
        println!(
            "| {} | {rps:.0} | {:.2} | {:.2} |",
            stack.name(),
            rps / bare,
            p99[1]
        );
    }
}
