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
//! | `RATE_LIMIT`, `RATE_LIMIT_BURST` | `100/min`, `20` | per client IP (`N/s`, `N/min`, `N/h`), 429 with `Retry-After` past it |
//! | `TRUSTED_PROXIES` | (none) | comma-separated CIDRs whose `X-Forwarded-For` is believed (a `/0` block is warned about: it trusts the whole internet) |
//! | `MAX_BODY`, `REQUEST_TIMEOUT` | `1MiB`, `30s` | request body limit (413), handler timeout (504; more than 0s) |
//! | `TLS_CERT`, `TLS_KEY` | (none) | PEM files (the chain, the server's certificate first; its key): serve HTTPS (HTTP/1.1 and HTTP/2) on `PORT`; reloaded on SIGHUP and when the files change, a pair that fails the checks (half-written, mismatched, expired) is refused and the old one serves on |
//! | `HTTP_REDIRECT_PORT` | (none) | with TLS: a plain-HTTP listener that answers every request with a 308 to the same URL on `https://` (no HSTS there) |
//! | `TLS_TICKET_KEYS` | (none) | with TLS: a file of session-ticket secrets (one per line, at least 32 bytes, the first encrypts) shared by every instance, so a client resumes with any of them; reloaded with the certificates |
//! | `TLS_CLIENT_CA` | (none) | with TLS: require client certificates signed by a CA in this PEM bundle (mutual TLS); the self-probe then needs `HEALTH_PORT` |
//! | `REDIS_URL` | (none) | a secret, never printed: the rate limit is shared by every instance through this Redis (one round trip per decision, 5 ms at most); a non-critical readiness check `redis` PINGs it |
//! | `RATE_LIMIT_REPLICAS` | `1` | with `REDIS_URL`: the instances sharing the limit; while Redis is away each limits alone with `RATE_LIMIT` and its burst divided by this |
//! | `RATE_LIMIT_FALLBACK` | `local` | with `REDIS_URL`, while Redis is away: `local` (the divided limit in memory), `open` (no limit) or `closed` (every request 429) |
//! | `HEADER_READ_TIMEOUT` | `10s` | a request head must arrive within it, and a new connection's first byte, and with TLS its handshake (at least 100ms) |
//! | `WRITE_TIMEOUT` | `30s` | a client that reads nothing of a response for it is cut, and the memory freed (nginx's `send_timeout`; at least 100ms) |
//! | `MAX_CONNECTIONS` | `10000` | connections open at once (1 to 1000000); past it, accept waits |
//! | `MAX_CONNECTIONS_PER_IP` | `256` | connections open at once from one client address (IPv6 by /64; `0`: no limit); at most half of `MAX_CONNECTIONS` and of the descriptor limit; `TRUSTED_PROXIES` are exempt |
//! | `HEALTH_PORT` | (none) | the probes on a listener of their own as well (plain HTTP, a pool of 64 connections): point Kubernetes there, and no flood of `PORT` can starve them |
//! | `UPGRADE_TIMEOUT` | `30s` | how long the new process of an upgrade has to become ready before it is killed |
//! | `UPGRADE_SOCKET` | (none) | a Unix socket path: a new process started by a supervisor asks the running one there for its sockets (hand-off without exec); a path holding anything but this user's socket stops the start (78) and is left untouched |
//!
//! Every variable is read with seaworthy-config: a bad environment stops the
//! start before anything binds, with exit code 78 and one error naming
//! every bad variable (never a value). `--print-config` prints the effective
//! settings, secrets redacted, each with its source.
//!
//! Layers, outermost first: client IP (it never answers, so everything
//! inside sees the resolved client), security headers (`api()` preset) on
//! every response, catch-panic (500), path guard (400), then on the
//! routes but not the probes: rate limit (429), body limit (413), timeout
//! (504).
//!
//! Routes: `GET /` says hello; `GET /slow?ms=N` answers after N ms (at most
//! 60000); `POST /echo` returns the body; `GET /health`, `/health/ready`,
//! `/health/startup` are the probes, mounted outside every other layer, in
//! the IETF health+json format (details for loopback clients only).
//! Readiness fails from the first signal; liveness passes until exit.
//! Checks: the free space of the working directory's filesystem
//! (non-critical, every 10 s), Redis when `REDIS_URL` is set (a `PING`;
//! warns while the shared limit has fallen back), and
//! with TLS the certificates (`tls`: warns 14 days before expiry and while
//! a reload is refused, days left observed).
//!
//! Signals: `SIGTERM`, `SIGINT` or `SIGQUIT` drain (a second forces, a third
//! exits 130). `SIGHUP` reloads the TLS certificates, re-reads and checks
//! the configuration, and never stops the server (a bad configuration or
//! certificate is logged; other settings apply at start, so an upgrade
//! applies them); `SIGUSR1` and `SIGALRM` are logged and ignored.
//! `SIGUSR2` upgrades in place: the executable (the file at this process's
//! path, so a deploy that replaced it starts the new version) is started
//! with the listening socket, prints its own `listening on` line once its
//! readiness passes, and only then this process stops accepting and drains.
//! A new process that fails or is not ready within `UPGRADE_TIMEOUT` is
//! killed; this one keeps serving. With `NOTIFY_SOCKET` set (systemd
//! `Type=notify`), systemd hears READY, RELOADING, MAINPID and STOPPING.
//!
//! Exit codes: those of the shutdown report (0, 1, 124, 130), 78 for a bad
//! variable, 69 when the address cannot be bound (or a hand-over was
//! refused).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query};
use axum::http::Response;
use axum::routing::{get, post};
use seaworthy::Settings;
use seaworthy::config::Loader;
use seaworthy::health::{Check, CheckResult, HealthRegistry, HealthService, Kind};
use seaworthy::layers::client_ip::ClientIpService;
use seaworthy::layers::redis_store::RedisStore;
use seaworthy::layers::tower_http::catch_panic::{
    CatchPanic, CatchPanicLayer, DefaultResponseForPanic,
};
use seaworthy::layers::tower_http::limit::RequestBodyLimitLayer;
use seaworthy::layers::{
    ClientIpLayer, KeyBy, PathGuard, PathGuardLayer, Policy, RateLimitLayer, SecurityHeaders,
    SecurityHeadersLayer, TimeoutLayer,
};
use seaworthy::listener::tls::{HttpsRedirect, Tls, TlsConfig};
use seaworthy::listener::upgrade::Upgrader;
use seaworthy::listener::{Bind, Server};
use seaworthy::shutdown::{EXIT_CONFIG, EXIT_UNAVAILABLE, Shutdown, Signal};
use seaworthy_examples::{exit, init_tracing};
use tower::ServiceBuilder;

/// The longest `/slow` sleeps.
const SLOW_MAX_MS: u64 = 60_000;

/// Signals that would otherwise end the process at once, dropping the
/// requests in flight: SIGHUP re-reads and checks the configuration (and
/// never stops the server: a bad one is logged and the running settings
/// stay); SIGUSR1 and SIGALRM mean nothing here and are logged. (SIGTERM,
/// SIGINT and SIGQUIT drain; SIGUSR2 upgrades.)
fn other_signals(tls: Option<Tls>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // A refused pair is logged by the reload, and the old one serves on.
            if let Some(Ok(changed)) = tls.as_ref().map(Tls::reload) {
                tracing::info!(changed, "SIGHUP: TLS certificates reloaded");
            }
            match Loader::new("").env_file(".env").load::<Settings>() {
                Ok(settings) => match settings.validate().as_slice() {
                    [] => tracing::info!(
                        "SIGHUP: the configuration was re-read and is valid; this version applies \
                         settings at start, so restart (SIGUSR2 upgrades in place) to apply changes"
                    ),
                    problems => tracing::error!(
                        ?problems,
                        "SIGHUP: the configuration is invalid; the running settings stay"
                    ),
                },
                Err(err) => tracing::error!(
                    error = %err,
                    "SIGHUP: the configuration is invalid; the running settings stay"
                ),
            }
        }
    });
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::alarm(), "SIGALRM"),
    ] {
        let mut stream = signal(kind)?;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                tracing::info!(
                    signal = name,
                    "signal ignored: it means nothing to this server"
                );
            }
        });
    }
    Ok(())
}

/// The TLS settings, built and checked: `Err` names the variable at fault.
fn tls(settings: &Settings) -> Result<Option<Tls>, String> {
    let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else {
        return Ok(None);
    };
    // One knob for a new connection's first words: its TLS handshake, like
    // its first request head, must arrive within HEADER_READ_TIMEOUT.
    let mut config = TlsConfig::new(cert, key).handshake_timeout(settings.header_read_timeout);
    if let Some(bundle) = &settings.tls_client_ca {
        config = config.client_ca(bundle);
    }
    if let Some(keys) = &settings.tls_ticket_keys {
        config = config.ticket_keys(keys);
    }
    config.build().map(Some).map_err(|err| {
        let variable = match err.path() {
            Some(path) if path == key => "TLS_KEY",
            Some(path) if Some(path) == settings.tls_client_ca.as_deref() => "TLS_CLIENT_CA",
            Some(path) if Some(path) == settings.tls_ticket_keys.as_deref() => "TLS_TICKET_KEYS",
            _ => "TLS_CERT",
        };
        format!("{variable}: {err}")
    })
}

/// Warn this long before the certificate expires.
const TLS_WARN_BEFORE: Duration = Duration::from_secs(14 * 86_400);

/// Connections the `HEALTH_PORT` listener takes at once: probes are few.
const HEALTH_CONNECTIONS: usize = 64;

/// A serve loop as a critical task: if it ever ends by a panic, the process
/// shuts down and exits 1 instead of keeping the port with nobody accepting.
fn spawn_serving(
    shutdown: &Shutdown,
    name: &'static str,
    serving: impl std::future::Future<Output = ()> + Send + 'static,
) {
    shutdown.spawn_critical(name, async move {
        serving.await;
        Ok::<_, std::convert::Infallible>(())
    });
}

/// A listener error with the operating system's reason.
fn with_cause(err: &seaworthy::listener::Error) -> String {
    let cause = err
        .io_error()
        .map(|io| format!(": {io}"))
        .unwrap_or_default();
    format!("{err}{cause}")
}

/// The probes alone, for `HEALTH_PORT`: client IP (for the details) and
/// security headers around them.
fn probes_only(
    health: HealthService,
    settings: &Settings,
) -> ClientIpService<SecurityHeaders<Router>> {
    let routes = Router::new()
        .route_service("/health", health.clone())
        .route_service("/health/ready", health.clone())
        .route_service("/health/startup", health);
    ServiceBuilder::new()
        .layer(ClientIpLayer::new(settings.trusted_proxies.clone()))
        .layer(SecurityHeadersLayer::api())
        .service(routes)
}

/// The routes and the stack, in the documented order; the rate limit in
/// Redis when `redis` is given, else in this process's memory.
fn app(health: HealthService, settings: &Settings, redis: Option<RedisStore>) -> Probed {
    let trusted = settings.trusted_proxies.clone();
    let max_body = usize::try_from(settings.max_body).unwrap_or(usize::MAX);
    let quota = settings.rate_limit.burst(settings.rate_limit_burst);
    let routes = Router::new()
        .route("/", get(|| async { "hello from seaworthy\n" }))
        .route("/slow", get(slow))
        .route("/echo", post(|body: Bytes| async move { body }))
        .layer(
            ServiceBuilder::new()
                // A declared Content-Length over the limit is a 413 before
                // the body is read, so `Expect: 100-continue` gets no 100
                // Continue (tower-http's limit); a chunked body is counted
                // by axum's own limit as its extractors read it.
                .map_response(|response: Response<_>| response.map(Body::new))
                .layer(RequestBodyLimitLayer::new(max_body))
                .layer(DefaultBodyLimit::max(max_body))
                .layer(TimeoutLayer::new(settings.request_timeout)),
        );
    // The rate limit outermost of the routes' layers.
    let routes = match redis {
        Some(store) => routes.layer(RateLimitLayer::with_store(
            Policy::new("default", quota, KeyBy::ClientIp { ipv6_prefix: 64 }),
            store,
        )),
        None => routes.layer(RateLimitLayer::new(quota)),
    };
    let routes = routes
        // The probes: outside the rate limit, body limit and timeout.
        .route_service("/health", health.clone())
        .route_service("/health/ready", health.clone())
        .route_service("/health/startup", health);
    ServiceBuilder::new()
        .layer(ClientIpLayer::new(trusted))
        .layer(SecurityHeadersLayer::api())
        .layer(CatchPanicLayer::new())
        .layer(PathGuardLayer::new())
        .service(routes)
}

/// The whole service the server runs.
type Probed =
    ClientIpService<SecurityHeaders<CatchPanic<PathGuard<Router>, DefaultResponseForPanic>>>;

/// The shared rate-limit store on `url`, with the fallback the settings
/// choose.
fn redis_store(
    url: &str,
    settings: &Settings,
) -> Result<RedisStore, seaworthy::layers::redis_store::RedisStoreError> {
    RedisStore::builder(url)
        .fallback(settings.redis_fallback())
        .build()
}

/// Redis for readiness: a `PING` within 200 ms (its time observed), and a
/// warning while the shared limit has fallen back. Non-critical: the
/// service runs on without Redis.
fn redis_check(store: RedisStore) -> Check {
    Check::new("redis", move || {
        let store = store.clone();
        async move {
            let ping = store.ping(Duration::from_millis(200)).await;
            let status = store.status();
            let result = match (&ping, status.degraded) {
                (Err(err), _) => CheckResult::fail().with_output(err.to_string()),
                (Ok(_), true) => CheckResult::warn().with_output(format!(
                    "the rate limit has fallen back: {}",
                    status.last_error.unwrap_or_default()
                )),
                (Ok(_), false) => CheckResult::pass(),
            };
            let millis = ping.map_or(0.0, |took| took.as_secs_f64() * 1000.0);
            Ok::<_, std::convert::Infallible>(
                result.with_observed((millis * 100.0).round() / 100.0, "ms"),
            )
        }
    })
    .kind(Kind::Dependency)
    .measurement("responseTime")
    .component_type("datastore")
    .critical(false)
    .timeout(Duration::from_millis(300))
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
/// `HEALTHCHECK` in an image without curl: on `HEALTH_PORT` when set, else
/// on `PORT`, over TLS when the server serves it.
async fn healthcheck(settings: &Settings) -> ExitCode {
    let ip = match settings.host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let healthy = match (settings.health_port, &settings.tls_cert) {
        (None, Some(_)) => {
            let addr = SocketAddr::new(ip, settings.port);
            match https_probe(addr).await {
                Ok(()) => true,
                Err(err) => {
                    let hint = if settings.tls_client_ca.is_some() {
                        " (TLS_CLIENT_CA requires client certificates: set HEALTH_PORT for probes)"
                    } else {
                        ""
                    };
                    eprintln!("unhealthy: https://{addr}/health: {err}{hint}");
                    false
                }
            }
        }
        (port, _) => {
            let addr = SocketAddr::new(ip, port.unwrap_or(settings.port));
            seaworthy::health::probe(&format!("http://{addr}/health")) == 0
        }
    };
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `GET /health` over TLS to this machine's own server, within 5 s. The
/// certificate is not checked against a name (it names the public host,
/// not 127.0.0.1): this asks whether the server is alive, over a loopback
/// connection nobody else can stand in for; the handshake's signatures
/// are still verified.
async fn https_probe(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Loopback(provider)))
        .with_no_client_auth();
    let ask = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0_u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(Duration::from_secs(5), ask).await??;
    if head.starts_with(b"HTTP/1.1 2") {
        Ok(())
    } else {
        Err(format!("answered {}", String::from_utf8_lossy(&head[9..])).into())
    }
}

/// The self-probe's certificate check: signatures verified, names not (see
/// [`https_probe`]).
#[derive(Debug)]
struct Loopback(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Loopback {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::main]
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
    let addr = SocketAddr::new(settings.host, settings.port);
    match std::env::args().nth(1).as_deref() {
        Some("healthcheck") => return healthcheck(&settings).await,
        Some("--print-config") => {
            print!("{}", loader.explain(&settings));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let problems = settings.validate();
    if !problems.is_empty() {
        let count = problems.len();
        let plural = if count == 1 { "" } else { "s" };
        eprintln!("invalid configuration: {count} problem{plural}");
        for problem in problems {
            eprintln!("  {problem}");
        }
        return exit(EXIT_CONFIG);
    }
    // Certificates are checked before anything binds: a bad pair stops the
    // start (and an upgrade's new process never becomes ready).
    let tls = match tls(&settings) {
        Ok(tls) => tls,
        Err(problem) => {
            eprintln!("invalid configuration: 1 problem\n  {problem}");
            return exit(EXIT_CONFIG);
        }
    };
    if settings.trusted_proxies.trusts_everyone() {
        tracing::warn!(
            "TRUSTED_PROXIES contains a /0 block: every address on the internet is a trusted \
             proxy, so any client can choose its own address (and rate-limit bucket) with \
             X-Forwarded-For; list only your proxies' addresses"
        );
    }

    let shutdown = match Shutdown::builder()
        .timeout(settings.shutdown_timeout)
        .drain_delay(settings.shutdown_drain_delay)
        // SIGQUIT drains like SIGTERM, as nginx's QUIT does.
        .signals([Signal::Term, Signal::Int, Signal::Quit])
        .build()
    {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("invalid configuration: {err}");
            return exit(EXIT_CONFIG);
        }
    };

    if let Err(err) = other_signals(tls.clone()) {
        eprintln!("cannot listen for signals: {err}");
        return exit(EXIT_UNAVAILABLE);
    }

    // Takes over the sockets of the process this one replaces, if any.
    let mut upgrader = Upgrader::builder().ready_timeout(settings.upgrade_timeout);
    if let Some(path) = &settings.upgrade_socket {
        upgrader = upgrader.handoff_socket(path);
    }
    let upgrader = match upgrader.build(&shutdown.token()) {
        Ok(upgrader) => upgrader,
        Err(err) if err.is_config() => {
            eprintln!("invalid configuration: 1 problem\n  UPGRADE_SOCKET: {err}");
            return exit(EXIT_CONFIG);
        }
        Err(err) => {
            eprintln!("{err}");
            return exit(EXIT_UNAVAILABLE);
        }
    };
    let listener = match upgrader.listener("http", Bind::tcp(addr)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{}", with_cause(&err));
            return exit(EXIT_UNAVAILABLE);
        }
    };
    let health_listener = match settings.health_port {
        Some(port) => {
            match upgrader.listener("health", Bind::tcp(SocketAddr::new(settings.host, port))) {
                Ok(listener) => Some(listener),
                Err(err) => {
                    eprintln!("HEALTH_PORT: {}", with_cause(&err));
                    return exit(EXIT_UNAVAILABLE);
                }
            }
        }
        None => None,
    };
    let redirect_listener = match settings.http_redirect_port {
        Some(port) => {
            match upgrader.listener("redirect", Bind::tcp(SocketAddr::new(settings.host, port))) {
                Ok(listener) => Some(listener),
                Err(err) => {
                    eprintln!("HTTP_REDIRECT_PORT: {}", with_cause(&err));
                    return exit(EXIT_UNAVAILABLE);
                }
            }
        }
        None => None,
    };
    let listening = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("cannot read the listening address: {err}");
            return exit(EXIT_UNAVAILABLE);
        }
    };

    let mut health = HealthRegistry::builder()
        .shutdown(shutdown.token())
        .check(disk_check());
    let redis_store = match &settings.redis_url {
        Some(url) => match redis_store(url.expose(), &settings) {
            Ok(store) => Some(store),
            Err(err) => {
                eprintln!("invalid configuration: 1 problem\n  REDIS_URL: {err}");
                return exit(EXIT_CONFIG);
            }
        },
        None => None,
    };
    if let Some(store) = &redis_store {
        health = health.check(redis_check(store.clone()));
    }
    if let Some(tls) = &tls {
        health = health.check(seaworthy::tls_check(tls, TLS_WARN_BEFORE));
    }
    let health = match health.build() {
        Ok(health) => health,
        Err(err) => {
            eprintln!("invalid health checks: {err}");
            return exit(EXIT_CONFIG);
        }
    };
    // Check details for clients on this machine only: the client the
    // client-IP layer resolved (the probes are inside it), not the TCP
    // peer, which is a proxy on this host for every client behind it.
    let probes = HealthService::new(health.clone()).authorizer(seaworthy::authorize::loopback());

    let mut server = Server::new()
        .header_read_timeout(settings.header_read_timeout)
        .write_timeout(settings.write_timeout)
        .max_connections(settings.max_connections);
    if settings.max_connections_per_ip > 0 {
        // The proxies in front bring many clients each: not limited.
        let trusted = settings.trusted_proxies.clone();
        server = server
            .max_connections_per_ip(settings.max_connections_per_ip)
            .per_ip_exempt(move |ip| trusted.contains(ip));
    }
    if let Some(health_listener) = health_listener {
        // The probes on a port of their own, with a pool of their own: no
        // flood of the main port can starve them.
        let addr = health_listener
            .local_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let health_server = Server::new()
            .max_connections(HEALTH_CONNECTIONS)
            .max_connections_per_ip(HEALTH_CONNECTIONS / 2)
            .header_read_timeout(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(30));
        let serving = health_server.serve(
            health_listener,
            probes_only(probes.clone(), &settings),
            shutdown.token(),
        );
        spawn_serving(&shutdown, "health-http", serving);
        tracing::info!(%addr, "health probes on their own port");
    }
    if let Some(redirect_listener) = redirect_listener {
        let addr = redirect_listener
            .local_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let https_port = listening.as_tcp().map_or(443, |addr| addr.port());
        let mut redirect = Server::new()
            .header_read_timeout(settings.header_read_timeout)
            .max_connections(settings.max_connections);
        if settings.max_connections_per_ip > 0 {
            redirect = redirect.max_connections_per_ip(settings.max_connections_per_ip);
        }
        let serving = redirect.serve(
            redirect_listener,
            HttpsRedirect::new().https_port(https_port),
            shutdown.token(),
        );
        spawn_serving(&shutdown, "http-redirect", serving);
        tracing::info!(%addr, https_port, "redirecting plain HTTP to HTTPS");
    }
    if let Some(tls) = &tls {
        server = server.tls(tls.clone());
        // Reloads when the files change (a renewal, a Kubernetes secret).
        shutdown.spawn("tls-watch", tls.clone().watch(shutdown.token()));
    }
    let serving = server.serve(
        listener,
        app(probes, &settings, redis_store),
        shutdown.token(),
    );
    spawn_serving(&shutdown, "http", serving);

    // Ready means readiness passes, not merely bound: only then does an
    // upgrade's old process stop accepting.
    if health.until_ready().await {
        if let Err(err) = upgrader.ready().await {
            eprintln!("{err}");
            return exit(EXIT_UNAVAILABLE);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!(
            "listening on {scheme}://{listening} (pid {})",
            std::process::id()
        );
    }
    let report = shutdown.wait().await;
    std::process::exit(report.exit_code());
}
