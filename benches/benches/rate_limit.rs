//! The keyed rate-limit check beside governor's, same shapes, same run:
//! 1, 10k and 1M IP keys; passing and rejecting; one thread, and two
//! threads contending (aggregate time per check); and memory per key.
//!
//! `cargo bench -p seaworthy-benches --bench rate_limit`; results in
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{DefaultKeyedRateLimiter, Quota as GovernorQuota, RateLimiter};
use seaworthy::layers::store::MemoryStore;
use seaworthy::layers::{Quota, ip_key};

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

struct Shape {
    name: &'static str,
    keys: u32,
    pass: bool,
}

const SHAPES: [Shape; 6] = [
    Shape {
        name: "1 key, pass",
        keys: 1,
        pass: true,
    },
    Shape {
        name: "10k keys, pass",
        keys: 10_000,
        pass: true,
    },
    Shape {
        name: "1M keys, pass",
        keys: 1_000_000,
        pass: true,
    },
    Shape {
        name: "1 key, reject",
        keys: 1,
        pass: false,
    },
    Shape {
        name: "10k keys, reject",
        keys: 10_000,
        pass: false,
    },
    Shape {
        name: "1M keys, reject",
        keys: 1_000_000,
        pass: false,
    },
];

fn quotas(pass: bool) -> (Quota, GovernorQuota) {
    if pass {
        (
            Quota::per_second(u32::MAX).burst(u32::MAX / 2),
            GovernorQuota::per_second(NonZeroU32::MAX).allow_burst(NonZeroU32::MAX),
        )
    } else {
        (Quota::per_hour(1), GovernorQuota::per_hour(NonZeroU32::MIN))
    }
}

fn limiters(
    shape: &Shape,
) -> (
    Arc<MemoryStore>,
    Quota,
    Arc<DefaultKeyedRateLimiter<IpAddr>>,
) {
    let (quota, governor_quota) = quotas(shape.pass);
    let store = Arc::new(MemoryStore::new(1_000_000));
    let governor = Arc::new(RateLimiter::keyed(governor_quota));
    for i in 0..shape.keys {
        store.check_now(ip_key(ip(i), 64), &quota, 1);
        let _ = governor.check_key(&ip(i));
    }
    (store, quota, governor)
}

/// Runs `work(i)` for `iters` checks over `threads` threads; the time per
/// check of the whole (aggregate).
fn threads(iters: u64, threads: u64, work: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let work = &work;
            scope.spawn(move || {
                for i in 0..iters / threads {
                    work(i * threads + t);
                }
            });
        }
    });
    start.elapsed()
}

fn keyed(c: &mut Criterion) {
    for shape in &SHAPES {
        let (store, quota, governor) = limiters(shape);
        let keys = u64::from(shape.keys);
        let mut group = c.benchmark_group(format!("keyed check, {}", shape.name));
        for n in [1_u64, 2] {
            group.bench_function(format!("governor, {n} thread(s)"), |b| {
                b.iter_custom(|iters| {
                    threads(iters, n, |i| {
                        black_box(governor.check_key(&ip((i % keys) as u32)).is_ok());
                    })
                });
            });
            group.bench_function(format!("seaworthy, {n} thread(s)"), |b| {
                b.iter_custom(|iters| {
                    threads(iters, n, |i| {
                        black_box(
                            store
                                .check_now(ip_key(ip((i % keys) as u32), 64), &quota, 1)
                                .allowed,
                        );
                    })
                });
            });
        }
        group.finish();
    }
}

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4096
}

fn memory(_: &mut Criterion) {
    // nginx-like 100r/m burst=20: every key stays in debt for the whole
    // run, so each one is held (a quota whose debt expires at once would
    // measure how fast slots are reused instead).
    let quota = Quota::per_minute(100).burst(20);
    let governor_quota = GovernorQuota::per_minute(NonZeroU32::new(100).unwrap())
        .allow_burst(NonZeroU32::new(21).unwrap());
    let before = rss();
    let governor: DefaultKeyedRateLimiter<IpAddr> = RateLimiter::keyed(governor_quota);
    for i in 0..1_000_000 {
        let _ = governor.check_key(&ip(i));
    }
    let governor_bytes = rss() - before;
    let before = rss();
    let store = MemoryStore::new(1_000_000);
    for i in 0..1_000_000 {
        store.check_now(ip_key(ip(i), 64), &quota, 1);
    }
    let store_bytes = rss() - before;
    println!(
        "memory for 1M IPv4 keys: governor {:.1} bytes/key, seaworthy {:.1} bytes/key (capacity {}, {} held)",
        governor_bytes as f64 / 1e6,
        store_bytes as f64 / 1e6,
        store.capacity(),
        store.len()
    );
    black_box((governor, store));
}

criterion_group! {
    name = benches;
    config = seaworthy_benches::criterion()
        // 24 functions: shorter runs.
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = memory, keyed
}
criterion_main!(benches);
