//! The actix skins over real sockets: an actix-web server on loopback,
//! requests as raw HTTP/1.1; the shared limit through a real redis-server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use seaworthy_actix::{PathGuard, RateLimit, ResolveClientIp, SecurityHeaders};
use seaworthy_health::{HealthRegistry, HealthService};
use seaworthy_layers::client_ip::IpNet;
use seaworthy_layers::{Quota, TrustedProxies};
use seaworthy_shutdown::{Shutdown, ShutdownReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status and lowercase headers.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `request` (a full head) on a new connection and reads the answer
/// until the server closes (the request says `Connection: close`).
async fn send(addr: SocketAddr, request: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> Answer {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"),
    )
    .await
}

/// Runs an actix server of the app `factory` makes on a free loopback
/// port, one worker, actix's signals off: its address and handle.
macro_rules! spawn_app {
    ($factory:expr) => {{
        let server = HttpServer::new($factory)
            .disable_signals()
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (addr, handle)
    }};
}

fn loopback() -> TrustedProxies {
    TrustedProxies::new([IpNet::new("127.0.0.1".parse().unwrap(), 32).unwrap()])
}

/// The stack the flagship uses, around a few routes, on a free port.
fn start(
    trusted: TrustedProxies,
    quota: Quota,
    health: HealthService,
) -> (SocketAddr, actix_web::dev::Server) {
    let server = HttpServer::new(move || {
        App::new()
            .route("/", web::get().to(|| async { "hello" }))
            .route(
                "/fail",
                web::get().to(|| async {
                    Err::<HttpResponse, _>(actix_web::error::ErrorInternalServerError("boom"))
                }),
            )
            .route(
                "/slow",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slept"
                }),
            )
            .configure(seaworthy_actix::probes(health.clone()))
            .wrap(RateLimit::with_limiter(
                seaworthy_layers::RateLimiter::new(quota).skip_paths([
                    "/health",
                    "/health/ready",
                    "/health/startup",
                ]),
            ))
            .wrap(PathGuard::new())
            .wrap(SecurityHeaders::api())
            .wrap(ResolveClientIp::new(trusted.clone()))
    })
    .disable_signals()
    .workers(1)
    .shutdown_timeout(5)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    (addr, server.run())
}

fn registry() -> (HealthRegistry, HealthService) {
    let registry = HealthRegistry::builder().build().unwrap();
    let service = HealthService::new(registry.clone());
    (registry, service)
}

#[actix_web::test]
async fn headers_on_every_response_and_hsts_only_over_https() {
    let (_, health) = registry();
    let (addr, server) = start(loopback(), Quota::per_second(1000).burst(1000), health);
    let handle = server.handle();
    actix_web::rt::spawn(server);
    for (path, status) in [
        ("/", 200),
        ("/missing", 404),
        ("/fail", 500),
        ("/a/%2e%2e/b", 400),
    ] {
        let answer = get(addr, path, "").await;
        assert_eq!(answer.status, status, "{path}: {answer:?}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(answer.header("content-security-policy").is_some(), "{path}");
        assert_eq!(
            answer.header("strict-transport-security"),
            None,
            "{path}: plain http"
        );
    }
    // A trusted proxy says the client came over https: HSTS.
    let answer = get(
        addr,
        "/",
        "X-Forwarded-Proto: https\r\nX-Forwarded-For: 198.51.100.1\r\n",
    )
    .await;
    assert!(
        answer.header("strict-transport-security").is_some(),
        "{answer:?}"
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn the_rate_limit_counts_the_resolved_client_and_a_forged_header_buys_nothing() {
    let (_, health) = registry();
    // Nobody trusted: the peer (127.0.0.1) is the client, whatever it says.
    let (addr, server) = start(
        TrustedProxies::none(),
        Quota::per_minute(1).burst(2),
        health,
    );
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let mut statuses = Vec::new();
    for n in 0..6 {
        let forged = format!("X-Forwarded-For: 203.0.113.{n}\r\n");
        statuses.push(get(addr, "/", &forged).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|answer| answer.status).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429, 429]);
    let refused = &statuses[3];
    assert_eq!(refused.header("retry-after"), Some("60"));
    assert!(refused.header("ratelimit").is_some(), "{refused:?}");
    assert!(
        refused.header("x-content-type-options").is_some(),
        "headers on 429s too"
    );
    // The probes are not limited.
    assert_eq!(get(addr, "/health", "").await.status, 200);
    handle.stop(true).await;

    // Behind a trusted proxy, each forwarded client has its own bucket.
    let (_, health) = registry();
    let (addr, server) = start(loopback(), Quota::per_minute(1), health);
    let handle = server.handle();
    actix_web::rt::spawn(server);
    for n in 0..3 {
        let client = format!("X-Forwarded-For: 203.0.113.{n}\r\n");
        assert_eq!(get(addr, "/", &client).await.status, 200);
        assert_eq!(get(addr, "/", &client).await.status, 429);
    }
    handle.stop(true).await;
}

#[actix_web::test]
async fn the_probes_answer_as_seaworthy_health_does() {
    let (registry, health) = registry();
    let (addr, server) = start(loopback(), Quota::per_second(1000).burst(1000), health);
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let live = get(addr, "/health", "").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.header("content-type"), Some("application/health+json"));
    assert!(live.body.contains("\"status\":\"pass\""), "{live:?}");
    let head = send(
        addr,
        "HEAD /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head.status, 200);
    let post = send(
        addr,
        "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 405);
    assert!(
        post.header("allow")
            .is_some_and(|allow| allow.contains("GET"))
    );
    drop(registry);
    handle.stop(true).await;
}

#[actix_web::test]
async fn the_shutdown_stops_actix_after_its_request_in_flight_and_then_refuses() {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(Duration::from_millis(200))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (_, health) = registry();
    let (addr, server) = start(loopback(), Quota::per_second(1000).burst(1000), health);
    let served = actix_web::rt::spawn(seaworthy_actix::serve(server, shutdown.token()));
    let slow = actix_web::rt::spawn(async move { get(addr, "/slow", "").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.trigger(ShutdownReason::requested("test"));
    let started = Instant::now();
    let report = shutdown.wait().await;
    assert!(report.is_clean(), "{report:?}");
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, 200, "the request in flight is answered");
    assert_eq!(answer.body, "slept");
    served.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(TcpStream::connect(addr).await.is_err(), "stopped: refused");
}

#[actix_web::test]
async fn a_seaworthy_listener_moves_into_actix_and_a_stopped_server_refuses() {
    let listener = seaworthy_listener::Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "moved" })))
        .disable_signals()
        .workers(1);
    let server = seaworthy_actix::listen(server, listener)
        .await
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    assert_eq!(get(addr, "/", "").await.body, "moved");
    handle.stop(true).await;
    // No duplicate descriptor kept the socket listening: refused, at once.
    let refused = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
    assert!(matches!(refused, Ok(Err(_))), "{refused:?}");
}

#[actix_web::test]
async fn the_rate_limit_alone_counts_the_peer() {
    // No ResolveClientIp: the limiter keys by actix's peer address (not one
    // shared bucket, and no header believed).
    let (addr, handle) = spawn_app!(|| {
        App::new()
            .route("/", web::get().to(|| async { "hello" }))
            .wrap(RateLimit::new(Quota::per_minute(1).burst(1)))
    });
    let mut codes = Vec::new();
    for n in 0..4 {
        let forged = format!("X-Forwarded-For: 203.0.113.{n}\r\n");
        codes.push(get(addr, "/", &forged).await.status);
    }
    assert_eq!(codes, [200, 200, 429, 429]);
    // Another peer (127.0.0.2) has a bucket of its own.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_handlers_own_header_is_kept_what_the_policy_strips_goes_and_nonces_differ() {
    // Each path the skins take: the prepared headers (nothing of the
    // policy's in the response), the policy's merge (a handler set one of
    // its names or one it strips), the web preset's nonce per request.
    let (addr, handle) = spawn_app!(|| {
        App::new()
            .route(
                "/framed",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header(("X-Frame-Options", "SAMEORIGIN"))
                        .insert_header(("Server", "leaky/1.0"))
                        .insert_header(("X-Powered-By", "php"))
                        .body("framed")
                }),
            )
            .route(
                "/nonce",
                web::get().to(|request: actix_web::HttpRequest| async move {
                    use actix_web::HttpMessage;
                    let nonce = request
                        .extensions()
                        .get::<seaworthy_layers::CspNonce>()
                        .map(|nonce| nonce.0.clone())
                        .unwrap_or_default();
                    HttpResponse::Ok().body(nonce)
                }),
            )
            .route("/", web::get().to(|| async { "plain" }))
            .wrap(SecurityHeaders::web())
    });

    let framed = get(addr, "/framed", "").await;
    assert_eq!(framed.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(framed.header("server"), None, "{framed:?}");
    assert_eq!(framed.header("x-powered-by"), None, "{framed:?}");
    assert_eq!(framed.header("x-content-type-options"), Some("nosniff"));
    let count =
        |answer: &Answer, name: &str| answer.headers.iter().filter(|(key, _)| key == name).count();
    assert_eq!(count(&framed, "x-frame-options"), 1);

    let mut seen = Vec::new();
    for _ in 0..2 {
        let answer = get(addr, "/nonce", "").await;
        let csp = answer.header("content-security-policy").unwrap().to_owned();
        assert!(!answer.body.is_empty());
        assert!(csp.contains(&format!("'nonce-{}'", answer.body)), "{csp}");
        seen.push(answer.body);
    }
    assert_ne!(seen[0], seen[1], "a nonce per request");
    let plain = get(addr, "/", "").await;
    assert_eq!(count(&plain, "x-content-type-options"), 1, "{plain:?}");
    handle.stop(true).await;
}

#[actix_web::test]
async fn fields_on_success_and_delay_mode_answer_as_the_tower_layer() {
    let limiter = seaworthy_layers::RateLimiter::new(Quota::per_second(10).burst(1))
        .headers_on_success(true)
        .delay(true);
    let (addr, handle) = spawn_app!(move || {
        App::new()
            .route("/", web::get().to(|| async { "hello" }))
            .wrap(RateLimit::with_limiter(limiter.clone()))
    });
    // The first passes at once with the fields; the next are held (10/s:
    // about 100 ms each) instead of refused.
    let started = Instant::now();
    for _ in 0..4 {
        let answer = get(addr, "/", "").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.header("ratelimit").is_some(), "{answer:?}");
        assert!(answer.header("ratelimit-policy").is_some(), "{answer:?}");
    }
    // Three waits of ~100 ms: at least most of that was held.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    handle.stop(true).await;
}

#[path = "../../../tests/src/redis_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;

#[actix_web::test]
async fn two_actix_servers_share_one_quota_in_redis() {
    use seaworthy_layers::redis_store::RedisStore;
    use seaworthy_layers::{KeyBy, Policy, RateLimiter};

    let redis = redis_server::RedisServer::start();
    // Two replicas: each its own store, only Redis in common.
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder(redis.url()).build().unwrap();
        // Until the store answers from Redis (not its fallback).
        let started = Instant::now();
        while store.ping(Duration::from_secs(1)).await.is_err() || store.status().degraded {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{:?}",
                store.status()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let limiter = RateLimiter::with_store(
            Policy::new(
                "default",
                Quota::per_minute(1).burst(3),
                KeyBy::ClientIp { ipv6_prefix: 64 },
            ),
            store,
        );
        let (addr, handle) = spawn_app!(move || {
            App::new()
                .route("/", web::get().to(|| async { "hello" }))
                .wrap(RateLimit::with_limiter(limiter.clone()))
        });
        servers.push((addr, handle));
    }
    // One client (127.0.0.1), alternating between the two: 4 in the burst
    // in all (the quota's capacity), then refused on both. (Two memory
    // stores would let 8 through.)
    let mut codes = Vec::new();
    for n in 0..8 {
        let (addr, _) = servers[n % 2];
        codes.push(get(addr, "/", "").await.status);
    }
    assert_eq!(codes, [200, 200, 200, 200, 429, 429, 429, 429]);
    for (_, handle) in servers {
        handle.stop(true).await;
    }
}
