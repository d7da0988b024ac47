//! actix's server under seaworthy's shutdown.

use std::time::Duration;

use seaworthy_shutdown::{Phase, ShutdownToken};

/// Between pausing actix's accept loop and stopping its workers: long
/// enough for a connection accepted a moment before to send its request.
const SETTLE: Duration = Duration::from_millis(250);

/// Runs an actix `Server` until the shutdown behind `token` stops it, and
/// holds the shutdown's connection drain open until actix has finished.
///
/// Build the server with actix's own signal handling off
/// (`HttpServer::disable_signals`: seaworthy's coordinator owns the
/// signals; two handlers fight over the first SIGTERM) and its graceful
/// timeout set from the budget ([`shutdown_timeout`]). Then:
///
/// | seaworthy phase | actix |
/// |---|---|
/// | running | serving |
/// | draining (the drain delay) | serving, readiness failing, so load balancers stop sending |
/// | closing | `ServerHandle::pause`, 250 ms for connections just accepted to be read, then `ServerHandle::stop(true)`: requests in flight finish |
/// | cancelling | whatever actix has not finished by its own timeout is dropped by actix |
///
/// actix sends no `Connection: close` while draining (seaworthy's own
/// server does); keep-alive clients learn of the stop when their
/// connection closes after their request.
///
/// ```no_run
/// use actix_web::{App, HttpServer, web};
/// use seaworthy_shutdown::Shutdown;
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let shutdown = Shutdown::builder().build().expect("signals");
///     let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hi" })))
///         .disable_signals()
///         .shutdown_timeout(seaworthy_actix::shutdown_timeout(
///             std::time::Duration::from_secs(30),
///             std::time::Duration::from_secs(5),
///         ))
///         .bind(("127.0.0.1", 8080))?
///         .run();
///     let token = shutdown.token();
///     actix_web::rt::spawn(seaworthy_actix::serve(server, token));
///     std::process::exit(shutdown.wait().await.exit_code());
/// }
/// ```
pub async fn serve(server: actix_web::dev::Server, token: ShutdownToken) -> std::io::Result<()> {
    let handle = server.handle();
    let guard = token.drain_guard();
    let stopper = {
        let token = token.clone();
        actix_web::rt::spawn(async move {
            token.reached(Phase::Closing).await;
            tracing::info!("closing: actix stops accepting and finishes its requests");
            // Accepting stops first, and the connections accepted just
            // before are let in (read and answered) before the workers
            // stop: stopping at once reset them. (A socket handed to an
            // upgrade's new process keeps its queue; that process takes it.)
            handle.pause().await;
            tokio::time::sleep(SETTLE).await;
            handle.stop(true).await;
        })
    };
    let result = server.await;
    stopper.abort();
    drop(guard);
    result
}

/// actix's graceful timeout (whole seconds, at least 1) for a shutdown
/// `budget` of which `drain_delay` goes to draining first: what is left
/// for the requests in flight, so that actix gives up before seaworthy
/// does.
pub fn shutdown_timeout(budget: Duration, drain_delay: Duration) -> u64 {
    budget.saturating_sub(drain_delay).as_secs().max(1)
}
