//! The per-connection service wrapper: connection facts into each request,
//! `Connection: close` while retiring, request accounting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, Version};
use http_body::Frame;
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
    B: http_body::Body,
{
    type Response = Response<ConnBody<B>>;
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
    B: http_body::Body,
{
    type Output = Result<Response<ConnBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        let close = !*this.http2 && guard.as_ref().is_some_and(|guard| guard.0.is_retiring());
        // HTTP/2 bodies are watched: one the peer's window keeps waiting
        // past the write timeout gets the connection cut (conn.rs).
        let watch = guard
            .as_ref()
            .filter(|_| *this.http2)
            .map(|guard| Arc::clone(&guard.0));
        drop(guard);
        Poll::Ready(result.map(|mut response| {
            if close {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response.map(|body| ConnBody::new(body, watch))
        }))
    }
}

/// The largest DATA frame handed to HTTP/2 at once: a bigger one is split
/// (without copying), so that a peer whose flow-control window stays shut
/// shows as a body waiting to be polled, not as one chunk h2 buffers
/// whole.
const H2_CHUNK: usize = 16 * 1024;

pin_project_lite::pin_project! {
    /// A response body as the connection sends it: its data as `Bytes`, and
    /// over HTTP/2, watched for a peer that takes none of it.
    pub(crate) struct ConnBody<B> {
        #[pin]
        inner: B,
        watch: Option<(Arc<ConnState>, u64)>,
        waiting: bool,
        rest: Option<Bytes>,
    }

    impl<B> PinnedDrop for ConnBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting && let Some((state, id)) = this.watch.as_ref() {
                state.body_resumed(*id);
            }
        }
    }
}

impl<B: http_body::Body> ConnBody<B> {
    /// Over HTTP/2 a body with data to come waits from the start: h2 polls
    /// it only once the peer's window has room.
    fn new(inner: B, watch: Option<Arc<ConnState>>) -> Self {
        let watch = watch.map(|state| {
            let id = state.body_id();
            (state, id)
        });
        let waiting = watch.is_some() && !inner.is_end_stream();
        if waiting && let Some((state, id)) = &watch {
            state.body_waiting(*id);
        }
        ConnBody {
            inner,
            watch,
            waiting,
            rest: None,
        }
    }
}

impl<B: http_body::Body> http_body::Body for ConnBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if *this.waiting {
            *this.waiting = false;
            if let Some((state, id)) = this.watch.as_ref() {
                state.body_resumed(*id);
            }
        }
        let mut data = match this.rest.take() {
            Some(rest) => rest,
            None => match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => data.copy_to_bytes(data.remaining()),
                    Err(frame) => {
                        let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                        return Poll::Ready(Some(Ok(frame)));
                    }
                },
                other => {
                    return Poll::Ready(other.map(|result| {
                        result.map(|frame| {
                            frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                        })
                    }));
                }
            },
        };
        if let Some((state, id)) = this.watch.as_ref() {
            if data.len() > H2_CHUNK {
                *this.rest = Some(data.split_off(H2_CHUNK));
            }
            if this.rest.is_some() || !this.inner.is_end_stream() {
                *this.waiting = true;
                state.body_waiting(*id);
            }
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(rest) = &self.rest {
            let rest = rest.len() as u64;
            hint.set_lower(hint.lower() + rest);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + rest);
            }
        }
        hint
    }
}
