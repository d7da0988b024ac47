//! The middlewares: each a thin skin over seaworthy-layers' decision.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage, HttpResponse};
use seaworthy_layers::rate_limit::{Checked, RateLimiter, Refusal, Verdict};
use seaworthy_layers::store::{MemoryStore, Store};
use seaworthy_layers::{ClientIpResolver, CspNonce, HeaderPolicy, Peer, Quota, TrustedProxies};

use crate::convert;
use crate::future::{
    CloseWhenDrainingResponse, GuardResponse, RateLimitResponse, SecurityHeadersResponse,
};

/// The `Transform` of a middleware: its service is `around(service)`.
macro_rules! transform {
    ($middleware:ident => $service:ident, $response:ty) => {
        impl<S, B> Transform<S, ServiceRequest> for $middleware
        where
            S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
            B: MessageBody + 'static,
        {
            type Response = $response;
            type Error = Error;
            type Transform = $service<S>;
            type InitError = ();
            type Future = Ready<Result<Self::Transform, ()>>;

            fn new_transform(&self, service: S) -> Self::Future {
                ready(Ok(self.around(service)))
            }
        }
    };
}

/// Resolves the client's address (seaworthy-layers'
/// [`ClientIpResolver`]): the peer, or what trusted proxies say in
/// `Forwarded` / `X-Forwarded-For` (rightmost untrusted hop), never a
/// client's own header. Puts the [`ClientIp`](seaworthy_layers::ClientIp)
/// in the request's extensions for the middlewares inside and the
/// handlers; strips forwarding headers an untrusted peer sent.
///
/// Register it last (`App::wrap` runs the last one first) so that it sees
/// every request before the rest.
#[derive(Clone, Debug)]
pub struct ResolveClientIp {
    resolver: Arc<ClientIpResolver>,
}

impl ResolveClientIp {
    /// Trusting `trusted` (none: the peer is the client).
    pub fn new(trusted: TrustedProxies) -> Self {
        ResolveClientIp::with_resolver(ClientIpResolver::new(trusted))
    }

    /// With a configured resolver (header choice, hops).
    pub fn with_resolver(resolver: ClientIpResolver) -> Self {
        ResolveClientIp {
            resolver: Arc::new(resolver),
        }
    }
}

impl ResolveClientIp {
    fn around<S>(&self, service: S) -> ResolveClientIpService<S> {
        ResolveClientIpService {
            service,
            resolver: Arc::clone(&self.resolver),
        }
    }
}

transform!(ResolveClientIp => ResolveClientIpService, ServiceResponse<B>);

/// [`ResolveClientIp`] around a service.
#[derive(Debug)]
pub struct ResolveClientIpService<S> {
    service: S,
    resolver: Arc<ClientIpResolver>,
}

impl<S, B> Service<ServiceRequest> for ResolveClientIpService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = S::Future;

    forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        if let Some(peer) = request.peer_addr() {
            let peer = Peer::tcp(peer.ip());
            let client = if convert::has_forwarding_headers(request.headers()) {
                let mut headers = convert::to_http(request.headers());
                let client = self.resolver.apply(peer, &mut headers);
                if headers.len() != request.headers().len() {
                    convert::from_http(&headers, request.headers_mut());
                }
                client
            } else {
                self.resolver.resolve(peer, &http::HeaderMap::new())
            };
            request.extensions_mut().insert(client);
        }
        self.service.call(request)
    }
}

/// Security headers on every response, errors included (an error a
/// middleware inside returned is turned into its response here, then
/// given the headers): seaworthy-layers' [`HeaderPolicy`], HSTS only when
/// the client's connection is https (as [`ResolveClientIp`] resolved it,
/// else whether actix serves TLS). A header the handler set is kept.
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    shared: Arc<Policy>,
}

/// A header name as `http` 1 and as actix-web.
type Names = (http::HeaderName, actix_web::http::header::HeaderName);

/// The policy and what is prepared from it once.
#[derive(Debug)]
pub(crate) struct Policy {
    policy: HeaderPolicy,
    /// The names the policy touches, in both crates' types: only these are
    /// converted when a response has one of them.
    names: Box<[Names]>,
    /// What the policy adds to a response that has none of `names`, with
    /// no nonce: over plain HTTP and over https. The policy's own answer
    /// (`apply` to an empty map), converted once.
    fresh: [Box<[(ActixName, ActixValue)]>; 2],
}

type ActixName = actix_web::http::header::HeaderName;
type ActixValue = actix_web::http::header::HeaderValue;

impl Policy {
    /// Applies the policy to actix's `headers` of a response to an
    /// https (or not) request, with the request's nonce.
    pub(crate) fn apply(
        &self,
        headers: &mut actix_web::http::header::HeaderMap,
        https: bool,
        nonce: Option<&CspNonce>,
    ) {
        let untouched = !self
            .names
            .iter()
            .any(|(_, actix)| headers.contains_key(actix));
        if nonce.is_none() && untouched {
            // The policy's answer for an empty map, prepared: the common
            // case costs no conversion.
            for (name, value) in self.fresh[usize::from(https)].iter() {
                headers.append(name.clone(), value.clone());
            }
            return;
        }
        // The policy reads and writes its own names only: those alone go
        // to `http` 1 and back.
        let mut map = http::HeaderMap::new();
        for (name, actix) in self.names.iter() {
            for value in headers.get_all(actix) {
                if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                    map.append(name.clone(), value);
                }
            }
        }
        self.policy.apply(&mut map, https, nonce);
        for (name, actix) in self.names.iter() {
            headers.remove(actix);
            for value in map.get_all(name) {
                if let Ok(value) = ActixValue::from_bytes(value.as_bytes()) {
                    headers.append(actix.clone(), value);
                }
            }
        }
    }
}

impl SecurityHeaders {
    /// With `policy`.
    pub fn new(policy: HeaderPolicy) -> Self {
        let mut names: Vec<Names> = Vec::new();
        for name in policy.names() {
            // A name set twice (a preset's CSP given again) converts once.
            if names.iter().any(|(known, _)| known == name) {
                continue;
            }
            if let Ok(actix) = ActixName::from_bytes(name.as_str().as_bytes()) {
                names.push((name.clone(), actix));
            }
        }
        let names = names.into_boxed_slice();
        let fresh = [false, true].map(|https| {
            let mut map = http::HeaderMap::new();
            policy.apply(&mut map, https, None);
            map.iter()
                .filter_map(|(name, value)| {
                    Some((
                        ActixName::from_bytes(name.as_str().as_bytes()).ok()?,
                        ActixValue::from_bytes(value.as_bytes()).ok()?,
                    ))
                })
                .collect()
        });
        SecurityHeaders {
            shared: Arc::new(Policy {
                policy,
                names,
                fresh,
            }),
        }
    }

    /// [`HeaderPolicy::api`]: for JSON APIs.
    pub fn api() -> Self {
        SecurityHeaders::new(HeaderPolicy::api())
    }

    /// [`HeaderPolicy::web`]: for pages, with a CSP nonce per request in
    /// the request's extensions ([`CspNonce`](seaworthy_layers::CspNonce)).
    pub fn web() -> Self {
        SecurityHeaders::new(HeaderPolicy::web())
    }
}

impl SecurityHeaders {
    fn around<S>(&self, service: S) -> SecurityHeadersService<S> {
        SecurityHeadersService {
            service,
            shared: Arc::clone(&self.shared),
        }
    }
}

transform!(SecurityHeaders => SecurityHeadersService, ServiceResponse<B>);

/// [`SecurityHeaders`] around a service.
#[derive(Debug)]
pub struct SecurityHeadersService<S> {
    service: S,
    shared: Arc<Policy>,
}

impl<S, B> Service<ServiceRequest> for SecurityHeadersService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = SecurityHeadersResponse<S::Future>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let nonce = self.shared.policy.nonce();
        if let Some(nonce) = &nonce {
            request.extensions_mut().insert(nonce.clone());
        }
        let https = convert::is_https(request.request());
        let response = self.service.call(request);
        SecurityHeadersResponse::new(response, Arc::clone(&self.shared), https, nonce)
    }
}

/// The rate limit: seaworthy-layers' [`RateLimiter`] (GCRA per client,
/// policies, a memory or a Redis store), 429 with `Retry-After` and the
/// `RateLimit` fields past it. Counts the client [`ResolveClientIp`]
/// resolved, else the peer.
pub struct RateLimit<St = MemoryStore> {
    limiter: RateLimiter<St>,
}

impl<St> Clone for RateLimit<St> {
    fn clone(&self) -> Self {
        RateLimit {
            limiter: self.limiter.clone(),
        }
    }
}

impl<St> std::fmt::Debug for RateLimit<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl RateLimit<MemoryStore> {
    /// `quota` per client IP, as [`RateLimiter::new`].
    pub fn new(quota: Quota) -> Self {
        RateLimit::with_limiter(RateLimiter::new(quota))
    }
}

impl<St> RateLimit<St> {
    /// Over a configured limiter (policies, paths skipped, a Redis store).
    pub fn with_limiter(limiter: RateLimiter<St>) -> Self {
        RateLimit { limiter }
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for RateLimit<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimitService<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitService {
            service: Rc::new(service),
            limiter: self.limiter.clone(),
        }))
    }
}

/// [`RateLimit`] around a service.
pub struct RateLimitService<S, St> {
    service: Rc<S>,
    limiter: RateLimiter<St>,
}

impl<S, St> std::fmt::Debug for RateLimitService<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitService").finish_non_exhaustive()
    }
}

impl<S, B, St> Service<ServiceRequest> for RateLimitService<S, St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: Store,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = RateLimitResponse<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let checked = self
            .limiter
            .check(&convert::head(&request, self.limiter.reads_headers()));
        match checked {
            // The memory store decides at once: nothing to box.
            Checked::Ready(Verdict::Refuse(refusal)) => {
                RateLimitResponse::refused(refused(request, &refusal))
            }
            Checked::Ready(Verdict::Pass(pass)) if pass.wait().is_zero() => {
                RateLimitResponse::passed(self.service.call(request), pass.headers().cloned())
            }
            checked => {
                let service = Rc::clone(&self.service);
                RateLimitResponse::waiting(Box::pin(async move {
                    match checked.verdict().await {
                        Verdict::Refuse(refusal) => Ok(refused(request, &refusal)),
                        Verdict::Pass(pass) => {
                            if !pass.wait().is_zero() {
                                tokio::time::sleep(pass.wait()).await;
                            }
                            let mut response = service.call(request).await?.map_into_left_body();
                            if let Some(fields) = pass.headers() {
                                convert::insert_rate_limit(fields, response.headers_mut());
                            }
                            Ok(response)
                        }
                        _ => Ok(service.call(request).await?.map_into_left_body()),
                    }
                }))
            }
        }
    }
}

/// The 429 of `refusal`, with `Retry-After` and the RateLimit fields.
fn refused<B>(request: ServiceRequest, refusal: &Refusal) -> ServiceResponse<EitherBody<B>> {
    let mut headers = http::HeaderMap::new();
    refusal.apply(&mut headers);
    let mut response = HttpResponse::TooManyRequests().finish();
    convert::insert_http(&headers, response.headers_mut());
    request.into_response(response).map_into_right_body()
}

/// Refuses with 400 a path that tries to leave its directory in any
/// encoding (seaworthy-layers'
/// [`is_suspicious`](seaworthy_layers::path_guard::is_suspicious)): `..`,
/// `%2e%2e`, `..;`, double encoding, overlong UTF-8.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathGuard;

impl PathGuard {
    /// The guard.
    pub fn new() -> Self {
        PathGuard
    }
}

impl PathGuard {
    fn around<S>(&self, service: S) -> PathGuardService<S> {
        PathGuardService { service }
    }
}

transform!(PathGuard => PathGuardService, ServiceResponse<EitherBody<B>>);

/// [`PathGuard`] around a service.
#[derive(Debug)]
pub struct PathGuardService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for PathGuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = GuardResponse<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        if seaworthy_layers::path_guard::is_suspicious(request.uri().path()) {
            tracing::debug!(path = request.uri().path(), "suspicious path refused");
            let response = request.into_response(HttpResponse::BadRequest().finish());
            return GuardResponse::refused(response.map_into_right_body());
        }
        GuardResponse::inner(self.service.call(request))
    }
}

/// Once the shutdown behind its token has begun (a signal, or an upgrade
/// handing over), every response says `Connection: close`: a keep-alive
/// client opens its next connection elsewhere (to the instances still
/// running, or to the upgrade's new process) instead of sending it on a
/// connection actix is about to close. seaworthy's own server does this
/// in its drain; actix does not.
#[derive(Clone, Debug)]
pub struct CloseWhenDraining {
    token: seaworthy_shutdown::ShutdownToken,
}

impl CloseWhenDraining {
    /// Following `token`'s shutdown.
    pub fn new(token: seaworthy_shutdown::ShutdownToken) -> Self {
        CloseWhenDraining { token }
    }
}

impl CloseWhenDraining {
    fn around<S>(&self, service: S) -> CloseWhenDrainingService<S> {
        CloseWhenDrainingService {
            service,
            token: self.token.clone(),
        }
    }
}

transform!(CloseWhenDraining => CloseWhenDrainingService, ServiceResponse<B>);

/// [`CloseWhenDraining`] around a service.
#[derive(Debug)]
pub struct CloseWhenDrainingService<S> {
    service: S,
    token: seaworthy_shutdown::ShutdownToken,
}

impl<S, B> Service<ServiceRequest> for CloseWhenDrainingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = CloseWhenDrainingResponse<S::Future>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        CloseWhenDrainingResponse::new(self.service.call(request), self.token.clone())
    }
}
