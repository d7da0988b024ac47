//! The flagship's rate limit shared through a real redis-server: three
//! instances hold one quota for a client behind a trusted proxy (where
//! memory stores let three times through), and Redis killed or paused under
//! load costs no 5xx and no hang.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seaworthy_tests::http1::Conn;
use seaworthy_tests::redis_server::RedisServer;
use seaworthy_tests::{Child, GENEROUS, Signal, check_status};

/// `GET /` as `client`, behind the trusted proxy 127.0.0.1.
fn get_as(conn: &mut Conn, client: &str) -> u16 {
    conn.send_raw(
        format!("GET / HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: {client}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    conn.read_response().unwrap().status
}

/// Three flagships on `env` plus the shared settings.
fn three(env: &[(&str, &str)]) -> Vec<(Child, SocketAddr)> {
    let mut all = vec![
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT", "10/min"),
        ("RATE_LIMIT_BURST", "4"),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ];
    all.extend_from_slice(env);
    (0..3).map(|_| Child::production(&all)).collect()
}

/// Waits until the instance's readiness says Redis passes: the shared
/// limit is on.
fn until_redis_passes(addr: SocketAddr) {
    let started = Instant::now();
    loop {
        let mut conn = Conn::connect(addr).unwrap();
        let body = String::from_utf8_lossy(&conn.get("/health/ready").unwrap().body).into_owned();
        if check_status(&body, "redis:responseTime").as_deref() == Some("pass")
            && !body.contains("fallen back")
        {
            return;
        }
        assert!(started.elapsed() < GENEROUS, "Redis never passed: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(instances: Vec<(Child, SocketAddr)>) {
    for (mut child, _) in instances {
        child.signal(Signal::SIGTERM);
        let (status, _) = child.wait_exit(GENEROUS);
        assert!(status.success(), "{}", child.output());
    }
}

#[test]
fn three_instances_hold_one_quota_through_redis_where_memory_lets_three_times_through() {
    let redis = RedisServer::start();
    let url = redis.url();
    for (env, expected) in [
        (
            vec![("REDIS_URL", url.as_str()), ("RATE_LIMIT_REPLICAS", "3")],
            5,
        ),
        (vec![], 15),
    ] {
        let instances = three(&env);
        if !env.is_empty() {
            for (_, addr) in &instances {
                until_redis_passes(*addr);
            }
        }
        let mut conns: Vec<Conn> = instances
            .iter()
            .map(|(_, addr)| Conn::connect(*addr).unwrap())
            .collect();
        let mut statuses = Vec::new();
        for round in 0..30 {
            statuses.push(get_as(&mut conns[round % 3], "203.0.113.50"));
        }
        let passed = statuses.iter().filter(|&&status| status == 200).count();
        let refused = statuses.iter().filter(|&&status| status == 429).count();
        assert_eq!(
            (passed, refused),
            (expected, 30 - expected),
            "{env:?}: {statuses:?}"
        );
        // Another client has its own quota.
        assert_eq!(get_as(&mut conns[0], "203.0.113.51"), 200);
        stop(instances);
    }
}

#[test]
fn redis_killed_or_paused_under_load_costs_no_5xx_and_the_shared_limit_returns() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let (mut child, addr) = Child::production(&[
        ("REDIS_URL", &url),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT", "1000000/s"),
        ("RATE_LIMIT_BURST", "1000000"),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ]);
    until_redis_passes(addr);
    let mut conn = Conn::connect(addr).unwrap();
    let mut load = |what: &str, seconds: u64| {
        let started = Instant::now();
        let (mut count, mut slowest) = (0, Duration::ZERO);
        while started.elapsed() < Duration::from_secs(seconds) {
            let one = Instant::now();
            let status = get_as(&mut conn, &format!("198.51.100.{}", count % 250));
            slowest = slowest.max(one.elapsed());
            assert_eq!(status, 200, "{what}: request {count}");
            count += 1;
        }
        eprintln!("{what}: {count} requests, slowest {slowest:?}");
        assert!(slowest < Duration::from_millis(500), "{what}: {slowest:?}");
    };
    load("redis up", 1);
    redis.kill();
    load("redis killed", 2);
    child.wait_for_line("rate-limit store: Redis unavailable", GENEROUS);
    // Back: requests (or a readiness probe) find it within seconds.
    redis.restart();
    load("redis back", 3);
    child.wait_for_line("limits are shared again", GENEROUS);
    until_redis_passes(addr);
    redis.pause();
    load("redis paused", 2);
    redis.resume();
    load("redis resumed", 3);
    until_redis_passes(addr);
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success(), "{}", child.output());
    // Said once per outage, not per request (thousands fell back in each).
    assert_eq!(child.count("Redis unavailable"), 2, "{}", child.output());
    assert_eq!(
        child.count("limits are shared again"),
        2,
        "{}",
        child.output()
    );
}

/// libfaketime (Debian package `faketime`, installed by `.ci/run`).
fn libfaketime() -> std::path::PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|dir| std::path::Path::new(dir).join("faketime/libfaketimeMT.so.1"))
    .find(|path| path.exists())
    .expect("libfaketime is installed (Debian package faketime)")
}

#[test]
fn instances_whose_clocks_differ_by_hours_agree_through_redis() {
    // One instance's clock runs two hours ahead (libfaketime, wall clock
    // and monotonic alike). Had a store used the instance's clock, that one
    // would see every debt as long paid and let most requests through; the
    // script reads Redis's clock, so the quota holds exactly.
    let redis = RedisServer::start();
    let url = redis.url();
    let faketime = libfaketime();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RATE_LIMIT", "10/min"),
        ("RATE_LIMIT_BURST", "4"),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ];
    let mut skewed_env = env.to_vec();
    skewed_env.extend([
        ("LD_PRELOAD", faketime.to_str().unwrap()),
        ("FAKETIME", "+2h"),
    ]);
    let instances = vec![Child::production(&env), Child::production(&skewed_env)];
    // The skew is real: the skewed instance's Date header is two hours on.
    let dates: Vec<String> = instances
        .iter()
        .map(|(_, addr)| {
            let response = Conn::connect(*addr).unwrap().get("/health").unwrap();
            response.header("date").unwrap().to_owned()
        })
        .collect();
    assert_ne!(dates[0], dates[1], "{dates:?}");
    for (_, addr) in &instances {
        until_redis_passes(*addr);
    }
    let mut conns: Vec<Conn> = instances
        .iter()
        .map(|(_, addr)| Conn::connect(*addr).unwrap())
        .collect();
    let statuses: Vec<u16> = (0..30)
        .map(|round| get_as(&mut conns[round % 2], "203.0.113.60"))
        .collect();
    let passed = statuses.iter().filter(|&&status| status == 200).count();
    assert_eq!(passed, 5, "{statuses:?}");
    stop(instances);
}

#[test]
fn bad_redis_settings_stop_the_start_with_78_naming_each_and_never_the_url() {
    let output = std::process::Command::new(seaworthy_tests::example_path("production"))
        .env("PORT", "0")
        .env("REDIS_URL", "cache.internal:s3cret-pw")
        .env("RATE_LIMIT_REPLICAS", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(78), "{text}");
    assert!(text.contains("REDIS_URL: invalid"), "{text}");
    assert!(text.contains("RATE_LIMIT_REPLICAS: at least 1"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    let output = std::process::Command::new(seaworthy_tests::example_path("production"))
        .env("PORT", "0")
        .env("RATE_LIMIT_FALLBACK", "sometimes")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RATE_LIMIT_FALLBACK"));
}
