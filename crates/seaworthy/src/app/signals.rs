//! The signals that would otherwise end the process at once, dropping the
//! requests in flight.

use tokio::signal::unix::{SignalKind, signal};

use super::{Reread, Tls};

/// SIGHUP reloads the certificates and re-reads and checks the settings
/// (never stopping the server: a bad one is logged and the running
/// settings stay); SIGUSR1 and SIGALRM mean nothing here and are logged.
/// (SIGTERM, SIGINT and SIGQUIT drain; SIGUSR2 upgrades.)
pub(super) fn spawn(tls: Option<Tls>, reread: Reread) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            reload_tls(tls.as_ref());
            match reread().as_slice() {
                [] => tracing::info!(
                    "SIGHUP: the configuration was re-read and is valid; this version applies \
                     settings at start, so restart (SIGUSR2 upgrades in place) to apply changes"
                ),
                problems => tracing::error!(
                    ?problems,
                    "SIGHUP: the configuration is invalid; the running settings stay"
                ),
            }
        }
    });
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::alarm(), "SIGALRM"),
    ] {
        let mut stream = signal(kind)?;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                tracing::info!(
                    signal = name,
                    "signal ignored: it means nothing to this server"
                );
            }
        });
    }
    Ok(())
}

/// A refused pair is logged by the reload, and the old one serves on.
#[cfg(feature = "tls")]
fn reload_tls(tls: Option<&Tls>) {
    if let Some(Ok(changed)) = tls.map(Tls::reload) {
        tracing::info!(changed, "SIGHUP: TLS certificates reloaded");
    }
}

#[cfg(not(feature = "tls"))]
fn reload_tls(tls: Option<&Tls>) {
    if let Some(tls) = tls {
        match *tls {}
    }
}
