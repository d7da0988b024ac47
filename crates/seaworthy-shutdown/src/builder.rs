use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::{Shutdown, Signal};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_FORCE_GRACE: Duration = Duration::from_secs(1);

/// Configures and builds a [`Shutdown`].
///
/// Every duration is a share of one budget, [`timeout`](Self::timeout),
/// measured from the moment the shutdown is triggered:
///
/// ```text
/// trigger                                                        deadline
///   |-- drain_delay --|-- connection drain --|-- workers --|-- cleanup --|
///                                            ^ at the latest deadline
///                                              - worker_grace - cleanup_reserve
/// ```
///
/// A phase that finishes early hands its time to the next one. A phase that
/// does not is cut at its latest end, so that the phases after it still get
/// their reserve.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seaworthy_shutdown::{Shutdown, Signal};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
/// let shutdown = Shutdown::builder()
///     .timeout(Duration::from_secs(30))
///     .drain_delay(Duration::from_secs(5))
///     .signals([Signal::Term, Signal::Int, Signal::Quit])
///     .build()?;
/// # drop(shutdown);
/// # Ok(())
/// # }
/// ```
///
/// A budget whose parts do not fit is refused, naming the values that clash:
///
/// ```
/// use std::time::Duration;
/// use seaworthy_shutdown::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = Shutdown::builder()
///     .timeout(Duration::from_secs(10))
///     .drain_delay(Duration::from_secs(10))
///     .build()
///     .unwrap_err();
/// assert!(err.is_budget());
/// assert!(err.to_string().contains("drain_delay (10s)"));
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    pub(crate) timeout: Duration,
    pub(crate) drain_delay: Duration,
    pub(crate) worker_grace: Option<Duration>,
    pub(crate) cleanup_reserve: Option<Duration>,
    pub(crate) force_grace: Duration,
    pub(crate) signals: Vec<Signal>,
    pub(crate) exit_on_third_signal: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            timeout: DEFAULT_TIMEOUT,
            drain_delay: Duration::ZERO,
            worker_grace: None,
            cleanup_reserve: None,
            force_grace: DEFAULT_FORCE_GRACE,
            signals: vec![Signal::Term, Signal::Int],
            exit_on_third_signal: true,
        }
    }
}

impl Builder {
    /// A builder with the defaults: a 30 s budget, no drain delay,
    /// `SIGTERM` and `SIGINT`, exit on the third signal.
    pub fn new() -> Self {
        Builder::default()
    }

    /// The whole shutdown budget, from the trigger to the end of cleanup
    /// (gunicorn's `graceful_timeout`, PM2's `kill_timeout`). Default 30 s.
    ///
    /// Set it below what the supervisor waits before `SIGKILL`: Kubernetes'
    /// `terminationGracePeriodSeconds` (minus any preStop hook), Docker's
    /// stop timeout, systemd's `TimeoutStopSec`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long readiness fails while listeners keep accepting, before they
    /// stop. Default 0.
    ///
    /// Load balancers and Kubernetes endpoints take seconds to notice that a
    /// pod is going away; a process that stops accepting at once refuses the
    /// connections still routed to it. Behind Kubernetes, 5 s is a common
    /// value; a process that serves no traffic needs none.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// The time reserved for workers after their tokens are cancelled: the
    /// connection drain ends at the latest this long (plus the cleanup
    /// reserve) before the deadline. Default: a sixth of the timeout.
    pub fn worker_grace(mut self, grace: Duration) -> Self {
        self.worker_grace = Some(grace);
        self
    }

    /// The time reserved for cleanup hooks at the end of the budget: workers
    /// are abandoned at the latest this long before the deadline. Default: a
    /// sixth of the timeout.
    pub fn cleanup_reserve(mut self, reserve: Duration) -> Self {
        self.cleanup_reserve = Some(reserve);
        self
    }

    /// How long workers get after a second signal forces the shutdown.
    /// Default 1 s.
    pub fn force_grace(mut self, grace: Duration) -> Self {
        self.force_grace = grace;
        self
    }

    /// The signals that trigger a shutdown, replacing the default
    /// `[Signal::Term, Signal::Int]`. An empty list listens for none; only
    /// [`Shutdown::trigger`] and failing critical tasks start a shutdown then.
    ///
    /// Once a signal is listened for, its default action (terminating the
    /// process) is gone for the life of the process.
    pub fn signals(mut self, signals: impl IntoIterator<Item = Signal>) -> Self {
        self.signals.clear();
        for signal in signals {
            if !self.signals.contains(&signal) {
                self.signals.push(signal);
            }
        }
        self
    }

    /// Whether a third signal exits the process at once with status 130.
    /// Default `true`. When `false`, a third signal is logged and otherwise
    /// ignored.
    pub fn exit_on_third_signal(mut self, exit: bool) -> Self {
        self.exit_on_third_signal = exit;
        self
    }

    /// Checks the budget, starts listening for the signals, and returns the
    /// coordinator.
    ///
    /// # Errors
    ///
    /// A budget whose parts do not fit ([`BuildError::is_budget`]), or a
    /// signal that could not be listened for ([`BuildError::is_signal`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, when any signal is configured.
    pub fn build(self) -> Result<Shutdown, BuildError> {
        let budget = self.budget()?;
        Shutdown::from_parts(self, budget)
    }

    pub(crate) fn budget(&self) -> Result<Budget, BuildError> {
        let timeout = self.timeout;
        let worker_grace = self.worker_grace.unwrap_or(timeout / 6);
        let cleanup_reserve = self.cleanup_reserve.unwrap_or(timeout / 6);
        let clash = |message: String| Err(BuildError::budget(message));
        if timeout.is_zero() {
            return clash("timeout must be greater than zero".to_owned());
        }
        if self.drain_delay >= timeout {
            return clash(format!(
                "drain_delay ({:?}) must be shorter than timeout ({timeout:?})",
                self.drain_delay
            ));
        }
        let needed = self.drain_delay + worker_grace + cleanup_reserve;
        if needed > timeout {
            return clash(format!(
                "drain_delay ({:?}) + worker_grace ({worker_grace:?}) + cleanup_reserve \
                 ({cleanup_reserve:?}) = {needed:?} does not fit in timeout ({timeout:?})",
                self.drain_delay
            ));
        }
        if self.force_grace + cleanup_reserve > timeout {
            return clash(format!(
                "force_grace ({:?}) + cleanup_reserve ({cleanup_reserve:?}) does not fit in \
                 timeout ({timeout:?})",
                self.force_grace
            ));
        }
        Ok(Budget {
            timeout,
            drain_delay: self.drain_delay,
            worker_grace,
            cleanup_reserve,
            force_grace: self.force_grace,
        })
    }
}

/// The checked shares of the budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) timeout: Duration,
    pub(crate) drain_delay: Duration,
    pub(crate) worker_grace: Duration,
    pub(crate) cleanup_reserve: Duration,
    pub(crate) force_grace: Duration,
}

/// Why a [`Builder`] could not build a [`Shutdown`].
pub struct BuildError {
    kind: BuildErrorKind,
}

#[derive(Debug)]
enum BuildErrorKind {
    Budget(String),
    Signal { signal: Signal, source: io::Error },
}

impl BuildError {
    fn budget(message: String) -> Self {
        BuildError {
            kind: BuildErrorKind::Budget(message),
        }
    }

    pub(crate) fn signal(signal: Signal, source: io::Error) -> Self {
        BuildError {
            kind: BuildErrorKind::Signal { signal, source },
        }
    }

    /// The durations of the budget do not fit together.
    pub fn is_budget(&self) -> bool {
        matches!(self.kind, BuildErrorKind::Budget(_))
    }

    /// A signal handler could not be installed.
    pub fn is_signal(&self) -> bool {
        matches!(self.kind, BuildErrorKind::Signal { .. })
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BuildError").field(&self.kind).finish()
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorKind::Budget(message) => write!(f, "invalid shutdown budget: {message}"),
            BuildErrorKind::Signal { signal, .. } => {
                write!(f, "cannot listen for {signal}")
            }
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            BuildErrorKind::Budget(_) => None,
            BuildErrorKind::Signal { source, .. } => Some(source),
        }
    }
}
