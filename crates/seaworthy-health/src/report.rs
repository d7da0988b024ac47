use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::{CheckResult, Probe, Status};

/// The outcome of one probe: its status, why it failed when a gate
/// (starting, draining, maintenance) failed it, and each check's result.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub(crate) probe: Probe,
    pub(crate) status: Status,
    pub(crate) output: Option<Cow<'static, str>>,
    pub(crate) checks: Vec<CheckReport>,
}

/// One check's part of a [`ProbeReport`].
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub(crate) key: String,
    pub(crate) component_type: Option<Cow<'static, str>>,
    pub(crate) critical: bool,
    pub(crate) result: CheckResult,
    pub(crate) time: Option<SystemTime>,
    pub(crate) took: Option<Duration>,
}

impl ProbeReport {
    /// The probe evaluated.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// The probe's status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Why a gate failed the probe: `"starting"`, `"draining"`,
    /// `"maintenance: …"`.
    pub fn output(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// The checks, in registration order.
    pub fn checks(&self) -> &[CheckReport] {
        &self.checks
    }

    /// The check keyed `key` (`name` or `name:measurement`).
    pub fn get(&self, key: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|check| check.key == key)
    }

    /// 200 for pass and warn, 503 for fail.
    pub fn http_status(&self) -> http::StatusCode {
        if self.status.is_healthy() {
            http::StatusCode::OK
        } else {
            http::StatusCode::SERVICE_UNAVAILABLE
        }
    }

    /// The body in the IETF "Health Check Response Format for HTTP APIs"
    /// (`application/health+json`). Without `details`, statuses only: no
    /// times, values or messages.
    pub fn to_json(&self, details: bool) -> String {
        let mut body = Map::new();
        body.insert("status".into(), json!(self.status.as_str()));
        if details && let Some(output) = &self.output {
            body.insert("output".into(), json!(output));
        }
        let mut checks = Map::new();
        for check in &self.checks {
            let mut entry = Map::new();
            if details && let Some(component_type) = &check.component_type {
                entry.insert("componentType".into(), json!(component_type));
            }
            entry.insert("status".into(), json!(check.result.status.as_str()));
            if details {
                if let Some(time) = check.time {
                    entry.insert(
                        "time".into(),
                        json!(humantime::format_rfc3339_millis(time).to_string()),
                    );
                }
                if let Some(observed) = &check.result.observed {
                    entry.insert("observedValue".into(), json!(observed.value));
                    entry.insert("observedUnit".into(), json!(observed.unit));
                }
                if let Some(output) = &check.result.output {
                    entry.insert("output".into(), json!(output));
                }
            }
            checks.insert(check.key.clone(), Value::Array(vec![Value::Object(entry)]));
        }
        if !checks.is_empty() {
            body.insert("checks".into(), Value::Object(checks));
        }
        Value::Object(body).to_string()
    }
}

impl CheckReport {
    /// The key: `name` or `name:measurement`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The result counted for the probe (hysteresis and staleness applied).
    pub fn result(&self) -> &CheckResult {
        &self.result
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.result.status
    }

    /// Whether a failure fails the probe (or only makes it warn).
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// When the result was taken, if the check has run.
    pub fn time(&self) -> Option<SystemTime> {
        self.time
    }

    /// How long its run took, if the check has run.
    pub fn took(&self) -> Option<Duration> {
        self.took
    }
}
