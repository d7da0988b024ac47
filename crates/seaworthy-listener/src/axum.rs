//! axum integration: `axum::serve` over a seaworthy [`Listener`].

use std::io;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;

use crate::{Addr, Listener, Stream};

/// `axum::serve(listener, app)` accepts through seaworthy's listener: the
/// socket options, systemd inheritance and accept back-off apply. The drain
/// does not: for that, serve with [`Server`](crate::Server).
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

/// `ConnectInfo<Addr>` under `axum::serve` with a seaworthy [`Listener`].
impl Connected<IncomingStream<'_, Listener>> for Addr {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}
