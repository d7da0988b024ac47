//! Production primitives for tokio servers, as small crates behind one
//! facade: what gunicorn, nginx, PM2 and Kubernetes probes do around a
//! Python or Node app, done inside a Rust process.
//!
//! Each part is its own crate, re-exported here behind a feature:
//!
//! | feature | module | crate | status |
//! |---|---|---|---|
//! | `shutdown` (default) | [`shutdown`] | `seaworthy-shutdown` | graceful-shutdown coordinator |
//! | `listener` | `listener` | `seaworthy-listener` | bind, inherit and serve with a drain that drops nothing |
//! | `tls` | `listener::tls` | `seaworthy-listener` (feature `tls`) | TLS termination with rustls: certificates checked before they are served and reloaded on change, mutual TLS, an HTTP-to-HTTPS redirect |
//! | `acme` | `listener::tls` | `seaworthy-listener` (feature `acme`) | certificates obtained and renewed in process (ACME: TLS-ALPN-01 or HTTP-01, the CA's renewal window), one renewer among replicas ([`RedisOrderLock`] with `redis`) |
//! | `tls` and `health` | [`tls_check`] | | the certificates' expiry and reloads as a health check |
//! | `health` and `layers` | [`authorize`] | | who sees the probes' details, by the resolved client IP |
//! | `config` and `layers` | [`Settings`] | | every variable of the production wiring, typed, defaulted and checked |
//! | `redis` and `health` | [`redis_check`] | | the shared store as a readiness check |
//! | `app` (Unix) | [`app`], [`App`] | | the whole wiring around an axum `Router` in one builder: settings, listeners, TLS, probes, layers, access log, request ids, signals, upgrade, workers, exit code |
//! | `health` | `health` | `seaworthy-health` | health checks and Kubernetes probes |
//! | `config` | `config` | `seaworthy-config` | typed settings from the environment |
//! | `layers` | `layers` | `seaworthy-layers` | client IP, rate limit, security headers, path guard, each a framework-free decision with a tower skin |
//! | `redis` | `layers::redis_store` | `seaworthy-layers` (feature `redis`) | the rate limit shared by every replica through Redis: one round trip per decision, a local fallback while Redis is away |
//! | `redis-tls` | | `seaworthy-layers` (feature `redis-tls`) | `rediss://` for the shared store |
//! | `listener` or `layers` | `connection` | `seaworthy-connection` | the connection facts both share (`ConnectionInfo`, `Addr`) |
//! | `axum` | | | axum's `Listener` trait and `ConnectInfo` in `seaworthy-listener`; the layers read axum's `ConnectInfo` as the peer |
//! | `actix` | `actix` | `seaworthy-actix` | the same decisions as actix-web 4 middlewares, the probes as routes, actix's server under the shutdown |
//! | `full` | all of the above | | |
//!
//! Each crate compiles only what its job needs, and every feature builds
//! alone (CI checks each): `layers` compiles no server, `health` no server
//! either. Everything but the Unix-only parts of the listener (the upgrade
//! hand-off, systemd inheritance, socket filters) builds on the platforms
//! tokio supports.
//!
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "shutdown")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use seaworthy::shutdown::{Shutdown, ShutdownReason};
//!
//! let shutdown = Shutdown::builder().build()?;
//! let token = shutdown.token();
//! shutdown.spawn("worker", async move { token.cancelled().await });
//! # shutdown.trigger(ShutdownReason::requested("doc test"));
//! let report = shutdown.wait().await; // until SIGTERM or SIGINT
//! # assert!(report.is_clean());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "shutdown"))]
//! # fn main() {}
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "shutdown")]
#[cfg_attr(docsrs, doc(cfg(feature = "shutdown")))]
#[doc(inline)]
pub use seaworthy_shutdown as shutdown;

#[cfg(feature = "listener")]
#[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
#[doc(inline)]
pub use seaworthy_listener as listener;

#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
#[doc(inline)]
pub use seaworthy_health as health;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
#[doc(inline)]
pub use seaworthy_actix as actix;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
#[doc(inline)]
pub use seaworthy_config as config;

#[cfg(feature = "layers")]
#[cfg_attr(docsrs, doc(cfg(feature = "layers")))]
#[doc(inline)]
pub use seaworthy_layers as layers;

#[cfg(any(feature = "listener", feature = "layers"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "listener", feature = "layers"))))]
#[doc(inline)]
pub use seaworthy_connection as connection;

#[cfg(all(feature = "health", feature = "layers"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "health", feature = "layers"))))]
pub mod authorize;

#[cfg(all(feature = "config", feature = "layers"))]
mod settings;
#[cfg(all(feature = "config", feature = "layers"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "config", feature = "layers"))))]
pub use settings::{RateLimitFallback, Settings};

#[cfg(all(feature = "app", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "app", unix))))]
pub mod app;
#[cfg(all(feature = "app", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "app", unix))))]
pub use app::App;

#[cfg(all(feature = "redis", feature = "health"))]
mod redis_check;
#[cfg(all(feature = "redis", feature = "health"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "health"))))]
pub use redis_check::redis_check;

#[cfg(all(feature = "acme", feature = "redis", unix))]
mod acme_lock;
#[cfg(all(feature = "acme", feature = "redis", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "acme", feature = "redis"))))]
pub use acme_lock::RedisOrderLock;

#[cfg(all(feature = "tls", feature = "health"))]
mod tls_check;
#[cfg(all(feature = "acme", feature = "health"))]
pub use tls_check::acme_check;
#[cfg(all(feature = "tls", feature = "health"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "tls", feature = "health"))))]
pub use tls_check::tls_check;
