use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A Unix signal that can trigger a shutdown.
///
/// The set a [`Shutdown`](crate::Shutdown) listens for is chosen with
/// [`Builder::signals`](crate::Builder::signals); the default is
/// `[Signal::Term, Signal::Int]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// `SIGTERM`: what Kubernetes, Docker, systemd and most supervisors send.
    Term,
    /// `SIGINT`: Ctrl-C in a terminal.
    Int,
    /// `SIGQUIT`: Ctrl-\ in a terminal.
    Quit,
    /// `SIGHUP`: the terminal went away. Leave it out when `SIGHUP` reloads
    /// configuration or certificates instead.
    Hup,
}

impl Signal {
    /// The signal's conventional name, such as `"SIGTERM"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Hup => "SIGHUP",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a shutdown started.
///
/// Only the first trigger sets the reason; later ones (a second signal, a
/// task failing while the process already drains) are logged and reported
/// but do not replace it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// A signal arrived.
    Signal(Signal),
    /// The program asked for a shutdown, with a message saying why.
    Requested(Cow<'static, str>),
    /// A critical task returned an error or panicked.
    TaskFailed(TaskFailure),
    /// The process hands its sockets to a new binary and steps down.
    Upgrade,
}

impl ShutdownReason {
    /// A reason for a programmatic shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// use seaworthy_shutdown::ShutdownReason;
    ///
    /// let reason = ShutdownReason::requested("admin endpoint");
    /// assert_eq!(reason.to_string(), "requested: admin endpoint");
    /// ```
    pub fn requested(message: impl Into<Cow<'static, str>>) -> Self {
        ShutdownReason::Requested(message.into())
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownReason::Signal(signal) => write!(f, "signal {signal}"),
            ShutdownReason::Requested(message) => write!(f, "requested: {message}"),
            ShutdownReason::TaskFailed(failure) => write!(f, "{failure}"),
            ShutdownReason::Upgrade => f.write_str("upgrade"),
        }
    }
}

/// A tracked task that returned an error or panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailure {
    name: Arc<str>,
    message: Arc<str>,
    panicked: bool,
    critical: bool,
}

impl TaskFailure {
    pub(crate) fn new(name: Arc<str>, message: String, panicked: bool, critical: bool) -> Self {
        TaskFailure {
            name,
            message: message.into(),
            panicked,
            critical,
        }
    }

    /// The name the task was spawned with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The error, with its chain of sources, or the panic message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the task panicked (rather than returning an error).
    pub fn is_panic(&self) -> bool {
        self.panicked
    }

    /// Whether the task was spawned with
    /// [`spawn_critical`](crate::Shutdown::spawn_critical).
    pub fn is_critical(&self) -> bool {
        self.critical
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.panicked { "panicked" } else { "failed" };
        write!(f, "task {:?} {what}: {}", &*self.name, self.message)
    }
}
