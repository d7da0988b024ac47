//! seaworthy-health: the cost of a probe over 20 cached checks, in process
//! and over HTTP (beside a plain axum handler returning the same kind of
//! body, the floor any health endpoint pays), and a probe over 20 uncached
//! checks of 50 ms each.
//!
//! `cargo bench -p seaworthy-benches --bench health`; results in
//! `docs/benchmarks.md`.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seaworthy::health::{Check, CheckResult, HealthRegistry, HealthService, Probe};
use seaworthy_benches::runtime;

const NAMES: [&str; 20] = [
    "c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10", "c11", "c12",
    "c13", "c14", "c15", "c16", "c17", "c18", "c19",
];

fn registry(delay: Duration, ttl: Duration) -> HealthRegistry {
    let mut builder = HealthRegistry::builder();
    for name in NAMES {
        builder = builder.check(
            Check::new(name, move || async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, std::io::Error>(CheckResult::pass().with_observed(1.0, "ms"))
            })
            .cached(ttl),
        );
    }
    builder.build().expect("valid checks")
}

fn in_process(c: &mut Criterion) {
    let rt = runtime();
    let registry = rt.block_on(async { registry(Duration::ZERO, Duration::from_secs(3600)) });
    rt.block_on(registry.check(Probe::Readiness));
    let mut group = c.benchmark_group("probe over 20 cached checks, in process");
    group.bench_function("HealthRegistry::check", |b| {
        b.to_async(&rt).iter(|| registry.check(Probe::Readiness));
    });
    group.bench_function("HealthRegistry::check + to_json(details)", |b| {
        b.to_async(&rt)
            .iter(|| async { registry.check(Probe::Readiness).await.to_json(true) });
    });
    group.finish();
}

fn over_http(c: &mut Criterion) {
    let rt = runtime();
    let (health, plain) = rt.block_on(async {
        let registry = registry(Duration::ZERO, Duration::from_secs(3600));
        let service = HealthService::new(registry);
        let health_app = Router::new().route_service("/health/ready", service);
        let plain_app =
            Router::new().route("/health/ready", get(|| async { r#"{"status":"pass"}"# }));
        let mut addrs = Vec::new();
        for app in [health_app, plain_app] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        (addrs[0], addrs[1])
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut group = c.benchmark_group("probe over HTTP/1.1 keep-alive");
    for (name, addr) in [
        ("axum handler, constant body", plain),
        ("HealthService, 20 cached checks", health),
    ] {
        let uri: http::Uri = format!("http://{addr}/health/ready").parse().unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let response = client.get(uri.clone()).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap();
            });
        });
    }
    group.finish();
}

fn uncached(c: &mut Criterion) {
    let rt = runtime();
    let registry = rt.block_on(async { registry(Duration::from_millis(50), Duration::ZERO) });
    let mut group = c.benchmark_group("probe over 20 uncached checks of 50 ms");
    group.sample_size(10);
    group.bench_function("HealthRegistry::check", |b| {
        b.to_async(&rt).iter(|| registry.check(Probe::Readiness));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = seaworthy_benches::criterion();
    targets = in_process, over_http, uncached
}
criterion_main!(benches);
