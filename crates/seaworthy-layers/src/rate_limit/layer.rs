//! The tower skin of [`RateLimiter`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{Checked, Policy, RateLimitHeaders, RateLimiter, Verdict};
use crate::Quota;
use crate::store::{MemoryStore, Store};

/// Rate limits requests with a [`RateLimiter`]: 429 with `Retry-After` and
/// the RateLimit fields past the quota; see the [module docs](super).
///
/// # Examples
///
/// ```
/// use seaworthy_layers::{Quota, RateLimitLayer};
///
/// // nginx: limit_req zone=ip rate=100r/m burst=20 nodelay;
/// let layer = RateLimitLayer::new(Quota::per_minute(100).burst(20))
///     .skip_paths(["/health", "/health/ready", "/health/startup"]);
/// // Configuring a clone is fine: it changes the clone only (the counts
/// // stay shared).
/// let shadow = layer.clone().shadow(true);
/// # let _ = (layer, shadow);
/// ```
#[must_use]
pub struct RateLimitLayer<St = MemoryStore> {
    limiter: RateLimiter<St>,
}

impl<St> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
        }
    }
}

impl<St> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl RateLimitLayer<MemoryStore> {
    /// See [`RateLimiter::new`].
    pub fn new(quota: Quota) -> Self {
        RateLimitLayer::with_limiter(RateLimiter::new(quota))
    }
}

impl<St: Store> RateLimitLayer<St> {
    /// See [`RateLimiter::with_store`].
    pub fn with_store(policy: Policy, store: St) -> Self {
        RateLimitLayer::with_limiter(RateLimiter::with_store(policy, store))
    }
}

impl<St> RateLimitLayer<St> {
    /// A layer over a configured limiter.
    pub fn with_limiter(limiter: RateLimiter<St>) -> Self {
        RateLimitLayer { limiter }
    }

    fn with(mut self, change: impl FnOnce(RateLimiter<St>) -> RateLimiter<St>) -> Self {
        self.limiter = change(self.limiter);
        self
    }

    /// See [`RateLimiter::policy`].
    pub fn policy(self, policy: Policy) -> Self {
        self.with(|limiter| limiter.policy(policy))
    }

    /// See [`RateLimiter::skip_paths`].
    pub fn skip_paths(self, paths: impl IntoIterator<Item = impl Into<Cow<'static, str>>>) -> Self {
        self.with(|limiter| limiter.skip_paths(paths))
    }

    /// See [`RateLimiter::skip_options`].
    pub fn skip_options(self, skip: bool) -> Self {
        self.with(|limiter| limiter.skip_options(skip))
    }

    /// See [`RateLimiter::shadow`].
    pub fn shadow(self, shadow: bool) -> Self {
        self.with(|limiter| limiter.shadow(shadow))
    }

    /// See [`RateLimiter::delay`].
    pub fn delay(self, delay: bool) -> Self {
        self.with(|limiter| limiter.delay(delay))
    }

    /// See [`RateLimiter::headers_on_success`].
    pub fn headers_on_success(self, on: bool) -> Self {
        self.with(|limiter| limiter.headers_on_success(on))
    }

    /// See [`RateLimiter::cost`].
    pub fn cost(self, cost: impl Fn(&http::request::Parts) -> u32 + Send + Sync + 'static) -> Self {
        self.with(|limiter| limiter.cost(cost))
    }

    /// The limiter this layer applies.
    pub fn limiter(&self) -> &RateLimiter<St> {
        &self.limiter
    }
}

impl<S, St> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
pub struct RateLimit<S, St = MemoryStore> {
    inner: S,
    limiter: RateLimiter<St>,
}

impl<S: Clone, St> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for RateLimit<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
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
        let checked = match self.limiter.check(&request) {
            Checked::Ready(Verdict::Refuse(refusal)) => {
                return ResponseFuture::ready(refusal.into_response());
            }
            Checked::Ready(Verdict::Pass(pass)) if pass.wait.is_zero() => {
                return ResponseFuture::inner(self.inner.call(request), pass.headers);
            }
            checked => checked,
        };
        // Waiting on the store, or holding to the rate: the ready service
        // goes into the future, a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(async move {
            let pass = match checked.verdict().await {
                Verdict::Pass(pass) => pass,
                Verdict::Refuse(refusal) => return Ok(refusal.into_response()),
            };
            if !pass.wait.is_zero() {
                tokio::time::sleep(pass.wait).await;
            }
            let mut response = inner.call(request).await?;
            if let Some(headers) = &pass.headers {
                headers.apply(response.headers_mut());
            }
            Ok(response)
        }))
    }
}

type BoxedResponse<ResB, E> = Pin<Box<dyn Future<Output = Result<Response<ResB>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`RateLimit`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, ResB, E> {
        #[pin]
        state: State<F, ResB, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, ResB, E> {
        Inner { #[pin] future: F, headers: Option<RateLimitHeaders> },
        Ready { response: Option<Response<ResB>> },
        Boxed { future: BoxedResponse<ResB, E> },
    }
}

impl<F, ResB, E> ResponseFuture<F, ResB, E> {
    fn inner(future: F, headers: Option<RateLimitHeaders>) -> Self {
        ResponseFuture {
            state: State::Inner { future, headers },
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
            StateProj::Inner { future, headers } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                if let Some(headers) = headers.take() {
                    headers.apply(response.headers_mut());
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
