//! Health checks and probes that never hang, never lie and never leak.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod check;
pub mod checks;
mod probe;
mod registry;
mod report;
mod service;
mod status;

pub use check::{Check, Kind, Probe, Schedule};
pub use probe::probe;
pub use registry::{BuildError, Builder, HealthRegistry};
pub use report::{CheckReport, ProbeReport};
pub use service::{Authorizer, HealthService};
pub use status::{CheckResult, Observed, Status};

/// A number in [0, 1), different for each call.
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(0_u8) >> 11) as f64 / (1_u64 << 53) as f64
}
