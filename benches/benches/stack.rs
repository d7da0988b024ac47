//! The whole layer stack under wrk: bare axum; the handler writing the
//! security headers itself (the floor any header layer pays); tower-http's
//! SetResponseHeader ×8 + tower_governor + body limit + timeout; and
//! seaworthy's stack (client IP, headers, catch-panic, path guard, rate
//! limit, body limit, timeout). All under `axum::serve` with connect info,
//! one worker thread, wrk on the other core, rounds alternating.
//!
//! First in process (one thread, no sockets): each stack, then each of
//! seaworthy's layers alone; `STACK_IN_PROCESS_ONLY=1` stops there.
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
            // The documented shape: rate limit, body limit and timeout on
            // the routes; the rest around the router (so that 404 and 405
            // carry the headers too), see `Stack::seaworthy`.
            Stack::Seaworthy => hello.layer(
                ServiceBuilder::new()
                    .layer(RateLimitLayer::new(
                        Quota::per_second(u32::MAX).burst(u32::MAX / 2),
                    ))
                    .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
                    .layer(seaworthy::layers::TimeoutLayer::new(Duration::from_secs(
                        30,
                    ))),
            ),
        }
    }
}

/// The outer part of seaworthy's documented stack, around a router.
fn seaworthy(router: Router) -> Outer {
    ServiceBuilder::new()
        .layer(ClientIpLayer::new(TrustedProxies::none()))
        .layer(SecurityHeadersLayer::api())
        .layer(CatchPanicLayer::new())
        .layer(PathGuardLayer::new())
        .service(router)
}

type Outer = seaworthy::layers::client_ip::ClientIpService<
    seaworthy::layers::SecurityHeaders<
        seaworthy::layers::tower_http::catch_panic::CatchPanic<
            seaworthy::layers::PathGuard<Router>,
            seaworthy::layers::tower_http::catch_panic::DefaultResponseForPanic,
        >,
    >,
>;

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
            let stop = async move {
                let _ = stop_rx.await;
            };
            let router = stack.router();
            match stack {
                Stack::Seaworthy => {
                    // axum::serve wants axum's body: one more box per response.
                    let service = tower::ServiceExt::<axum::http::Request<axum::body::Body>>::map_response(
                        seaworthy(router),
                        |response: axum::http::Response<_>| response.map(axum::body::Body::new),
                    );
                    let app = axum::ServiceExt::<axum::http::Request<axum::body::Body>>::into_make_service_with_connect_info::<SocketAddr>(service);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .unwrap();
                }
                _ => {
                    let app = router.into_make_service_with_connect_info::<SocketAddr>();
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .unwrap();
                }
            }
        });
    });
    (ready_rx.recv().unwrap(), stop_tx)
}

/// The stack alone, in process: `Router::call` and the body collected, on
/// one thread, no sockets. Nanoseconds per request, the best of 5 rounds
/// of 200 000 (rounds alternate between stacks).
fn in_process(stacks: &[Stack]) -> Vec<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut best = vec![f64::MAX; stacks.len()];
    for _round in 0..5 {
        for (index, stack) in stacks.iter().enumerate() {
            let router = stack.router();
            let nanos = match stack {
                Stack::Seaworthy => runtime.block_on(requests(seaworthy(router))),
                _ => runtime.block_on(requests(router)),
            };
            best[index] = best[index].min(nanos);
        }
    }
    best
}

/// 200 000 requests through `service`, as `axum::serve` makes them (a
/// clone of the service per request, the peer in `ConnectInfo`): the
/// nanoseconds per request.
async fn requests<S, B>(service: S) -> f64
where
    S: tower::Service<
            axum::http::Request<axum::body::Body>,
            Response = axum::http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone,
    B: axum::body::HttpBody,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let start = std::time::Instant::now();
    for _ in 0..200_000 {
        let mut request = axum::http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let response = service.clone().oneshot(request).await.unwrap();
        std::hint::black_box(response.into_body().collect().await.unwrap());
    }
    start.elapsed().as_nanos() as f64 / 200_000.0
}

/// Each layer of seaworthy's stack alone on the bare router, in process:
/// where the stack's time goes. Nanoseconds above bare, best of 5 rounds.
fn each_layer() {
    use seaworthy::layers::TimeoutLayer as SeaworthyTimeout;
    use tower::Layer;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hello = || Stack::Bare.router();
    let always = || RateLimitLayer::new(Quota::per_second(u32::MAX).burst(u32::MAX / 2));
    let thirty = Duration::from_secs(30);
    let mut best = [f64::MAX; 10];
    for _round in 0..5 {
        let runs = [
            runtime.block_on(requests(hello())),
            runtime.block_on(requests(SecurityHeadersLayer::api().layer(hello()))),
            runtime.block_on(requests(CatchPanicLayer::new().layer(hello()))),
            runtime.block_on(requests(
                ClientIpLayer::new(TrustedProxies::none()).layer(hello()),
            )),
            runtime.block_on(requests(PathGuardLayer::new().layer(hello()))),
            runtime.block_on(requests(hello().layer(always()))),
            runtime.block_on(requests(
                hello().layer(axum::extract::DefaultBodyLimit::max(1 << 20)),
            )),
            runtime.block_on(requests(hello().layer(SeaworthyTimeout::new(thirty)))),
            runtime.block_on(requests(hello().layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                thirty,
            )))),
            runtime.block_on(requests(hello().layer(tower::layer::util::Identity::new()))),
        ];
        for (best, run) in best.iter_mut().zip(runs) {
            *best = best.min(run);
        }
    }
    let names = [
        "bare",
        "security headers (around the router)",
        "catch-panic (around)",
        "client IP (around)",
        "path guard (around)",
        "rate limit (on the routes)",
        "body limit (on the routes)",
        "seaworthy timeout (on the routes)",
        "tower-http timeout (on the routes)",
        "an empty layer (on the routes: Router::layer itself)",
    ];
    println!("| layer alone | ns per request above bare (best of 5) |");
    println!("|---|---|");
    for (name, nanos) in names.iter().zip(best).skip(1) {
        println!("| {name} | {:+.0} |", nanos - best[0]);
    }
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
    let nanos = in_process(&stacks);
    println!("| stack | ns per request in process (best of 5) | above bare |");
    println!("|---|---|---|");
    for (index, stack) in stacks.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:+.0} |",
            stack.name(),
            nanos[index],
            nanos[index] - nanos[0]
        );
    }
    each_layer();
    if std::env::var_os("STACK_IN_PROCESS_ONLY").is_some() {
        return;
    }
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
