//! The plain-HTTP listener's service: everything to HTTPS, but ACME's
//! challenges.

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tower_service::Service;

/// Where ACME's HTTP-01 challenges are asked for.
const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

type Challenges = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A service for port 80 that sends every request to `https://` with the
/// same host, path and query: `308 Permanent Redirect` (the method and body
/// are kept), or 301 if you prefer.
///
/// No `Strict-Transport-Security` is sent: browsers ignore it over plain
/// HTTP, and the HTTPS responses carry it. The host comes from the request
/// target or the `Host` header, its port replaced by the HTTPS port; a
/// request without a valid host is answered `400`, never redirected to a
/// name the client made up with a malformed header.
///
/// ACME HTTP-01 challenges (`/.well-known/acme-challenge/{token}`) are
/// answered from the function given to
/// [`acme_challenges`](Self::acme_challenges), not redirected.
///
/// ```no_run
/// use seaworthy_listener::tls::HttpsRedirect;
/// use seaworthy_listener::{Listener, Server};
/// # async fn run(shutdown: seaworthy_shutdown::Shutdown) -> Result<(), Box<dyn std::error::Error>> {
/// let listener = Listener::bind("0.0.0.0:80".parse()?)?;
/// let redirect = Server::new().serve(listener, HttpsRedirect::new(), shutdown.token());
/// shutdown.spawn("http-redirect", redirect);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpsRedirect {
    https_port: u16,
    status: StatusCode,
    challenges: Option<Challenges>,
}

impl Default for HttpsRedirect {
    fn default() -> Self {
        HttpsRedirect {
            https_port: 443,
            status: StatusCode::PERMANENT_REDIRECT,
            challenges: None,
        }
    }
}

impl fmt::Debug for HttpsRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsRedirect")
            .field("https_port", &self.https_port)
            .field("status", &self.status)
            .field("challenges", &self.challenges.is_some())
            .finish()
    }
}

impl HttpsRedirect {
    /// Redirects to port 443 with 308.
    pub fn new() -> Self {
        HttpsRedirect::default()
    }

    /// The port HTTPS is served on (left out of the URL when 443).
    pub fn https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    /// Answers `301 Moved Permanently` instead of 308: for clients that do
    /// not know 308 (none current); a 301 may turn a POST into a GET.
    pub fn moved_permanently(mut self) -> Self {
        self.status = StatusCode::MOVED_PERMANENTLY;
        self
    }

    /// Answers ACME HTTP-01 challenges: `GET
    /// /.well-known/acme-challenge/{token}` is answered `200` with what
    /// `answer(token)` returns (the key authorization), or `404` when it
    /// returns `None`. Tokens are base64url; anything else is a 404 without
    /// asking.
    pub fn acme_challenges(
        mut self,
        answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.challenges = Some(Arc::new(answer));
        self
    }

    /// The response for `request`.
    fn respond<B>(&self, request: &Request<B>) -> Response<String> {
        let path = request.uri().path();
        if let (Some(token), Some(challenges)) = (path.strip_prefix(ACME_PREFIX), &self.challenges)
        {
            return Self::challenge(request.method(), token, challenges);
        }
        let Some(host) = host_of(request) else {
            return text(
                StatusCode::BAD_REQUEST,
                "a valid Host header is required\n".to_owned(),
            );
        };
        let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let location = if self.https_port == 443 {
            format!("https://{host}{path_and_query}")
        } else {
            format!("https://{host}:{}{path_and_query}", self.https_port)
        };
        let Ok(value) = HeaderValue::from_str(&location) else {
            return text(
                StatusCode::BAD_REQUEST,
                "invalid request target\n".to_owned(),
            );
        };
        let mut response = text(self.status, format!("moved to {location}\n"));
        response.headers_mut().insert(LOCATION, value);
        response
    }

    fn challenge(method: &Method, token: &str, challenges: &Challenges) -> Response<String> {
        if method != Method::GET && method != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned());
        }
        let valid = !token.is_empty()
            && token.len() <= 256
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match valid.then(|| challenges(token)).flatten() {
            Some(answer) => text(StatusCode::OK, answer),
            None => text(StatusCode::NOT_FOUND, "no such challenge\n".to_owned()),
        }
    }
}

/// The request's host without its port: from the target (HTTP/2, or an
/// absolute URI) or the `Host` header; `None` when missing or malformed.
fn host_of<B>(request: &Request<B>) -> Option<String> {
    let authority = match request.uri().authority() {
        Some(authority) => authority.clone(),
        None => {
            let host = request.headers().get(HOST)?.to_str().ok()?;
            host.parse::<Authority>().ok()?
        }
    };
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let ipv6 = host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    (!host.is_empty() && (plain || ipv6)).then(|| host.to_ascii_lowercase())
}

fn text(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<B> Service<Request<B>> for HttpsRedirect {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(redirect: &HttpsRedirect, target: &str, host: Option<&str>) -> Response<String> {
        let mut request = Request::get(target);
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        redirect.respond(&request.body(()).unwrap())
    }

    #[test]
    fn redirects_to_the_same_host_path_and_query() {
        let redirect = HttpsRedirect::new();
        let response = get(&redirect, "/a/b?c=d&e", Some("Example.com:80"));
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[LOCATION],
            "https://example.com/a/b?c=d&e"
        );
        let response = get(&redirect.clone().https_port(8443), "/", Some("[::1]:8080"));
        assert_eq!(response.headers()[LOCATION], "https://[::1]:8443/");
        let response = get(&redirect.moved_permanently(), "http://h.test/x", None);
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(response.headers()[LOCATION], "https://h.test/x");
    }

    #[test]
    fn refuses_missing_and_forged_hosts() {
        let redirect = HttpsRedirect::new();
        for host in [
            None,
            Some(""),
            Some("evil.test/x"),
            Some("a@evil.test"),
            Some("a b"),
        ] {
            let response = get(&redirect, "/", host);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{host:?}");
            assert!(!response.headers().contains_key(LOCATION));
        }
    }

    #[test]
    fn answers_acme_challenges_and_nothing_else_there() {
        let redirect = HttpsRedirect::new()
            .acme_challenges(|token| (token == "tok_en-1").then(|| "tok_en-1.key".to_owned()));
        let response = get(
            &redirect,
            "/.well-known/acme-challenge/tok_en-1",
            Some("h.test"),
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "tok_en-1.key");
        for token in ["other", "a.b", "", "%2e%2e"] {
            let target = format!("/.well-known/acme-challenge/{token}");
            let response = get(&redirect, &target, Some("h.test"));
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{token}");
        }
        // Without a challenge source, the path is redirected like any other.
        let response = get(
            &HttpsRedirect::new(),
            "/.well-known/acme-challenge/x",
            Some("h.test"),
        );
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    }
}
