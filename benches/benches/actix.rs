//! seaworthy-actix's stack on actix-web, side by side in one run with bare
//! actix-web and with what an actix user would pick instead
//! (actix-governor's per-IP limit and actix's `DefaultHeaders`), on the
//! same `GET /` → `hello` app.
//!
//! `cargo bench -p seaworthy-benches --bench actix` (needs `wrk`). Each
//! server runs in this process on one actix worker, wrk on the other core
//! (`wrk -t1 -c64 -d5s`), 3 rounds alternating. Results in
//! `docs/benchmarks.md`.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use seaworthy::actix::{PathGuard, RateLimit, ResolveClientIp, SecurityHeaders};
use seaworthy::layers::{Quota, TrustedProxies};
use seaworthy_benches::wrk;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stack {
    Bare,
    Seaworthy,
    GovernorDefaultHeaders,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare actix-web",
            Stack::Seaworthy => "seaworthy-actix (client IP, headers, guard, limit)",
            Stack::GovernorDefaultHeaders => "actix-governor + DefaultHeaders (same headers)",
        }
    }
}

/// Starts `stack` on its own thread and actix system; its address and
/// handle.
fn start(stack: Stack) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            macro_rules! serve {
                ($factory:expr) => {{
                    let server = HttpServer::new($factory)
                        .disable_signals()
                        .workers(1)
                        .bind(("127.0.0.1", 0))
                        .expect("bind");
                    let addr = server.addrs()[0];
                    let server = server.run();
                    tx.send((addr, server.handle())).unwrap();
                    server.await.unwrap();
                }};
            }
            let hello = || async { "hello" };
            match stack {
                Stack::Bare => serve!(move || App::new().route("/", web::get().to(hello))),
                Stack::Seaworthy => serve!(move || {
                    App::new()
                        .route("/", web::get().to(hello))
                        // Out of wrk's way: one client, many requests.
                        .wrap(RateLimit::new(
                            Quota::per_second(1_000_000).burst(1_000_000),
                        ))
                        .wrap(PathGuard::new())
                        .wrap(SecurityHeaders::api())
                        .wrap(ResolveClientIp::new(TrustedProxies::none()))
                }),
                Stack::GovernorDefaultHeaders => {
                    let governor = actix_governor::GovernorConfigBuilder::default()
                        .requests_per_second(1_000_000)
                        .burst_size(1_000_000)
                        .finish()
                        .expect("a governor configuration");
                    // The very headers seaworthy sends (the api preset,
                    // plain HTTP), so both answers are the same bytes.
                    let mut same = http::HeaderMap::new();
                    seaworthy::layers::HeaderPolicy::api().apply(&mut same, false, None);
                    let same: Vec<(String, String)> = same
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                        .collect();
                    serve!(move || {
                        let mut headers = actix_web::middleware::DefaultHeaders::new();
                        for (name, value) in &same {
                            headers = headers.add((name.as_str(), value.as_str()));
                        }
                        App::new()
                            .route("/", web::get().to(hello))
                            .wrap(actix_governor::Governor::new(&governor))
                            .wrap(headers)
                    })
                }
            }
        });
    });
    rx.recv().expect("the server starts")
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let stacks = [Stack::Bare, Stack::Seaworthy, Stack::GovernorDefaultHeaders];
    let mut results: std::collections::BTreeMap<Stack, Vec<(f64, Duration)>> = Default::default();
    for round in 0..3 {
        for stack in stacks {
            let (addr, handle) = start(stack);
            wrk(addr, 64, 1);
            let (rps, p99) = wrk(addr, 64, 5);
            println!(
                "round {round} {:<52} {rps:>9.0} req/s  p99 {p99:?}",
                stack.name()
            );
            results.entry(stack).or_default().push((rps, p99));
            actix_web::rt::System::new().block_on(handle.stop(false));
        }
    }
    println!();
    let mean = |stack| {
        let runs = &results[&stack];
        let rps = runs.iter().map(|run| run.0).sum::<f64>() / runs.len() as f64;
        let mut p99s: Vec<Duration> = runs.iter().map(|run| run.1).collect();
        p99s.sort();
        (rps, p99s[p99s.len() / 2])
    };
    let (bare, _) = mean(Stack::Bare);
    let (ours, _) = mean(Stack::Seaworthy);
    for stack in stacks {
        let (rps, p99) = mean(stack);
        println!(
            "{:<52} {rps:>9.0} req/s  p99 {p99:?}  / bare = {:.2}x  seaworthy / it = {:.2}x",
            stack.name(),
            rps / bare,
            ours / rps
        );
    }
}
