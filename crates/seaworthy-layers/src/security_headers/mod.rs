//! Security headers on every response.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use http::header::{self, Entry, HeaderName, HeaderValue};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::{ClientIp, peer};

const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=(), interest-cohort=()";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Set by the client-IP layer further in, read by the headers layer on the
/// way out: whether the request was HTTPS as the trusted proxies told it.
#[derive(Clone, Debug)]
pub(crate) struct HttpsSlot(Arc<std::sync::atomic::AtomicU8>);

impl HttpsSlot {
    pub(crate) fn set(&self, https: bool) {
        self.0.store(if https { 2 } else { 1 }, Ordering::Relaxed);
    }

    fn get(&self) -> Option<bool> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            value => Some(value == 2),
        }
    }
}

/// The per-request nonce of the [`web`](SecurityHeadersLayer::web) preset's
/// `Content-Security-Policy`, in the request's extensions: put it in
/// `<script nonce="…">`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CspNonce(pub String);

/// Sets security headers on every response, error responses from inner
/// layers included (put it outermost); see the [crate docs](crate).
///
/// Headers the handler set itself are kept (merge, not overwrite), unless
/// [`override_handler`](Self::override_handler) says otherwise for a header.
/// `Server` and `X-Powered-By` are removed. `Strict-Transport-Security` is
/// sent only when the request came over TLS (or a trusted proxy said
/// https), and exactly once.
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
#[derive(Clone, Debug)]
#[must_use]
pub struct SecurityHeadersLayer {
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    headers: Vec<(HeaderName, HeaderValue, bool)>,
    hsts: HeaderValue,
    nonce: Option<String>,
    remove: Vec<HeaderName>,
    nonces: NonceSource,
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        SecurityHeadersLayer::api()
    }
}

impl SecurityHeadersLayer {
    fn preset(csp: Option<&'static str>, nonce: Option<String>) -> Self {
        let mut headers = vec![
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
                false,
            ),
            (
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
                false,
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
                false,
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
                false,
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
                false,
            ),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static(PERMISSIONS_POLICY),
                false,
            ),
            (
                header::X_XSS_PROTECTION,
                HeaderValue::from_static("0"),
                false,
            ),
        ];
        if let Some(csp) = csp {
            headers.insert(
                0,
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(csp),
                    false,
                ),
            );
        }
        SecurityHeadersLayer {
            config: Arc::new(Config {
                headers,
                hsts: HeaderValue::from_static(HSTS),
                nonce,
                remove: vec![header::SERVER, HeaderName::from_static("x-powered-by")],
                nonces: NonceSource::default(),
            }),
        }
    }

    /// For APIs (the default): `Content-Security-Policy: default-src
    /// 'none'; frame-ancestors 'none'`, and the common set:
    /// `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
    /// `Referrer-Policy: no-referrer`, `Cross-Origin-Opener-Policy` and
    /// `Cross-Origin-Resource-Policy: same-origin`, a deny-list
    /// `Permissions-Policy`, `X-XSS-Protection: 0` (the old filter is
    /// itself an attack vector).
    pub fn api() -> Self {
        SecurityHeadersLayer::preset(Some(API_CSP), None)
    }

    /// For web pages: helmet's policy with a per-request script nonce (a
    /// [`CspNonce`] in each request's extensions), and the common set.
    pub fn web() -> Self {
        let csp = "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; \
                   form-action 'self'; frame-ancestors 'self'; img-src 'self' data:; \
                   object-src 'none'; script-src 'self' 'nonce-{NONCE}'; script-src-attr 'none'; \
                   style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests";
        SecurityHeadersLayer::preset(None, Some(csp.to_owned()))
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        let config = Arc::get_mut(&mut self.config).expect("configured before cloning");
        change(config);
        self
    }

    /// Adds `Cache-Control: no-store` (when the handler set none): for APIs
    /// whose answers must not be cached by intermediaries.
    pub fn no_store(self) -> Self {
        self.header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
    }

    /// Sets `name` to `value` (replacing the preset's value, if any).
    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.with(|config| {
            if let Some(entry) = config.headers.iter_mut().find(|entry| entry.0 == name) {
                entry.1 = value;
            } else {
                config.headers.push((name, value, false));
            }
        })
    }

    /// Overwrites `name` even when the handler set it.
    pub fn override_handler(self, name: HeaderName) -> Self {
        self.with(|config| {
            for entry in config.headers.iter_mut().filter(|entry| entry.0 == name) {
                entry.2 = true;
            }
        })
    }

    /// Adds `preload` to HSTS (read hstspreload.org first: it is hard to
    /// undo).
    pub fn hsts_preload(self, preload: bool) -> Self {
        self.with(|config| {
            config.hsts = if preload {
                HeaderValue::from_static("max-age=63072000; includeSubDomains; preload")
            } else {
                HeaderValue::from_static(HSTS)
            };
        })
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub struct SecurityHeaders<S> {
    inner: S,
    config: Arc<Config>,
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
        let https = request
            .extensions()
            .get::<ClientIp>()
            .map(|client| client.https)
            .or_else(|| peer(&request).map(|(_, tls)| tls))
            .unwrap_or(false);
        let slot = HttpsSlot(Arc::default());
        request.extensions_mut().insert(slot.clone());
        let csp = self.config.nonce.as_ref().map(|template| {
            let nonce = self.config.nonces.next();
            request.extensions_mut().insert(CspNonce(nonce.clone()));
            HeaderValue::from_str(&template.replace("{NONCE}", &nonce))
                .unwrap_or(HeaderValue::from_static(API_CSP))
        });
        ResponseFuture {
            inner: self.inner.call(request),
            config: Arc::clone(&self.config),
            https,
            slot,
            csp,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        config: Arc<Config>,
        https: bool,
        slot: HttpsSlot,
        csp: Option<HeaderValue>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
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
        let headers = response.headers_mut();
        for name in &this.config.remove {
            headers.remove(name);
        }
        // Room for all at once, not a regrowth or two on the way; one hash
        // per header (an entry), not two (a lookup, then an insert).
        headers.reserve(this.config.headers.len() + 2);
        if let Some(csp) = this.csp.take()
            && let Entry::Vacant(vacant) = headers.entry(header::CONTENT_SECURITY_POLICY)
        {
            vacant.insert(csp);
        }
        for (name, value, force) in &this.config.headers {
            if *force {
                headers.insert(name.clone(), value.clone());
            } else if let Entry::Vacant(vacant) = headers.entry(name) {
                vacant.insert(value.clone());
            }
        }
        if this.slot.get().unwrap_or(*this.https) {
            if let Entry::Vacant(vacant) = headers.entry(header::STRICT_TRANSPORT_SECURITY) {
                vacant.insert(this.config.hsts.clone());
            }
        } else {
            // Over plain HTTP, HSTS is ignored by browsers and a lie.
            headers.remove(header::STRICT_TRANSPORT_SECURITY);
        }
        Poll::Ready(Ok(response))
    }
}

/// Unpredictable nonces: SipHash under the process's random keys, of a
/// counter.
#[derive(Debug, Default)]
struct NonceSource {
    state: RandomState,
    counter: AtomicU64,
}

impl NonceSource {
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let a = self.state.hash_one((n, 1_u8));
        let b = self.state.hash_one((n, 2_u8));
        let mut bytes = [0_u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        base64(&bytes)
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi!"), "aGkh");
        assert_eq!(base64(&[0xff; 16]).len(), 24);
    }

    #[test]
    fn nonces_differ() {
        let source = NonceSource::default();
        assert_ne!(source.next(), source.next());
    }
}
