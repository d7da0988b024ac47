//! The Redis store against a real redis-server: replicas share one quota,
//! the same decisions as the memory store, keys that expire with their
//! debt and hide the client, and Redis killed, paused, never there, or
//! flushed of its script, without a failed request.
#![cfg(feature = "redis")]

#[path = "../../../tests/src/redis_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;

use std::time::{Duration, Instant};

use http::Request;
use redis_server::RedisServer;
use seaworthy_layers::rate_limit::Verdict;
use seaworthy_layers::redis_store::{Fallback, RedisStore};
use seaworthy_layers::{ClientIp, KeyBy, Policy, Quota, RateLimiter};

fn request(ip: &str) -> Request<()> {
    let mut request = Request::new(());
    request.extensions_mut().insert(ClientIp {
        ip: ip.parse().unwrap(),
        https: false,
        forwarded: false,
    });
    request
}

fn limiter_on(store: RedisStore, quota: Quota) -> RateLimiter<RedisStore> {
    RateLimiter::with_store(
        Policy::new("default", quota, KeyBy::ClientIp { ipv6_prefix: 64 }),
        store,
    )
}

async fn passes<St: seaworthy_layers::store::Store>(
    limiter: &RateLimiter<St>,
    request: &Request<()>,
) -> bool {
    match limiter.check(request).verdict().await {
        Verdict::Pass(_) => true,
        Verdict::Refuse(_) => false,
        _ => unreachable!(),
    }
}

/// A store on `server`, once its first decision came from Redis.
async fn store(
    server: &RedisServer,
    builder: impl FnOnce(
        seaworthy_layers::redis_store::RedisStoreBuilder,
    ) -> seaworthy_layers::redis_store::RedisStoreBuilder,
) -> RedisStore {
    let store = builder(RedisStore::builder(server.url()).timeout(Duration::from_millis(50)))
        .build()
        .unwrap();
    let started = Instant::now();
    while store.status().degraded {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            store.status()
        );
        store.ping(Duration::from_secs(1)).await.ok();
        // A decision probes the circuit.
        let _ = limiter_on(store.clone(), Quota::per_second(1000))
            .check(&request("198.51.100.1"))
            .verdict()
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_quota_where_memory_stores_let_three_times_through() {
    let server = RedisServer::start();
    let quota = Quota::per_minute(10).burst(4);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(limiter_on(store(&server, |b| b).await, quota));
    }
    let client = request("203.0.113.9");
    let mut passed = 0;
    for round in 0..30 {
        if passes(&replicas[round % 3], &client).await {
            passed += 1;
        }
    }
    assert_eq!(passed, 5, "burst + 1 in all, whichever replica");

    let memory: Vec<_> = (0..3).map(|_| RateLimiter::new(quota)).collect();
    let mut passed = 0;
    for round in 0..30 {
        if passes(&memory[round % 3], &client).await {
            passed += 1;
        }
    }
    assert_eq!(passed, 15, "three memory stores: three times the quota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_and_refusals_match_the_memory_store() {
    let server = RedisServer::start();
    let quota = Quota::per_minute(6).burst(2);
    let shared = limiter_on(store(&server, |b| b).await, quota).cost(|parts| {
        parts
            .headers
            .get("cost")
            .map_or(1, |cost| cost.to_str().unwrap().parse().unwrap())
    });
    let memory = RateLimiter::new(quota).cost(|parts| {
        parts
            .headers
            .get("cost")
            .map_or(1, |cost| cost.to_str().unwrap().parse().unwrap())
    });
    for cost in [1, 2, 1, 1, 3] {
        let mut request = request("192.0.2.44");
        request
            .headers_mut()
            .insert("cost", cost.to_string().parse().unwrap());
        let (a, b) = (
            shared.check(&request).verdict().await,
            memory.check(&request).verdict().await,
        );
        match (a, b) {
            (Verdict::Pass(_), Verdict::Pass(_)) => {}
            (Verdict::Refuse(a), Verdict::Refuse(b)) => {
                assert_eq!(a.retry_after(), b.retry_after(), "cost {cost}");
                assert_eq!(a.status(), b.status());
            }
            (a, b) => panic!("cost {cost}: redis {a:?}, memory {b:?}"),
        }
    }
    // Refused with the facts of a 429.
    let Verdict::Refuse(refusal) = shared.check(&request("192.0.2.44")).verdict().await else {
        panic!("in debt");
    };
    let response = refusal.into_response::<String>();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "10");
    assert!(response.headers().contains_key("ratelimit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hide_the_client_and_expire_with_their_debt() {
    let server = RedisServer::start();
    let shared = limiter_on(
        store(&server, |b| b.namespace("app")).await,
        Quota::per_second(10),
    );
    server.command("FLUSHALL");
    assert!(passes(&shared, &request("192.0.2.200")).await);
    let keys = server.command("KEYS *");
    assert_eq!(keys, "*1", "one key");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"KEYS *\r\n").unwrap();
    let mut reply = [0_u8; 256];
    let n = stream.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.contains("app:"), "{reply}");
    assert!(!reply.contains("192.0.2"), "{reply}");
    // The debt of one request at 10/s is 100 ms: so is the key's life.
    let ttl: i64 = server
        .command(&format!("PTTL {}", reply.lines().nth(2).unwrap()))
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((1..=100).contains(&ttl), "{ttl}");
    let started = Instant::now();
    while server.command("DBSIZE") != ":0" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the key outlived its debt"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_are_the_same_in_every_replica() {
    let server = RedisServer::start();
    let policy = || {
        Policy::new(
            "key",
            Quota::per_minute(1).burst(2),
            KeyBy::Header(http::HeaderName::from_static("x-api-key")),
        )
    };
    let a = RateLimiter::with_store(policy(), store(&server, |b| b).await);
    let b = RateLimiter::with_store(policy(), store(&server, |b| b).await);
    let mut request = request("192.0.2.1");
    request
        .headers_mut()
        .insert("x-api-key", "k-123".parse().unwrap());
    let mut passed = 0;
    for limiter in [&a, &b, &a, &b, &a, &b] {
        passed += usize::from(passes(limiter, &request).await);
    }
    assert_eq!(passed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_falls_back_at_once_and_the_shared_limit_returns_with_it() {
    let mut server = RedisServer::start();
    let shared = store(&server, |b| {
        b.timeout(Duration::from_millis(5))
            .circuit(3, Duration::from_millis(200))
            .fallback(Fallback::Local { replicas: 1 })
    })
    .await;
    let limiter = limiter_on(shared.clone(), Quota::per_second(1000));
    server.kill();
    let mut slowest = Duration::ZERO;
    for round in 0..200 {
        let started = Instant::now();
        // Every decision is made: by Redis, or by the fallback.
        assert!(passes(&limiter, &request(&format!("10.0.0.{}", round % 200))).await);
        slowest = slowest.max(started.elapsed());
    }
    assert!(shared.status().degraded, "{:?}", shared.status());
    assert!(shared.status().fallback_decisions > 0);
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");

    server.restart();
    let back = Instant::now();
    while shared.status().degraded {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "{:?}",
            shared.status()
        );
        passes(&limiter, &request("10.1.0.1")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("shared again {:?} after Redis returned", back.elapsed());
    assert!(shared.ping(Duration::from_secs(1)).await.is_ok());
    // Decisions land in Redis again (a minute's debt: the key stays).
    let strict = limiter_on(shared.clone(), Quota::per_minute(1));
    assert!(passes(&strict, &request("10.9.9.9")).await);
    assert!(!passes(&strict, &request("10.9.9.9")).await);
    assert_ne!(server.command("DBSIZE"), ":0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_is_decided_by_the_timeout_not_a_hang() {
    let server = RedisServer::start();
    let shared = store(&server, |b| {
        b.timeout(Duration::from_millis(20))
            .circuit(3, Duration::from_millis(300))
    })
    .await;
    let limiter = limiter_on(shared.clone(), Quota::per_second(1000));
    server.pause();
    let mut slowest = Duration::ZERO;
    for round in 0..50 {
        let started = Instant::now();
        assert!(passes(&limiter, &request(&format!("10.2.0.{round}"))).await);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    assert!(shared.status().degraded);
    assert!(shared.ping(Duration::from_millis(50)).await.is_err());
    server.resume();
    let back = Instant::now();
    while shared.status().degraded {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "{:?}",
            shared.status()
        );
        passes(&limiter, &request("10.3.0.1")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_redis_at_all_fail_open_passes_and_fail_closed_refuses() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let url = format!("redis://127.0.0.1:{port}");
    for (fallback, expected) in [(Fallback::Open, true), (Fallback::Closed, false)] {
        let shared = RedisStore::builder(url.as_str())
            .fallback(fallback)
            .build()
            .unwrap();
        let limiter = limiter_on(shared.clone(), Quota::per_minute(1));
        for _ in 0..3 {
            assert_eq!(
                passes(&limiter, &request("192.0.2.3")).await,
                expected,
                "{fallback:?}"
            );
        }
        assert!(shared.status().degraded);
    }
    // Local: the quota divided by the replicas.
    let shared = RedisStore::builder(url.as_str())
        .fallback(Fallback::Local { replicas: 2 })
        .build()
        .unwrap();
    let limiter = limiter_on(shared, Quota::per_minute(10).burst(5));
    let mut passed = 0;
    for _ in 0..10 {
        passed += usize::from(passes(&limiter, &request("192.0.2.4")).await);
    }
    assert_eq!(passed, 3, "half of burst + 1");
    // A URL that is not one: an error that does not repeat it.
    let err = RedisStore::builder("redis://user:hunter2@[bad")
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_is_loaded_again() {
    let server = RedisServer::start();
    let limiter = limiter_on(store(&server, |b| b).await, Quota::per_minute(1));
    assert!(passes(&limiter, &request("192.0.2.5")).await);
    assert_eq!(server.command("SCRIPT FLUSH"), "+OK");
    assert!(
        !passes(&limiter, &request("192.0.2.5")).await,
        "still in debt: Redis decided"
    );
    assert!(passes(&limiter, &request("192.0.2.6")).await);
}

#[cfg(feature = "redis-tls")]
#[path = "../../../tests/src/certs.rs"]
#[allow(dead_code, unreachable_pub)]
mod certs;

#[cfg(feature = "redis-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_password_shares_the_limit_and_a_wrong_password_falls_back() {
    let dir = std::env::temp_dir().join(format!("seaworthy-rediss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certs::Ca::new("redis CA");
    let (cert, key) = ca
        .server(&["localhost", "127.0.0.1"], certs::Validity::Current)
        .write(&ca, &dir, "redis");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let tls_port = redis_server::free_port();
    let arg = |path: &std::path::Path| path.to_str().unwrap().to_owned();
    let _server = RedisServer::start_with(vec![
        "--tls-port".into(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        arg(&cert),
        "--tls-key-file".into(),
        arg(&key),
        "--tls-ca-cert-file".into(),
        arg(&ca_file),
        "--tls-auth-clients".into(),
        "no".into(),
        "--requirepass".into(),
        "s3cret-pass".into(),
    ]);
    // The server's certificate is checked against the test's CA.
    let url = format!("rediss://:s3cret-pass@localhost:{tls_port}");
    let shared = RedisStore::builder(url)
        .tls_root_ca(ca.pem.clone())
        .build()
        .unwrap();
    let limiter = limiter_on(shared.clone(), Quota::per_minute(1));
    let started = Instant::now();
    while shared.ping(Duration::from_secs(1)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            shared.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(passes(&limiter, &request("192.0.2.80")).await);
    assert!(
        !passes(&limiter, &request("192.0.2.80")).await,
        "decided in Redis"
    );
    assert!(!shared.status().degraded);

    let wrong = RedisStore::builder(format!("rediss://:nope@localhost:{tls_port}"))
        .tls_root_ca(ca.pem.clone())
        .fallback(Fallback::Open)
        .build()
        .unwrap();
    let limiter = limiter_on(wrong.clone(), Quota::per_minute(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        assert!(passes(&limiter, &request("192.0.2.81")).await);
    }
    let status = wrong.status();
    assert!(status.degraded, "{status:?}");
    assert!(!format!("{status:?}").contains("nope"), "{status:?}");
    // A certificate no trusted CA signed: no connection, the fallback.
    let untrusted = RedisStore::builder(format!("rediss://:s3cret-pass@localhost:{tls_port}"))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(untrusted.ping(Duration::from_millis(200)).await.is_err());
    assert!(untrusted.status().degraded);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_until_released_or_expired_and_is_never_taken_back_from_a_new_holder()
 {
    let server = RedisServer::start();
    let (first, second) = (store(&server, |b| b).await, store(&server, |b| b).await);
    let lease = first
        .try_lease("acme", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert!(
        second
            .try_lease("acme", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    assert!(second.is_leased("acme").await.unwrap());
    // Another name is another lease.
    assert!(
        second
            .try_lease("other", Duration::from_secs(60))
            .await
            .unwrap()
            .is_some()
    );
    assert!(first.release(lease).await.unwrap());
    assert!(!second.is_leased("acme").await.unwrap());

    // A holder that never releases: the lease ends with its time-to-live,
    // and its late release does not take it from the next holder.
    let stale = first
        .try_lease("acme", Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let taken = loop {
        if let Some(lease) = second
            .try_lease("acme", Duration::from_secs(60))
            .await
            .unwrap()
        {
            break lease;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!first.release(stale).await.unwrap());
    assert!(second.is_leased("acme").await.unwrap());
    assert!(second.release(taken).await.unwrap());

    // Redis gone: an error, not a lease and not a hang.
    drop(server);
    let started = Instant::now();
    assert!(
        first
            .try_lease("acme", Duration::from_secs(60))
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
