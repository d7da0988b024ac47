//! seaworthy for actix-web 4: the same decisions as seaworthy's tower
//! layers, as actix middlewares, and the health probes and the shutdown
//! wired the way actix needs them.
//!
//! This crate has no logic of its own: each middleware converts actix's
//! request head (actix-web 4 speaks `http` 0.2) to an `http` 1 head once,
//! asks seaworthy-layers' framework-free core, and converts the answer
//! back. A fix in a decision is a fix for both frameworks.
//!
//! | middleware | decision |
//! |---|---|
//! | [`ResolveClientIp`] | the client address behind trusted proxies (`ClientIpResolver`) |
//! | [`RateLimit`] | GCRA per client, memory or Redis store (`RateLimiter`), 429 with `Retry-After` and `RateLimit` fields |
//! | [`SecurityHeaders`] | the OWASP presets (`HeaderPolicy`) on every response, errors included, HSTS only over https |
//! | [`PathGuard`] | 400 for paths that leave their directory in any encoding (`is_suspicious`) |
//! | [`CloseWhenDraining`] | `Connection: close` on every response once the shutdown (or an upgrade) began |
//!
//! plus [`probes`] (seaworthy-health's probes as routes), [`listen`]
//! (seaworthy's bound, inherited or upgrade-handed sockets moved into
//! `HttpServer`) and [`serve`] (actix's server stopped by seaworthy's
//! shutdown phases).
//!
//! # Example
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use seaworthy_actix::{PathGuard, RateLimit, ResolveClientIp, SecurityHeaders};
//! use seaworthy_layers::{Quota, TrustedProxies};
//!
//! # async fn run() -> std::io::Result<()> {
//! HttpServer::new(|| {
//!     App::new()
//!         .route("/", web::get().to(|| async { "hello" }))
//!         // `wrap` runs the last registered first: client IP, then
//!         // headers around everything, then the guard, then the limit.
//!         .wrap(RateLimit::new(Quota::per_minute(100).burst(20)))
//!         .wrap(PathGuard::new())
//!         .wrap(SecurityHeaders::api())
//!         .wrap(ResolveClientIp::new(TrustedProxies::none()))
//! })
//! .disable_signals()
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! # Compared with actix-governor and `DefaultHeaders`
//!
//! actix-governor keys by `ConnectionInfo::realip_remote_addr`, which
//! believes any client's `Forwarded` or `X-Forwarded-For` (a forged header
//! buys a fresh bucket per request) and keeps keys without bound; here only
//! trusted proxies are believed and the store is bounded (or shared in
//! Redis). `DefaultHeaders` sets headers only where the handler did not,
//! and misses responses of errors raised by middlewares around it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod convert;
pub mod future;
mod health;
mod listen;
mod middleware;
mod shutdown;

pub use health::probes;
pub use listen::listen;
pub use middleware::{
    CloseWhenDraining, CloseWhenDrainingService, PathGuard, PathGuardService, RateLimit,
    RateLimitService, ResolveClientIp, ResolveClientIpService, SecurityHeaders,
    SecurityHeadersService,
};
pub use shutdown::{serve, shutdown_timeout};

/// docs/actix.md's examples run as doc tests, so that the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/actix.md")]
mod guide {}
