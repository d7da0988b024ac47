//! Two replicas behind one port (`SO_REUSEPORT`), sharing a cache directory
//! and a Redis, each with its `Acme` and the order lock in Redis
//! (`seaworthy::RedisOrderLock`): one order between them against a real
//! Pebble, both serve the certificate, the lease is given back, and the
//! lock file was never used.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seaworthy::RedisOrderLock;
use seaworthy::layers::redis_store::RedisStore;
use seaworthy::listener::tls::Tls;
use seaworthy::listener::tls::acme::{Acme, AcmeConfig};
use seaworthy::listener::{Bind, Server};
use seaworthy::shutdown::{Shutdown, ShutdownReason};
use seaworthy_tests::pebble::Pebble;
use seaworthy_tests::redis_server::RedisServer;
use seaworthy_tests::{TempDir, free_port};

fn replica(port: u16, config: &AcmeConfig, redis: &str, shutdown: &Shutdown) -> Tls {
    let listener = Bind::tcp(SocketAddr::from(([127, 0, 0, 1], port)))
        .reuse_port(true)
        .bind()
        .unwrap();
    let tls = config.tls(|tls| tls).unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    shutdown.spawn(
        "https",
        Server::new()
            .tls(tls.clone())
            .serve(listener, router, shutdown.token()),
    );
    // Each replica its own connection to the shared Redis.
    let store = RedisStore::builder(redis).build().unwrap();
    let lock = RedisOrderLock::new(store, config.domains(), config.cache_dir());
    let acme = Acme::new(config.clone().order_lock(lock), tls.clone());
    shutdown.spawn("acme", acme.run(shutdown.token()));
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_place_one_order_and_both_serve_it() {
    let dir = TempDir::new("acme-redis-replicas");
    let port = free_port();
    let pebble = Pebble::start(&dir.0, port, free_port());
    let redis = RedisServer::start();
    let cache = dir.0.join("shared");
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], &cache).root_ca(&pebble.api_ca);
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let first = replica(port, &config, &redis.url(), &shutdown);
    let second = replica(port, &config, &redis.url(), &shutdown);

    let started = Instant::now();
    let mut lock_file_seen = false;
    while ![&first, &second]
        .iter()
        .all(|tls| tls.status().certificates[0].issuer.contains("Pebble"))
    {
        lock_file_seen |= cache.join("order.lock").exists();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not both served: {:?} / {:?}\n{}",
            first.status(),
            second.status(),
            Pebble::log(&dir.0)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "both replicas serve the certificate after {:?}",
        started.elapsed()
    );
    let log = Pebble::log(&dir.0);
    assert_eq!(log.matches("POST /order-plz").count(), 1, "{log}");
    assert!(!lock_file_seen, "the lock file was used instead of Redis");
    // Given back once the order is done.
    let started = Instant::now();
    while redis.command("EXISTS ratelimit:lease:acme:acme.test") != ":0" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the lease was kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}
