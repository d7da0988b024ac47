use std::fmt;

/// Where a [`Shutdown`](crate::Shutdown) is in its life.
///
/// Phases only ever move forward, in the order of the variants, so a
/// component can compare them: `phase >= Phase::Closing` means "the
/// listeners must stop accepting now", whether or not the component saw
/// the `Closing` value itself (a [`watch`](tokio::sync::watch) only keeps the
/// latest value).
///
/// | phase | what happens | who reacts |
/// |---|---|---|
/// | `Running` | normal operation | |
/// | `Draining` | readiness fails; listeners keep accepting for `drain_delay` | health probes |
/// | `Closing` | listeners stop accepting; open connections are drained | listeners, connections |
/// | `Cancelling` | worker tokens fire; tracked tasks get until their deadline | workers |
/// | `Cleanup` | cleanup hooks run in reverse order of registration | hooks |
/// | `Done` | the report is ready | `main` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Serving normally; no shutdown has been triggered.
    Running,
    /// A shutdown was triggered: readiness probes should fail from now on,
    /// while listeners keep accepting for the drain delay so that load
    /// balancers and Kubernetes endpoints have time to stop sending traffic.
    Draining,
    /// Listeners stop accepting and open connections are drained: HTTP/1
    /// answers with `Connection: close`, HTTP/2 sends GOAWAY. Ends when every
    /// [`DrainGuard`](crate::DrainGuard) is dropped, or when the phase's share
    /// of the budget runs out.
    Closing,
    /// Worker tokens are cancelled and tracked tasks are given until their
    /// deadline to finish.
    Cancelling,
    /// Cleanup hooks run, last registered first, each within its own timeout.
    Cleanup,
    /// The shutdown is complete and the report is ready.
    Done,
}

impl Phase {
    /// The phase's name in lowercase, as it appears in tracing events.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Closing => "closing",
            Phase::Cancelling => "cancelling",
            Phase::Cleanup => "cleanup",
            Phase::Done => "done",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
