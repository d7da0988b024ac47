//! Rate limiting: GCRA per key, policies, 429 with `Retry-After` and the
//! IETF RateLimit fields.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::{ClientIp, canonical, peer};
use crate::store::{Key, MemoryStore, Store};
use crate::{Decision, Quota};

/// A key function of [`KeyBy::Function`].
pub type KeyFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;
type CostFn = Arc<dyn Fn(&http::request::Parts) -> u32 + Send + Sync>;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What a policy counts requests by.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client address ([`ClientIp`] when the client-IP layer ran, else
    /// the peer), IPv6 aggregated to a prefix (64 by default: one host gets
    /// a whole /64, and must not get 2^64 buckets).
    ClientIp {
        /// The IPv6 prefix length.
        ipv6_prefix: u8,
    },
    /// A header's value, such as an API key. Requests without it are not
    /// limited by this policy.
    Header(HeaderName),
    /// Every request: one global bucket.
    Global,
    /// Any function of the request; `None` skips this policy.
    Function(KeyFn),
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyBy::ClientIp { ipv6_prefix } => write!(f, "ClientIp(/{ipv6_prefix})"),
            KeyBy::Header(name) => write!(f, "Header({name})"),
            KeyBy::Global => f.write_str("Global"),
            KeyBy::Function(_) => f.write_str("Function(..)"),
        }
    }
}

/// One limit: a name (in the RateLimit headers), a quota, a key.
#[derive(Clone, Debug)]
pub struct Policy {
    name: Cow<'static, str>,
    quota: Quota,
    key: KeyBy,
}

impl Policy {
    /// A policy named `name`.
    pub fn new(name: impl Into<Cow<'static, str>>, quota: Quota, key: KeyBy) -> Self {
        Policy {
            name: name.into(),
            quota,
            key,
        }
    }
}

/// Rate limits requests; see the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use seaworthy_layers::{Quota, RateLimitLayer};
///
/// // nginx: limit_req zone=ip rate=100r/m burst=20 nodelay;
/// let layer = RateLimitLayer::new(Quota::per_minute(100).burst(20))
///     .skip_paths(["/health", "/health/ready", "/health/startup"]);
/// # let _ = layer;
/// ```
#[must_use]
pub struct RateLimitLayer<St = MemoryStore> {
    config: Arc<Config<St>>,
}

struct Config<St> {
    policies: Vec<Policy>,
    store: Arc<St>,
    skip_paths: Vec<Cow<'static, str>>,
    skip_options: bool,
    shadow: bool,
    delay: bool,
    headers_on_success: bool,
    cost: Option<CostFn>,
    digest: RandomState,
}

impl<St> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            config: Arc::clone(&self.config),
        }
    }
}

impl RateLimitLayer<MemoryStore> {
    /// One policy, `"default"`, per client IP (IPv6 per /64), in a memory
    /// store of 1,000,000 keys. `OPTIONS` requests are not counted.
    pub fn new(quota: Quota) -> Self {
        RateLimitLayer::with_store(
            Policy::new("default", quota, KeyBy::ClientIp { ipv6_prefix: 64 }),
            MemoryStore::new(1_000_000),
        )
    }
}

impl<St: Store> RateLimitLayer<St> {
    /// One policy in `store`.
    pub fn with_store(policy: Policy, store: St) -> Self {
        RateLimitLayer {
            config: Arc::new(Config {
                policies: vec![policy],
                store: Arc::new(store),
                skip_paths: Vec::new(),
                skip_options: true,
                shadow: false,
                delay: false,
                headers_on_success: false,
                cost: None,
                digest: RandomState::new(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config<St>)) -> Self {
        let config = Arc::get_mut(&mut self.config).expect("configured before cloning");
        change(config);
        self
    }

    /// Adds a policy (a global one beside the per-client one, say); a
    /// request must pass all of them.
    pub fn policy(self, policy: Policy) -> Self {
        self.with(|config| config.policies.push(policy))
    }

    /// Paths never limited (the probes).
    pub fn skip_paths(self, paths: impl IntoIterator<Item = impl Into<Cow<'static, str>>>) -> Self {
        self.with(|config| config.skip_paths.extend(paths.into_iter().map(Into::into)))
    }

    /// Whether `OPTIONS` (CORS preflight) is exempt (default true).
    pub fn skip_options(self, skip: bool) -> Self {
        self.with(|config| config.skip_options = skip)
    }

    /// Counts and logs, but lets every request pass: to try a limit in
    /// production before enforcing it.
    pub fn shadow(self, shadow: bool) -> Self {
        self.with(|config| config.shadow = shadow)
    }

    /// nginx's `limit_req` without `nodelay`: a request within the burst is
    /// held until the steady rate allows it, instead of passing at once;
    /// past the burst it is still refused.
    pub fn delay(self, delay: bool) -> Self {
        self.with(|config| config.delay = delay)
    }

    /// Adds the `RateLimit` and `RateLimit-Policy` fields to successful
    /// responses too (they are always on 429s).
    pub fn headers_on_success(self, on: bool) -> Self {
        self.with(|config| config.headers_on_success = on)
    }

    /// Weighs requests: an expensive endpoint can cost more than 1.
    pub fn cost(self, cost: impl Fn(&http::request::Parts) -> u32 + Send + Sync + 'static) -> Self {
        self.with(|config| config.cost = Some(Arc::new(cost)))
    }
}

impl<St> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policies", &self.config.policies)
            .field("shadow", &self.config.shadow)
            .finish_non_exhaustive()
    }
}

impl<S, St> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`RateLimitLayer`].
pub struct RateLimit<S, St = MemoryStore> {
    inner: S,
    config: Arc<Config<St>>,
}

impl<S: Clone, St> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for RateLimit<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The store key of a client address: IPv4-mapped addresses as IPv4, IPv6
/// aggregated to `ipv6_prefix` bits.
pub fn ip_key(ip: IpAddr, ipv6_prefix: u8) -> Key {
    match canonical(ip) {
        IpAddr::V4(v4) => [0, 0xffff_0000_0000 | u64::from(u32::from(v4))],
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let prefix = u32::from(ipv6_prefix.min(128));
            let masked = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - prefix))
            };
            [(masked >> 64) as u64 | 1 << 63, masked as u64]
        }
    }
}

/// The request's head, without its body, for key and cost functions.
fn head<B>(request: &Request<B>) -> http::request::Parts {
    let mut parts = Request::new(()).into_parts().0;
    parts.method = request.method().clone();
    parts.uri = request.uri().clone();
    parts.version = request.version();
    parts.headers = request.headers().clone();
    parts
}

fn digest(state: &RandomState, salt: u8, text: &[u8]) -> Key {
    [
        state.hash_one((salt, 1_u8, text)),
        state.hash_one((salt, 2_u8, text)),
    ]
}

impl<St> Config<St> {
    /// The key of `policy` for this request, or `None` to skip it.
    fn key<B>(&self, index: usize, request: &Request<B>) -> Option<Key> {
        match &self.policies[index].key {
            KeyBy::ClientIp { ipv6_prefix } => {
                let ip = request
                    .extensions()
                    .get::<ClientIp>()
                    .map(|client| client.ip)
                    .or_else(|| peer(request).map(|(ip, _)| ip))?;
                Some(ip_key(ip, *ipv6_prefix))
            }
            KeyBy::Header(name) => request
                .headers()
                .get(name)
                .map(|value| digest(&self.digest, index as u8, value.as_bytes())),
            KeyBy::Global => Some([u64::MAX, index as u64]),
            KeyBy::Function(function) => function(&head(request))
                .map(|key| digest(&self.digest, index as u8, key.as_bytes())),
        }
    }

    fn skipped<B>(&self, request: &Request<B>) -> bool {
        (self.skip_options && request.method() == Method::OPTIONS)
            || self
                .skip_paths
                .iter()
                .any(|path| path == request.uri().path())
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft 11 syntax).
fn rate_limit_fields(policy: &Policy, decision: &Decision) -> [(HeaderName, HeaderValue); 2] {
    let window = Duration::from_nanos(policy.quota.tolerance())
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64;
    let reset = decision.reset_after.as_secs_f64().ceil() as u64;
    let policy_field = format!(
        "\"{}\";q={};w={window}",
        policy.name,
        policy.quota.capacity()
    );
    let limit_field = format!("\"{}\";r={};t={reset}", policy.name, decision.remaining);
    [
        (
            RATELIMIT_POLICY,
            HeaderValue::from_str(&policy_field).unwrap_or(HeaderValue::from_static("")),
        ),
        (
            RATELIMIT,
            HeaderValue::from_str(&limit_field).unwrap_or(HeaderValue::from_static("")),
        ),
    ]
}

/// Where the checks stand: the tightest decision so far, and the refusal
/// that ended them, if any.
#[derive(Clone, Copy, Default)]
struct Tally {
    tightest: Option<(usize, Decision)>,
    rejected: Option<(usize, Decision)>,
}

impl Tally {
    /// Counts one answer; `false` when the checks stop here.
    fn add(&mut self, index: usize, answer: Result<Decision, crate::store::StoreError>) -> bool {
        let decision = match answer {
            Ok(decision) => decision,
            Err(err) => {
                // Fail open: a store that is down must not take the service
                // down with it.
                tracing::warn!(error = %err, "rate limit not applied");
                return true;
            }
        };
        if self
            .tightest
            .is_none_or(|(_, best)| decision.remaining < best.remaining)
        {
            self.tightest = Some((index, decision));
        }
        if !decision.allowed {
            self.rejected = Some((index, decision));
            return false;
        }
        true
    }
}

impl<St> Config<St> {
    /// The 429, unless in shadow mode (then `None`: let it through).
    fn refusal<ResB: Default>(&self, tally: &Tally) -> Option<Response<ResB>> {
        let (index, decision) = tally.rejected?;
        let policy = &self.policies[index];
        if self.shadow {
            tracing::info!(policy = %policy.name, "rate limit exceeded (shadow mode: allowed)");
            return None;
        }
        tracing::debug!(policy = %policy.name, "rate limit exceeded");
        let mut response = Response::new(ResB::default());
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let retry = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let headers = response.headers_mut();
        headers.insert(RETRY_AFTER, HeaderValue::from(retry));
        for (name, value) in rate_limit_fields(policy, &decision) {
            headers.insert(name, value);
        }
        Some(response)
    }

    /// The fields for a successful response, when asked for.
    fn success_fields(&self, tally: &Tally) -> Option<[(HeaderName, HeaderValue); 2]> {
        let (index, decision) = tally.tightest.filter(|_| self.headers_on_success)?;
        Some(rate_limit_fields(&self.policies[index], &decision))
    }
}

impl<S, St, B, ResB> Service<Request<B>> for RateLimit<S, St>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: Store,
    B: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = &self.config;
        if config.skipped(&request) {
            return ResponseFuture::inner(self.inner.call(request), None);
        }
        let cost = config.cost.as_ref().map_or(1, |cost| cost(&head(&request)));
        // In order, stopping at the first refusal: a request refused by one
        // policy does not use up the next ones. A store that answers at once
        // (the memory store) is decided here, with no allocation; one that
        // must wait (a shared store) continues in a task-like future.
        let mut tally = Tally::default();
        let mut pending = None;
        let mut next = 0;
        if !config.delay {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            while next < config.policies.len() {
                let index = next;
                next += 1;
                let Some(key) = config.key(index, &request) else {
                    continue;
                };
                let mut check = config.store.check(key, &config.policies[index].quota, cost);
                match Pin::new(&mut check).poll(&mut cx) {
                    Poll::Ready(answer) => {
                        if !tally.add(index, answer) {
                            break;
                        }
                    }
                    Poll::Pending => {
                        pending = Some((index, check));
                        break;
                    }
                }
            }
            if pending.is_none() {
                if let Some(response) = config.refusal(&tally) {
                    return ResponseFuture::ready(response);
                }
                return ResponseFuture::inner(
                    self.inner.call(request),
                    config.success_fields(&tally),
                );
            }
        }
        // The policies not checked yet (all of them in delay mode; none
        // after a refusal).
        let keys: Vec<(usize, Key)> = if tally.rejected.is_some() {
            Vec::new()
        } else {
            (next..config.policies.len())
                .filter_map(|index| Some((index, config.key(index, &request)?)))
                .collect()
        };
        // The slow path: waiting on the store, or holding to the rate.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(config);
        ResponseFuture::boxed(Box::pin(async move {
            let mut stopped = false;
            if let Some((index, check)) = pending {
                stopped = !tally.add(index, check.await);
            }
            if !stopped {
                for (index, key) in keys {
                    let answer = config
                        .store
                        .check(key, &config.policies[index].quota, cost)
                        .await;
                    if !tally.add(index, answer) {
                        break;
                    }
                }
            }
            if let Some(response) = config.refusal(&tally) {
                return Ok(response);
            }
            if config.delay && tally.rejected.is_none() {
                // Spaced at the rate: the first request of a fresh key waits
                // nothing, the k-th of a burst k - 1 intervals.
                let wait = tally.tightest.map_or(Duration::ZERO, |(index, decision)| {
                    decision
                        .reset_after
                        .saturating_sub(config.policies[index].quota.interval())
                });
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let mut response = inner.call(request).await?;
            if let Some(fields) = config.success_fields(&tally) {
                for (name, value) in fields {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response)
        }))
    }
}

type BoxedResponse<ResB, E> = Pin<Box<dyn Future<Output = Result<Response<ResB>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`RateLimit`].
    pub struct ResponseFuture<F, ResB, E> {
        #[pin]
        state: State<F, ResB, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, ResB, E> {
        Inner { #[pin] future: F, fields: Option<[(HeaderName, HeaderValue); 2]> },
        Ready { response: Option<Response<ResB>> },
        Boxed { future: BoxedResponse<ResB, E> },
    }
}

impl<F, ResB, E> ResponseFuture<F, ResB, E> {
    fn inner(future: F, fields: Option<[(HeaderName, HeaderValue); 2]>) -> Self {
        ResponseFuture {
            state: State::Inner { future, fields },
        }
    }

    fn ready(response: Response<ResB>) -> Self {
        ResponseFuture {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    fn boxed(future: BoxedResponse<ResB, E>) -> Self {
        ResponseFuture {
            state: State::Boxed { future },
        }
    }
}

impl<F, ResB, E> fmt::Debug for ResponseFuture<F, ResB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, fields } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                if let Some(fields) = fields.take() {
                    for (name, value) in fields {
                        response.headers_mut().insert(name, value);
                    }
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Ready { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keys_aggregate_to_their_prefix_and_v4_mapped_is_v4() {
        let a = ip_key("2001:db8:1:2:aaaa::1".parse().unwrap(), 64);
        let b = ip_key("2001:db8:1:2:bbbb::9".parse().unwrap(), 64);
        let c = ip_key("2001:db8:1:3::1".parse().unwrap(), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            ip_key("::ffff:192.0.2.1".parse().unwrap(), 64),
            ip_key("192.0.2.1".parse().unwrap(), 64)
        );
    }
}
