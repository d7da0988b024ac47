//! seaworthy's listeners for actix's `HttpServer`.

use std::fmt;
use std::io;

use actix_http::Request;
use actix_service::IntoServiceFactory;
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Response, Service, ServiceFactory};
use actix_web::{Error, HttpServer};
use seaworthy_listener::{Listener, StdListener};

/// Gives `server` a seaworthy [`Listener`]: bound with production's
/// socket options, inherited from systemd, or handed over by an upgrade
/// ([`Upgrader::listener`](seaworthy_listener::upgrade::Upgrader::listener)).
///
/// It serves HTTP/1 (and HTTP/2 where actix negotiates it, over TLS). Not
/// HTTP/2 with prior knowledge on plain TCP (h2c): actix's
/// `listen_auto_h2c` peeks at a connection's first bytes with no timeout,
/// so a client that connects and sends nothing holds a connection slot
/// until it leaves, and holds the drain until the shutdown budget. Over
/// HTTP/1 such a client meets actix's `client_request_timeout` and closes
/// at once when the server stops. A user who needs h2c behind a trusted
/// proxy can call `HttpServer::listen_auto_h2c` with
/// `Listener::into_std` and accept that.
///
/// The descriptor is moved to actix, not duplicated: when actix stops, the
/// socket closes and new connections are refused at once (a duplicate left
/// open would keep them waiting in a queue nobody reads). In an upgrade it
/// waits until the hand-over says go ([`Upgrader::ready`]), so that actix
/// takes no connection before the old process has stopped taking them.
///
/// [`Upgrader::ready`]: seaworthy_listener::upgrade::Upgrader::ready
///
/// # Errors
///
/// As `HttpServer::listen`; or a kind of socket actix cannot serve.
pub async fn listen<F, I, S, B>(
    server: HttpServer<F, I, S, B>,
    listener: Listener,
) -> io::Result<HttpServer<F, I, S, B>>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    match listener.into_std().await? {
        StdListener::Tcp(listener) => server.listen(listener),
        #[cfg(unix)]
        StdListener::Unix(listener) => server.listen_uds(listener),
        #[allow(unreachable_patterns)]
        _ => Err(io::Error::other("a kind of socket actix cannot serve")),
    }
}
