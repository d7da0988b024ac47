use std::borrow::Cow;
use std::fmt;

/// The three statuses of the IETF health check response format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Healthy.
    Pass,
    /// Healthy, with a concern: the probe still answers 200.
    Warn,
    /// Unhealthy: the probe answers 503.
    Fail,
}

impl Status {
    /// `"pass"`, `"warn"` or `"fail"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// Whether a probe with this status answers 200 (pass and warn).
    pub fn is_healthy(self) -> bool {
        self != Status::Fail
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found: a status, and optionally a public message
/// and an observed value.
///
/// The message is public only to callers the [`Authorizer`](crate::Authorizer)
/// admits; never put an error's text in it (return the error instead: it
/// goes to tracing, never into a body).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    pub(crate) status: Status,
    pub(crate) output: Option<Cow<'static, str>>,
    pub(crate) observed: Option<Observed>,
}

/// A measured value, with its unit (`"ms"`, `"bytes"`, `"percent"`).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Cow<'static, str>,
}

impl CheckResult {
    /// A passing result.
    pub fn pass() -> Self {
        CheckResult::new(Status::Pass)
    }

    /// A warning: healthy, with a concern.
    pub fn warn() -> Self {
        CheckResult::new(Status::Warn)
    }

    /// A failure.
    pub fn fail() -> Self {
        CheckResult::new(Status::Fail)
    }

    fn new(status: Status) -> Self {
        CheckResult {
            status,
            output: None,
            observed: None,
        }
    }

    /// Adds a message for authorized readers.
    #[must_use]
    pub fn with_output(mut self, output: impl Into<Cow<'static, str>>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// Adds an observed value and its unit.
    #[must_use]
    pub fn with_observed(mut self, value: f64, unit: impl Into<Cow<'static, str>>) -> Self {
        self.observed = Some(Observed {
            value,
            unit: unit.into(),
        });
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The public message, if any.
    pub fn output(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// The observed value, if any.
    pub fn observed(&self) -> Option<&Observed> {
        self.observed.as_ref()
    }
}
