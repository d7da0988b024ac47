//! axum integration: `axum::serve` over a seaworthy [`Listener`].

use std::io;

use axum::serve::IncomingStream;

use crate::{Addr, Listener, Stream};

/// `axum::serve(listener, app)` accepts through seaworthy's listener: the
/// socket options, systemd inheritance and accept back-off apply. The drain
/// does not: for that, serve with [`Server`](crate::Server).
/// `ConnectInfo<Addr>` works with it (`into_make_service_with_connect_info::<Addr>()`),
/// and seaworthy-layers reads it.
impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        Listener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(self)
    }
}

impl seaworthy_connection::private::Sealed for Listener {}
impl seaworthy_connection::AddrListener for Listener {}

// `ConnectInfo<Addr>` comes from seaworthy-connection's `Connected` impl for
// every `AddrListener`; checked here so that a change there cannot drop it.
const _: fn() = || {
    fn connected<C: axum::extract::connect_info::Connected<T>, T>() {}
    connected::<Addr, IncomingStream<'static, Listener>>();
};
