//! The ACME order lock in Redis against a real redis-server: one holder
//! between two replicas, the lease given back, and with Redis out of reach
//! the lock file in the cache directory instead (renewals never stop on
//! Redis alone).
#![cfg(all(feature = "acme", feature = "redis", unix))]

#[path = "../../../tests/src/redis_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;

use std::time::{Duration, Instant};

use redis_server::RedisServer;
use seaworthy::RedisOrderLock;
use seaworthy::layers::redis_store::RedisStore;
use seaworthy::listener::tls::acme::OrderLock;

async fn connected(url: &str) -> RedisStore {
    let store = RedisStore::builder(url).build().unwrap();
    let started = Instant::now();
    while store.ping(Duration::from_secs(1)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store
}

fn cache_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seaworthy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_holder_through_redis_and_the_file_while_redis_is_away() {
    let redis = RedisServer::start();
    let dir = cache_dir("acme-lock");
    let first = RedisOrderLock::new(connected(&redis.url()).await, &["B.test", "a.test."], &dir);
    let second = RedisOrderLock::new(connected(&redis.url()).await, &["a.test", "b.test"], &dir);
    assert_eq!(first.name(), "acme:a.test,b.test");
    assert_eq!(first.name(), second.name());

    assert!(first.acquire().await);
    assert!(!second.acquire().await);
    assert!(second.held().await);
    // Through Redis, not the file.
    assert!(!dir.join("order.lock").exists());
    assert_eq!(
        redis.command("EXISTS ratelimit:lease:acme:a.test,b.test"),
        ":1"
    );
    // Releasing what it does not hold changes nothing.
    second.release().await;
    assert!(first.held().await);
    first.release().await;
    assert!(!second.held().await);
    assert!(second.acquire().await);
    second.release().await;

    // Redis gone: the lock file in the cache directory decides.
    drop(redis);
    let started = Instant::now();
    assert!(first.acquire().await);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(dir.join("order.lock").exists());
    assert!(!second.acquire().await);
    assert!(second.held().await);
    first.release().await;
    assert!(!dir.join("order.lock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
