//! An access log: one structured `tracing` event per request (target
//! `seaworthy::access`, level INFO) with the method, the path, the status,
//! the bytes of the body sent, the duration, the client IP and the request
//! id, emitted when the response body has been sent (or dropped, with
//! `complete = false`: the client went away), as nginx logs after the
//! response.
//!
//! The query string is not logged (it carries tokens as often as not), and
//! neither are paths in [`skip_paths`](AccessLogLayer::skip_paths): the
//! probes, which Kubernetes asks every few seconds, as the seed's nginx did.
//!
//! Place it inside the client-IP and request-id layers, so that the client
//! and the id are resolved when it reads them.
//!
//! ```
//! use http::{Request, Response};
//! use seaworthy_layers::access_log::AccessLogLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(AccessLogLayer::new().skip_paths(["/health", "/health/ready", "/health/startup"]))
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
//!     }));
//! // Logs: method="GET" path="/" status=200 bytes=5 duration_ms=… client=…
//! let response = service.oneshot(Request::new(String::new())).await.unwrap();
//! # drop(response);
//! # }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::{ClientIp, Peer};
use crate::request_id::RequestId;

/// The access log as a tower layer.
#[derive(Clone, Debug, Default)]
pub struct AccessLogLayer {
    skip: Arc<Vec<Cow<'static, str>>>,
}

impl AccessLogLayer {
    /// Logging every request.
    pub fn new() -> Self {
        AccessLogLayer::default()
    }

    /// Not logging requests to these exact paths.
    pub fn skip_paths(
        mut self,
        paths: impl IntoIterator<Item = impl Into<Cow<'static, str>>>,
    ) -> Self {
        self.skip = Arc::new(paths.into_iter().map(Into::into).collect());
        self
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            skip: Arc::clone(&self.skip),
        }
    }
}

/// [`AccessLogLayer`] around a service.
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    skip: Arc<Vec<Cow<'static, str>>>,
}

/// What is known of a request when it arrives.
#[derive(Debug)]
struct Entry {
    method: Method,
    path: String,
    client: Option<std::net::IpAddr>,
    request_id: Option<RequestId>,
    started: Instant,
}

impl Entry {
    fn log(&self, status: u16, bytes: u64, complete: bool) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let duration_ms = (duration_ms * 1000.0).round() / 1000.0;
        let client = self.client.map(tracing::field::display);
        let request_id = self.request_id.as_ref().map(RequestId::as_str);
        tracing::info!(
            target: "seaworthy::access",
            method = %self.method,
            path = %self.path,
            status,
            bytes,
            duration_ms,
            client,
            request_id,
            complete,
            "request"
        );
    }
}

impl<S, B, ResBody> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<LoggedBody<ResBody>>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        let entry = if self.skip.iter().any(|skip| skip == path) {
            None
        } else {
            let extensions = request.extensions();
            Some(Entry {
                method: request.method().clone(),
                path: path.to_owned(),
                client: extensions
                    .get::<ClientIp>()
                    .map(|client| client.ip)
                    .or_else(|| Peer::from_extensions(extensions).map(|peer| peer.ip)),
                request_id: extensions.get::<RequestId>().cloned(),
                started: Instant::now(),
            })
        };
        AccessLogFuture {
            inner: self.inner.call(request),
            entry,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AccessLog`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        entry: Option<Entry>,
    }
}

impl<F> std::fmt::Debug for AccessLogFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<LoggedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let status = response.status().as_u16();
        let entry = this.entry.take();
        Poll::Ready(Ok(response.map(|body| LoggedBody {
            log: entry.map(|entry| Pending {
                entry,
                status,
                bytes: 0,
                empty: body.is_end_stream(),
            }),
            body,
        })))
    }
}

/// The log line waiting for its body's end.
#[derive(Debug)]
struct Pending {
    entry: Entry,
    status: u16,
    bytes: u64,
    /// The body was empty from the start.
    empty: bool,
}

pin_project_lite::pin_project! {
    /// A response body that counts its bytes and logs the request when it
    /// ends, or when it is dropped before (`complete = false`).
    pub struct LoggedBody<B> {
        #[pin]
        body: B,
        log: Option<Pending>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().log.take() {
                // An empty body a server never polls (a HEAD, a 204) was
                // sent whole.
                pending.entry.log(pending.status, pending.bytes, pending.empty);
            }
        }
    }
}

impl<B> std::fmt::Debug for LoggedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(pending)) = (frame.data_ref(), this.log.as_mut()) {
                    pending.bytes += bytes::Buf::remaining(data) as u64;
                }
                // A server stops polling a body that says it has ended
                // (hyper does, after a whole body's one frame): that is
                // its end.
                if this.body.is_end_stream()
                    && let Some(pending) = this.log.take()
                {
                    pending.entry.log(pending.status, pending.bytes, true);
                }
            }
            Some(Err(_)) => {}
            None => {
                if let Some(pending) = this.log.take() {
                    pending.entry.log(pending.status, pending.bytes, true);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
