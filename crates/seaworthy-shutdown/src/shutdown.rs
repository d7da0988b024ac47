use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::builder::{Budget, Builder};
use crate::report::{HookFailure, HookFailureKind, PhaseTiming, ShutdownReport, Straggler};
use crate::task::{Running, catch_panic, error_chain};
use crate::{BuildError, Phase, ShutdownReason, ShutdownToken, Signal, TaskFailure};

/// `Inner::signals`: how many signals have arrived (saturating at 3).
const FIRST_SIGNAL: u8 = 0;
const SECOND_SIGNAL: u8 = 1;
const MOST_SIGNALS: u8 = 3;

type HookFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Hook {
    name: Arc<str>,
    timeout: Duration,
    run: HookFn,
}

/// The state shared by the coordinator, its tokens and its tasks.
pub(crate) struct Inner {
    budget: Budget,
    exit_on_third_signal: bool,
    /// Whether a trigger (signal, call or failure) has started the shutdown.
    started: AtomicBool,
    /// Signals received, counted apart from programmatic triggers: an
    /// upgrade's drain is not forced by the first SIGTERM that follows it.
    signals: AtomicU8,
    reason: OnceLock<ShutdownReason>,
    /// Fires on the first trigger.
    triggered: CancellationToken,
    /// Fires on the second signal.
    forced: CancellationToken,
    /// Parent of every worker token; fires when the `Cancelling` phase starts.
    pub(crate) workers: CancellationToken,
    pub(crate) phase: watch::Sender<Phase>,
    tasks: TaskTracker,
    running: Mutex<Running>,
    failures: Mutex<Vec<TaskFailure>>,
    /// One token per open connection ([`DrainGuard`](crate::DrainGuard)).
    pub(crate) connections: TaskTracker,
    hooks: Mutex<Vec<Hook>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover if something did.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    pub(crate) fn reason(&self) -> Option<ShutdownReason> {
        self.reason.get().cloned()
    }

    pub(crate) fn is_triggered(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Fires on the first trigger.
    pub(crate) fn triggered_token(&self) -> &CancellationToken {
        &self.triggered
    }

    /// Starts the shutdown if none has started. Returns whether this call did.
    pub(crate) fn trigger(&self, reason: ShutdownReason) -> bool {
        if self
            .started
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            tracing::debug!(%reason, "shutdown already under way; trigger ignored");
            return false;
        }
        self.start(reason);
        true
    }

    fn start(&self, reason: ShutdownReason) {
        tracing::info!(%reason, "shutdown triggered");
        // Only the winner of the level transition gets here, once.
        let _ = self.reason.set(reason);
        self.triggered.cancel();
    }

    /// One more signal: trigger, then force, then exit. Signals are counted
    /// apart from programmatic triggers: a SIGTERM during a drain started
    /// by a call (an upgrade) asks for what is already happening, so it is
    /// the first signal, and a second one forces.
    pub(crate) fn on_signal(&self, signal: Signal) {
        let previous = self
            .signals
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                Some(count.saturating_add(1).min(MOST_SIGNALS))
            })
            .unwrap_or_else(|count| count);
        match previous {
            FIRST_SIGNAL => {
                if self
                    .started
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.start(ShutdownReason::Signal(signal));
                } else {
                    tracing::info!(
                        %signal,
                        reason = %self.reason().map(|reason| reason.to_string()).unwrap_or_default(),
                        "signal during a shutdown already under way: the drain goes on; \
                         another signal forces it"
                    );
                }
            }
            SECOND_SIGNAL => {
                tracing::warn!(
                    %signal,
                    "second signal: forcing shutdown, skipping the rest of the drain"
                );
                self.forced.cancel();
            }
            _ if self.exit_on_third_signal => {
                tracing::error!(
                    %signal,
                    exit_code = crate::EXIT_IMMEDIATE,
                    "third signal: exiting now"
                );
                std::process::exit(crate::EXIT_IMMEDIATE);
            }
            _ => tracing::warn!(%signal, "third signal ignored (exit_on_third_signal is off)"),
        }
    }

    #[track_caller]
    pub(crate) fn spawn<F>(self: &Arc<Self>, name: Cow<'static, str>, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_tracked(name, false, async move {
            future.await;
            Ok(())
        })
    }

    #[track_caller]
    pub(crate) fn spawn_critical<F, E>(
        self: &Arc<Self>,
        name: Cow<'static, str>,
        future: F,
    ) -> JoinHandle<()>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.spawn_tracked(name, true, async move {
            future.await.map_err(|error| {
                let error: Box<dyn Error + Send + Sync> = error.into();
                error_chain(&*error)
            })
        })
    }

    #[track_caller]
    fn spawn_tracked<F>(
        self: &Arc<Self>,
        name: Cow<'static, str>,
        critical: bool,
        future: F,
    ) -> JoinHandle<()>
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name: Arc<str> = Arc::from(name);
        let id = lock(&self.running).insert(Arc::clone(&name));
        let inner = Arc::clone(self);
        self.tasks.spawn(async move {
            let outcome = catch_panic(future).await;
            lock(&inner.running).remove(id);
            let (message, panicked) = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(message)) => (message, false),
                Err(message) => (message, true),
            };
            let failure = TaskFailure::new(name, message, panicked, critical);
            if critical {
                tracing::error!(
                    task = failure.name(),
                    error = failure.message(),
                    panicked,
                    "critical task failed"
                );
                inner.trigger(ShutdownReason::TaskFailed(failure.clone()));
            } else {
                tracing::error!(
                    task = failure.name(),
                    error = failure.message(),
                    panicked,
                    "task failed"
                );
            }
            lock(&inner.failures).push(failure);
        })
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }
}

/// The graceful-shutdown coordinator: built once at start, it listens for
/// the triggers, hands out [`ShutdownToken`]s, tracks tasks, and drives the
/// [phases](Phase) to a [`ShutdownReport`].
///
/// See the [crate documentation](crate) for the whole picture.
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    /// A [`Builder`] with the defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_parts(builder: Builder, budget: Budget) -> Result<Self, BuildError> {
        let (phase, _) = watch::channel(Phase::Running);
        let inner = Arc::new(Inner {
            budget,
            exit_on_third_signal: builder.exit_on_third_signal,
            started: AtomicBool::new(false),
            signals: AtomicU8::new(FIRST_SIGNAL),
            reason: OnceLock::new(),
            triggered: CancellationToken::new(),
            forced: CancellationToken::new(),
            workers: CancellationToken::new(),
            phase,
            tasks: TaskTracker::new(),
            running: Mutex::default(),
            failures: Mutex::default(),
            connections: TaskTracker::new(),
            hooks: Mutex::default(),
        });
        crate::signal::listen(&inner, &builder.signals)?;
        Ok(Shutdown { inner })
    }

    /// A new token for a worker or subsystem. Its
    /// [`cancelled`](ShutdownToken::cancelled) resolves when the
    /// [`Cancelling`](Phase::Cancelling) phase starts.
    pub fn token(&self) -> ShutdownToken {
        ShutdownToken::new(Arc::clone(&self.inner))
    }

    /// A handle that may [`trigger`](crate::ShutdownHandle::trigger) the shutdown
    /// and [`spawn`](crate::ShutdownHandle::spawn) tracked tasks, for a component
    /// that acts on the shutdown without owning it (an upgrader, an admin
    /// endpoint). Workers get a [`token`](Self::token) instead: it only
    /// observes.
    pub fn handle(&self) -> crate::ShutdownHandle {
        crate::ShutdownHandle::new(Arc::clone(&self.inner))
    }

    /// Starts a graceful shutdown, as the first signal would. Returns `false`
    /// (and changes nothing) when a shutdown has already started.
    ///
    /// # Examples
    ///
    /// ```
    /// use seaworthy_shutdown::{Shutdown, ShutdownReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), seaworthy_shutdown::BuildError> {
    /// let shutdown = Shutdown::builder().signals([]).build()?;
    /// assert!(shutdown.trigger(ShutdownReason::requested("maintenance")));
    /// assert!(!shutdown.trigger(ShutdownReason::requested("again")));
    /// let report = shutdown.wait().await;
    /// assert_eq!(report.reason(), &ShutdownReason::requested("maintenance"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn trigger(&self, reason: ShutdownReason) -> bool {
        self.inner.trigger(reason)
    }

    /// Spawns a tracked task: it is named in the report if it is still
    /// running when its deadline passes, and a panic is caught, logged and
    /// reported. Pass it a [`token`](Self::token) to stop it.
    #[track_caller]
    pub fn spawn<F>(&self, name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(name.into(), future)
    }

    /// Spawns a tracked task whose failure (an error or a panic) triggers a
    /// shutdown with [`ShutdownReason::TaskFailed`]. Returning `Ok(())` is
    /// not a failure.
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

    /// Registers a cleanup hook. Hooks run in the [`Cleanup`](Phase::Cleanup)
    /// phase, last registered first (a pool opened after the logger closes
    /// before it), each within `timeout` and what is left of the budget.
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
    /// shutdown.on_cleanup("close pool", Duration::from_secs(5), || async {
    ///     // pool.close().await
    /// });
    /// shutdown.trigger(ShutdownReason::requested("test"));
    /// assert!(shutdown.wait().await.hook_failures().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_cleanup<F, Fut>(&self, name: impl Into<Cow<'static, str>>, timeout: Duration, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let run: HookFn = Box::new(move || Box::pin(hook()));
        lock(&self.inner.hooks).push(Hook {
            name: Arc::from(name.into()),
            timeout,
            run,
        });
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.inner.phase.borrow()
    }

    /// A watch of the current phase.
    pub fn phase_watch(&self) -> watch::Receiver<Phase> {
        self.inner.phase.subscribe()
    }

    /// Waits for a trigger, drives every phase within the budget, logs the
    /// report as one tracing event, and returns it.
    ///
    /// The signals stay watched throughout: a second one skips the rest of
    /// the drain delay and the connection drain and gives workers only the
    /// force grace; a third exits the process with status 130 (unless turned
    /// off with [`Builder::exit_on_third_signal`]).
    ///
    /// Tasks still running when `wait` returns are abandoned, not aborted:
    /// they end with the runtime, so return from `main` (or exit) soon after.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future after a trigger leaves the
    /// shutdown in the phase it had reached.
    pub async fn wait(self) -> ShutdownReport {
        let inner = &*self.inner;
        inner.triggered.cancelled().await;
        let budget = inner.budget;
        let start = Instant::now();
        let deadline = start + budget.timeout;
        let mut clock = PhaseClock::new(inner);

        clock.enter(Phase::Draining);
        inner.drain_delay(start).await;
        clock.enter(Phase::Closing);
        let connections_cut = inner
            .close(deadline - budget.worker_grace - budget.cleanup_reserve)
            .await;
        clock.enter(Phase::Cancelling);
        let stragglers = inner.cancel(deadline - budget.cleanup_reserve).await;
        clock.enter(Phase::Cleanup);
        let hook_failures = inner.cleanup(deadline).await;

        let report = ShutdownReport {
            reason: inner
                .reason()
                .expect("the reason is set before the trigger fires"),
            forced: inner.forced.is_cancelled(),
            total: start.elapsed(),
            phases: clock.finish(),
            stragglers,
            connections_cut,
            hook_failures,
            task_failures: lock(&inner.failures).clone(),
        };
        let exit_code = report.exit_code();
        if report.is_clean() {
            tracing::info!(exit_code, total = ?report.total(), report = %report, "shutdown complete");
        } else {
            tracing::warn!(exit_code, total = ?report.total(), report = %report, "shutdown complete");
        }
        report
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("phase", &*self.inner.phase.borrow())
            .field("reason", &self.inner.reason.get())
            .field("budget", &self.inner.budget)
            .field("tasks", &self.inner.tasks.len())
            .field("connections", &self.inner.connections.len())
            .field("hooks", &lock(&self.inner.hooks).len())
            .finish()
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("phase", &*self.phase.borrow())
            .field("reason", &self.reason.get())
            .finish_non_exhaustive()
    }
}

/// The phases of [`Shutdown::wait`], one step each.
impl Inner {
    /// Draining: readiness fails while listeners still accept, for the
    /// drain delay (none for an upgrade: the socket, queue and all, goes to
    /// the new process, so no load balancer has to learn anything), or
    /// until a second signal.
    async fn drain_delay(&self, start: Instant) {
        let upgrade = self.reason() == Some(ShutdownReason::Upgrade);
        if self.budget.drain_delay.is_zero() || upgrade {
            return;
        }
        tokio::select! {
            () = sleep_until(start + self.budget.drain_delay) => {}
            () = self.forced.cancelled() => {}
        }
    }

    /// Closing: listeners stop and connections drain until `by` (or a
    /// second signal). Returns how many were still open then.
    async fn close(&self, by: Instant) -> usize {
        self.connections.close();
        if !self.forced.is_cancelled() {
            tokio::select! {
                () = self.connections.wait() => {}
                () = sleep_until(by) => {}
                () = self.forced.cancelled() => {}
            }
        }
        if self.connections.is_empty() {
            return 0;
        }
        let cut = self.connections.len();
        tracing::warn!(connections = cut, "connection drain cut short");
        cut
    }

    /// Cancelling: workers are told to stop and have until `by` (the force
    /// grace only, once forced). Returns the tasks still running then.
    async fn cancel(&self, by: Instant) -> Vec<Straggler> {
        self.workers.cancel();
        self.tasks.close();
        let force_by = |now: Instant| by.min(now + self.budget.force_grace);
        let mut forced = self.forced.is_cancelled();
        let mut workers_by = if forced { force_by(Instant::now()) } else { by };
        loop {
            tokio::select! {
                () = self.tasks.wait() => break,
                () = sleep_until(workers_by) => break,
                () = self.forced.cancelled(), if !forced => {
                    forced = true;
                    workers_by = force_by(Instant::now());
                }
            }
        }
        let stragglers: Vec<Straggler> = lock(&self.running)
            .snapshot(Instant::now())
            .into_iter()
            .map(|(name, running_for)| Straggler { name, running_for })
            .collect();
        for straggler in &stragglers {
            tracing::warn!(
                task = straggler.name(),
                running_for = ?straggler.running_for(),
                "task still running at its deadline; abandoned"
            );
        }
        stragglers
    }

    /// Cleanup: the hooks, last registered first, each within its timeout
    /// and what is left of the budget. Returns those that failed.
    async fn cleanup(&self, deadline: Instant) -> Vec<HookFailure> {
        let hooks = std::mem::take(&mut *lock(&self.hooks));
        let mut failures = Vec::new();
        for hook in hooks.into_iter().rev() {
            let now = Instant::now();
            let allowed = hook.timeout.min(deadline.saturating_duration_since(now));
            let kind = if allowed.is_zero() {
                // Out of budget: not even started.
                HookFailureKind::TimedOut { after: allowed }
            } else {
                match timeout_at(now + allowed, catch_panic((hook.run)())).await {
                    Ok(Ok(())) => {
                        tracing::debug!(hook = &*hook.name, elapsed = ?now.elapsed(), "cleanup hook done");
                        continue;
                    }
                    Ok(Err(message)) => HookFailureKind::Panicked { message },
                    Err(_elapsed) => HookFailureKind::TimedOut { after: allowed },
                }
            };
            let failure = HookFailure {
                name: hook.name,
                kind,
            };
            tracing::warn!(hook = failure.name(), "{failure}");
            failures.push(failure);
        }
        failures
    }
}

/// Moves the phase watch forward and times each phase.
struct PhaseClock<'a> {
    inner: &'a Inner,
    current: Option<(Phase, Instant)>,
    timings: Vec<PhaseTiming>,
}

impl<'a> PhaseClock<'a> {
    fn new(inner: &'a Inner) -> Self {
        PhaseClock {
            inner,
            current: None,
            timings: Vec::new(),
        }
    }

    fn enter(&mut self, phase: Phase) {
        let now = Instant::now();
        self.end(now);
        tracing::info!(phase = phase.as_str(), "shutdown phase started");
        self.current = Some((phase, now));
        self.inner.set_phase(phase);
    }

    fn end(&mut self, now: Instant) {
        if let Some((phase, started)) = self.current.take() {
            let duration = now.saturating_duration_since(started);
            tracing::info!(phase = phase.as_str(), ?duration, "shutdown phase finished");
            self.timings.push(PhaseTiming { phase, duration });
        }
    }

    fn finish(mut self) -> Vec<PhaseTiming> {
        self.end(Instant::now());
        self.inner.set_phase(Phase::Done);
        self.timings
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn builder() -> Builder {
        Shutdown::builder()
            .signals([])
            .exit_on_third_signal(false)
            .timeout(60 * SECOND)
            .drain_delay(20 * SECOND)
            .force_grace(2 * SECOND)
    }

    #[tokio::test(start_paused = true)]
    async fn each_step_keeps_its_own_deadline() {
        let shutdown = builder().build().unwrap();
        let inner = Arc::clone(&shutdown.inner);
        let connection = shutdown.token().drain_guard();
        shutdown.spawn("stuck", pending::<()>());
        shutdown.on_cleanup("slow", 5 * SECOND, || async {
            tokio::time::sleep(60 * SECOND).await;
        });
        let start = Instant::now();

        // Close: an open connection holds it to its deadline, and is cut.
        assert_eq!(inner.close(start + 7 * SECOND).await, 1);
        assert_eq!(start.elapsed(), 7 * SECOND);
        drop(connection);

        // Cancel: a task that ignores cancellation is a straggler at `by`.
        let stragglers = inner.cancel(start + 10 * SECOND).await;
        assert_eq!(start.elapsed(), 10 * SECOND);
        assert_eq!(stragglers.len(), 1);
        assert_eq!(stragglers[0].name(), "stuck");

        // Cleanup: a hook gets its own timeout, then fails as timed out.
        let failures = inner.cleanup(start + 60 * SECOND).await;
        assert_eq!(start.elapsed(), 15 * SECOND);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].name(), "slow");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_skips_the_drain_and_gives_workers_the_force_grace() {
        let shutdown = builder().build().unwrap();
        let inner = Arc::clone(&shutdown.inner);
        let _connection = shutdown.token().drain_guard();
        shutdown.spawn("stuck", pending::<()>());

        inner.on_signal(Signal::Term);
        let wait = tokio::spawn(shutdown.wait());
        tokio::time::sleep(3 * SECOND).await;
        inner.on_signal(Signal::Int);
        let report = wait.await.unwrap();

        assert!(report.is_forced());
        assert_eq!(report.reason(), &ShutdownReason::Signal(Signal::Term));
        assert_eq!(report.phase_duration(Phase::Draining), Some(3 * SECOND));
        assert_eq!(report.phase_duration(Phase::Closing), Some(Duration::ZERO));
        assert_eq!(report.phase_duration(Phase::Cancelling), Some(2 * SECOND));
        assert_eq!(report.connections_cut(), 1);
        assert_eq!(report.stragglers()[0].name(), "stuck");
        assert_eq!(report.total(), 5 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_while_cancelling_shortens_the_wait_for_workers() {
        let shutdown = builder().drain_delay(Duration::ZERO).build().unwrap();
        let inner = Arc::clone(&shutdown.inner);
        let token = shutdown.token();
        shutdown.spawn("stuck", pending::<()>());

        assert!(shutdown.trigger(ShutdownReason::requested("test")));
        let wait = tokio::spawn(shutdown.wait());
        token.cancelled().await;
        tokio::time::sleep(SECOND).await;
        // After a programmatic trigger, the first signal asks for what is
        // happening already; the second forces.
        inner.on_signal(Signal::Int);
        inner.on_signal(Signal::Int);
        let report = wait.await.unwrap();

        assert!(report.is_forced());
        assert_eq!(report.phase_duration(Phase::Cancelling), Some(3 * SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_shutdown_that_finishes_everything_is_clean() {
        let shutdown = builder().build().unwrap();
        let inner = Arc::clone(&shutdown.inner);
        let token = shutdown.token();
        shutdown.spawn("worker", async move { token.cancelled().await });
        inner.on_signal(Signal::Term);
        inner.on_signal(Signal::Term);
        let report = shutdown.wait().await;
        assert!(report.is_forced());
        assert_eq!(report.total(), Duration::ZERO);
        assert!(report.is_clean(), "{report}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_third_signal_is_ignored_when_exit_is_turned_off() {
        let shutdown = builder().build().unwrap();
        let inner = Arc::clone(&shutdown.inner);
        for _ in 0..5 {
            inner.on_signal(Signal::Quit);
        }
        assert_eq!(inner.signals.load(Ordering::Acquire), MOST_SIGNALS);
        let report = shutdown.wait().await;
        assert_eq!(report.reason(), &ShutdownReason::Signal(Signal::Quit));
        assert!(report.is_forced());
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_after_a_programmatic_trigger_is_the_first_signal() {
        let shutdown = builder().build().unwrap();
        let inner = Arc::clone(&shutdown.inner);
        shutdown.trigger(ShutdownReason::Upgrade);
        inner.on_signal(Signal::Term);
        assert!(!inner.forced.is_cancelled(), "one signal must not force");
        inner.on_signal(Signal::Term);
        assert!(inner.forced.is_cancelled(), "the second signal forces");
        let report = shutdown.wait().await;
        assert_eq!(report.reason(), &ShutdownReason::Upgrade);
        assert!(report.is_forced());
    }

    #[tokio::test(start_paused = true)]
    async fn an_upgrade_skips_the_drain_delay() {
        let shutdown = builder().drain_delay(20 * SECOND).build().unwrap();
        shutdown.trigger(ShutdownReason::Upgrade);
        let report = shutdown.wait().await;
        assert_eq!(report.phase_duration(Phase::Draining), Some(Duration::ZERO));
        assert!(report.is_clean(), "{report}");
    }
}
