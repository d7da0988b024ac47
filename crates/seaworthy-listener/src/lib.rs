//! Listeners that survive restarts, and a serve loop whose drain drops
//! nothing.
//!
//! # Overview
//!
//! - **Bind** a [`Listener`] with production's socket options ([`Bind`]):
//!   `SO_REUSEADDR`, opt-in `SO_REUSEPORT`, the kernel's `somaxconn` as the
//!   backlog, `TCP_NODELAY`, TCP keep-alive, an explicit dual-stack choice;
//!   TCP or Unix domain sockets.
//! - **Inherit** one instead: systemd socket activation by name or index
//!   ([`Listener::from_systemd`]), or whichever is there
//!   ([`Listener::inherit_or_bind`]): the same binary runs under systemd and
//!   on a laptop. Inherited descriptors are checked (a listening stream
//!   socket), made non-blocking and close-on-exec, and the `LISTEN_*`
//!   variables are removed so that children never see them.
//! - **Accept** without failing: per-connection errors are retried;
//!   `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM` back off exponentially (5 ms
//!   to 1 s), logged once per burst, shedding one queued connection per step
//!   through a reserve descriptor. Never a hot loop, never a silent sleep.
//! - **Serve** hyper 1 with any tower service ([`Server`]): HTTP/1.1 and
//!   HTTP/2 detected per connection (h2c included), a connection limit, a
//!   header-read timeout that times the head alone, a keep-alive timeout,
//!   HTTP/2 pings, max requests and max age with jitter, lingering close.
//!   Each request carries a [`ConnectionInfo`]; axum's `ConnectInfo` works.
//! - **Drain** with [`seaworthy_shutdown`]: keep accepting through the drain
//!   delay while every response says `Connection: close` and HTTP/2 gets
//!   GOAWAY; then refuse new handshakes, serve what is queued, close idle
//!   connections after a short grace, and cut whatever is left at the
//!   deadline, counted in the shutdown report.
//! - **Upgrade** in place with no dropped connection ([`upgrade::Upgrader`],
//!   Unix): on `SIGUSR2` the new binary is started with the very same
//!   listening sockets, accepts once it reports ready, and only then this
//!   process drains; a new process that fails or is not ready in time is
//!   killed and this one keeps serving. Also hands over through a Unix
//!   socket (`SCM_RIGHTS`) to a process this one did not start, and tells
//!   systemd (`READY`, `RELOADING`, `MAINPID`, `STOPPING`).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use seaworthy_listener::{Bind, Listener, Server};
//! use seaworthy_shutdown::Shutdown;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let shutdown = Shutdown::builder()
//!         .drain_delay(Duration::from_secs(5))
//!         .build()?;
//!     // systemd's socket named "http" if there is one, else bind.
//!     let listener = Listener::inherit_or_bind("http", Bind::tcp("0.0.0.0:8000".parse()?))?;
//!     let app = Router::new().route("/", get(|| async { "hello" }));
//!     let server = Server::new().header_read_timeout(Duration::from_secs(10));
//!     shutdown.spawn("http", server.serve(listener, app, shutdown.token()));
//!     let report = shutdown.wait().await; // SIGTERM: drain, then exit
//!     std::process::exit(report.exit_code());
//! }
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | `axum::serve::Listener` for [`Listener`], `Connected` for [`Addr`], and axum's `ConnectInfo<SocketAddr>` in every request [`Server`] serves |
//! | `tls` | TLS termination with rustls ([`tls`]): certificates from PEM files by SNI, checked before they are served, reloaded on change; a handshake timeout and limit; mutual TLS; an HTTP-to-HTTPS redirect |
//!
//! # Start-up order
//!
//! Take inherited sockets early in `main`, before starting threads that
//! read the environment through libc (C libraries, `getaddrinfo`): the
//! first call removes the `LISTEN_*` variables, and changing the
//! environment while another thread reads it through libc is undefined
//! behaviour. Reads through `std::env` are always safe.
//!
//! # Comparison with `axum::serve`
//!
//! `axum::serve` stops accepting the moment its shutdown signal fires, so
//! clients still routed to the process during endpoint propagation are
//! refused; it closes connections it thinks idle at once, losing the request
//! a busy keep-alive client had on the wire; it sets no header-read timeout
//! and waits for connections with no deadline, so one client holding half a
//! request head keeps the process alive for ever. [`Server`] drains in
//! phases, closes only connections idle for a grace, times every head, and
//! ends within the shutdown budget. Its listener trait is implemented here,
//! so `axum::serve` users get the socket handling anyway.
//!
//! # Comparison with hyper-util's `GracefulShutdown`
//!
//! `GracefulShutdown` calls `graceful_shutdown` on every connection it
//! watches: right for HTTP/2, but on an idle HTTP/1 connection it closes at
//! once, racing the client's next request. It has no drain delay, deadline
//! or accept loop; this crate builds them around hyper-util's connection.
//!
//! # Comparison with axum-server
//!
//! axum-server adds TLS and a graceful handle with a timeout, but stops
//! accepting at once, inherits no sockets, and has no header-read timeout
//! for slow heads or back-off on `EMFILE`. Its TLS reload replaces the whole
//! rustls configuration (sessions lost) with whatever parses; here the
//! certificate alone is swapped after a gate, on file change
//! ([`tls`]).
//!
//! # Comparison with tableflip, ecdysis, shellflip, Pingora and nginx
//!
//! The upgrade follows the design the best of them share: pass the same
//! listening socket to the new process, let it report ready, then drain the
//! old one. Go's tableflip and Cloudflare's ecdysis (Go) and shellflip
//! (Rust) pass the sockets and wait for ready, but leave the HTTP drain,
//! the readiness criterion and the connection accounting to the user;
//! shellflip's ready is "the process says so", not "its health passes".
//! Pingora's graceful upgrade hands sockets over a Unix socket to a process
//! a supervisor started (the [`handoff_socket`](upgrade::UpgraderBuilder::handoff_socket)
//! mode here), but has no exec mode and no rollback: if the new process
//! fails, the old one has already stopped. nginx's binary upgrade (`USR2`
//! then `WINCH`/`QUIT`) needs an operator or script to check the new master
//! and stop the old one. Here one signal does the whole sequence, the gate
//! is the health registry's readiness, a failing new version is rolled back
//! while the old one never stopped serving, and the old process drains
//! through the same phases as a shutdown, so keep-alive and HTTP/2 clients
//! move over without a lost request (0 failed in 100 upgrades under load;
//! `docs/upgrade.md`).
//!
//! # Comparison with listenfd
//!
//! listenfd hands over systemd's descriptors as they are: blocking (tokio
//! hangs on them unless the caller remembers `set_nonblocking`), unchecked,
//! and with `LISTEN_*` left for children to find. Here every inherited
//! descriptor is validated and prepared, by name as well as by index.
//!
//! # Dependencies and platforms
//!
//! 49 normal dependencies in all (`cargo tree -e normal` on Linux): hyper
//! and hyper-util's server, socket2, tokio, tower, tracing, seaworthy's
//! shutdown coordinator and connection facts, and on Unix nix (descriptor
//! passing), libc and sd-notify. The `tls` feature adds 44 more: rustls,
//! tokio-rustls and aws-lc-rs (which builds C), x509-parser for the
//! certificate gate, arc-swap, and notify for the file watch. Binding,
//! serving and draining build on every platform tokio supports; systemd
//! inheritance, the upgrade and its hand-off socket are Unix-only; the
//! drain's SYN filter is Linux-only (elsewhere the drain closes the
//! listener after sweeping its queue); `SO_REUSEPORT` is Unix-only. CI
//! checks macOS, FreeBSD and Windows with `cargo check` (without `tls`,
//! whose aws-lc-rs needs the target's C compiler).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

#[cfg(feature = "axum")]
mod axum;
mod bind;
mod error;
mod listener;
mod server;
#[allow(unsafe_code)]
mod sys;
#[cfg(unix)]
pub mod systemd;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

/// docs/tls.md's examples run as doc tests, so that the guide stays true.
#[cfg(all(doctest, feature = "tls"))]
#[doc = include_str!("../../../docs/tls.md")]
mod tls_guide {}
#[cfg(unix)]
pub mod upgrade;

pub use bind::Bind;
pub use error::Error;
pub use listener::{Listener, Source, StdListener, Stream};
/// The facts of a connection, from the leaf crate the layers share.
#[doc(inline)]
pub use seaworthy_connection::{Addr, ConnectionInfo, TlsInfo};
pub use server::{Counters, CountersSnapshot, Server};
