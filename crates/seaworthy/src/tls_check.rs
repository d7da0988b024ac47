//! The TLS certificates as a health check.

use std::time::Duration;

use seaworthy_health::{Check, CheckResult, Kind};
use seaworthy_listener::tls::Tls;

/// A health check `tls` on the certificates in force: `pass` while the
/// soonest to expire has more than `warn_before` left and the last reload
/// was accepted; `warn` when it expires within `warn_before` (or has
/// expired), or when a reload was refused by the gate (the old pair is
/// still served: a warning, never a failure that would take every replica
/// out of rotation). The observed value is the days left, the output says
/// why it warns (shown only where the probe shows details).
///
/// Not critical, a [`Kind::Process`] check; it reads memory only, so it
/// runs when a probe asks (cached for 1 s), and a refused reload shows at
/// the next probe.
///
/// ```no_run
/// # fn run(tls: seaworthy::listener::tls::Tls) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use seaworthy::health::HealthRegistry;
///
/// let health = HealthRegistry::builder()
///     .check(seaworthy::tls_check(&tls, Duration::from_secs(14 * 86_400)))
///     .build()?;
/// # Ok(()) }
/// ```
pub fn tls_check(tls: &Tls, warn_before: Duration) -> Check {
    let tls = tls.clone();
    Check::new("tls", move || {
        let status = tls.status();
        async move {
            let soonest = status.soonest_expiry();
            let days = soonest.map_or(0.0, |cert| cert.days_left());
            let remaining = soonest.map_or(Duration::ZERO, |cert| cert.remaining());
            let result = if let Some(error) = status.last_error {
                CheckResult::warn().with_output(format!("reload refused: {error}"))
            } else if remaining < warn_before {
                CheckResult::warn().with_output(format!(
                    "the certificate for {} expires in {days:.1} days",
                    soonest.map_or(String::new(), |cert| cert.names.join(", "))
                ))
            } else {
                CheckResult::pass()
            };
            Ok::<_, std::convert::Infallible>(
                result.with_observed((days * 10.0).floor() / 10.0, "days"),
            )
        }
    })
    .kind(Kind::Process)
    .measurement("expiry")
    .component_type("system")
    .critical(false)
    .cached(Duration::from_secs(1))
}
