//! The tower skin of [`HeaderPolicy`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{CspNonce, HeaderPolicy};
use crate::client_ip::is_https;

/// Sets security headers on every response with a [`HeaderPolicy`], error
/// responses from inner layers included; see the [module docs](super).
///
/// HTTPS is what the [`ClientIp`](crate::ClientIp) extension says (so put
/// [`ClientIpLayer`](crate::ClientIpLayer) outside this layer, and a
/// trusted proxy's `X-Forwarded-Proto: https` brings HSTS), else the
/// connection's TLS. The [`web`](Self::web) preset puts the request's
/// [`CspNonce`] in its extensions for the handler.
///
/// # Examples
///
/// ```
/// use seaworthy_layers::SecurityHeadersLayer;
///
/// let api = SecurityHeadersLayer::api();
/// let web = SecurityHeadersLayer::web().hsts_preload(true);
/// # let _ = (api, web);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SecurityHeadersLayer {
    policy: Arc<HeaderPolicy>,
}

impl SecurityHeadersLayer {
    /// A layer applying `policy`.
    pub fn new(policy: HeaderPolicy) -> Self {
        SecurityHeadersLayer {
            policy: Arc::new(policy),
        }
    }

    /// [`HeaderPolicy::api`], the default.
    pub fn api() -> Self {
        SecurityHeadersLayer::new(HeaderPolicy::api())
    }

    /// [`HeaderPolicy::web`].
    pub fn web() -> Self {
        SecurityHeadersLayer::new(HeaderPolicy::web())
    }

    fn with(mut self, change: impl FnOnce(HeaderPolicy) -> HeaderPolicy) -> Self {
        // Copy-on-write: a clone of the layer keeps its own policy.
        let policy = Arc::make_mut(&mut self.policy);
        *policy = change(std::mem::take(policy));
        self
    }

    /// See [`HeaderPolicy::no_store`].
    pub fn no_store(self) -> Self {
        self.with(HeaderPolicy::no_store)
    }

    /// See [`HeaderPolicy::header`].
    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.with(|policy| policy.header(name, value))
    }

    /// See [`HeaderPolicy::override_handler`].
    pub fn override_handler(self, name: HeaderName) -> Self {
        self.with(|policy| policy.override_handler(name))
    }

    /// See [`HeaderPolicy::hsts_preload`].
    pub fn hsts_preload(self, preload: bool) -> Self {
        self.with(|policy| policy.hsts_preload(preload))
    }

    /// The policy this layer applies.
    pub fn policy(&self) -> &HeaderPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub struct SecurityHeaders<S> {
    inner: S,
    policy: Arc<HeaderPolicy>,
}

impl<S, B, ResB> Service<Request<B>> for SecurityHeaders<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let https = is_https(request.extensions());
        let nonce = self.policy.nonce();
        if let Some(nonce) = &nonce {
            request.extensions_mut().insert(nonce.clone());
        }
        ResponseFuture {
            inner: self.inner.call(request),
            policy: Arc::clone(&self.policy),
            https,
            nonce,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SecurityHeaders`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        policy: Arc<HeaderPolicy>,
        https: bool,
        nonce: Option<CspNonce>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        this.policy
            .apply(response.headers_mut(), *this.https, this.nonce.as_ref());
        Poll::Ready(Ok(response))
    }
}
