//! A request id for every request: `X-Request-Id` from a trusted proxy
//! kept, otherwise one generated; set on the request (for handlers and the
//! access log, as [`RequestId`] in its extensions) and echoed on the
//! response.
//!
//! An id a client sent directly is replaced: it would let anyone write
//! what they like into the logs, or make two requests look like one. A
//! proxy's id is kept only when the TCP peer is one of the
//! [`TrustedProxies`], and only when it is 1 to 128 visible ASCII
//! characters.
//!
//! ```
//! use http::{Request, Response};
//! use seaworthy_layers::request_id::{RequestId, RequestIdLayer};
//! use seaworthy_layers::TrustedProxies;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(RequestIdLayer::new(TrustedProxies::none()))
//!     .service(service_fn(|request: Request<()>| async move {
//!         let id = request.extensions().get::<RequestId>().unwrap().clone();
//!         Ok::<_, std::convert::Infallible>(Response::new(id.as_str().to_owned()))
//!     }));
//! let forged = Request::get("/").header("x-request-id", "mine").body(()).unwrap();
//! let response = service.oneshot(forged).await.unwrap();
//! let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
//! assert_ne!(id, "mine"); // not from a trusted proxy: replaced
//! assert_eq!(id.len(), 32);
//! assert_eq!(response.body(), &id); // the handler saw the same id
//! # }
//! ```

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::{Peer, TrustedProxies};

/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id kept from a proxy.
const MAX_LEN: usize = 128;

/// A request's id, in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text (always visible ASCII).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides each request's id; the framework-free part of
/// [`RequestIdLayer`].
#[derive(Debug)]
pub struct RequestIds {
    trusted: TrustedProxies,
    state: RandomState,
    counter: AtomicU64,
}

impl RequestIds {
    /// Keeping ids from `trusted` proxies.
    pub fn new(trusted: TrustedProxies) -> Self {
        RequestIds {
            trusted,
            state: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    /// The id of `request`: its `X-Request-Id` when `peer` is a trusted
    /// proxy and the value is sane, else a new one; written to the
    /// request's header and extensions.
    pub fn assign<B>(&self, request: &mut Request<B>) -> RequestId {
        let peer = Peer::from_extensions(request.extensions());
        let kept = request
            .headers()
            .get(X_REQUEST_ID)
            .filter(|_| peer.is_some_and(|peer| self.trusted.contains(peer.ip)))
            .filter(|value| is_sane(value))
            .cloned();
        let id = RequestId(kept.unwrap_or_else(|| self.generate()));
        request.headers_mut().insert(X_REQUEST_ID, id.0.clone());
        request.extensions_mut().insert(id.clone());
        id
    }

    /// 128 unpredictable bits as 32 hex digits (SipHash under the process's
    /// random keys, of a counter: unique and not guessable, not secret).
    fn generate(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let high = self.state.hash_one((n, 1_u8));
        let low = self.state.hash_one((n, 2_u8));
        let text = format!("{high:016x}{low:016x}");
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0"))
    }
}

fn is_sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// [`RequestIds`] as a tower layer.
#[derive(Clone, Debug)]
pub struct RequestIdLayer {
    ids: Arc<RequestIds>,
}

impl RequestIdLayer {
    /// Keeping ids from `trusted` proxies (none: every id generated).
    pub fn new(trusted: TrustedProxies) -> Self {
        RequestIdLayer {
            ids: Arc::new(RequestIds::new(trusted)),
        }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            ids: Arc::clone(&self.ids),
        }
    }
}

/// [`RequestIdLayer`] around a service.
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
    ids: Arc<RequestIds>,
}

impl<S, B, ResBody> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = self.ids.assign(&mut request);
        RequestIdFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestIdService`]: echoes the id.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<RequestId>,
    }
}

impl<F> std::fmt::Debug for RequestIdFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestIdFuture")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(X_REQUEST_ID, id.0);
        }
        Poll::Ready(Ok(response))
    }
}
