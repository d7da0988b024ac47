use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::shutdown::Inner;
use crate::{ShutdownReason, ShutdownToken};

/// What may act on a [`Shutdown`](crate::Shutdown) without owning it:
/// [`trigger`](Self::trigger) it and [`spawn`](Self::spawn) tracked tasks.
/// From [`Shutdown::handle`](crate::Shutdown::handle); cheap to clone.
///
/// The roles are split: a [`ShutdownToken`] only observes (a worker waits
/// on it, a probe reads its phase), a handle acts. Hand a worker a token;
/// hand the component that may stop the process (an upgrader, an admin
/// endpoint, a supervisor task) a handle.
///
/// # Examples
///
/// ```
/// use seaworthy_shutdown::{Shutdown, ShutdownReason};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
/// let shutdown = Shutdown::builder().signals([]).build()?;
/// let handle = shutdown.handle();
/// let token = handle.token();
/// let admin = handle.clone();
/// handle.spawn("admin", async move {
///     // An admin request asked for a restart.
///     admin.trigger(ShutdownReason::requested("admin"));
/// });
/// let report = shutdown.wait().await;
/// assert!(token.is_cancelled());
/// assert_eq!(report.reason(), &ShutdownReason::requested("admin"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

impl ShutdownHandle {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        ShutdownHandle { inner }
    }

    /// A new token, to observe the shutdown; see
    /// [`Shutdown::token`](crate::Shutdown::token).
    pub fn token(&self) -> ShutdownToken {
        ShutdownToken::new(Arc::clone(&self.inner))
    }

    /// Starts a graceful shutdown; see
    /// [`Shutdown::trigger`](crate::Shutdown::trigger).
    pub fn trigger(&self, reason: ShutdownReason) -> bool {
        self.inner.trigger(reason)
    }

    /// Spawns a tracked task; see [`Shutdown::spawn`](crate::Shutdown::spawn).
    #[track_caller]
    pub fn spawn<F>(&self, name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(name.into(), future)
    }

    /// Spawns a tracked task whose failure triggers a shutdown; see
    /// [`Shutdown::spawn_critical`](crate::Shutdown::spawn_critical).
    #[track_caller]
    pub fn spawn_critical<F, E>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> JoinHandle<()>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.inner.spawn_critical(name.into(), future)
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("phase", &*self.inner.phase.borrow())
            .field("reason", &self.inner.reason())
            .finish()
    }
}
