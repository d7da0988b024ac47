use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of a [`Server`](crate::Server), cheap to clone and read
/// from anywhere (a metrics exporter, a test).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    cells: Arc<Cells>,
}

#[derive(Debug, Default)]
struct Cells {
    accepted: AtomicU64,
    closed: AtomicU64,
    limit_reached: AtomicU64,
    closed_at_deadline: AtomicU64,
    header_timeouts: AtomicU64,
    idle_closed: AtomicU64,
    accept_errors: AtomicU64,
    refused_per_ip: AtomicU64,
    write_timeouts: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
    tls_handshake_timeouts: AtomicU64,
}

/// The values of [`Counters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CountersSnapshot {
    /// Connections open now.
    pub open: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Times accept had to wait because the connection limit was reached.
    pub limit_reached: u64,
    /// Connections still open when the shutdown deadline came, and closed.
    pub closed_at_deadline: u64,
    /// Connections cut because a request head did not arrive in time.
    pub header_timeouts: u64,
    /// Connections closed for being idle (keep-alive timeout, or the idle
    /// grace while draining).
    pub idle_closed: u64,
    /// Accept errors that were not about a single connection (`EMFILE`, …).
    pub accept_errors: u64,
    /// Connections closed at once because their client had reached its
    /// [per-client limit](crate::Server::max_connections_per_ip).
    pub refused_per_ip: u64,
    /// Connections cut because the peer read nothing of a response within
    /// the [write timeout](crate::Server::write_timeout).
    pub write_timeouts: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed: not TLS, a version or suite not offered,
    /// no valid client certificate, or the client went away.
    pub tls_handshake_failures: u64,
    /// TLS handshakes not finished within the handshake timeout.
    pub tls_handshake_timeouts: u64,
}

impl Counters {
    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let c = &self.cells;
        let accepted = c.accepted.load(Relaxed);
        CountersSnapshot {
            open: accepted.saturating_sub(c.closed.load(Relaxed)),
            accepted,
            limit_reached: c.limit_reached.load(Relaxed),
            closed_at_deadline: c.closed_at_deadline.load(Relaxed),
            header_timeouts: c.header_timeouts.load(Relaxed),
            idle_closed: c.idle_closed.load(Relaxed),
            accept_errors: c.accept_errors.load(Relaxed),
            refused_per_ip: c.refused_per_ip.load(Relaxed),
            write_timeouts: c.write_timeouts.load(Relaxed),
            tls_handshakes: c.tls_handshakes.load(Relaxed),
            tls_handshake_failures: c.tls_handshake_failures.load(Relaxed),
            tls_handshake_timeouts: c.tls_handshake_timeouts.load(Relaxed),
        }
    }

    pub(crate) fn accepted(&self) {
        self.cells.accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn write_timeout(&self) {
        self.cells.write_timeouts.fetch_add(1, Relaxed);
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_handshake(&self) {
        self.cells.tls_handshakes.fetch_add(1, Relaxed);
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_handshake_failure(&self) {
        self.cells.tls_handshake_failures.fetch_add(1, Relaxed);
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_handshake_timeout(&self) {
        self.cells.tls_handshake_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused_per_ip(&self) {
        self.cells.refused_per_ip.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.cells.closed.fetch_add(1, Relaxed);
    }

    pub(crate) fn limit_reached(&self) {
        let previous = self.cells.limit_reached.fetch_add(1, Relaxed);
        if previous == 0 || previous.is_power_of_two() {
            tracing::warn!(
                times = previous + 1,
                "connection limit reached; accept waits for a connection to close"
            );
        }
    }

    pub(crate) fn closed_at_deadline(&self) {
        self.cells.closed_at_deadline.fetch_add(1, Relaxed);
    }

    pub(crate) fn header_timeout(&self) {
        self.cells.header_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn idle_closed(&self) {
        self.cells.idle_closed.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_accept_errors(&self, errors: u64) {
        self.cells.accept_errors.store(errors, Relaxed);
    }
}
