//! Health checks and probes that never hang, never lie and never leak.
//!
//! # Overview
//!
//! A [`HealthRegistry`] holds named [`Check`]s. Each declares what it looks
//! at ([`Kind::Process`] or [`Kind::Dependency`]), the [`Probe`]s it counts
//! in (liveness, readiness, startup), whether it is critical (a failure
//! fails the probe) or not (the probe warns and still answers 200), a
//! timeout, a [`Schedule`] (on demand with a cache TTL, or in the background
//! every interval), a maximum staleness, and optional hysteresis.
//!
//! - **Never hang**: every run happens in a task of its own under the
//!   check's timeout; a probe answers within its own deadline (900 ms by
//!   default, under the kubelet's 1 s) with the last known results; a
//!   panicking check is a failed check.
//! - **Never hammer**: checks run concurrently (a probe takes as long as its
//!   slowest check, never the sum) and single-flight (a thousand probes at
//!   once run each check once); results are cached for their TTL.
//! - **Never lie**: a result older than its maximum staleness is a failure,
//!   not a pass; readiness fails while starting (until every startup check
//!   has passed once), from the first moment of a shutdown's drain, and in
//!   maintenance (which expires by itself).
//! - **Never leak**: the public body carries statuses only; times, values
//!   and messages go to callers an [`Authorizer`] admits; the text of a
//!   check's error goes to tracing, never into any body.
//! - **Never restart for the wrong reason**: a dependency check in liveness
//!   is refused at build time unless allowed explicitly.
//!
//! Bodies follow the IETF draft "Health Check Response Format for HTTP
//! APIs" (`application/health+json`, `pass` / `warn` / `fail`, a `checks`
//! object keyed `name:measurement`), with `Cache-Control: no-store`.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::Router;
//! use seaworthy_health::{checks, Authorizer, Check, CheckResult, HealthRegistry, HealthService, Kind, Probe};
//!
//! # async fn run(shutdown: seaworthy_shutdown::Shutdown) -> Result<(), Box<dyn std::error::Error>> {
//! let registry = HealthRegistry::builder()
//!     .shutdown(shutdown.token()) // readiness fails from the drain on
//!     .check(checks::tcp("db", "db.internal:5432").timeout(Duration::from_millis(300)))
//!     .check(
//!         Check::new("migrations", || async { Ok::<_, std::io::Error>(CheckResult::pass()) })
//!             .kind(Kind::Process)
//!             .probes([Probe::Startup]),
//!     )
//!     .build()?;
//! let health = HealthService::new(registry).authorizer(Authorizer::bearer("ops-token"));
//! let app: Router = Router::new()
//!     // ... routes and layers ...
//!     .route_service("/health", health.clone())
//!     .route_service("/health/ready", health.clone())
//!     .route_service("/health/startup", health);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! For Docker's `HEALTHCHECK` in an image without curl, let the binary ask
//! itself: `std::process::exit(seaworthy_health::probe("http://127.0.0.1:8000/health"))`.
//!
//! # Comparison with Spring Boot Actuator
//!
//! Actuator runs its health indicators one after another, with no timeout
//! it enforces, on every request: a hung `SELECT 1` hangs the endpoint, and
//! each probe re-runs every check. Its liveness and readiness groups are
//! configuration, with nothing stopping a database check from restarting
//! every pod. Here checks run concurrently, single-flight, under timeouts,
//! and dependencies stay out of liveness unless asked for.
//!
//! # Comparison with alexliesenfeld/health (Go)
//!
//! The closest in spirit: concurrent checks, caching, periodic checks,
//! status listeners. It has no probe-level deadline with last known
//! results, no maximum staleness, no startup latch, no tie to a shutdown's
//! drain, and no split between public statuses and authorized details.
//!
//! # Comparison with .NET HealthChecks
//!
//! ASP.NET Core runs registered checks concurrently and filters them by tag
//! per endpoint, with publishers for background runs. Timeouts, caching and
//! single flight are left to each check, and the default response writer
//! prints plain text; details (exception messages included) are opt-in per
//! endpoint rather than per caller.
//!
//! # Features and dependencies
//!
//! | feature | what it adds |
//! |---|---|
//! | `http-check` (default) | [`checks::http_get`], on hyper-util's HTTP client |
//!
//! 42 normal dependencies in all with default features (`cargo tree -e
//! normal` on Linux), 34 without `http-check`: the probes, the registry and
//! the Docker self-probe need no HTTP client (the self-probe speaks
//! HTTP/1.1 over std's `TcpStream`).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod check;
pub mod checks;
mod probe;
mod registry;
mod report;
mod service;
mod status;

pub use check::{Check, Kind, Probe, Schedule};
pub use probe::probe;
pub use registry::{BuildError, Builder, HealthRegistry};
pub use report::{CheckReport, ProbeReport};
pub use service::{Authorizer, HealthService};
pub use status::{CheckResult, Observed, Status};

/// A number in [0, 1), different for each call.
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(0_u8) >> 11) as f64 / (1_u64 << 53) as f64
}
