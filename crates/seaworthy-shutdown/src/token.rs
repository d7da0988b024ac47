use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::shutdown::Inner;
use crate::{Phase, ShutdownReason};

/// A cheap, clonable view of a [`Shutdown`](crate::Shutdown), for workers,
/// subsystems and the components that take part in the phases: it
/// observes. Triggering and spawning belong to the
/// [`Shutdown`](crate::Shutdown) and its [`ShutdownHandle`](crate::ShutdownHandle).
///
/// **Readiness follows [`is_shutting_down`](Self::is_shutting_down), never
/// [`is_cancelled`](Self::is_cancelled).** A token is cancelled only when
/// the [`Cancelling`](Phase::Cancelling) phase starts, after the drain: a
/// readiness probe that waited for it would keep the load balancer sending
/// traffic through the whole drain. `is_shutting_down` is true from the
/// trigger on.
///
/// Its [`cancelled`](Self::cancelled) future resolves when the
/// [`Cancelling`](Phase::Cancelling) phase starts, after the drain: workers
/// keep running while connections drain, since requests in flight may still
/// need them. Components that must act earlier watch the
/// [phase](Self::phase_watch): health probes fail from
/// [`Draining`](Phase::Draining), listeners stop accepting at
/// [`Closing`](Phase::Closing).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seaworthy_shutdown::{Shutdown, ShutdownReason};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
/// let shutdown = Shutdown::builder().signals([]).build()?;
/// let token = shutdown.token();
/// shutdown.spawn("ticker", async move {
///     let mut ticks = tokio::time::interval(Duration::from_millis(100));
///     loop {
///         tokio::select! {
///             _ = ticks.tick() => { /* work */ }
///             () = token.cancelled() => break,
///         }
///     }
/// });
/// shutdown.trigger(ShutdownReason::requested("example"));
/// assert!(shutdown.wait().await.is_clean());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownToken {
    inner: Arc<Inner>,
    cancel: CancellationToken,
}

impl ShutdownToken {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let cancel = inner.workers.child_token();
        ShutdownToken { inner, cancel }
    }

    /// Resolves when this token is cancelled: when the shutdown reaches
    /// [`Cancelling`](Phase::Cancelling), or when this token or a parent was
    /// cancelled by hand.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether this token is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Why the shutdown started, or `None` while running.
    pub fn reason(&self) -> Option<ShutdownReason> {
        self.inner.reason()
    }

    /// A token for a subsystem: cancelled with this one, and on its own by
    /// [`cancel`](Self::cancel) without touching this one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
    /// let shutdown = seaworthy_shutdown::Shutdown::builder().signals([]).build()?;
    /// let token = shutdown.token();
    /// let subsystem = token.child_token();
    /// subsystem.cancel();
    /// assert!(subsystem.is_cancelled());
    /// assert!(!token.is_cancelled());
    /// # Ok(())
    /// # }
    /// ```
    pub fn child_token(&self) -> ShutdownToken {
        ShutdownToken {
            inner: Arc::clone(&self.inner),
            cancel: self.cancel.child_token(),
        }
    }

    /// Cancels this token and its children, not its parent nor the process:
    /// to stop a subsystem. To shut the process down, trigger the
    /// [`Shutdown`](crate::Shutdown) or a [`ShutdownHandle`](crate::ShutdownHandle).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The underlying tokio-util token, for APIs that take one
    /// (`run_until_cancelled`, `drop_guard`).
    pub fn as_cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.inner.phase.borrow()
    }

    /// Whether a shutdown has been triggered: readiness should fail. True
    /// from the trigger on, even before [`Shutdown::wait`](crate::Shutdown::wait)
    /// has moved the phase past [`Running`](Phase::Running).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.is_triggered()
    }

    /// Resolves when a shutdown is triggered (a signal, a call, a critical
    /// task's failure): the moment [`is_shutting_down`](Self::is_shutting_down)
    /// turns true, even before [`Shutdown::wait`](crate::Shutdown::wait)
    /// runs the phases. An owned future (`Send + 'static`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.triggered_token().clone().cancelled_owned()
    }

    /// A watch of the current phase.
    pub fn phase_watch(&self) -> watch::Receiver<Phase> {
        self.inner.phase.subscribe()
    }

    /// Resolves once the shutdown has reached `phase` or gone past it.
    ///
    /// # Examples
    ///
    /// ```
    /// use seaworthy_shutdown::{Phase, Shutdown, ShutdownReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
    /// let shutdown = Shutdown::builder().signals([]).build()?;
    /// let token = shutdown.token();
    /// let listener = tokio::spawn(async move {
    ///     token.reached(Phase::Closing).await;
    ///     // stop accepting here
    /// });
    /// shutdown.trigger(ShutdownReason::requested("example"));
    /// shutdown.wait().await;
    /// listener.await.unwrap();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn reached(&self, phase: Phase) {
        let mut watch = self.inner.phase.subscribe();
        // The sender lives in `inner`, which `self` keeps alive: no error.
        let _ = watch.wait_for(|current| *current >= phase).await;
    }

    /// Resolves when listeners should stop accepting: when the shutdown
    /// reaches [`Closing`](Phase::Closing), after the drain delay. An owned
    /// future (`Send + 'static`), for a server's graceful-shutdown hook.
    ///
    /// Readiness follows [`is_shutting_down`](Self::is_shutting_down) (from
    /// the trigger); a listener follows `closing` (after the drain delay);
    /// workers follow [`cancelled`](Self::cancelled) (after the drain).
    ///
    /// # Examples
    ///
    /// `axum::serve` under the shutdown: spawned as a tracked task, so the
    /// shutdown waits for the requests in flight (until the budget), and
    /// stopping at `closing`, so the load balancer has had the drain delay
    /// to stop sending.
    ///
    /// ```
    /// use seaworthy_shutdown::{Shutdown, ShutdownReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
    /// let shutdown = Shutdown::builder().signals([]).build()?;
    /// let closing = shutdown.token().closing();
    /// shutdown.spawn("http", async move {
    ///     // axum::serve(listener, app).with_graceful_shutdown(closing).await
    ///     closing.await;
    /// });
    /// shutdown.trigger(ShutdownReason::requested("example"));
    /// assert!(shutdown.wait().await.is_clean());
    /// # Ok(())
    /// # }
    /// ```
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = self.clone();
        async move { token.reached(Phase::Closing).await }
    }

    /// A guard for one open connection (or any work the
    /// [`Closing`](Phase::Closing) phase must wait for). The phase ends when
    /// every guard is dropped, or when its share of the budget runs out;
    /// guards still held then are counted in
    /// [`ShutdownReport::connections_cut`](crate::ShutdownReport::connections_cut).
    pub fn drain_guard(&self) -> DrainGuard {
        DrainGuard {
            _token: self.inner.connections.token(),
        }
    }
}

impl fmt::Debug for ShutdownToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownToken")
            .field("phase", &self.phase())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Holds the [`Closing`](Phase::Closing) phase open while alive; see
/// [`ShutdownToken::drain_guard`].
#[derive(Debug)]
#[must_use = "the guard counts an open connection only while it is held"]
pub struct DrainGuard {
    _token: TaskTrackerToken,
}
