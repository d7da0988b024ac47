//! Security headers on every response.
//!
//! The decision is [`HeaderPolicy`], a plain value that applies its
//! headers to a response's `HeaderMap` given whether the request was HTTPS
//! ([`apply`](HeaderPolicy::apply)); [`SecurityHeadersLayer`] is its tower
//! skin. Put the layer outermost but for [`ClientIpLayer`](crate::ClientIpLayer),
//! so that error responses of every layer inside it carry the headers and
//! HSTS follows the scheme a trusted proxy reported.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, header};
//! use seaworthy_layers::HeaderPolicy;
//!
//! let policy = HeaderPolicy::api();
//! let mut headers = HeaderMap::new();
//! headers.insert(header::SERVER, "nginx/1.2".parse().unwrap());
//! policy.apply(&mut headers, true, None);
//! assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
//! assert!(headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
//! assert!(!headers.contains_key(header::SERVER));
//! ```

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use http::header::{self, Entry, HeaderName, HeaderValue};

mod layer;

pub use layer::{ResponseFuture, SecurityHeaders, SecurityHeadersLayer};

const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=(), interest-cohort=()";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const WEB_CSP: &str = "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; \
                       form-action 'self'; frame-ancestors 'self'; img-src 'self' data:; \
                       object-src 'none'; script-src 'self' 'nonce-{NONCE}'; script-src-attr 'none'; \
                       style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests";
const HSTS: &str = "max-age=63072000; includeSubDomains";
const HSTS_PRELOAD: &str = "max-age=63072000; includeSubDomains; preload";

/// The per-request nonce of the [`web`](HeaderPolicy::web) preset's
/// `Content-Security-Policy`, in the request's extensions: put it in
/// `<script nonce="…">`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CspNonce(pub String);

/// Which security headers a response gets; see the [module docs](self).
///
/// Headers the handler set itself are kept (merge, not overwrite), unless
/// [`override_handler`](Self::override_handler) says otherwise for a
/// header. `Server` and `X-Powered-By` are removed.
/// `Strict-Transport-Security` is sent only over HTTPS, and exactly once;
/// over plain HTTP a handler's HSTS is removed too (browsers ignore it
/// there, and it would be a lie).
///
/// A plain value: setters take and return it, a clone is independent.
#[derive(Clone, Debug)]
#[must_use]
pub struct HeaderPolicy {
    /// Name, value, and whether it overrides the handler's.
    headers: Vec<(HeaderName, HeaderValue, bool)>,
    hsts: HeaderValue,
    /// A CSP with `{NONCE}` in it, filled per request.
    nonce_template: Option<String>,
    remove: Vec<HeaderName>,
    nonces: Arc<NonceSource>,
    /// The headers as maps, rebuilt by every setter.
    prepared: Arc<Prepared>,
}

/// The policy's headers as ready maps: a response's map is a clone of one
/// of them with the response's own headers merged in, so that no header
/// of the policy is hashed per response.
#[derive(Debug, Default)]
struct Prepared {
    plain: HeaderMap,
    https: HeaderMap,
    /// Names whose values are the policy's whatever the handler said.
    forced: Vec<HeaderName>,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        HeaderPolicy::api()
    }
}

impl HeaderPolicy {
    fn preset(csp: Option<&'static str>, nonce_template: Option<String>) -> Self {
        let mut headers = Vec::with_capacity(10);
        if let Some(csp) = csp {
            headers.push((
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
                false,
            ));
        }
        for (name, value) in [
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-origin",
            ),
            (
                HeaderName::from_static("permissions-policy"),
                PERMISSIONS_POLICY,
            ),
            (header::X_XSS_PROTECTION, "0"),
        ] {
            headers.push((name, HeaderValue::from_static(value), false));
        }
        HeaderPolicy {
            headers,
            hsts: HeaderValue::from_static(HSTS),
            nonce_template,
            remove: vec![header::SERVER, HeaderName::from_static("x-powered-by")],
            nonces: Arc::default(),
            prepared: Arc::default(),
        }
        .prepare()
    }

    /// For APIs (the default): `Content-Security-Policy: default-src
    /// 'none'; frame-ancestors 'none'`, and the common set:
    /// `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
    /// `Referrer-Policy: no-referrer`, `Cross-Origin-Opener-Policy` and
    /// `Cross-Origin-Resource-Policy: same-origin`, a deny-list
    /// `Permissions-Policy`, `X-XSS-Protection: 0` (the old filter is
    /// itself an attack vector).
    pub fn api() -> Self {
        HeaderPolicy::preset(Some(API_CSP), None)
    }

    /// For web pages: helmet's policy with a per-request script nonce (see
    /// [`nonce`](Self::nonce)), and the common set.
    pub fn web() -> Self {
        HeaderPolicy::preset(None, Some(WEB_CSP.to_owned()))
    }

    /// Rebuilds the prepared maps after a change.
    fn prepare(mut self) -> Self {
        let mut plain = HeaderMap::with_capacity(self.headers.len() + 4);
        for (name, value, _) in &self.headers {
            plain.insert(name.clone(), value.clone());
        }
        let mut https = plain.clone();
        https.insert(header::STRICT_TRANSPORT_SECURITY, self.hsts.clone());
        let forced = self
            .headers
            .iter()
            .filter(|entry| entry.2)
            .map(|entry| entry.0.clone())
            .collect();
        self.prepared = Arc::new(Prepared {
            plain,
            https,
            forced,
        });
        self
    }

    /// Adds `Cache-Control: no-store` (when the handler set none): for APIs
    /// whose answers must not be cached by intermediaries.
    pub fn no_store(self) -> Self {
        self.header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
    }

    /// Sets `name` to `value` (replacing the preset's value, if any).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if let Some(entry) = self.headers.iter_mut().find(|entry| entry.0 == name) {
            entry.1 = value;
        } else {
            self.headers.push((name, value, false));
        }
        self.prepare()
    }

    /// Overwrites `name` even when the handler set it.
    pub fn override_handler(mut self, name: HeaderName) -> Self {
        for entry in self.headers.iter_mut().filter(|entry| entry.0 == name) {
            entry.2 = true;
        }
        self.prepare()
    }

    /// Adds `preload` to HSTS (read hstspreload.org first: it is hard to
    /// undo).
    pub fn hsts_preload(mut self, preload: bool) -> Self {
        self.hsts = HeaderValue::from_static(if preload { HSTS_PRELOAD } else { HSTS });
        self.prepare()
    }

    /// A fresh nonce for one request, when the policy's CSP uses one (the
    /// [`web`](Self::web) preset): 128 unpredictable bits, base64.
    pub fn nonce(&self) -> Option<CspNonce> {
        self.nonce_template
            .as_ref()
            .map(|_| CspNonce(self.nonces.next()))
    }

    /// Applies the policy to a response's `headers`: the policy's headers
    /// where the handler set none (or where they override it), `Server`
    /// and `X-Powered-By` removed, HSTS exactly once when `https` and never
    /// otherwise, and the CSP of a nonce policy with `nonce` filled in.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderMap;
    /// use seaworthy_layers::HeaderPolicy;
    ///
    /// let policy = HeaderPolicy::web();
    /// let nonce = policy.nonce(); // give it to the page's template too
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-frame-options", "SAMEORIGIN".parse().unwrap());
    /// policy.apply(&mut headers, false, nonce.as_ref());
    /// assert_eq!(headers["x-frame-options"], "SAMEORIGIN"); // the handler's is kept
    /// assert!(!headers.contains_key("strict-transport-security")); // plain HTTP
    /// let csp = headers["content-security-policy"].to_str().unwrap();
    /// assert!(csp.contains(&nonce.unwrap().0));
    /// ```
    pub fn apply(&self, headers: &mut HeaderMap, https: bool, nonce: Option<&CspNonce>) {
        let prepared = &*self.prepared;
        let mut merged = if https {
            prepared.https.clone()
        } else {
            prepared.plain.clone()
        };
        let own = std::mem::take(headers);
        // The entry of the name being merged: the map's iterator gives a
        // name with its first value only.
        let mut current = None;
        for (name, value) in own {
            match name {
                Some(name) => {
                    current = None;
                    if self.keeps(prepared, &name, https) {
                        current = Some(match merged.entry(name) {
                            Entry::Occupied(mut entry) => {
                                entry.insert(value);
                                entry
                            }
                            Entry::Vacant(entry) => entry.insert_entry(value),
                        });
                    }
                }
                None => {
                    if let Some(entry) = current.as_mut() {
                        entry.append(value);
                    }
                }
            }
        }
        if let (Some(template), Some(CspNonce(nonce))) = (&self.nonce_template, nonce)
            && let Entry::Vacant(entry) = merged.entry(header::CONTENT_SECURITY_POLICY)
        {
            let value = HeaderValue::from_str(&template.replace("{NONCE}", nonce))
                .unwrap_or(HeaderValue::from_static(API_CSP));
            entry.insert(value);
        }
        *headers = merged;
    }

    /// Every header name this policy may set or remove (its headers,
    /// `Strict-Transport-Security`, `Content-Security-Policy` when it is
    /// made per request with a nonce, and those it strips): a server that
    /// keeps its headers in another type (actix-web) converts these alone
    /// for [`apply`](Self::apply), which reads and writes no other.
    ///
    /// ```
    /// use seaworthy_layers::HeaderPolicy;
    ///
    /// let policy = HeaderPolicy::web(); // its CSP carries a nonce
    /// assert!(policy.names().any(|name| name == "content-security-policy"));
    /// assert!(policy.names().any(|name| name == "server")); // stripped
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        let csp = self
            .nonce_template
            .as_ref()
            .map(|_| &header::CONTENT_SECURITY_POLICY);
        self.headers
            .iter()
            .map(|(name, _, _)| name)
            .chain(std::iter::once(&header::STRICT_TRANSPORT_SECURITY))
            .chain(csp)
            .chain(self.remove.iter())
    }

    /// Whether a header the handler set stays.
    fn keeps(&self, prepared: &Prepared, name: &HeaderName, https: bool) -> bool {
        if name == header::STRICT_TRANSPORT_SECURITY {
            return https;
        }
        !self.remove.contains(name) && !prepared.forced.contains(name)
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

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn the_handlers_headers_win_every_value_is_kept_and_removed_ones_go() {
        let policy = HeaderPolicy::api();
        let mut headers = map(&[
            ("content-type", "text/plain"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-frame-options", "SAMEORIGIN"),
            ("server", "hyper"),
            ("x-powered-by", "php"),
            ("strict-transport-security", "max-age=1"),
        ]);
        policy.apply(&mut headers, false, None);
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["content-security-policy"], API_CSP);
        for gone in ["server", "x-powered-by", "strict-transport-security"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn hsts_exactly_once_over_https_and_the_handlers_own_is_kept() {
        let policy = HeaderPolicy::api().hsts_preload(true);
        let mut headers = HeaderMap::new();
        policy.apply(&mut headers, true, None);
        assert_eq!(
            headers.get_all("strict-transport-security").iter().count(),
            1
        );
        assert_eq!(headers["strict-transport-security"], HSTS_PRELOAD);
        let mut own = map(&[("strict-transport-security", "max-age=5")]);
        policy.apply(&mut own, true, None);
        assert_eq!(own.get_all("strict-transport-security").iter().count(), 1);
        assert_eq!(own["strict-transport-security"], "max-age=5");
    }

    #[test]
    fn an_override_replaces_the_handlers_value_and_clones_are_independent() {
        let base = HeaderPolicy::api();
        let strict = base
            .clone()
            .header(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"))
            .override_handler(header::X_FRAME_OPTIONS)
            .no_store();
        let mut headers = map(&[("x-frame-options", "SAMEORIGIN")]);
        strict.apply(&mut headers, false, None);
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        let mut headers = map(&[("x-frame-options", "SAMEORIGIN")]);
        base.apply(&mut headers, false, None);
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert!(!headers.contains_key("cache-control"));
    }

    #[test]
    fn the_web_preset_fills_its_nonce_unless_the_handler_set_a_csp() {
        let policy = HeaderPolicy::web();
        let nonce = policy.nonce().unwrap();
        assert_eq!(nonce.0.len(), 24);
        let mut headers = HeaderMap::new();
        policy.apply(&mut headers, false, Some(&nonce));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains(&format!("'nonce-{}'", nonce.0)), "{csp}");
        let mut own = map(&[("content-security-policy", "default-src 'self'")]);
        policy.apply(&mut own, false, Some(&nonce));
        assert_eq!(own["content-security-policy"], "default-src 'self'");
        assert!(HeaderPolicy::api().nonce().is_none());
    }
}
