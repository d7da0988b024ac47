use std::borrow::Cow;
use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use seaworthy_shutdown::ShutdownToken;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

use crate::check::Schedule;
use crate::report::{CheckReport, ProbeReport};
use crate::{Check, CheckResult, Kind, Probe, Status};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A registry of named health checks, evaluated per [`Probe`].
///
/// Checks run concurrently (a probe takes as long as its slowest check,
/// never the sum), single-flight (a thousand probes at once run each check
/// once), each under its own timeout in a task of its own (a hung or
/// panicking check is a failed check, never a hung endpoint), and a probe
/// answers within its own deadline with the last known results.
///
/// Cheap to clone; clones share everything.
///
/// # Examples
///
/// ```
/// use seaworthy_health::{Check, CheckResult, HealthRegistry, Kind, Probe, Status};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), seaworthy_health::BuildError> {
/// let registry = HealthRegistry::builder()
///     .check(
///         Check::new("db", || async { Ok::<_, std::io::Error>(CheckResult::pass()) })
///             .kind(Kind::Dependency)
///             .probes([Probe::Readiness, Probe::Startup]),
///     )
///     .build()?;
/// assert_eq!(registry.check(Probe::Startup).await.status(), Status::Pass);
/// assert_eq!(registry.check(Probe::Readiness).await.status(), Status::Pass);
/// assert_eq!(registry.check(Probe::Liveness).await.status(), Status::Pass);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Vec<Arc<Entry>>,
    probe_timeout: Duration,
    shutdown: Option<ShutdownToken>,
    started: AtomicBool,
    maintenance: Mutex<Option<(String, Instant)>>,
    watches: [watch::Sender<Status>; 3],
}

pub(crate) struct Entry {
    pub(crate) check: Check,
    state: Mutex<EntryState>,
    /// Counts finished runs; probers wait for it to move.
    completed: watch::Sender<u64>,
}

#[derive(Default)]
struct EntryState {
    last: Option<Stored>,
    running: bool,
    failures_in_a_row: u32,
    passes_in_a_row: u32,
}

#[derive(Clone)]
struct Stored {
    result: CheckResult,
    at: Instant,
    wall: SystemTime,
    took: Duration,
}

/// Builds a [`HealthRegistry`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    checks: Vec<Check>,
    probe_timeout: Duration,
    shutdown: Option<ShutdownToken>,
}

impl Builder {
    /// Adds a check.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// How long a probe waits for checks that are running before it answers
    /// with the last known results (default 900 ms, under the kubelet's
    /// default 1 s probe timeout).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Fails readiness from the moment `token`'s shutdown is triggered (its
    /// drain phase), while liveness keeps passing until exit; background
    /// checks stop when workers are cancelled.
    pub fn shutdown(mut self, token: ShutdownToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Checks the configuration and starts the background checks.
    ///
    /// # Errors
    ///
    /// A dependency check in liveness without
    /// [`allow_in_liveness`](Check::allow_in_liveness), or two checks with
    /// the same key.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, when a check runs in the background.
    pub fn build(self) -> Result<HealthRegistry, BuildError> {
        let mut keys = HashSet::new();
        for check in &self.checks {
            if check.kind == Kind::Dependency
                && check.probes.contains(&Probe::Liveness)
                && !check.allow_in_liveness
            {
                return Err(BuildError(format!(
                    "dependency check {:?} is in the liveness probe: a failing dependency would \
                     restart every replica; make it Kind::Process or call allow_in_liveness()",
                    check.name()
                )));
            }
            if !keys.insert(check.key()) {
                return Err(BuildError(format!(
                    "two checks are keyed {:?}",
                    check.key()
                )));
            }
        }
        let has_startup = self
            .checks
            .iter()
            .any(|check| check.probes.contains(&Probe::Startup));
        let entries: Vec<Arc<Entry>> = self
            .checks
            .into_iter()
            .map(|check| {
                Arc::new(Entry {
                    check,
                    state: Mutex::default(),
                    completed: watch::Sender::new(0),
                })
            })
            .collect();
        let inner = Arc::new(Inner {
            entries,
            probe_timeout: self.probe_timeout,
            shutdown: self.shutdown,
            started: AtomicBool::new(!has_startup),
            maintenance: Mutex::new(None),
            watches: [
                watch::Sender::new(Status::Pass),
                watch::Sender::new(if has_startup {
                    Status::Fail
                } else {
                    Status::Pass
                }),
                watch::Sender::new(if has_startup {
                    Status::Fail
                } else {
                    Status::Pass
                }),
            ],
        });
        for entry in &inner.entries {
            if let Schedule::Background { interval } = entry.check.schedule {
                tokio::spawn(background(
                    Arc::downgrade(&inner),
                    Arc::clone(entry),
                    interval,
                ));
            }
        }
        Ok(HealthRegistry { inner })
    }
}

/// Why a [`Builder`] refused its checks.
#[derive(Debug)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for BuildError {}

async fn background(inner: Weak<Inner>, entry: Arc<Entry>, interval: Duration) {
    let stopped = async {
        match inner.upgrade().and_then(|inner| inner.shutdown.clone()) {
            Some(token) => {
                token
                    .as_cancellation_token()
                    .clone()
                    .cancelled_owned()
                    .await
            }
            None => std::future::pending().await,
        }
    };
    let runs = async {
        loop {
            if inner.strong_count() == 0 {
                return;
            }
            if Entry::claim(&entry) {
                run(Arc::clone(&entry)).await;
            }
            let jitter = interval.mul_f64(crate::random_unit() * 0.1);
            tokio::time::sleep(interval - jitter).await;
        }
    };
    tokio::select! {
        () = stopped => {}
        () = runs => {}
    }
}

impl Entry {
    /// Marks a run as started; `false` if one already is.
    fn claim(entry: &Arc<Entry>) -> bool {
        let mut state = lock(&entry.state);
        if state.running {
            return false;
        }
        state.running = true;
        true
    }

    fn record(&self, raw: CheckResult, started: Instant, wall: SystemTime) {
        let check = &self.check;
        let mut state = lock(&self.state);
        let previous = state.last.as_ref().map(|stored| stored.result.status);
        if raw.status == Status::Fail {
            state.failures_in_a_row += 1;
            state.passes_in_a_row = 0;
        } else {
            state.passes_in_a_row += 1;
            state.failures_in_a_row = 0;
        }
        // Hysteresis: hold the previous status until enough runs agree.
        let status = match previous {
            Some(Status::Fail) if raw.status != Status::Fail => {
                if state.passes_in_a_row >= check.recover_after {
                    raw.status
                } else {
                    Status::Fail
                }
            }
            Some(prev) if prev != Status::Fail && raw.status == Status::Fail => {
                if state.failures_in_a_row >= check.fail_after {
                    Status::Fail
                } else {
                    prev
                }
            }
            _ => raw.status,
        };
        let result = CheckResult { status, ..raw };
        state.last = Some(Stored {
            result,
            at: Instant::now(),
            wall,
            took: started.elapsed(),
        });
        state.running = false;
        drop(state);
        if previous != Some(status) {
            match status {
                Status::Fail => {
                    tracing::warn!(check = check.name(), from = ?previous, to = %status, "health check status changed")
                }
                _ => {
                    tracing::info!(check = check.name(), from = ?previous, to = %status, "health check status changed")
                }
            }
        }
        self.completed.send_modify(|runs| *runs += 1);
    }
}

/// Starts the runs the checks need (an on-demand check whose result is
/// older than its TTL, not running yet) and returns what to wait for: each
/// check without a fresh result, with its run counter as it stood.
fn start_runs<'a>(relevant: &[&'a Arc<Entry>], now: Instant) -> Vec<(&'a Arc<Entry>, u64)> {
    let mut waits = Vec::new();
    for entry in relevant {
        let mut state = lock(&entry.state);
        let fresh = match entry.check.schedule {
            Schedule::OnDemand { ttl } => state
                .last
                .as_ref()
                .is_some_and(|stored| now.saturating_duration_since(stored.at) < ttl),
            // Background checks are never waited for once they have a result.
            Schedule::Background { .. } => state.last.is_some(),
        };
        if fresh {
            continue;
        }
        let generation = *entry.completed.borrow();
        if !state.running && matches!(entry.check.schedule, Schedule::OnDemand { .. }) {
            state.running = true;
            tokio::spawn(run(Arc::clone(entry)));
        }
        drop(state);
        waits.push((*entry, generation));
    }
    waits
}

/// Each check's latest result (stale, pending or missing ones failing),
/// the probe's status over the checks it counts (a non-critical failure
/// counts as a warning), and whether every startup check passed.
fn collect(relevant: &[&Arc<Entry>], probe: Probe) -> (Status, Vec<CheckReport>, bool) {
    let now = Instant::now();
    let mut status = Status::Pass;
    let mut checks = Vec::with_capacity(relevant.len());
    let mut startup_passed = true;
    for entry in relevant {
        let check = &entry.check;
        let (result, wall, took) = latest(entry, now);
        if check.probes.contains(&Probe::Startup) && result.status == Status::Fail {
            startup_passed = false;
        }
        let counted = check.probes.contains(&probe);
        if counted {
            status = status.max(match result.status {
                Status::Fail if !check.critical => Status::Warn,
                other => other,
            });
        }
        if counted || probe == Probe::Readiness {
            checks.push(CheckReport {
                key: check.key(),
                component_type: check.component_type.clone(),
                critical: check.critical,
                result,
                time: wall,
                took,
            });
        }
    }
    (status, checks, startup_passed)
}

/// A check's latest result as of `now`, with when it ran and how long it
/// took: a stale one, a first run not finished or none at all fail.
fn latest(entry: &Entry, now: Instant) -> (CheckResult, Option<SystemTime>, Option<Duration>) {
    let state = lock(&entry.state);
    match &state.last {
        Some(stored) if now.saturating_duration_since(stored.at) <= entry.check.staleness() => {
            (stored.result.clone(), Some(stored.wall), Some(stored.took))
        }
        Some(stored) => (
            CheckResult::fail().with_output(format!(
                "stale: last result is {:?} old",
                now.saturating_duration_since(stored.at)
            )),
            Some(stored.wall),
            Some(stored.took),
        ),
        None if state.running => (
            CheckResult::fail().with_output("pending: first run not finished"),
            None,
            None,
        ),
        None => (CheckResult::fail().with_output("not run yet"), None, None),
    }
}

/// Runs a claimed check once, in a task of its own, under its timeout.
async fn run(entry: Arc<Entry>) {
    let check = &entry.check;
    let started = Instant::now();
    let wall = SystemTime::now();
    let future = (check.run)();
    let joined = tokio::spawn(tokio::time::timeout(check.timeout, future)).await;
    let result = match joined {
        Ok(Ok(Ok(result))) => result,
        Ok(Ok(Err(error))) => {
            // The error's text may hold host names or credentials: tracing
            // only. Recorded as an error: subscribers print its sources.
            tracing::warn!(
                check = check.name(),
                error = &*error as &(dyn StdError + 'static),
                "health check failed"
            );
            CheckResult::fail()
        }
        Ok(Err(_elapsed)) => {
            tracing::warn!(check = check.name(), timeout = ?check.timeout, "health check timed out");
            CheckResult::fail().with_output(format!("timed out after {:?}", check.timeout))
        }
        Err(join) => {
            if join.is_panic() {
                tracing::error!(check = check.name(), "health check panicked");
            }
            CheckResult::fail().with_output("the check panicked")
        }
    };
    entry.record(result, started, wall);
}

impl HealthRegistry {
    /// A [`Builder`]: no checks, probe timeout 900 ms.
    pub fn builder() -> Builder {
        Builder {
            checks: Vec::new(),
            probe_timeout: Duration::from_millis(900),
            shutdown: None,
        }
    }

    /// Evaluates `probe`: runs its checks that need running (concurrently,
    /// single-flight), waits for them up to the probe timeout, and reports.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: runs continue in their own tasks and serve the next probe.
    pub async fn check(&self, probe: Probe) -> ProbeReport {
        let now = Instant::now();
        let deadline = now + self.inner.probe_timeout;
        let started = self.inner.started.load(Ordering::Acquire);
        let relevant = self.relevant(probe, started);
        // The runs go on concurrently in their tasks: waiting one after the
        // other takes as long as the slowest.
        for (entry, generation) in start_runs(&relevant, now) {
            let mut completed = entry.completed.subscribe();
            let _ = timeout_at(deadline, completed.wait_for(|runs| *runs > generation)).await;
        }
        let (mut status, checks, startup_passed) = collect(&relevant, probe);
        let output = self.gate(probe, started, startup_passed, &mut status);
        self.publish(probe, status, output.as_deref());
        ProbeReport {
            probe,
            status,
            output,
            checks,
        }
    }

    /// The checks of `probe`; before startup has passed, readiness also
    /// counts the startup checks.
    fn relevant(&self, probe: Probe, started: bool) -> Vec<&Arc<Entry>> {
        self.inner
            .entries
            .iter()
            .filter(|entry| {
                entry.check.probes.contains(&probe)
                    || (!started
                        && probe == Probe::Readiness
                        && entry.check.probes.contains(&Probe::Startup))
            })
            .collect()
    }

    /// The probe's own conditions over its checks: `starting` until the
    /// startup checks pass (once), `draining` once the shutdown began,
    /// `maintenance`; each fails the probe and is its output.
    fn gate(
        &self,
        probe: Probe,
        started: bool,
        startup_passed: bool,
        status: &mut Status,
    ) -> Option<Cow<'static, str>> {
        let mut output: Option<Cow<'static, str>> = None;
        if !started && matches!(probe, Probe::Startup | Probe::Readiness) {
            if startup_passed {
                if !self.inner.started.swap(true, Ordering::AcqRel) {
                    tracing::info!("startup checks passed: started");
                }
            } else {
                *status = Status::Fail;
                output = Some("starting".into());
            }
        }
        if probe == Probe::Readiness {
            if self
                .inner
                .shutdown
                .as_ref()
                .is_some_and(ShutdownToken::is_shutting_down)
            {
                *status = Status::Fail;
                output = Some("draining".into());
            } else if let Some(reason) = self.maintenance() {
                *status = Status::Fail;
                output = Some(format!("maintenance: {}", reason.0).into());
            }
        }
        output
    }

    /// The probe's status to its watchers, and a log line when it changed.
    fn publish(&self, probe: Probe, status: Status, output: Option<&str>) {
        let mut previous = status;
        self.inner.watches[probe.index()].send_if_modified(|current| {
            previous = *current;
            *current = status;
            previous != status
        });
        if previous != status {
            if status == Status::Fail {
                tracing::warn!(probe = probe.as_str(), from = %previous, to = %status, reason = output, "probe status changed");
            } else {
                tracing::info!(probe = probe.as_str(), from = %previous, to = %status, "probe status changed");
            }
        }
    }

    /// Whether every startup check has passed once.
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Takes readiness out of service for `duration`, with a reason shown to
    /// authorized readers; it reverts by itself.
    pub fn set_maintenance(&self, reason: impl Into<String>, duration: Duration) {
        let reason = reason.into();
        tracing::warn!(%reason, ?duration, "maintenance: readiness out of service");
        *lock(&self.inner.maintenance) = Some((reason, Instant::now() + duration));
    }

    /// Ends maintenance early.
    pub fn clear_maintenance(&self) {
        if lock(&self.inner.maintenance).take().is_some() {
            tracing::info!("maintenance ended");
        }
    }

    /// The maintenance reason and the time left, while in maintenance.
    pub fn maintenance(&self) -> Option<(String, Duration)> {
        let mut maintenance = lock(&self.inner.maintenance);
        let now = Instant::now();
        match &*maintenance {
            Some((reason, until)) if *until > now => Some((reason.clone(), *until - now)),
            Some(_) => {
                *maintenance = None;
                tracing::info!("maintenance expired");
                None
            }
            None => None,
        }
    }

    /// A watch of `probe`'s status, updated each time it is evaluated.
    pub fn watch(&self, probe: Probe) -> watch::Receiver<Status> {
        self.inner.watches[probe.index()].subscribe()
    }

    /// Waits until readiness passes (or warns): `true`; or until the
    /// shutdown this registry follows ([`Builder::shutdown`]) is triggered:
    /// `false`, at once, even while a slow check is running. The gate
    /// between "bound" and "ready" in a start or an upgrade: hand over
    /// (`Upgrader::ready`), print the ready line or notify systemd only on
    /// `true`.
    ///
    /// Readiness is asked again every 20 ms at first, backing off to every
    /// 250 ms (a check's cache decides how often it really runs).
    ///
    /// # Examples
    ///
    /// ```
    /// use seaworthy_health::HealthRegistry;
    /// use seaworthy_shutdown::{Shutdown, ShutdownReason};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let shutdown = Shutdown::builder().signals([]).build().unwrap();
    /// let registry = HealthRegistry::builder()
    ///     .shutdown(shutdown.token())
    ///     .build()
    ///     .unwrap();
    /// assert!(registry.until_ready().await); // no checks: ready
    /// shutdown.trigger(ShutdownReason::requested("example"));
    /// assert!(!registry.until_ready().await); // shutting down: never ready
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn until_ready(&self) -> bool {
        const FIRST: Duration = Duration::from_millis(20);
        const MOST: Duration = Duration::from_millis(250);
        let token = self.inner.shutdown.clone();
        let shutting_down = async {
            match &token {
                Some(token) => token.triggered().await,
                None => std::future::pending().await,
            }
        };
        let ready = async {
            let mut pause = FIRST;
            loop {
                if self.check(Probe::Readiness).await.status() != Status::Fail {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MOST);
            }
        };
        tokio::select! {
            biased;
            () = shutting_down => false,
            () = ready => !token.as_ref().is_some_and(ShutdownToken::is_shutting_down),
        }
    }

    /// The names of the checks, in the order they were added.
    pub fn check_names(&self) -> Vec<&str> {
        self.inner
            .entries
            .iter()
            .map(|entry| entry.check.name())
            .collect()
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("checks", &self.check_names())
            .field("started", &self.is_started())
            .finish_non_exhaustive()
    }
}
