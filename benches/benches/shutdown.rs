//! seaworthy-shutdown's per-task and per-token costs, side by side with the
//! tokio and tokio-util primitives a program would otherwise use directly.
//!
//! `cargo bench -p seaworthy-benches --bench shutdown`; results and ratios in
//! `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use seaworthy::shutdown::Shutdown;
use seaworthy_benches::runtime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TASKS: usize = 1000;

fn spawn(c: &mut Criterion) {
    let rt = runtime();
    let shutdown = rt.block_on(async { Shutdown::builder().signals([]).build().expect("build") });
    let mut group = c.benchmark_group("spawn 1000 tasks and join them");
    group.bench_function("tokio::spawn", |b| {
        b.to_async(&rt).iter(|| async {
            let handles: Vec<_> = (0..TASKS)
                .map(|i| {
                    tokio::spawn(async move {
                        black_box(i);
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("join");
            }
        });
    });
    group.bench_function("tokio_util TaskTracker::spawn", |b| {
        b.to_async(&rt).iter(|| async {
            let tracker = TaskTracker::new();
            for i in 0..TASKS {
                tracker.spawn(async move {
                    black_box(i);
                });
            }
            tracker.close();
            tracker.wait().await;
        });
    });
    group.bench_function("seaworthy Shutdown::spawn", |b| {
        b.to_async(&rt).iter(|| async {
            let handles: Vec<_> = (0..TASKS)
                .map(|i| {
                    shutdown.spawn("task", async move {
                        black_box(i);
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("join");
            }
        });
    });
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let rt = runtime();
    let shutdown = rt.block_on(async { Shutdown::builder().signals([]).build().expect("build") });
    let parent = CancellationToken::new();
    let mut group = c.benchmark_group("new token, check it, drop it");
    group.bench_function("tokio_util CancellationToken::child_token", |b| {
        b.iter(|| {
            let token = parent.child_token();
            black_box(token.is_cancelled())
        });
    });
    group.bench_function("seaworthy Shutdown::token", |b| {
        b.iter(|| {
            let token = shutdown.token();
            black_box(token.is_cancelled())
        });
    });
    group.finish();

    let token = shutdown.token();
    let plain = parent.child_token();
    let mut group = c.benchmark_group("is_cancelled on a live token");
    group.bench_function("tokio_util CancellationToken", |b| {
        b.iter(|| black_box(plain.is_cancelled()));
    });
    group.bench_function("seaworthy ShutdownToken", |b| {
        b.iter(|| black_box(token.is_cancelled()));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = seaworthy_benches::criterion();
    targets = spawn, tokens
}
criterion_main!(benches);
