//! The flagship with ACME_DOMAINS against a real Pebble on loopback: the
//! first certificate obtained at start through TLS-ALPN-01 on PORT (not
//! ready, no `listening on` line, until then) or through HTTP-01 on
//! HTTP_REDIRECT_PORT, a restart that orders nothing, and bad ACME
//! settings refused with 78, each named.

use std::process::Command;
use std::time::{Duration, Instant};

use seaworthy_tests::http1::Conn;
use seaworthy_tests::pebble::Pebble;
use seaworthy_tests::redis_server::RedisServer;
use seaworthy_tests::{Child, GENEROUS, Signal, TempDir, check_status, free_port, listening_addr};

/// The chain `port` serves for `acme.test` as openssl prints it (each
/// certificate's subject and issuer).
fn served_issuer(port: u16) -> String {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "acme.test"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .filter(|line| line.trim_start().starts_with("i:") || line.starts_with("issuer="))
        .collect::<Vec<_>>()
        .join("\n")
}

fn orders_placed(dir: &std::path::Path) -> usize {
    Pebble::log(dir).matches("POST /order-plz").count()
}

fn start(port: u16, pebble: &Pebble, cache: &std::path::Path) -> Child {
    let port = port.to_string();
    let cache = cache.to_str().unwrap();
    Child::example(
        "production",
        &[
            ("PORT", &port),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
            ("ACME_DOMAINS", "acme.test"),
            ("ACME_EMAIL", "ops@acme.test"),
            ("ACME_DIRECTORY", &pebble.directory),
            ("ACME_CA_BUNDLE", pebble.api_ca.to_str().unwrap()),
            ("ACME_CACHE_DIR", cache),
        ],
    )
}

#[test]
fn the_flagship_obtains_its_certificate_at_start_and_a_restart_orders_nothing() {
    let dir = TempDir::new("flagship-acme");
    let port = free_port();
    let pebble = Pebble::start(&dir.0, port, free_port());
    let cache = dir.0.join("acme");

    let started = Instant::now();
    let mut child = start(port, &pebble, &cache);
    let line = child.wait_for_line("listening on https://", GENEROUS);
    let took = started.elapsed();
    eprintln!("ready with its first certificate after {took:?}");
    assert_eq!(listening_addr(&line).port(), port);
    child.wait_for_line("ACME: certificate obtained", Duration::ZERO);
    let issuer = served_issuer(port);
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert!(!issuer.contains("placeholder"), "{issuer}");
    assert_eq!(orders_placed(&dir.0), 1);
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());

    // A restart on the same cache directory: ready at once, no order.
    let mut again = start(port, &pebble, &cache);
    again.wait_for_line("listening on https://", GENEROUS);
    assert!(served_issuer(port).contains("Pebble"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(orders_placed(&dir.0), 1, "{}", Pebble::log(&dir.0));
    assert_eq!(again.count("ACME: certificate obtained"), 0);
    again.signal(Signal::SIGTERM);
    let (status, _) = again.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", again.output());
}

#[test]
fn bad_acme_settings_stop_the_start_with_78_naming_each() {
    let mut child = Child::example(
        "production",
        &[
            ("ACME_DOMAINS", "*.wild.test"),
            ("ACME_DIRECTORY", "ftp://ca.example"),
            ("ACME_CHALLENGE", "dns-01"),
            ("TLS_CERT", "/etc/ssl/cert.pem"),
            ("TLS_KEY", "/etc/ssl/key.pem"),
        ],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78), "{}", child.output());
    for expected in [
        "ACME_DOMAINS: either certificates from files",
        "ACME_DOMAINS: invalid, expected DNS names",
        "ACME_DIRECTORY: invalid, expected letsencrypt",
        "ACME_CHALLENGE: invalid, expected tls-alpn-01 or http-01",
    ] {
        child.wait_for_line(expected, Duration::ZERO);
    }
    assert_eq!(child.count("listening on"), 0);

    // A cache directory holding somebody's key: refused, never written over.
    let dir = TempDir::new("flagship-acme-foreign");
    std::fs::write(dir.0.join("key.pem"), "their key\n").unwrap();
    let mut child = Child::example(
        "production",
        &[
            ("ACME_DOMAINS", "acme.test"),
            ("ACME_DIRECTORY", "https://127.0.0.1:9/dir"),
            ("ACME_CACHE_DIR", dir.0.to_str().unwrap()),
        ],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78), "{}", child.output());
    child.wait_for_line("ACME_CACHE_DIR: ACME: ", Duration::ZERO);
    assert!(
        child
            .output()
            .contains("key.pem that seaworthy did not write"),
        "{}",
        child.output()
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("key.pem")).unwrap(),
        "their key\n"
    );
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    assert_eq!(child.count("listening on"), 0);
}

#[test]
fn with_http_01_the_redirect_port_answers_the_validation() {
    let dir = TempDir::new("flagship-acme-http01");
    let (port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir.0, free_port(), http_port);
    let (port_text, http_text) = (port.to_string(), http_port.to_string());
    let cache = dir.0.join("acme");
    let mut child = Child::example(
        "production",
        &[
            ("PORT", &port_text),
            ("HTTP_REDIRECT_PORT", &http_text),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
            ("ACME_DOMAINS", "acme.test"),
            ("ACME_CHALLENGE", "http-01"),
            ("ACME_DIRECTORY", &pebble.directory),
            ("ACME_CA_BUNDLE", pebble.api_ca.to_str().unwrap()),
            ("ACME_CACHE_DIR", cache.to_str().unwrap()),
        ],
    );
    child.wait_for_line("listening on https://", GENEROUS);
    let issuer = served_issuer(port);
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert!(Pebble::log(&dir.0).contains("set VALID by completed challenge"));
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
}

#[test]
fn with_redis_url_the_order_waits_for_the_lease_in_redis_and_releases_it() {
    let dir = TempDir::new("flagship-acme-redis");
    let port = free_port();
    let pebble = Pebble::start(&dir.0, port, free_port());
    let redis = RedisServer::start();
    // Another replica holds the lease.
    let key = "ratelimit:lease:acme:acme.test";
    assert_eq!(
        redis.command(&format!("SET {key} another-replica PX 60000")),
        "+OK"
    );
    let cache = dir.0.join("acme");
    let (port_text, url) = (port.to_string(), redis.url());
    let mut child = Child::example(
        "production",
        &[
            ("PORT", &port_text),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
            ("REDIS_URL", &url),
            ("ACME_DOMAINS", "acme.test"),
            ("ACME_DIRECTORY", &pebble.directory),
            ("ACME_CA_BUNDLE", pebble.api_ca.to_str().unwrap()),
            ("ACME_CACHE_DIR", cache.to_str().unwrap()),
        ],
    );
    // While it is held elsewhere, nothing is ordered (and the lock file is
    // not used instead).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(orders_placed(&dir.0), 0, "{}", child.output());
    assert_eq!(child.count("listening on"), 0);
    assert!(!cache.join("order.lock").exists());

    // Released: this replica takes it, orders once, and gives it back.
    assert_eq!(redis.command(&format!("DEL {key}")), ":1");
    child.wait_for_line("listening on https://", GENEROUS);
    assert!(served_issuer(port).contains("Pebble"));
    assert_eq!(orders_placed(&dir.0), 1);
    let started = Instant::now();
    while redis.command(&format!("EXISTS {key}")) != ":0" {
        assert!(started.elapsed() < GENEROUS, "the lease was not released");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
}

#[test]
fn the_ca_gone_after_the_first_certificate_the_pair_keeps_serving_and_readiness_warns() {
    let dir = TempDir::new("flagship-acme-ca-gone");
    let (port, health_port) = (free_port(), free_port());
    // Certificates of 12 s: renewal is due at about 8 s.
    let pebble =
        Pebble::start_with_validity(&dir.0, port, free_port(), Some(Duration::from_secs(12)));
    let cache = dir.0.join("acme");
    let (port_text, health_text) = (port.to_string(), health_port.to_string());
    let mut child = Child::example(
        "production",
        &[
            ("PORT", &port_text),
            ("HEALTH_PORT", &health_text),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
            ("ACME_DOMAINS", "acme.test"),
            ("ACME_DIRECTORY", &pebble.directory),
            ("ACME_CA_BUNDLE", pebble.api_ca.to_str().unwrap()),
            ("ACME_CACHE_DIR", cache.to_str().unwrap()),
        ],
    );
    child.wait_for_line("listening on https://", GENEROUS);
    let health = std::net::SocketAddr::from(([127, 0, 0, 1], health_port));
    let ready = Conn::connect(health).unwrap().get("/health/ready").unwrap();
    assert_eq!(ready.status, 200);
    assert!(String::from_utf8_lossy(&ready.body).contains("next order in"));

    // The CA goes away (killed by its pid) before the renewal.
    drop(pebble);
    let started = Instant::now();
    let body = loop {
        let ready = Conn::connect(health).unwrap().get("/health/ready").unwrap();
        let body = String::from_utf8_lossy(&ready.body).into_owned();
        if body.contains("renewal failed") {
            // A warning: still ready, still in rotation.
            assert_eq!(ready.status, 200, "{body}");
            break body;
        }
        assert!(
            started.elapsed() < GENEROUS,
            "no warning: {body}\n{}",
            child.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        check_status(&body, "tls:expiry").as_deref(),
        Some("warn"),
        "{body}"
    );
    assert!(body.contains("next order in"), "{body}");
    child.wait_for_line(
        "ACME: order failed; the certificate in force keeps serving",
        Duration::ZERO,
    );
    // The pair in force still serves.
    let issuer = served_issuer(port);
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert!(!issuer.contains("placeholder"), "{issuer}");
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
}
