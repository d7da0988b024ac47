//! actix-web 4 speaks `http` 0.2; seaworthy's core speaks `http` 1. The
//! conversions live here, once.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap as ActixHeaders;
use http::{HeaderMap, HeaderName, HeaderValue};
use seaworthy_connection::{Addr, ConnectionInfo};
use seaworthy_layers::ClientIp;

/// actix's headers as an `http` 1 map (a header that does not convert,
/// which cannot happen for a valid request, is left out).
pub(crate) fn to_http(headers: &ActixHeaders) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Replaces actix's headers by `map`'s.
pub(crate) fn from_http(map: &HeaderMap, headers: &mut ActixHeaders) {
    headers.clear();
    for (name, value) in map {
        if let (Ok(name), Ok(value)) = (
            actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
}

/// Adds `map`'s headers to actix's, replacing those of the same name.
pub(crate) fn insert_http(map: &HeaderMap, headers: &mut ActixHeaders) {
    for name in map.keys() {
        if let Ok(name) = actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes())
        {
            headers.remove(&name);
        }
    }
    for (name, value) in map {
        if let (Ok(name), Ok(value)) = (
            actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
}

/// Sets the `RateLimit` and `RateLimit-Policy` fields on actix's headers.
pub(crate) fn insert_rate_limit(
    fields: &seaworthy_layers::rate_limit::RateLimitHeaders,
    headers: &mut ActixHeaders,
) {
    let mut map = HeaderMap::new();
    fields.apply(&mut map);
    insert_http(&map, headers);
}

/// The request's head as an `http` 1 request (its headers only when
/// `with_headers`: they are most of the conversion), with the fact the core
/// reads about the client: the resolved [`ClientIp`], or without one the
/// connection's peer as a [`ConnectionInfo`] (TLS when actix serves TLS).
pub(crate) fn head(request: &ServiceRequest, with_headers: bool) -> http::Request<()> {
    let mut head = http::Request::new(());
    *head.method_mut() =
        http::Method::from_bytes(request.method().as_str().as_bytes()).unwrap_or(http::Method::GET);
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    *head.uri_mut() = http::Uri::try_from(target).unwrap_or_else(|_| http::Uri::from_static("/"));
    if with_headers {
        *head.headers_mut() = to_http(request.headers());
    }
    // The resolved client, else the peer: the core reads the one there is.
    if let Some(client) = request.extensions().get::<ClientIp>() {
        head.extensions_mut().insert(*client);
    } else if let Some(info) = connection_info(request) {
        head.extensions_mut().insert(info);
    }
    head
}

/// The connection's facts as seaworthy records them: the peer actix saw,
/// and whether actix serves the connection over TLS.
pub(crate) fn connection_info(request: &ServiceRequest) -> Option<ConnectionInfo> {
    let peer = request.peer_addr()?;
    Some(ConnectionInfo::new(
        Addr::Tcp(peer),
        None,
        request.app_config().secure(),
    ))
}

/// Whether the client's connection is https: as the client-IP middleware
/// resolved it (a trusted proxy's word), else whether actix serves TLS.
/// Never a client's `X-Forwarded-Proto` alone.
pub(crate) fn is_https(request: &actix_web::HttpRequest) -> bool {
    request
        .extensions()
        .get::<ClientIp>()
        .map_or_else(|| request.app_config().secure(), |client| client.https)
}

/// The request headers the client-IP resolver reads or strips: a request
/// with none of them needs no conversion.
pub(crate) fn has_forwarding_headers(headers: &ActixHeaders) -> bool {
    use actix_web::http::header::{self, HeaderName};
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    [
        &header::FORWARDED,
        &header::X_FORWARDED_FOR,
        &header::X_FORWARDED_PROTO,
        &X_REAL_IP,
    ]
    .into_iter()
    .any(|name| headers.contains_key(name))
}
