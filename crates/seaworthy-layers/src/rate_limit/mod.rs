//! Rate limiting: GCRA per key, policies, 429 with `Retry-After` and the
//! IETF RateLimit fields.
//!
//! The decision is [`RateLimiter`], a plain value over a [`Store`]:
//! [`check`](RateLimiter::check) takes an `http::Request` and answers with a
//! [`Verdict`], at once when the store answers at once (the memory store),
//! else as a future. [`RateLimitLayer`] is its tower skin: it runs the
//! verdict, a 429 [`Refusal`] or a [`Pass`] (after a wait, in delay mode).
//!
//! # The client
//!
//! A policy keyed by [`KeyBy::ClientIp`] counts the [`ClientIp`] the
//! client-IP layer resolved, else the connection's peer
//! ([`Peer::from_extensions`]). A request with neither (plain
//! `axum::serve` without connect info) is not let through unlimited: all
//! such requests share one bucket per policy, so the limit still holds
//! for the server as a whole, and the limiter logs one `error!` naming the
//! fix.
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use seaworthy_connection::{Addr, ConnectionInfo};
//! use seaworthy_layers::rate_limit::{Checked, RateLimiter, Verdict};
//! use seaworthy_layers::Quota;
//!
//! let limiter = RateLimiter::new(Quota::per_minute(1));
//! let request = || {
//!     let mut request = Request::new(());
//!     let peer = Addr::Tcp("192.0.2.1:4000".parse().unwrap());
//!     request.extensions_mut().insert(ConnectionInfo::new(peer, None, false));
//!     request
//! };
//! assert!(matches!(limiter.check(&request()), Checked::Ready(Verdict::Pass(_))));
//! let Checked::Ready(Verdict::Refuse(refusal)) = limiter.check(&request()) else {
//!     panic!("the second request in a minute is refused");
//! };
//! assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(refusal.retry_after().as_secs(), 60);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Extensions, HeaderMap, Method, Request, Response, StatusCode};

use crate::client_ip::{ClientIp, NO_PEER, Peer, canonical};
use crate::store::{Key, MemoryStore, Store, StoreError};
use crate::{Decision, Once, Quota};

mod layer;
pub mod store;

pub use layer::{RateLimit, RateLimitLayer, ResponseFuture};

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

/// Decides whether a request may pass: [`Policy`]s over a [`Store`]; see
/// the [module docs](self).
///
/// A plain value: setters take and return it. Clones share the store (and
/// so the counts); configuring a clone changes that clone only.
///
/// # Examples
///
/// ```
/// use seaworthy_layers::{KeyBy, Policy, Quota, RateLimiter};
///
/// // nginx: limit_req zone=ip rate=100r/m burst=20 nodelay;
/// // plus one bucket of 2000/min for the whole service.
/// let limiter = RateLimiter::new(Quota::per_minute(100).burst(20))
///     .policy(Policy::new("all", Quota::per_minute(2000), KeyBy::Global))
///     .skip_paths(["/health", "/health/ready", "/health/startup"]);
/// # let _ = limiter;
/// ```
#[must_use]
pub struct RateLimiter<St = MemoryStore> {
    inner: Arc<Inner<St>>,
}

struct Inner<St> {
    policies: Vec<Policy>,
    store: Arc<St>,
    skip_paths: Vec<Cow<'static, str>>,
    skip_options: bool,
    shadow: bool,
    delay: bool,
    headers_on_success: bool,
    cost: Option<CostFn>,
    digest: RandomState,
    logged: Arc<Once>,
}

impl<St> Clone for Inner<St> {
    fn clone(&self) -> Self {
        Inner {
            policies: self.policies.clone(),
            store: Arc::clone(&self.store),
            skip_paths: self.skip_paths.clone(),
            skip_options: self.skip_options,
            shadow: self.shadow,
            delay: self.delay,
            headers_on_success: self.headers_on_success,
            cost: self.cost.clone(),
            digest: self.digest.clone(),
            logged: Arc::clone(&self.logged),
        }
    }
}

impl<St> Clone for RateLimiter<St> {
    fn clone(&self) -> Self {
        RateLimiter {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<St> fmt::Debug for RateLimiter<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("policies", &self.inner.policies)
            .field("skip_paths", &self.inner.skip_paths)
            .field("shadow", &self.inner.shadow)
            .field("delay", &self.inner.delay)
            .finish_non_exhaustive()
    }
}

impl RateLimiter<MemoryStore> {
    /// One policy, `"default"`, per client IP (IPv6 per /64), in a memory
    /// store of 1,000,000 keys. `OPTIONS` requests are not counted.
    pub fn new(quota: Quota) -> Self {
        RateLimiter::with_store(
            Policy::new("default", quota, KeyBy::ClientIp { ipv6_prefix: 64 }),
            MemoryStore::new(1_000_000),
        )
    }
}

impl<St: Store> RateLimiter<St> {
    /// One policy in `store`.
    pub fn with_store(policy: Policy, store: St) -> Self {
        RateLimiter {
            inner: Arc::new(Inner {
                policies: vec![policy],
                store: Arc::new(store),
                skip_paths: Vec::new(),
                skip_options: true,
                shadow: false,
                delay: false,
                headers_on_success: false,
                cost: None,
                digest: RandomState::new(),
                logged: Arc::default(),
            }),
        }
    }
}

impl<St> RateLimiter<St> {
    fn with(mut self, change: impl FnOnce(&mut Inner<St>)) -> Self {
        // Copy-on-write: a clone keeps its own settings (and the store).
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// Adds a policy (a global one beside the per-client one, say); a
    /// request must pass all of them, checked in order.
    pub fn policy(self, policy: Policy) -> Self {
        self.with(|inner| inner.policies.push(policy))
    }

    /// Paths never limited (the probes).
    pub fn skip_paths(self, paths: impl IntoIterator<Item = impl Into<Cow<'static, str>>>) -> Self {
        self.with(|inner| inner.skip_paths.extend(paths.into_iter().map(Into::into)))
    }

    /// Whether `OPTIONS` (CORS preflight) is exempt (default true).
    pub fn skip_options(self, skip: bool) -> Self {
        self.with(|inner| inner.skip_options = skip)
    }

    /// Counts and logs, but lets every request pass: to try a limit in
    /// production before enforcing it.
    pub fn shadow(self, shadow: bool) -> Self {
        self.with(|inner| inner.shadow = shadow)
    }

    /// nginx's `limit_req` without `nodelay`: a request within the burst is
    /// held until the steady rate allows it (the [`Pass`] carries the
    /// wait), instead of passing at once; past the burst it is still
    /// refused.
    pub fn delay(self, delay: bool) -> Self {
        self.with(|inner| inner.delay = delay)
    }

    /// Adds the `RateLimit` and `RateLimit-Policy` fields to successful
    /// responses too (they are always on 429s).
    pub fn headers_on_success(self, on: bool) -> Self {
        self.with(|inner| inner.headers_on_success = on)
    }

    /// Weighs requests: an expensive endpoint can cost more than 1.
    pub fn cost(self, cost: impl Fn(&http::request::Parts) -> u32 + Send + Sync + 'static) -> Self {
        self.with(|inner| inner.cost = Some(Arc::new(cost)))
    }

    /// The store the counts are kept in.
    pub fn store(&self) -> &St {
        &self.inner.store
    }

    /// Whether a decision reads the request's headers (a policy keyed by a
    /// header or a function, or a cost function). A server that converts
    /// its requests for [`check`](Self::check) (actix-web's) can leave
    /// the headers out otherwise: method, path and extensions are enough.
    pub fn reads_headers(&self) -> bool {
        self.inner.cost.is_some()
            || self
                .inner
                .policies
                .iter()
                .any(|policy| matches!(policy.key, KeyBy::Header(_) | KeyBy::Function(_)))
    }
}

impl<St: Store> RateLimiter<St> {
    /// Decides `request`: exempt paths and methods pass; otherwise each
    /// policy in order counts the request against its key, stopping at the
    /// first refusal (a request refused by one policy does not use up the
    /// next ones). A store that answers at once (the memory store) is
    /// decided here, without allocating; one that must wait (a shared
    /// store) continues in the returned [`PendingCheck`]. A store that
    /// fails lets the request pass (logged as a warning): a store that is
    /// down must not take the service down with it.
    ///
    /// # Examples
    ///
    /// A server of its own, answering the refusal:
    ///
    /// ```
    /// use http::{Request, Response};
    /// use seaworthy_layers::rate_limit::{RateLimiter, Verdict};
    /// use seaworthy_layers::{ClientIp, Quota};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Quota::per_second(1));
    /// let mut request = Request::new(());
    /// let ip = "192.0.2.1".parse().unwrap();
    /// request.extensions_mut().insert(ClientIp { ip, https: false, forwarded: false });
    /// for attempt in 0..2 {
    ///     let response: Response<String> = match limiter.check(&request).verdict().await {
    ///         Verdict::Refuse(refusal) => refusal.into_response(),
    ///         _ => Response::new("hello".to_owned()),
    ///     };
    ///     assert_eq!(response.status().as_u16(), [200, 429][attempt]);
    /// }
    /// # }
    /// ```
    pub fn check<B>(&self, request: &Request<B>) -> Checked {
        let inner = &*self.inner;
        if inner.exempt(request.method(), request.uri().path()) {
            return Checked::Ready(Verdict::Pass(Pass::default()));
        }
        let client = client_of(request.extensions());
        let cost = inner.cost.as_ref().map_or(1, |cost| cost(&head(request)));
        let mut tally = Tally::default();
        let mut cx = Context::from_waker(Waker::noop());
        for index in 0..inner.policies.len() {
            let Some(key) = inner.key(index, request, client) else {
                continue;
            };
            let mut check = inner.store.check(key, &inner.policies[index].quota, cost);
            match Pin::new(&mut check).poll(&mut cx) {
                Poll::Ready(answer) => {
                    if !tally.add(index, answer) {
                        break;
                    }
                }
                Poll::Pending => {
                    let rest: Vec<(usize, Key)> = (index + 1..inner.policies.len())
                        .filter_map(|index| Some((index, inner.key(index, request, client)?)))
                        .collect();
                    let limiter = self.clone();
                    return Checked::Pending(PendingCheck(Box::pin(async move {
                        let inner = &*limiter.inner;
                        if tally.add(index, check.await) {
                            for (index, key) in rest {
                                let quota = &inner.policies[index].quota;
                                if !tally.add(index, inner.store.check(key, quota, cost).await) {
                                    break;
                                }
                            }
                        }
                        inner.verdict(&tally)
                    })));
                }
            }
        }
        Checked::Ready(inner.verdict(&tally))
    }
}

/// The client a policy keyed by client IP counts: the resolved
/// [`ClientIp`], else the peer.
fn client_of(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ClientIp>()
        .map(|client| client.ip)
        .or_else(|| Peer::from_extensions(extensions).map(|peer| peer.ip))
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

impl<St: Store> Inner<St> {
    /// The key of a header value or key function's text for policy
    /// `index`: seeded at random in this process, or the same in every
    /// process when the store is shared.
    fn digest(&self, index: usize, text: &[u8]) -> Key {
        #[cfg(feature = "redis")]
        if self.store.is_shared() {
            return stable_digest(index as u8, text);
        }
        digest(&self.digest, index as u8, text)
    }
}

/// SHA-256 of the policy and the text, as a key: what every replica
/// derives alike (a shared store hashes it again, with its salt).
#[cfg(feature = "redis")]
fn stable_digest(salt: u8, text: &[u8]) -> Key {
    use sha2::{Digest, Sha256};
    let hash = Sha256::new()
        .chain_update([salt])
        .chain_update(text)
        .finalize();
    let word = |range: std::ops::Range<usize>| {
        u64::from_le_bytes(hash[range].try_into().expect("eight bytes"))
    };
    [word(0..8), word(8..16)]
}

impl<St: Store> Inner<St> {
    fn exempt(&self, method: &Method, path: &str) -> bool {
        (self.skip_options && method == Method::OPTIONS)
            || self.skip_paths.iter().any(|skip| skip == path)
    }

    /// The key of policy `index` for this request, or `None` to skip it.
    fn key<B>(&self, index: usize, request: &Request<B>, client: Option<IpAddr>) -> Option<Key> {
        match &self.policies[index].key {
            KeyBy::ClientIp { ipv6_prefix } => Some(match client {
                // The first policy keys by the address itself; a later one
                // by a digest of it and the policy, so that two per-client
                // policies (per second and per hour, say) keep their own
                // state. (They shared it: the hourly debt refused at once.)
                Some(ip) if index == 0 => ip_key(ip, *ipv6_prefix),
                Some(ip) => {
                    let [high, low] = ip_key(ip, *ipv6_prefix);
                    let mut bytes = [0_u8; 16];
                    bytes[..8].copy_from_slice(&high.to_le_bytes());
                    bytes[8..].copy_from_slice(&low.to_le_bytes());
                    self.digest(index, &bytes)
                }
                None => {
                    if self.logged.first_of(Once::NO_PEER) {
                        tracing::error!("{NO_PEER}");
                    }
                    // One bucket for every request of unknown origin.
                    [u64::MAX - 1, index as u64]
                }
            }),
            KeyBy::Header(name) => request
                .headers()
                .get(name)
                .map(|value| self.digest(index, value.as_bytes())),
            KeyBy::Global => Some([u64::MAX, index as u64]),
            KeyBy::Function(function) => {
                function(&head(request)).map(|key| self.digest(index, key.as_bytes()))
            }
        }
    }

    /// The verdict once the checks are done.
    fn verdict(&self, tally: &Tally) -> Verdict {
        if let Some((index, decision)) = tally.rejected {
            let policy = &self.policies[index];
            if !self.shadow {
                tracing::debug!(policy = %policy.name, "rate limit exceeded");
                let seconds = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                return Verdict::Refuse(Refusal {
                    retry_after: Duration::from_secs(seconds),
                    headers: RateLimitHeaders::new(policy, &decision),
                });
            }
            tracing::info!(policy = %policy.name, "rate limit exceeded (shadow mode: allowed)");
        }
        let headers = tally
            .tightest
            .filter(|_| self.headers_on_success)
            .map(|(index, decision)| RateLimitHeaders::new(&self.policies[index], &decision));
        // Spaced at the rate: the first request of a fresh key waits
        // nothing, the k-th of a burst k - 1 intervals.
        let wait = match tally.tightest {
            Some((index, decision)) if self.delay && tally.rejected.is_none() => decision
                .reset_after
                .saturating_sub(self.policies[index].quota.interval()),
            _ => Duration::ZERO,
        };
        Verdict::Pass(Pass { wait, headers })
    }
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
    fn add(&mut self, index: usize, answer: Result<Decision, StoreError>) -> bool {
        let decision = match answer {
            Ok(decision) => decision,
            Err(err) => {
                // Fail open: a store that is down must not take the service
                // down with it.
                // Recorded as an error: subscribers print its source too.
                tracing::warn!(
                    error = &err as &(dyn std::error::Error + 'static),
                    "rate limit not applied"
                );
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

/// How [`RateLimiter::check`] turned out.
#[derive(Debug)]
#[must_use]
pub enum Checked {
    /// Decided at once.
    Ready(Verdict),
    /// Waiting on the store.
    Pending(PendingCheck),
}

impl Checked {
    /// The verdict, waiting for it if need be.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the check; whatever the store had counted
    /// stays counted.
    pub async fn verdict(self) -> Verdict {
        match self {
            Checked::Ready(verdict) => verdict,
            Checked::Pending(pending) => pending.await,
        }
    }
}

/// A check waiting on its store; resolves to the [`Verdict`].
///
/// # Cancel safety
///
/// Dropping it drops the check; whatever the store had counted stays
/// counted.
#[must_use = "futures do nothing unless polled"]
pub struct PendingCheck(Pin<Box<dyn Future<Output = Verdict> + Send>>);

impl fmt::Debug for PendingCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCheck").finish_non_exhaustive()
    }
}

impl Future for PendingCheck {
    type Output = Verdict;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        self.0.as_mut().poll(cx)
    }
}

/// What to do with a request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// Let it through.
    Pass(Pass),
    /// Answer 429.
    Refuse(Refusal),
}

/// A request that may pass: perhaps after a wait (delay mode), perhaps
/// with the RateLimit fields on its response.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    wait: Duration,
    headers: Option<RateLimitHeaders>,
}

impl Pass {
    /// How long to hold the request first: zero unless in
    /// [delay mode](RateLimiter::delay).
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The fields for the response, when
    /// [`headers_on_success`](RateLimiter::headers_on_success) is on.
    pub fn headers(&self) -> Option<&RateLimitHeaders> {
        self.headers.as_ref()
    }
}

/// A request refused: 429 with `Retry-After` and the RateLimit fields.
#[derive(Clone, Debug)]
pub struct Refusal {
    retry_after: Duration,
    headers: RateLimitHeaders,
}

impl Refusal {
    /// `429 Too Many Requests`.
    pub fn status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    /// When the same request would pass, in whole seconds, never zero (a
    /// client that retries at once is refused again).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The RateLimit fields of the policy that refused.
    pub fn headers(&self) -> &RateLimitHeaders {
        &self.headers
    }

    /// Sets `Retry-After` and the RateLimit fields on `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(RETRY_AFTER, HeaderValue::from(self.retry_after.as_secs()));
        self.headers.apply(headers);
    }

    /// The 429 response, with an empty body.
    pub fn into_response<B: Default>(self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        self.apply(response.headers_mut());
        response
    }
}

/// The IETF `RateLimit-Policy` and `RateLimit` fields (draft 11 syntax)
/// of one policy: `"default";q=21;w=13` and `"default";r=0;t=13`.
#[derive(Clone, Debug)]
pub struct RateLimitHeaders {
    policy: HeaderValue,
    limit: HeaderValue,
}

impl RateLimitHeaders {
    fn new(policy: &Policy, decision: &Decision) -> Self {
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
        RateLimitHeaders {
            policy: HeaderValue::from_str(&policy_field).unwrap_or(HeaderValue::from_static("")),
            limit: HeaderValue::from_str(&limit_field).unwrap_or(HeaderValue::from_static("")),
        }
    }

    /// The `RateLimit-Policy` field.
    pub fn policy(&self) -> &HeaderValue {
        &self.policy
    }

    /// The `RateLimit` field.
    pub fn limit(&self) -> &HeaderValue {
        &self.limit
    }

    /// Sets both fields on `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy.clone());
        headers.insert(RATELIMIT, self.limit.clone());
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
