//! What nginx did in front of the app, as tower layers that cannot be
//! bypassed: the client's address behind trusted proxies, a bounded GCRA
//! rate limit, security headers on every response, a path guard.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod client_ip;
mod gcra;
mod headers;
mod path_guard;
mod rate_limit;
pub mod store;

pub use client_ip::{ClientIp, ClientIpLayer, TrustedProxies};
pub use gcra::{Decision, InvalidQuota, Quota};
pub use headers::{CspNonce, SecurityHeaders, SecurityHeadersLayer};
pub use path_guard::{PathGuard, PathGuardLayer};
pub use rate_limit::{KeyBy, KeyFn, Policy, RateLimit, RateLimitLayer, ip_key};

/// tower-http's layers, re-exported rather than rewritten: CORS, body
/// limit, timeout, catch-panic.
pub mod tower_http {
    pub use tower_http::catch_panic;
    pub use tower_http::cors;
    pub use tower_http::limit;
    pub use tower_http::timeout;
}
