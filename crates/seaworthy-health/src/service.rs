use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::{HealthRegistry, Probe};

/// Decides who may read check details (times, values, messages). Everyone
/// else gets statuses only.
#[derive(Clone)]
pub struct Authorizer(Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>);

impl Authorizer {
    /// Admits requests with `Authorization: Bearer <token>` (compared in
    /// constant time).
    pub fn bearer(token: impl Into<String>) -> Self {
        let expected = format!("Bearer {}", token.into()).into_bytes();
        Authorizer(Arc::new(move |parts| {
            parts
                .headers
                .get(AUTHORIZATION)
                .is_some_and(|value| constant_time_eq(value.as_bytes(), &expected))
        }))
    }

    /// Admits requests for which `admit` returns true: for example, a
    /// loopback peer read from the request's extensions.
    pub fn predicate(
        admit: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        Authorizer(Arc::new(admit))
    }

    fn admits(&self, parts: &http::request::Parts) -> bool {
        (self.0)(parts)
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorizer(..)")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A tower service answering the three probes, in the IETF health+json
/// format, with `Cache-Control: no-store`: 200 for pass and warn, 503 for
/// fail, 404 for any other path, 405 (with `Allow: GET, HEAD`) for a
/// method other than `GET` and `HEAD`.
///
/// Mount it outside every other layer (rate limits, timeouts, auth), so a
/// probe is never refused for the wrong reason:
///
/// ```
/// use axum::Router;
/// use seaworthy_health::{HealthRegistry, HealthService};
///
/// # fn app(registry: HealthRegistry) -> Router {
/// let health = HealthService::new(registry);
/// Router::new()
///     // ... routes and layers ...
///     .route_service("/health", health.clone())
///     .route_service("/health/ready", health.clone())
///     .route_service("/health/startup", health)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HealthService {
    registry: HealthRegistry,
    paths: Arc<[(Cow<'static, str>, Probe); 3]>,
    authorizer: Option<Authorizer>,
}

impl HealthService {
    /// Serves `/health` (liveness), `/health/ready` and `/health/startup`;
    /// details for nobody.
    pub fn new(registry: HealthRegistry) -> Self {
        HealthService {
            registry,
            paths: Arc::new([
                ("/health".into(), Probe::Liveness),
                ("/health/ready".into(), Probe::Readiness),
                ("/health/startup".into(), Probe::Startup),
            ]),
            authorizer: None,
        }
    }

    /// Other paths for the three probes.
    #[must_use]
    pub fn paths(
        mut self,
        liveness: impl Into<Cow<'static, str>>,
        readiness: impl Into<Cow<'static, str>>,
        startup: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.paths = Arc::new([
            (liveness.into(), Probe::Liveness),
            (readiness.into(), Probe::Readiness),
            (startup.into(), Probe::Startup),
        ]);
        self
    }

    /// Shows details to the requests `authorizer` admits.
    #[must_use]
    pub fn authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = Some(authorizer);
        self
    }
}

impl<B> Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, _body) = request.into_parts();
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let mut response =
                Response::new(Full::new(Bytes::from_static(b"method not allowed\n")));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Box::pin(std::future::ready(Ok(response)));
        }
        let probe = self
            .paths
            .iter()
            .find(|(path, _)| path == parts.uri.path())
            .map(|(_, probe)| *probe);
        let details = self
            .authorizer
            .as_ref()
            .is_some_and(|authorizer| authorizer.admits(&parts));
        let registry = self.registry.clone();
        Box::pin(async move {
            let Some(probe) = probe else {
                let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                *response.status_mut() = StatusCode::NOT_FOUND;
                return Ok(response);
            };
            let report = registry.check(probe).await;
            let mut response = Response::new(Full::new(Bytes::from(report.to_json(details))));
            *response.status_mut() = report.http_status();
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/health+json"),
            );
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        })
    }
}
