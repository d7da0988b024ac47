//! The shared rate limit's cost, side by side in one run against a real
//! redis-server on loopback: seaworthy's `RedisStore` (one EVALSHA of the
//! GCRA script per decision), the INCR + PEXPIRE fixed-window counter most
//! tutorials and express-rate-limit's Redis store use (pipelined: one round
//! trip), the memory store, and a plain `PING`, the floor of any shared
//! decision. At 1 and 64 concurrent clients, each client its own key,
//! over the same multiplexed connection (the redis crate's
//! `ConnectionManager`).
//!
//! `cargo bench -p seaworthy-benches --bench redis` (needs `redis-server`).
//! Results and ratios in `docs/benchmarks.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use seaworthy::layers::Quota;
use seaworthy::layers::redis_store::RedisStore;
use seaworthy::layers::store::{MemoryStore, Store};
use seaworthy_tests::cpu_time;
use seaworthy_tests::redis_server::RedisServer;

const SECONDS: f64 = 3.0;
const ROUNDS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    Ping,
    RedisStore,
    IncrExpire,
    Memory,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Ping => "PING (the floor)",
            Contender::RedisStore => "seaworthy RedisStore (GCRA, EVALSHA)",
            Contender::IncrExpire => "INCR + PEXPIRE fixed window (pipelined)",
            Contender::Memory => "seaworthy MemoryStore (not shared)",
        }
    }
}

struct Tools {
    connection: redis::aio::ConnectionManager,
    store: RedisStore,
    memory: MemoryStore,
}

/// One decision (or one PING) for client `client`.
async fn one(tools: &Tools, contender: Contender, client: u64) {
    let quota = Quota::per_second(1_000_000).burst(1_000_000);
    match contender {
        Contender::Ping => {
            let mut connection = tools.connection.clone();
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .expect("PING");
        }
        Contender::RedisStore => {
            let decision = tools
                .store
                .check([7, client], &quota, 1)
                .await
                .expect("decision");
            assert!(decision.allowed);
        }
        Contender::IncrExpire => {
            let mut connection = tools.connection.clone();
            let key = format!("bench:window:{client}");
            let (count, _): (u64, bool) = redis::pipe()
                .incr(&key, 1)
                .pexpire(&key, 60_000)
                .query_async(&mut connection)
                .await
                .expect("INCR");
            assert!(count > 0);
        }
        Contender::Memory => {
            // Allowed or not, one decision (it outruns any quota).
            let _ = tools
                .memory
                .check([7, client], &quota, 1)
                .await
                .expect("decision");
        }
    }
}

/// Runs `clients` loops for SECONDS; decisions per second and the p99.
async fn run(tools: Arc<Tools>, contender: Contender, clients: u64) -> (f64, Duration) {
    let deadline = Instant::now() + Duration::from_secs_f64(SECONDS);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let tools = Arc::clone(&tools);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let started = Instant::now();
                one(&tools, contender, client).await;
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    (all.len() as f64 / SECONDS, p99)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let server = RedisServer::start();
    let runtime = seaworthy_benches::runtime();
    runtime.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let tools = Arc::new(Tools {
            connection: redis::aio::ConnectionManager::new(client).await.unwrap(),
            store: RedisStore::builder(server.url())
                .timeout(Duration::from_secs(1))
                .build()
                .unwrap(),
            memory: MemoryStore::new(100_000),
        });
        // Connected and warm.
        while tools.store.status().degraded {
            let _ = tools.store.ping(Duration::from_secs(1)).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let contenders = [
            Contender::Ping,
            Contender::RedisStore,
            Contender::IncrExpire,
            Contender::Memory,
        ];
        let mut results: std::collections::BTreeMap<(u64, Contender), Vec<(f64, Duration)>> =
            Default::default();
        for round in 0..ROUNDS {
            for clients in [1, 64] {
                for contender in contenders {
                    let (server_before, ours_before) =
                        (cpu_time(server.pid()), cpu_time(std::process::id()));
                    let (rate, p99) = run(Arc::clone(&tools), contender, clients).await;
                    let decisions = rate * SECONDS;
                    let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / decisions;
                    println!(
                        "round {round} clients {clients:>2} {:<42} {rate:>10.0}/s  p99 {p99:?}  \
                         CPU per decision: redis-server {:.2} µs, client {:.2} µs",
                        contender.name(),
                        per(cpu_time(server.pid()) - server_before),
                        per(cpu_time(std::process::id()) - ours_before),
                    );
                    results.entry((clients, contender)).or_default().push((rate, p99));
                }
            }
        }
        assert!(!tools.store.status().degraded, "{:?}", tools.store.status());
        println!();
        for clients in [1, 64] {
            let mean = |contender| {
                let runs = &results[&(clients, contender)];
                let rate = runs.iter().map(|(rate, _)| rate).sum::<f64>() / runs.len() as f64;
                let p99 = runs.iter().map(|(_, p99)| *p99).max().unwrap();
                (rate, p99)
            };
            let (ping, _) = mean(Contender::Ping);
            for contender in contenders {
                let (rate, p99) = mean(contender);
                println!(
                    "clients {clients:>2} {:<42} {rate:>10.0}/s  p99 {:>8.1} µs  cost / PING = {:.2}x",
                    contender.name(),
                    p99.as_secs_f64() * 1e6,
                    ping / rate,
                );
            }
        }
    });
}
