//! The flagship: an axum server wired with every seaworthy capability that
//! has landed, through `seaworthy::App`: the routes and one check are all
//! it adds. Its interface (variables, routes, signals, the `listening on`
//! line) is a contract; see DESIGN.md and the README.
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
//! | `ACME_DOMAINS` | (none) | comma-separated names: HTTPS on `PORT` with certificates obtained and renewed from an ACME CA (TLS-ALPN-01 on `PORT`: the CA must reach it on 443), instead of `TLS_CERT`/`TLS_KEY`; not ready (no `listening on` line) until the first certificate is served |
//! | `ACME_EMAIL` | (none) | the ACME account's contact |
//! | `ACME_DIRECTORY` | `letsencrypt` | `letsencrypt`, `letsencrypt-staging`, or an `https://` directory URL |
//! | `ACME_CACHE_DIR` | `acme` | account, certificate and key (0600); replicas sharing it place one order and all serve the result |
//! | `ACME_CA_BUNDLE` | (none) | the CA of a private ACME server's HTTPS (Pebble, step-ca) |
//! | `ACME_CHALLENGE` | `tls-alpn-01` | `tls-alpn-01` (answered on `PORT`) or `http-01` (answered on `HTTP_REDIRECT_PORT`) |
//! | `ACME_UNTIL_ISSUED` | `placeholder` | before the first certificate: `placeholder` (a temporary self-signed pair serves on `PORT`, readiness fails) or `refuse` (every handshake but the CA's validations refused; put probes on `HEALTH_PORT`) |
//!
//! Every variable is read with seaworthy-config: a bad environment stops the
//! start before anything binds, with exit code 78 and one error naming
//! every bad variable (never a value). `--print-config` prints the effective
//! settings, secrets redacted, each with its source.
//!
//! Layers, outermost first: client IP (it never answers, so everything
//! inside sees the resolved client), request id (`X-Request-Id` from a
//! trusted proxy kept, else generated; echoed), access log (one event per
//! request, target `seaworthy::access`, the probes left out), security
//! headers (`api()` preset) on every response, catch-panic (500), path
//! guard (400), then on the routes but not the probes: rate limit (429),
//! body limit (413), timeout (504).
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

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::routing::{get, post};
use seaworthy::health::checks;
use seaworthy_examples::init_tracing;

/// The longest `/slow` sleeps.
const SLOW_MAX_MS: u64 = 60_000;

#[derive(serde::Deserialize)]
struct SlowParams {
    #[serde(default)]
    ms: u64,
}

/// `GET /slow?ms=N`: answers after N ms, to watch a drain.
async fn slow(Query(params): Query<SlowParams>) -> String {
    let ms = params.ms.min(SLOW_MAX_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let routes = Router::new()
        .route("/", get(|| async { "hello from seaworthy\n" }))
        .route("/slow", get(slow))
        .route("/echo", post(|body: Bytes| async move { body }));
    seaworthy::App::from_env()
        .check(checks::disk_space("disk", "."))
        .serve(routes)
        .await
}
