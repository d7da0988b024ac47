//! The futures the middlewares return: named, so that nothing is boxed on
//! the common path (the rate limit's, which may wait on a store, is the
//! one boxed future).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use actix_web::Error;
use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::InternalError;
use actix_web::http::ConnectionType;
use seaworthy_layers::CspNonce;
use seaworthy_layers::rate_limit::RateLimitHeaders;
use seaworthy_shutdown::ShutdownToken;

use crate::convert;
use crate::middleware::Policy;

pin_project_lite::pin_project! {
    /// The response future of [`SecurityHeaders`](crate::SecurityHeaders):
    /// the inner service's response (or the response of its error) with
    /// the policy's headers.
    pub struct SecurityHeadersResponse<F> {
        #[pin]
        inner: F,
        policy: Arc<Policy>,
        https: bool,
        nonce: Option<CspNonce>,
    }
}

impl<F> SecurityHeadersResponse<F> {
    pub(crate) fn new(inner: F, policy: Arc<Policy>, https: bool, nonce: Option<CspNonce>) -> Self {
        SecurityHeadersResponse {
            inner,
            policy,
            https,
            nonce,
        }
    }
}

impl<F> std::fmt::Debug for SecurityHeadersResponse<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityHeadersResponse")
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for SecurityHeadersResponse<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<B>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let nonce = this.nonce.as_ref();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(mut response) => {
                this.policy
                    .apply(response.headers_mut(), *this.https, nonce);
                Ok(response)
            }
            // An error a middleware inside returned becomes its response
            // here, with the headers, instead of later, without them.
            Err(err) => {
                let mut response = err.error_response();
                this.policy
                    .apply(response.headers_mut(), *this.https, nonce);
                Err(InternalError::from_response(err, response).into())
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`CloseWhenDraining`](crate::CloseWhenDraining):
    /// the inner service's response, marked `Connection: close` once the
    /// shutdown has begun.
    pub struct CloseWhenDrainingResponse<F> {
        #[pin]
        inner: F,
        token: ShutdownToken,
    }
}

impl<F> CloseWhenDrainingResponse<F> {
    pub(crate) fn new(inner: F, token: ShutdownToken) -> Self {
        CloseWhenDrainingResponse { inner, token }
    }
}

impl<F> std::fmt::Debug for CloseWhenDrainingResponse<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloseWhenDrainingResponse")
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for CloseWhenDrainingResponse<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<B>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if this.token.is_shutting_down() {
            response
                .response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        Poll::Ready(Ok(response))
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`PathGuard`](crate::PathGuard): a refusal at
    /// once, or the inner service's response.
    pub struct GuardResponse<F, B> {
        #[pin]
        inner: Option<F>,
        refused: Option<ServiceResponse<EitherBody<B>>>,
    }
}

impl<F, B> GuardResponse<F, B> {
    pub(crate) fn refused(response: ServiceResponse<EitherBody<B>>) -> Self {
        GuardResponse {
            inner: None,
            refused: Some(response),
        }
    }

    pub(crate) fn inner(inner: F) -> Self {
        GuardResponse {
            inner: Some(inner),
            refused: None,
        }
    }
}

impl<F, B> std::fmt::Debug for GuardResponse<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardResponse")
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for GuardResponse<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let response = ready!(inner.poll(cx))?;
                Poll::Ready(Ok(response.map_into_left_body()))
            }
            None => Poll::Ready(Ok(this
                .refused
                .take()
                .expect("GuardResponse polled after it completed"))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit): the inner
    /// service's response (with the RateLimit fields when asked for), a
    /// 429 at once, or, when the store must be waited on (Redis) or the
    /// request delayed, a boxed future.
    pub struct RateLimitResponse<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Passed at once: the inner service's response.
        Passed {
            #[pin]
            inner: F,
            headers: Option<RateLimitHeaders>,
        },
        // Refused at once.
        Refused {
            response: Option<ServiceResponse<EitherBody<B>>>,
        },
        // Waiting on the store or the delay.
        Waiting {
            future: LocalBoxFuture<Result<ServiceResponse<EitherBody<B>>, Error>>,
        },
    }
}

/// A boxed future on one thread, as actix's.
pub(crate) type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<F, B> RateLimitResponse<F, B> {
    pub(crate) fn passed(inner: F, headers: Option<RateLimitHeaders>) -> Self {
        RateLimitResponse {
            state: State::Passed { inner, headers },
        }
    }

    pub(crate) fn refused(response: ServiceResponse<EitherBody<B>>) -> Self {
        RateLimitResponse {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    pub(crate) fn waiting(
        future: LocalBoxFuture<Result<ServiceResponse<EitherBody<B>>, Error>>,
    ) -> Self {
        RateLimitResponse {
            state: State::Waiting { future },
        }
    }
}

impl<F, B> std::fmt::Debug for RateLimitResponse<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Passed { .. } => "Passed",
            State::Refused { .. } => "Refused",
            State::Waiting { .. } => "Waiting",
        };
        f.debug_tuple("RateLimitResponse").field(&state).finish()
    }
}

impl<F, B> Future for RateLimitResponse<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Passed { inner, headers } => {
                let mut response = ready!(inner.poll(cx))?.map_into_left_body();
                if let Some(fields) = headers.take() {
                    convert::insert_rate_limit(&fields, response.headers_mut());
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("RateLimitResponse polled after it completed"))),
            StateProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}
