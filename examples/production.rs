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
//!
//! Routes: `GET /` says hello; `GET /slow?ms=N` answers after N ms (at most
//! 60000); `POST /echo` returns the body; `GET /health`, `/health/ready`,
//! `/health/startup` are the probes (readiness fails while draining).
//!
//! Signals: `SIGTERM` or `SIGINT` drain (a second forces, a third exits 130).
//!
//! Exit codes: those of the shutdown report (0, 1, 124, 130), 78 for a bad
//! variable, 69 when the address cannot be bound.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use seaworthy::listener::{Bind, Listener, Server};
use seaworthy::shutdown::{Shutdown, ShutdownToken};
use seaworthy_examples::{EX_CONFIG, Env, init_tracing};

/// `EX_UNAVAILABLE` from sysexits.h: the address cannot be had.
const EX_UNAVAILABLE: u8 = 69;
/// The longest `/slow` sleeps.
const SLOW_MAX_MS: u64 = 60_000;

struct Settings {
    addr: SocketAddr,
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
    let settings = Settings {
        addr: SocketAddr::new(host, port),
        drain_delay: env.duration("SHUTDOWN_DRAIN_DELAY", Duration::from_secs(5)),
        timeout: env.duration("SHUTDOWN_TIMEOUT", Duration::from_secs(30)),
        header_read_timeout: env.duration("HEADER_READ_TIMEOUT", Duration::from_secs(10)),
        max_connections: env.parse("MAX_CONNECTIONS", 10_000, "a whole number of connections"),
    };
    env.finish(settings)
}

fn router(token: ShutdownToken) -> Router {
    Router::new()
        .route("/", get(|| async { "hello from seaworthy\n" }))
        .route("/slow", get(slow))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/health", get(|| async { health(true) }))
        .route("/health/startup", get(|| async { health(true) }))
        .route(
            "/health/ready",
            get(|State(token): State<ShutdownToken>| async move { health(!token.is_shutting_down()) }),
        )
        .with_state(token)
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

/// A probe answer in the health+json format (seaworthy-health replaces this).
fn health(pass: bool) -> impl IntoResponse {
    let (status, body) = if pass {
        (StatusCode::OK, r#"{"status":"pass"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"fail"}"#)
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "application/health+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

/// `healthcheck`: asks the running server's liveness probe, for Docker's
/// `HEALTHCHECK` in an image without curl.
fn healthcheck(addr: SocketAddr) -> ExitCode {
    let addr = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let ask = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.take(4096).read_to_string(&mut response)?;
        Ok(response)
    };
    match ask() {
        Ok(response) if response.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: {}", response.lines().next().unwrap_or(""));
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("unhealthy: cannot reach {addr}: {err}");
            ExitCode::FAILURE
        }
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

    let server = Server::new()
        .header_read_timeout(settings.header_read_timeout)
        .max_connections(settings.max_connections);
    let token = shutdown.token();
    shutdown.spawn("http", server.serve(listener, router(token.clone()), token));

    println!("listening on http://{addr} (pid {})", std::process::id());
    let report = shutdown.wait().await;
    std::process::exit(report.exit_code());
}
