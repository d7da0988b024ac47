//! Rejects request paths that smuggle traversal through encoding.
//!
//! The decision is [`is_suspicious`], a plain function of the path as
//! received; [`PathGuardLayer`] is its tower skin, answering 400 before
//! routing.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

/// Answers 400, before routing, to paths with encoded dot segments
/// (`/%2e%2e/`), encoded slashes or backslashes inside a segment (`%2f`,
/// `%5c`), a raw backslash, or NUL and control characters (`%00`–`%1f`,
/// `%7f`). A router that decodes after matching, or a file server behind
/// the app, would otherwise see a different path than the rules did.
///
/// # Examples
///
/// ```
/// use seaworthy_layers::PathGuardLayer;
///
/// assert!(PathGuardLayer::is_suspicious("/static/%2e%2e/secrets"));
/// assert!(!PathGuardLayer::is_suspicious("/files/report%20final.pdf"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct PathGuardLayer;

impl PathGuardLayer {
    /// A guard.
    pub fn new() -> Self {
        PathGuardLayer
    }

    /// Whether `path` (as received, still percent-encoded) is refused: the
    /// module's [`is_suspicious`].
    pub fn is_suspicious(path: &str) -> bool {
        is_suspicious(path)
    }
}

/// Whether `path` (as received, still percent-encoded) is refused: an
/// encoded dot segment (`/%2e%2e/`), an encoded slash or backslash inside a
/// segment (`%2f`, `%5c`), a raw backslash, or a NUL or control character
/// (`%00`–`%1f`, `%7f`, raw or encoded).
///
/// # Examples
///
/// ```
/// use seaworthy_layers::path_guard::is_suspicious;
///
/// assert!(is_suspicious("/static/%2e%2e/secrets"));
/// assert!(!is_suspicious("/files/report%20final.pdf"));
/// ```
pub fn is_suspicious(path: &str) -> bool {
    let bytes = path.as_bytes();
    // The common case, without allocating: nothing encoded, no
    // backslash, no control character.
    if !bytes
        .iter()
        .any(|&byte| byte == b'%' || byte == b'\\' || byte < 0x20 || byte == 0x7f)
    {
        return false;
    }
    if bytes
        .iter()
        .any(|&byte| byte == b'\\' || byte < 0x20 || byte == 0x7f)
    {
        return true;
    }
    let decoded = |at: usize| -> Option<u8> {
        let hex = bytes.get(at + 1..at + 3)?;
        u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    for (at, _) in bytes.iter().enumerate().filter(|(_, byte)| **byte == b'%') {
        // An encoded slash, backslash or control character.
        if let Some(b'/' | b'\\' | 0x00..=0x1f | 0x7f) = decoded(at) {
            return true;
        }
    }
    // A segment that decodes to "." or ".." through %2e.
    path.split('/').any(|segment| {
        segment.len() <= 6 && segment.contains('%') && {
            let lower = segment.to_ascii_lowercase();
            let dots = lower.replace("%2e", ".");
            lower.contains("%2e") && (dots == "." || dots == "..")
        }
    })
}

impl<S> Layer<S> for PathGuardLayer {
    type Service = PathGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PathGuard { inner }
    }
}

/// The service of [`PathGuardLayer`].
#[derive(Clone, Debug)]
pub struct PathGuard<S> {
    inner: S,
}

impl<S, B, ResB> Service<Request<B>> for PathGuard<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<ResB>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_suspicious(request.uri().path()) {
            tracing::debug!(path = request.uri().path(), "suspicious path refused");
            let mut response = Response::new(ResB::default());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return ResponseFuture::refused(response);
        }
        ResponseFuture::inner(self.inner.call(request))
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`PathGuard`]: the inner service's, or the
    /// 400.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, R, E> {
        #[pin]
        state: State<F, R, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, R, E> {
        Inner { #[pin] future: F },
        Refused { response: Option<R>, _error: PhantomData<E> },
    }
}

impl<F, R, E> ResponseFuture<F, R, E> {
    fn inner(future: F) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    fn refused(response: R) -> Self {
        ResponseFuture {
            state: State::Refused {
                response: Some(response),
                _error: PhantomData,
            },
        }
    }
}

impl<F, R, E> fmt::Debug for ResponseFuture<F, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for ResponseFuture<F, R, E>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Refused { response, .. } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PathGuardLayer;

    #[test]
    fn suspicious_paths_are_recognised() {
        for path in [
            "/a/%2e%2e/b",
            "/a/%2E%2E",
            "/a/.%2e/b",
            "/a/%2e./b",
            "/%2e/x",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/a%00b",
            "/a%0ab",
            "/a%7f",
        ] {
            assert!(PathGuardLayer::is_suspicious(path), "{path}");
        }
        for path in [
            "/",
            "/a/b",
            "/a/..b",
            "/files/%20x",
            "/a/%2ex",
            "/caf%C3%A9",
            "/a/b.c",
        ] {
            assert!(!PathGuardLayer::is_suspicious(path), "{path}");
        }
    }
}
