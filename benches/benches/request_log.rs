//! The two per-request layers `App` adds to the flagship's stack: request
//! ids and the access log, beside what an axum user would write instead
//! with tower-http (`SetRequestIdLayer` + `PropagateRequestIdLayer` with
//! UUIDs, and `TraceLayer` with its response event at INFO). A tracing
//! subscriber formats every event into a sink, as a real log would (the
//! formatting is most of a log line's cost; the write is the same for
//! both).
//!
//! `cargo bench -p seaworthy-benches --bench request_log`; results in
//! `docs/benchmarks.md`.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use seaworthy::layers::TrustedProxies;
use seaworthy::layers::access_log::AccessLogLayer;
use seaworthy::layers::request_id::RequestIdLayer;
use seaworthy_benches::runtime;
use tower::ServiceExt;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

fn seaworthy() -> Router {
    hello()
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new(TrustedProxies::none()))
}

fn tower_http() -> Router {
    let id = http::HeaderName::from_static("x-request-id");
    hello()
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(id.clone()))
        .layer(SetRequestIdLayer::new(id, MakeRequestUuid))
}

async fn once(router: &Router) {
    let request = Request::get("/").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap();
    std::hint::black_box(body);
}

fn bench(c: &mut Criterion) {
    tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(Level::INFO)
        .init();
    let runtime = runtime();
    let mut group = c.benchmark_group("request id + access log, per request");
    for (name, router) in [
        ("bare router", hello()),
        ("seaworthy request_id + access_log", seaworthy()),
        (
            "tower-http request id (UUID) + TraceLayer at INFO",
            tower_http(),
        ),
    ] {
        group.bench_function(name, |b| b.to_async(&runtime).iter(|| once(&router)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = seaworthy_benches::criterion();
    targets = bench
}
criterion_main!(benches);
