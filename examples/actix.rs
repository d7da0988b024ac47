//! The flagship's contract on actix-web 4: the same variables (those
//! actix can honour), routes, signals and `listening on` line as
//! `production.rs`, with seaworthy-actix's middlewares, probes, listener
//! and shutdown wiring. The contract's end-to-end tests run against both.
//!
//! ```text
//! cargo run --release --example actix
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOST`, `PORT` | `127.0.0.1`, `8000` | where to listen |
//! | `SHUTDOWN_DRAIN_DELAY`, `SHUTDOWN_TIMEOUT` | `5s`, `30s` | readiness fails for the delay, then actix stops accepting and has the rest of the budget |
//! | `RATE_LIMIT`, `RATE_LIMIT_BURST` | `100/min`, `20` | per client IP, 429 with `Retry-After` past it |
//! | `TRUSTED_PROXIES` | (none) | CIDRs whose `X-Forwarded-For` is believed |
//! | `MAX_BODY`, `REQUEST_TIMEOUT` | `1MiB`, `30s` | request body limit (413), handler timeout (504) |
//! | `UPGRADE_TIMEOUT` | `30s` | how long an upgrade's new process has to become ready |
//!
//! Routes: `GET /`, `GET /slow?ms=N`, `POST /echo`, and the probes
//! `/health`, `/health/ready`, `/health/startup`. `actix healthcheck` asks
//! the running server's liveness (exit 0 or 1); `--print-config` shows the
//! settings and their sources. Signals: `SIGTERM`,
//! `SIGINT`, `SIGQUIT` drain; `SIGUSR2` upgrades in place (the new process
//! takes the socket, and actix in it accepts only once the old one has
//! handed over). Exit codes as the flagship's.
//!
//! Settings are seaworthy's `Settings` (the flagship's variables); those
//! this example cannot honour stop the start with 78, naming each, rather
//! than being ignored. What actix cannot do that `production.rs` does, and
//! so is not offered here: HTTP/2 with prior knowledge on plain TCP (actix's h2c detection
//! waits for a silent client forever: see `seaworthy::actix::listen`; an
//! HTTP/2 client's connection is closed), the header-read and write
//! timeouts and the per-client connection limit of seaworthy's `Server`
//! (actix has its own `client_request_timeout`), TLS through
//! seaworthy-listener (so no `ACME_DOMAINS` either), `HEALTH_PORT`, `HTTP_REDIRECT_PORT`, `REDIS_URL`
//! (the store works with actix: `RateLimit::with_limiter` over a
//! `RedisStore`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use seaworthy::Settings;
use seaworthy::actix::{CloseWhenDraining, PathGuard, RateLimit, ResolveClientIp, SecurityHeaders};
use seaworthy::config::Loader;
use seaworthy::health::{HealthRegistry, HealthService};
use seaworthy::layers::RateLimiter;
use seaworthy::listener::Bind;
use seaworthy::listener::upgrade::Upgrader;
use seaworthy::shutdown::{EXIT_CONFIG, EXIT_UNAVAILABLE, Shutdown, Signal};
use seaworthy_examples::{exit, init_tracing};

/// The longest `/slow` sleeps.
const SLOW_MAX_MS: u64 = 60_000;
/// The probes, never rate limited.
const PROBES: [&str; 3] = ["/health", "/health/ready", "/health/startup"];

/// What seaworthy's `Settings` offer that this example cannot honour on
/// actix: each one set is a problem (78), never silently ignored.
fn not_offered(settings: &Settings) -> Vec<String> {
    let default = Settings::default();
    let mut problems = Vec::new();
    let mut refuse = |set: bool, variable: &str| {
        if set {
            problems.push(format!(
                "{variable}: not offered by the actix example (see its documentation)"
            ));
        }
    };
    refuse(settings.tls_cert.is_some(), "TLS_CERT");
    refuse(settings.tls_key.is_some(), "TLS_KEY");
    refuse(settings.http_redirect_port.is_some(), "HTTP_REDIRECT_PORT");
    refuse(settings.tls_client_ca.is_some(), "TLS_CLIENT_CA");
    refuse(settings.tls_ticket_keys.is_some(), "TLS_TICKET_KEYS");
    refuse(settings.redis_url.is_some(), "REDIS_URL");
    refuse(settings.health_port.is_some(), "HEALTH_PORT");
    refuse(settings.upgrade_socket.is_some(), "UPGRADE_SOCKET");
    refuse(!settings.acme_domains.is_empty(), "ACME_DOMAINS");
    refuse(
        settings.header_read_timeout != default.header_read_timeout,
        "HEADER_READ_TIMEOUT",
    );
    refuse(
        settings.write_timeout != default.write_timeout,
        "WRITE_TIMEOUT",
    );
    refuse(
        settings.max_connections != default.max_connections,
        "MAX_CONNECTIONS",
    );
    refuse(
        settings.max_connections_per_ip != default.max_connections_per_ip,
        "MAX_CONNECTIONS_PER_IP",
    );
    problems
}

#[derive(serde::Deserialize)]
struct SlowParams {
    #[serde(default)]
    ms: u64,
}

async fn slow(params: web::Query<SlowParams>) -> String {
    let ms = params.ms.min(SLOW_MAX_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

/// `healthcheck`: asks the running server's liveness probe on `PORT`, for
/// Docker's `HEALTHCHECK` in an image without curl.
fn healthcheck(settings: &Settings) -> ExitCode {
    let ip = match settings.host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, settings.port);
    match seaworthy::health::probe(&format!("http://{addr}/health")) {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    init_tracing();
    let loader = Loader::new("").env_file(".env");
    let settings: Settings = match loader.load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return exit(EXIT_CONFIG);
        }
    };
    match std::env::args().nth(1).as_deref() {
        Some("healthcheck") => return healthcheck(&settings),
        Some("--print-config") => {
            print!("{}", loader.explain(&settings));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let mut problems = settings.validate();
    problems.extend(not_offered(&settings));
    if !problems.is_empty() {
        let plural = if problems.len() == 1 { "" } else { "s" };
        eprintln!("invalid configuration: {} problem{plural}", problems.len());
        for problem in problems {
            eprintln!("  {problem}");
        }
        return exit(EXIT_CONFIG);
    }
    let shutdown = match Shutdown::builder()
        .timeout(settings.shutdown_timeout)
        .drain_delay(settings.shutdown_drain_delay)
        .signals([Signal::Term, Signal::Int, Signal::Quit])
        .build()
    {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("invalid configuration: {err}");
            return exit(EXIT_CONFIG);
        }
    };
    let upgrader = match Upgrader::builder()
        .ready_timeout(settings.upgrade_timeout)
        .build(&shutdown.handle())
    {
        Ok(upgrader) => upgrader,
        Err(err) => {
            eprintln!("{err}");
            return exit(EXIT_UNAVAILABLE);
        }
    };
    let addr = SocketAddr::new(settings.host, settings.port);
    let listener = match upgrader.listener("http", Bind::tcp(addr)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{err}");
            return exit(EXIT_UNAVAILABLE);
        }
    };
    let Ok(listening) = listener.local_addr() else {
        eprintln!("cannot read the listening address");
        return exit(EXIT_UNAVAILABLE);
    };

    let health = match HealthRegistry::builder().shutdown(shutdown.token()).build() {
        Ok(health) => health,
        Err(err) => {
            eprintln!("invalid health checks: {err}");
            return exit(EXIT_CONFIG);
        }
    };
    let probes = HealthService::new(health.clone()).authorizer(seaworthy::authorize::loopback());
    let quota = settings.rate_limit.burst(settings.rate_limit_burst);
    let limiter = RateLimiter::new(quota).skip_paths(PROBES);
    let trusted = settings.trusted_proxies.clone();
    let max_body = usize::try_from(settings.max_body).unwrap_or(usize::MAX);
    let request_timeout = settings.request_timeout;
    let drain = shutdown.token();
    let app = move || {
        App::new()
            .app_data(web::PayloadConfig::new(max_body))
            // Resources, so that another method is a 405 as in the flagship.
            .service(web::resource("/").get(|| async { "hello from seaworthy\n" }))
            .service(web::resource("/slow").get(slow))
            .service(web::resource("/echo").post(|body: web::Bytes| async move { body }))
            .configure(seaworthy::actix::probes(probes.clone()))
            // Innermost: the handler's time limit (504).
            .wrap(actix_web::middleware::from_fn(
                move |request: actix_web::dev::ServiceRequest,
                      next: actix_web::middleware::Next<actix_web::body::BoxBody>| async move {
                    match tokio::time::timeout(request_timeout, next.call(request)).await {
                        Ok(response) => response,
                        Err(_) => Err(actix_web::error::ErrorGatewayTimeout("request timed out")),
                    }
                },
            ))
            .wrap(RateLimit::with_limiter(limiter.clone()))
            .wrap(PathGuard::new())
            .wrap(SecurityHeaders::api())
            .wrap(ResolveClientIp::new(trusted.clone()))
            .wrap(CloseWhenDraining::new(drain.clone()))
    };

    // Ready means readiness passes; only then may an upgrade's old process
    // stop, and only then does actix take the socket.
    if !health.until_ready().await {
        // A signal during the start: nothing was served, nothing to drain.
        std::process::exit(shutdown.wait().await.exit_code());
    }
    if let Err(err) = upgrader.ready().await {
        eprintln!("{err}");
        return exit(EXIT_UNAVAILABLE);
    }
    let server = HttpServer::new(app)
        .disable_signals()
        .shutdown_timeout(seaworthy::actix::shutdown_timeout(
            settings.shutdown_timeout,
            settings.shutdown_drain_delay,
        ))
        .workers(2);
    let server = match seaworthy::actix::listen(server, listener).await {
        Ok(server) => server.run(),
        Err(err) => {
            eprintln!("cannot serve the listener: {err}");
            return exit(EXIT_UNAVAILABLE);
        }
    };
    actix_web::rt::spawn(seaworthy::actix::serve(server, shutdown.token()));
    println!(
        "listening on http://{listening} (pid {})",
        std::process::id()
    );
    let report = shutdown.wait().await;
    std::process::exit(report.exit_code());
}
