//! The per-connection service wrapper: connection facts into each request,
//! `Connection: close` while retiring, request accounting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use tower::util::Oneshot;
use tower_service::Service;

use super::io::ConnState;
use crate::ConnectionInfo;

pub(crate) struct ConnService<S> {
    pub(crate) inner: S,
    pub(crate) state: Arc<ConnState>,
    pub(crate) info: ConnectionInfo,
    /// This connection's request limit, jitter applied.
    pub(crate) max_requests: Option<u64>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ResponseFuture<S>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let state = &self.state;
        let count = state.requests.fetch_add(1, Relaxed) + 1;
        state.request_started();
        let http2 = request.version() == Version::HTTP_2;
        let last = self.max_requests.is_some_and(|max| count >= max);
        if last {
            state.set_retiring();
            if http2 {
                state.retire.notify_one();
            }
        }
        #[cfg(feature = "axum")]
        if let Some(peer) = self.info.peer_addr().as_tcp() {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        request.extensions_mut().insert(self.info.clone());
        ResponseFuture {
            inner: Oneshot::new(self.inner.clone(), request),
            guard: Some(InFlight(Arc::clone(state))),
            http2,
        }
    }
}

/// Counts a request in flight until its response head is ready or the
/// request is abandoned.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct ResponseFuture<S: Service<Request<Incoming>>> {
        #[pin]
        inner: Oneshot<S, Request<Incoming>>,
        guard: Option<InFlight>,
        http2: bool,
    }
}

impl<S, B> Future for ResponseFuture<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Output = Result<Response<B>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        let close = !*this.http2 && guard.as_ref().is_some_and(|guard| guard.0.is_retiring());
        drop(guard);
        if close {
            return Poll::Ready(result.map(|mut response| {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                response
            }));
        }
        Poll::Ready(result)
    }
}
