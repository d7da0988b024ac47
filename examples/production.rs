//! The flagship: an axum server wired with every seaworthy capability that
//! has landed. Its interface (variables, routes, signals, the
//! `listening on` line) is a contract; see DESIGN.md and the README.
//!
//! ```text
//! cargo run --release --example production                 # serve
//! cargo run --release --example production -- healthcheck  # exit 0 if the server's liveness passes
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOST`, `PORT` | `127.0.0.1`, `8000` | where to listen (ignored when systemd passes a socket named `http`) |
//! | `SHUTDOWN_DRAIN_DELAY` | `5s` | readiness fails this long before the listener stops accepting |
//! | `SHUTDOWN_TIMEOUT` | `30s` | the whole shutdown budget |
//! | `HEADER_READ_TIMEOUT` | `10s` | a request head must arrive within it |
//! | `MAX_CONNECTIONS` | `10000` | connections open at once; past it, accept waits |
//! | `REDIS_URL` | (none) | a non-critical readiness check connects to its host (sharing rate limits comes later); never printed |
//!
//! Routes: `GET /` says hello; `GET /slow?ms=N` answers after N ms (at most
//! 60000); `POST /echo` returns the body; `GET /health`, `/health/ready`,
//! `/health/startup` are the probes, mounted outside every other layer, in
//! the IETF health+json format (details for loopback clients only).
//! Readiness fails from the first signal; liveness passes until exit.
//! Checks: the free space of the working directory's filesystem
//! (non-critical, every 10 s), and Redis's host when `REDIS_URL` is set.
//!
//! Signals: `SIGTERM` or `SIGINT` drain (a second forces, a third exits 130).
//!
//! Exit codes: those of the shutdown report (0, 1, 124, 130), 78 for a bad
//! variable, 69 when the address cannot be bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::routing::{get, post};
use seaworthy::health::{
    Authorizer, Check, CheckResult, HealthRegistry, HealthService, Kind, checks,
};
use seaworthy::listener::{Bind, ConnectionInfo, Listener, Server};
use seaworthy::shutdown::Shutdown;
use seaworthy_examples::{EX_CONFIG, Env, init_tracing};

/// `EX_UNAVAILABLE` from sysexits.h: the address cannot be had.
const EX_UNAVAILABLE: u8 = 69;
/// The longest `/slow` sleeps.
const SLOW_MAX_MS: u64 = 60_000;

struct Settings {
    addr: SocketAddr,
    /// `host:port` of `REDIS_URL`; the URL itself (which may hold a
    /// password) is never kept or printed.
    redis: Option<String>,
    drain_delay: Duration,
    timeout: Duration,
    header_read_timeout: Duration,
    max_connections: usize,
}

fn settings() -> Result<Settings, Vec<String>> {
    let mut env = Env::new();
    let host: IpAddr = env.parse(
        "HOST",
        [127, 0, 0, 1].into(),
        "an IP address like 127.0.0.1 or ::",
    );
    let port: u16 = env.parse("PORT", 8000, "a port number from 0 to 65535");
    let redis = match std::env::var("REDIS_URL") {
        Ok(url) => match redis_host(&url) {
            Some(host) => Some(host),
            None => {
                // Say what is wrong without echoing the value.
                env.invalid("REDIS_URL", "a URL like redis://host:6379");
                None
            }
        },
        Err(_) => None,
    };
    let settings = Settings {
        addr: SocketAddr::new(host, port),
        redis,
        drain_delay: env.duration("SHUTDOWN_DRAIN_DELAY", Duration::from_secs(5)),
        timeout: env.duration("SHUTDOWN_TIMEOUT", Duration::from_secs(30)),
        header_read_timeout: env.duration("HEADER_READ_TIMEOUT", Duration::from_secs(10)),
        max_connections: env.parse("MAX_CONNECTIONS", 10_000, "a whole number of connections"),
    };
    env.finish(settings)
}

fn router(health: HealthService) -> Router {
    Router::new()
        .route("/", get(|| async { "hello from seaworthy\n" }))
        .route("/slow", get(slow))
        .route("/echo", post(|body: Bytes| async move { body }))
        // Layers added to the routes above (later: rate limit, headers)
        // stay off the probes: they are mounted last, outside.
        .route_service("/health", health.clone())
        .route_service("/health/ready", health.clone())
        .route_service("/health/startup", health)
}

/// `host:port` of a `redis://[user:password@]host[:port][/db]` URL.
fn redis_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    if host_port.is_empty() {
        return None;
    }
    Some(if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    })
}

/// The free space of the filesystem holding the working directory: warns
/// under 10 %, fails under 2 % (non-critical: readiness warns, still 200).
fn disk_check() -> Check {
    Check::new("disk", || async {
        let stat = nix::sys::statvfs::statvfs(".")?;
        let total = stat.blocks() as f64;
        let free = stat.blocks_available() as f64;
        let free_percent = if total > 0.0 {
            free / total * 100.0
        } else {
            100.0
        };
        let result = match free_percent {
            p if p < 2.0 => CheckResult::fail(),
            p if p < 10.0 => CheckResult::warn(),
            _ => CheckResult::pass(),
        };
        Ok::<_, nix::Error>(
            result.with_observed((free_percent * 10.0).round() / 10.0, "percent free"),
        )
    })
    .kind(Kind::Process)
    .measurement("utilization")
    .component_type("system")
    .critical(false)
    .background(Duration::from_secs(10))
}

#[derive(serde::Deserialize)]
struct SlowParams {
    #[serde(default)]
    ms: u64,
}

async fn slow(Query(params): Query<SlowParams>) -> String {
    let ms = params.ms.min(SLOW_MAX_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

/// `healthcheck`: asks the running server's liveness probe, for Docker's
/// `HEALTHCHECK` in an image without curl.
fn healthcheck(addr: SocketAddr) -> ExitCode {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}/health", SocketAddr::new(ip, addr.port()));
    match seaworthy::health::probe(&url) {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let settings = match settings() {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("invalid configuration:\n  {}", errors.join("\n  "));
            return ExitCode::from(EX_CONFIG);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(settings.addr);
    }

    let shutdown = match Shutdown::builder()
        .timeout(settings.timeout)
        .drain_delay(settings.drain_delay)
        .build()
    {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("invalid configuration: {err}");
            return ExitCode::from(EX_CONFIG);
        }
    };

    let listener = match Listener::inherit_or_bind("http", Bind::tcp(settings.addr)) {
        Ok(listener) => listener,
        Err(err) => {
            let cause = err
                .io_error()
                .map(|io| format!(": {io}"))
                .unwrap_or_default();
            eprintln!("{err}{cause}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("cannot read the listening address: {err}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };

    let mut health = HealthRegistry::builder()
        .shutdown(shutdown.token())
        .check(disk_check());
    if let Some(redis) = &settings.redis {
        health = health.check(checks::tcp("redis", redis.clone()).critical(false));
    }
    let health = match health.build() {
        Ok(health) => health,
        Err(err) => {
            eprintln!("invalid health checks: {err}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    // Check details for clients on this machine only.
    let details = Authorizer::predicate(|parts| {
        parts
            .extensions
            .get::<ConnectionInfo>()
            .and_then(|info| info.peer_addr().as_tcp())
            .is_some_and(|peer| peer.ip().is_loopback())
    });
    let probes = HealthService::new(health).authorizer(details);

    let server = Server::new()
        .header_read_timeout(settings.header_read_timeout)
        .max_connections(settings.max_connections);
    shutdown.spawn(
        "http",
        server.serve(listener, router(probes), shutdown.token()),
    );

    println!("listening on http://{addr} (pid {})", std::process::id());
    let report = shutdown.wait().await;
    std::process::exit(report.exit_code());
}
