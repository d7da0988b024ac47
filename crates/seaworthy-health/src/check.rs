use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::CheckResult;

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Result<CheckResult, BoxError>> + Send>>;
pub(crate) type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The probes Kubernetes (and load balancers) ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Is the process alive? A failure restarts it: only checks of the
    /// process itself belong here.
    Liveness,
    /// Should it get traffic? Fails while starting, draining, in
    /// maintenance, or when a critical dependency fails.
    Readiness,
    /// Has it finished starting? Passes once every startup check has
    /// passed once, and from then on.
    Startup,
}

impl Probe {
    /// `"liveness"`, `"readiness"` or `"startup"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Liveness => "liveness",
            Probe::Readiness => "readiness",
            Probe::Startup => "startup",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Probe::Liveness => 0,
            Probe::Readiness => 1,
            Probe::Startup => 2,
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The process itself: memory, disk, an event loop, a deadlock watchdog.
    Process,
    /// Something outside: a database, a queue, another service. Kept out of
    /// liveness unless [`Check::allow_in_liveness`]: one outage must not
    /// restart every pod.
    Dependency,
}

/// When a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// When a probe asks, at most once per `ttl`; probes in between get the
    /// cached result.
    OnDemand {
        /// How long a result is reused.
        ttl: Duration,
    },
    /// In the background every `interval` (each run shifted by up to a tenth
    /// of it at random); probes only read the latest result.
    Background {
        /// Time between runs.
        interval: Duration,
    },
}

/// One named health check and how it is run; add it with
/// [`Builder::check`](crate::Builder::check).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use seaworthy_health::{Check, CheckResult, Kind, Probe};
///
/// let check = Check::new("queue", || async {
///     let depth = 42.0; // ask the queue
///     let result = if depth < 1000.0 { CheckResult::pass() } else { CheckResult::warn() };
///     Ok::<_, std::io::Error>(result.with_observed(depth, "messages"))
/// })
/// .kind(Kind::Dependency)
/// .probes([Probe::Readiness])
/// .critical(false)
/// .timeout(Duration::from_millis(500))
/// .background(Duration::from_secs(10));
/// # let _ = check;
/// ```
#[derive(Clone)]
#[must_use = "a check does nothing until added to a registry"]
pub struct Check {
    pub(crate) name: Arc<str>,
    pub(crate) measurement: Option<Cow<'static, str>>,
    pub(crate) component_type: Option<Cow<'static, str>>,
    pub(crate) run: CheckFn,
    pub(crate) kind: Kind,
    pub(crate) probes: Vec<Probe>,
    pub(crate) critical: bool,
    pub(crate) timeout: Duration,
    pub(crate) schedule: Schedule,
    pub(crate) max_staleness: Option<Duration>,
    pub(crate) fail_after: u32,
    pub(crate) recover_after: u32,
    pub(crate) allow_in_liveness: bool,
}

impl Check {
    /// A check named `name` that runs `check`. It returns a
    /// [`CheckResult`], or an error: a failure whose text goes to tracing,
    /// never into a response body.
    ///
    /// Defaults: a critical [dependency](Kind::Dependency) check of
    /// [readiness](Probe::Readiness), timeout 800 ms, run on demand with a
    /// 1 s cache, results usable for 10 s, no hysteresis.
    pub fn new<F, Fut, E>(name: impl Into<Cow<'static, str>>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<CheckResult, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let run: CheckFn = Arc::new(move || {
            let future = check();
            Box::pin(async move { future.await.map_err(Into::into) })
        });
        Check {
            name: Arc::from(name.into()),
            measurement: None,
            component_type: None,
            run,
            kind: Kind::Dependency,
            probes: vec![Probe::Readiness],
            critical: true,
            timeout: Duration::from_millis(800),
            schedule: Schedule::OnDemand {
                ttl: Duration::from_secs(1),
            },
            max_staleness: None,
            fail_after: 1,
            recover_after: 1,
            allow_in_liveness: false,
        }
    }

    /// What the check looks at (default [`Kind::Dependency`]).
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// The probes it counts in (default readiness only).
    pub fn probes(mut self, probes: impl IntoIterator<Item = Probe>) -> Self {
        self.probes = probes.into_iter().collect();
        self.probes.dedup();
        self
    }

    /// Whether a failure fails the probe (default), or only makes it warn
    /// (degraded, still 200).
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// How long one run may take; a run that takes longer is cancelled and
    /// counts as a failure (default 800 ms, under the kubelet's 1 s probe
    /// timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs when asked, reusing a result for `ttl` (the default, 1 s).
    pub fn cached(mut self, ttl: Duration) -> Self {
        self.schedule = Schedule::OnDemand { ttl };
        self
    }

    /// Runs in the background every `interval`; probes never wait for it.
    pub fn background(mut self, interval: Duration) -> Self {
        self.schedule = Schedule::Background { interval };
        self
    }

    /// How old a result may be and still count; older, it is a failure
    /// ("stale"). Default: ten times the TTL (at least 10 s), or three
    /// intervals for a background check.
    pub fn max_staleness(mut self, age: Duration) -> Self {
        self.max_staleness = Some(age);
        self
    }

    /// Hysteresis: fail only after `fail_after` failures in a row, and
    /// recover only after `recover_after` passes in a row (defaults 1, 1).
    pub fn hysteresis(mut self, fail_after: u32, recover_after: u32) -> Self {
        self.fail_after = fail_after.max(1);
        self.recover_after = recover_after.max(1);
        self
    }

    /// The measurement in the check's key (`"db:responseTime"`).
    pub fn measurement(mut self, measurement: impl Into<Cow<'static, str>>) -> Self {
        self.measurement = Some(measurement.into());
        self
    }

    /// The `componentType` in the detailed output (`"datastore"`,
    /// `"system"`, `"component"`).
    pub fn component_type(mut self, component_type: impl Into<Cow<'static, str>>) -> Self {
        self.component_type = Some(component_type.into());
        self
    }

    /// Lets a [dependency](Kind::Dependency) check count in liveness. Think
    /// twice: when the dependency fails, every replica restarts at once.
    pub fn allow_in_liveness(mut self) -> Self {
        self.allow_in_liveness = true;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key in the `checks` object: `name` or `name:measurement`.
    pub(crate) fn key(&self) -> String {
        match &self.measurement {
            Some(measurement) => format!("{}:{measurement}", self.name),
            None => self.name.to_string(),
        }
    }

    pub(crate) fn staleness(&self) -> Duration {
        self.max_staleness.unwrap_or(match self.schedule {
            Schedule::OnDemand { ttl } => (ttl * 10).max(Duration::from_secs(10)),
            Schedule::Background { interval } => interval * 3,
        })
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("probes", &self.probes)
            .field("critical", &self.critical)
            .field("timeout", &self.timeout)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}
