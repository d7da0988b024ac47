//! The layer stack around the router, in the documented order.

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Response;
use seaworthy_health::HealthService;
use seaworthy_layers::access_log::AccessLogLayer;
use seaworthy_layers::request_id::RequestIdLayer;
use seaworthy_layers::tower_http::catch_panic::CatchPanicLayer;
use seaworthy_layers::tower_http::limit::RequestBodyLimitLayer;
use seaworthy_layers::{
    ClientIpLayer, HeaderPolicy, PathGuardLayer, RateLimitLayer, SecurityHeadersLayer, TimeoutLayer,
};
use tower::ServiceBuilder;

use super::RedisStore;
use crate::Settings;

/// The probes' paths: never rate limited, never in the access log.
pub(super) const PROBES: [&str; 3] = ["/health", "/health/ready", "/health/startup"];

/// What can be left out.
#[derive(Debug)]
pub(super) struct Options {
    pub(super) access_log: bool,
    pub(super) request_id: bool,
    pub(super) security_headers: Option<HeaderPolicy>,
    pub(super) rate_limit: bool,
    pub(super) path_guard: bool,
    pub(super) catch_panic: bool,
}

/// The routes and the stack: the rate limit in Redis when `store` is given,
/// else in this process's memory; the probes outside the routes' limits.
pub(super) fn app(
    routes: Router,
    probes: HealthService,
    settings: &Settings,
    store: Option<RedisStore>,
    options: &Options,
) -> Router {
    let max_body = usize::try_from(settings.max_body).unwrap_or(usize::MAX);
    let routes = routes.layer(
        ServiceBuilder::new()
            // A declared Content-Length over the limit is a 413 before the
            // body is read, so `Expect: 100-continue` gets no 100 Continue
            // (tower-http's limit); a chunked body is counted by axum's own
            // limit as its extractors read it.
            .map_response(|response: Response<_>| response.map(Body::new))
            .layer(RequestBodyLimitLayer::new(max_body))
            .layer(DefaultBodyLimit::max(max_body))
            .layer(TimeoutLayer::new(settings.request_timeout)),
    );
    // The rate limit outermost of the routes' layers.
    let routes = match (options.rate_limit, store) {
        (false, _) => routes,
        #[cfg(feature = "redis")]
        (true, Some(store)) => {
            use seaworthy_layers::{KeyBy, Policy};
            routes.layer(RateLimitLayer::with_store(
                Policy::new(
                    "default",
                    settings.quota(),
                    KeyBy::ClientIp { ipv6_prefix: 64 },
                ),
                store,
            ))
        }
        #[cfg(not(feature = "redis"))]
        (true, Some(store)) => match store {},
        (true, None) => routes.layer(RateLimitLayer::new(settings.quota())),
    };
    let routes = routes
        // The probes: outside the rate limit, body limit and timeout.
        .route_service(PROBES[0], probes.clone())
        .route_service(PROBES[1], probes.clone())
        .route_service(PROBES[2], probes);
    let routes = if options.path_guard {
        routes.layer(PathGuardLayer::new())
    } else {
        routes
    };
    let routes = if options.catch_panic {
        routes.layer(CatchPanicLayer::new())
    } else {
        routes
    };
    let routes = match &options.security_headers {
        Some(policy) => routes.layer(SecurityHeadersLayer::new(policy.clone())),
        None => routes,
    };
    let routes = if options.access_log {
        routes.layer(AccessLogLayer::new().skip_paths(PROBES))
    } else {
        routes
    };
    let routes = if options.request_id {
        routes.layer(RequestIdLayer::new(settings.trusted_proxies.clone()))
    } else {
        routes
    };
    routes.layer(ClientIpLayer::new(settings.trusted_proxies.clone()))
}

/// The probes alone, for `HEALTH_PORT`: client IP (for the details) and
/// security headers around them.
pub(super) fn probes_only(
    health: HealthService,
    settings: &Settings,
    security_headers: Option<HeaderPolicy>,
) -> Router {
    let routes = Router::new()
        .route_service(PROBES[0], health.clone())
        .route_service(PROBES[1], health.clone())
        .route_service(PROBES[2], health);
    let routes = match security_headers {
        Some(policy) => routes.layer(SecurityHeadersLayer::new(policy)),
        None => routes,
    };
    routes.layer(ClientIpLayer::new(settings.trusted_proxies.clone()))
}
