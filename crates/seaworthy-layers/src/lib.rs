//! What nginx did in front of the app, as tower layers that cannot be
//! bypassed: the client's address behind trusted proxies, a bounded GCRA
//! rate limit, security headers on every response, a path guard.
//!
//! # The stack
//!
//! In this order, outermost first, so that a 429 or a panic's 500 still
//! carries the security headers (and CORS, when used), and every layer
//! sees the resolved client:
//!
//! 1. [`ClientIpLayer`]: the client's address, from trusted proxies only
//!    (it never answers a request, so nothing is lost by putting it first);
//! 2. [`SecurityHeadersLayer`]: every response, error responses included;
//!    HSTS when the client's request was HTTPS;
//! 3. tower-http's [`CatchPanicLayer`](tower_http::catch_panic::CatchPanicLayer): a panic is a 500;
//! 4. [`PathGuardLayer`]: 400 for smuggled paths, before routing;
//! 5. [`RateLimitLayer`]: 429, keyed by the resolved client (not on the probes);
//! 6. a body limit (axum's `DefaultBodyLimit` or tower-http's `RequestBodyLimitLayer`): 413;
//! 7. [`TimeoutLayer`]: 504 (tower-http's contract, but the timer is armed only
//!    for handlers that wait; tower-http's is re-exported too).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use seaworthy_layers::tower_http::catch_panic::CatchPanicLayer;
//! use seaworthy_layers::{
//!     ClientIpLayer, PathGuardLayer, Quota, RateLimitLayer, SecurityHeadersLayer, TimeoutLayer,
//!     TrustedProxies,
//! };
//! use tower::ServiceBuilder;
//!
//! let routes: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(RateLimitLayer::new(Quota::per_minute(100).burst(20)))
//!             .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
//!             .layer(TimeoutLayer::new(Duration::from_secs(30))),
//!     );
//!     // .route_service("/health", ...) here: outside the rate limit.
//! let app = ServiceBuilder::new()
//!     .layer(ClientIpLayer::new(TrustedProxies::private()))
//!     .layer(SecurityHeadersLayer::api())
//!     .layer(CatchPanicLayer::new())
//!     .layer(PathGuardLayer::new())
//!     .service(routes);
//! # let _ = app;
//! ```
//!
//! # The peer address
//!
//! The client IP and the TLS flag start from the connection's peer, which
//! the server puts in each request's extensions
//! ([`Peer::from_extensions`]): seaworthy-listener's `Server` puts a
//! `ConnectionInfo` (from seaworthy-connection); with the `axum` feature,
//! axum's `ConnectInfo<SocketAddr>` (`axum::serve(listener,
//! app.into_make_service_with_connect_info::<SocketAddr>())`) and
//! `ConnectInfo<Addr>` (the same over seaworthy's `Listener`) count too.
//!
//! **Without a peer** (plain `axum::serve(listener, app)`, the shape of
//! most axum examples, or the `axum` feature forgotten), the layers do not
//! fail open: the rate limit counts every peer-less request in one shared
//! bucket per policy, so the quota still holds for the server as a whole;
//! no [`ClientIp`] is invented (a handler that requires one gets axum's
//! 500 for a missing extension); and each layer logs one `error!` naming
//! the fix. The headers layer sends no HSTS, as for plain HTTP.
//!
//! # Decisions without a framework
//!
//! Each layer is a thin skin over a decision that any server can call
//! with `http` types; the actix-web adapter is another skin over the same
//! code, so a fix in a decision fixes both:
//!
//! | decision | call | tower skin |
//! |---|---|---|
//! | the client | [`ClientIpResolver::resolve`]`(peer, &HeaderMap) -> ClientIp` | [`ClientIpLayer`] |
//! | the rate limit | [`RateLimiter::check`]`(&Request) -> Checked` (a [`Verdict`](rate_limit::Verdict): pass, perhaps after a wait, or a [`Refusal`](rate_limit::Refusal) with `Retry-After` and the RateLimit fields) | [`RateLimitLayer`] |
//! | the headers | [`HeaderPolicy::apply`]`(&mut HeaderMap, https, nonce)` | [`SecurityHeadersLayer`] |
//! | the path | [`path_guard::is_suspicious`]`(path) -> bool` | [`PathGuardLayer`] |
//!
//! Every builder is a plain value (`fn x(mut self, ..) -> Self`);
//! configuring a clone of a layer changes that clone only, and never
//! panics.
//!
//! # Client IP
//!
//! The peer address, unless the peer is a [trusted proxy](TrustedProxies):
//! then `X-Forwarded-For` (every line), RFC 7239 `Forwarded` (quoted IPv6,
//! ports) or `X-Real-IP` is walked from the right to the first untrusted
//! address (nginx's `real_ip_recursive`), or a fixed hop count is taken.
//! A direct client's forwarding headers are never believed. IPv4-mapped
//! addresses count as IPv4. The result and the scheme a trusted proxy
//! reported go into a [`ClientIp`] extension for every later layer and
//! handler.
//!
//! # Rate limit
//!
//! GCRA per key, in nginx's terms: `Quota::per_minute(100).burst(20)` is
//! `limit_req rate=100r/m burst=20 nodelay` (with [`delay`](RateLimitLayer::delay), without
//! `nodelay`). Keys: the client IP (IPv6 per /64 by default), a header (an
//! API key), a function, or one global bucket; several policies on one
//! request, checked in order. A refusal is a 429 with `Retry-After` in whole
//! seconds (never 0) and the IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft 11), optionally on successes too; shadow mode counts without
//! refusing; `OPTIONS` and chosen paths are skipped.
//!
//! The in-memory [`MemoryStore`](store::MemoryStore) is a table of 8-way
//! sets, 24 bytes a key, that grows with the keys up to a fixed cap: a
//! flood of ten million distinct keys cannot take it past the cap, and a
//! client that keeps sending keeps its state. Checks of a key it holds take
//! no lock (a seqlock-validated slot and a compare-and-swap); a loom model
//! (`rate_limit/store/model.rs`, run by CI) checks racers on one key, a
//! check racing a growth and one racing an eviction. The clock is monotonic
//! (`CLOCK_MONOTONIC_COARSE` on Linux, never a TSC) and injectable.
//! The [`Store`](store::Store) trait is the seam for a shared store:
//! `RedisStore` (feature `redis`, module `redis_store`) holds one quota for
//! every replica, one round trip per decision, with a local fallback while
//! Redis is away (docs/redis.md).
//!
//! # Security headers
//!
//! [`api()`](SecurityHeadersLayer::api) (the default) and
//! [`web()`](SecurityHeadersLayer::web) (a per-request CSP nonce in a
//! [`CspNonce`] extension), with today's OWASP values, `X-XSS-Protection: 0`,
//! `Server` and `X-Powered-By` removed, and HSTS only over https, exactly
//! once. A header the handler set is kept.
//!
//! # Comparison with governor and tower_governor
//!
//! governor's keyed limiter grows without bound unless the program calls
//! `retain_recent` (governor #171: an IPv6 /64 hands an attacker endless
//! keys; here /64 aggregation is the default and the table is fixed), uses a
//! TSC clock by default (#299), and takes 69 bytes per IPv4 key (25 here).
//! tower_governor's "smart" extractor believes the leftmost
//! `X-Forwarded-For`, so a forged header buys a fresh bucket per request;
//! here only trusted proxies' headers count, from the right. Both are
//! lock-free for a known key; see docs/benchmarks.md for the side-by-side
//! times (0.34–0.85× governor's). Neither shares a limit between replicas.
//!
//! # Comparison with redis-cell, express-rate-limit's Redis store and Envoy
//!
//! redis-cell runs the same GCRA as a Redis module, which managed Redis
//! services do not load; here it is a Lua script any Redis 5+ runs. The
//! INCR + EXPIRE fixed window of express-rate-limit's Redis store and most
//! tutorials is cheaper for Redis but lets twice the quota through at a
//! window's edge, and nothing decides when Redis is down; Envoy's
//! rate-limit service is a separate deployment. Here: the GCRA, a timeout,
//! a circuit breaker and a fallback of the user's choice.
//!
//! # Comparison with axum-client-ip
//!
//! axum-client-ip picks a source per header (rightmost, leftmost) without a
//! notion of which proxies are trusted; a direct client can still send the
//! header. Here the trust list decides, and an untrusted peer's headers
//! are ignored or stripped.
//!
//! # Comparison with helmet, axum-helmet and tower-http
//!
//! axum-helmet overwrites headers the handler set and, like most header
//! middleware placed inside the stack, misses the error responses of the
//! layers around it; tutorials still send `X-XSS-Protection: 1; mode=block`
//! and HSTS over plain HTTP. tower-http's `SetResponseHeader` sets one
//! header per layer; here one layer sets the whole preset. What tower-http
//! does well (CORS, body limit, timeout, catch-panic) is re-exported, not
//! rewritten.
//!
//! # Features and dependencies
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | reads axum's `ConnectInfo<SocketAddr>` and `ConnectInfo<Addr>` as the peer (enables axum's `tokio` feature, which `ConnectInfo` needs) |
//! | `redis` | `RedisStore`, the rate limit shared through Redis: the redis crate (its multiplexed `ConnectionManager`) and sha2; about 140 more crates, most of them `url`'s IDNA tables |
//! | `redis-tls` | `rediss://` URLs (rustls, with the webpki roots) |
//! | `serde` | `Deserialize` and `Serialize` for [`Quota`] (`100/min`), [`IpNet`](client_ip::IpNet) and [`TrustedProxies`] (`10.0.0.0/8, ::1`, or a list), as the text a person writes, so they load with seaworthy-config like every other setting (the facade's `layers` feature turns it on) |
//!
//! With default features the crate has 24 normal dependencies in all
//! (`cargo tree -e normal` on Linux): `http`, tower's `Layer` and `Service` traits, tower-http
//! (for the re-exported layers), tokio's timer, tracing, arc-swap,
//! pin-project-lite, seaworthy-connection, and on Linux nix for the coarse
//! clock. No server: not hyper's, not seaworthy's listener. It builds on
//! every platform tokio supports.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU8, Ordering};

pub mod access_log;
mod gcra;

pub mod client_ip;
pub mod path_guard;
pub mod rate_limit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis_store;
pub mod request_id;
pub mod security_headers;
#[cfg(feature = "serde")]
mod serde_impls;
/// Where rate-limit state lives (the module is `rate_limit::store`; kept
/// here under its first path).
pub use rate_limit::store;
pub mod timeout;

pub use client_ip::{ClientIp, ClientIpLayer, ClientIpResolver, Peer, TrustedProxies};
pub use gcra::{Decision, InvalidQuota, Quota};
pub use path_guard::{PathGuard, PathGuardLayer};
pub use rate_limit::{KeyBy, KeyFn, Policy, RateLimit, RateLimitLayer, RateLimiter, ip_key};
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use security_headers::{CspNonce, HeaderPolicy, SecurityHeaders, SecurityHeadersLayer};
pub use timeout::{Timeout, TimeoutLayer};

/// docs/layers.md's examples run as doc tests, so that the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/layers.md")]
mod guide {}

/// docs/redis.md's examples, likewise.
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../../../docs/redis.md")]
mod redis_guide {}

/// tower-http's layers, re-exported rather than rewritten: CORS, body
/// limit, timeout, catch-panic.
pub mod tower_http {
    pub use tower_http::catch_panic;
    pub use tower_http::cors;
    pub use tower_http::limit;
    pub use tower_http::timeout;
}

/// Events a layer logs once, however many requests meet them: a flag each,
/// shared by the clones of the layer that owns it.
#[derive(Debug, Default)]
pub(crate) struct Once(AtomicU8);

impl Once {
    /// A request had no peer address.
    pub(crate) const NO_PEER: u8 = 1;
    /// A private, untrusted peer sent `X-Forwarded-For`.
    pub(crate) const UNTRUSTED_PRIVATE: u8 = 2;

    /// Whether `flag` was raised already.
    pub(crate) fn is_raised(&self, flag: u8) -> bool {
        self.0.load(Ordering::Relaxed) & flag != 0
    }

    /// Whether this is the first time `flag` is raised (then it is raised).
    pub(crate) fn first_of(&self, flag: u8) -> bool {
        !self.is_raised(flag) && self.0.fetch_or(flag, Ordering::Relaxed) & flag == 0
    }
}
