//! What a server does without seaworthy, for the upgrade harness to compare
//! with: `axum::serve` with a graceful shutdown on SIGTERM, the echo route,
//! and `REUSE_PORT=1` to bind with `SO_REUSEPORT` (the "start the new one,
//! then stop the old one" restart). Prints the flagship's `listening on`
//! line.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use socket2::{Domain, Socket, Type};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(0);
    let reuse_port = std::env::var("REUSE_PORT").is_ok_and(|value| value == "1");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(socket.into())?;
    let mut term = signal(SignalKind::terminate())?;
    let app = Router::new().route("/echo", post(|body: Bytes| async move { body }));
    println!(
        "listening on http://{} (pid {})",
        listener.local_addr()?,
        std::process::id()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await
}
