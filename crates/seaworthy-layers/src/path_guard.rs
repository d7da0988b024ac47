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

/// Whether `path` (as received, still percent-encoded) is refused.
///
/// Refused, because a router, a proxy or a file server behind the app may
/// decode the path once more than the rules that judged it did:
///
/// - a dot segment, `.` or `..`, raw (`/a/../b`), percent-encoded
///   (`/%2e%2e/`), encoded twice or three times (`%252e%252e`), or with
///   path parameters after it (`..;/`, which Tomcat and Spring read as
///   `..`);
/// - an encoded slash or backslash inside a segment (`%2f`, `%5c`, and
///   encoded again: `%252f`), or a raw backslash;
/// - a NUL or control character (`%00`–`%1f`, `%7f`), raw or encoded;
/// - a malformed escape in the path as received (`%zz`, `%2`, IIS's
///   `%u002e`);
/// - percent-encoded bytes that are not UTF-8, which is how overlong
///   encodings of `.` and `/` look (`%c0%ae`, `%e0%80%ae`, `%c0%af`);
/// - a path still encoded after three decodings.
///
/// A literal percent sign, encoded once (`/100%25`), is fine, and so are
/// segments that merely contain dots (`/.well-known/`, `/a/..b`).
///
/// # Examples
///
/// ```
/// use seaworthy_layers::path_guard::is_suspicious;
///
/// assert!(is_suspicious("/static/%2e%2e/secrets"));
/// assert!(is_suspicious("/static/%252e%252e/secrets"));
/// assert!(is_suspicious("/app/..;/admin"));
/// assert!(is_suspicious("/static/%c0%ae%c0%ae/secrets"));
/// assert!(!is_suspicious("/files/report%20final.pdf"));
/// assert!(!is_suspicious("/discount/100%25"));
/// ```
pub fn is_suspicious(path: &str) -> bool {
    let raw = path.as_bytes();
    // The common case, without allocating: nothing encoded, no backslash,
    // no control character, no dot segment.
    if !raw.iter().any(|&byte| byte == b'%' || is_forbidden(byte)) && !has_dot_segment(raw) {
        return false;
    }
    let mut current = std::borrow::Cow::Borrowed(raw);
    for round in 0..=DECODINGS {
        if current.iter().any(|&byte| is_forbidden(byte)) || has_dot_segment(&current) {
            return true;
        }
        // The first decoding must be of well-formed escapes; later ones
        // decode what still looks like an escape (a literal `%` left by
        // `%25` is fine on its own).
        let Some(decoded) = decode(&current, round == 0) else {
            return true;
        };
        if decoded.len() == current.len() {
            return false; // nothing left to decode
        }
        if round == DECODINGS
            || std::str::from_utf8(&decoded).is_err()
            || count(&decoded, b'/') != count(&current, b'/')
        {
            return true;
        }
        current = std::borrow::Cow::Owned(decoded);
    }
    true
}

/// How many times a path is decoded to look for what hides in it.
const DECODINGS: usize = 3;

/// A backslash, NUL, or another control character.
fn is_forbidden(byte: u8) -> bool {
    byte == b'\\' || byte < 0x20 || byte == 0x7f
}

fn count(bytes: &[u8], byte: u8) -> usize {
    bytes.iter().filter(|&&b| b == byte).count()
}

/// Whether a segment is `.` or `..`, once its path parameters (`;…`) are
/// set aside.
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&byte| byte == b'/').any(|segment| {
        let name = segment
            .split(|&byte| byte == b';')
            .next()
            .unwrap_or_default();
        name == b"." || name == b".."
    })
}

/// Percent-decodes `bytes`. `strict`: a `%` not followed by two hex
/// digits is malformed (`None`); otherwise it stays as it is.
fn decode(bytes: &[u8], strict: bool) -> Option<Vec<u8>> {
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'%' {
            let pair = bytes
                .get(at + 1..at + 3)
                .and_then(|pair| Some(hex(pair[0])? << 4 | hex(pair[1])?));
            match pair {
                Some(decoded) => {
                    out.push(decoded);
                    at += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(byte);
        at += 1;
    }
    Some(out)
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
    use super::is_suspicious;

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
            // Raw dot segments, and with path parameters.
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/..;/b",
            "/..;jsessionid=1/admin",
            "/a/.;x/b",
            // Encoded twice and three times.
            "/a/%252e%252e/b",
            "/a/%25252e%25252e/b",
            "/a%252fb",
            "/a%255cb",
            "/a%2500b",
            // Overlong UTF-8 for "." and "/".
            "/a/%c0%ae%c0%ae/b",
            "/a/%e0%80%ae/b",
            "/a%c0%afb",
            // Malformed escapes.
            "/a/%zz",
            "/a/%2",
            "/%u002e%u002e/",
        ] {
            assert!(is_suspicious(path), "{path}");
        }
        for path in [
            "/",
            "",
            "/a/b",
            "/a/..b",
            "/a/b..",
            "/files/%20x",
            "/a/%2ex",
            "/caf%C3%A9",
            "/a/b.c",
            "/discount/100%25",
            "/discount/100%25off",
            "/.well-known/acme-challenge/x",
            "/a;v=1/b",
            "/a/...",
        ] {
            assert!(!is_suspicious(path), "{path}");
        }
    }
}
