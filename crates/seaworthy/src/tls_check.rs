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

/// The issuer of the temporary pair served until the first certificate.
#[cfg(feature = "acme")]
const PLACEHOLDER_ISSUER: &str = seaworthy_listener::tls::acme::PLACEHOLDER;

/// As [`tls_check`], for certificates that an [`Acme`] renews (features
/// `acme` and `health`): also warns when renewal has failed three times in
/// a row, or at all once expiry is within `warn_before` (the old pair
/// serves on either way: a warning, never a failure), and its output says
/// when the next order is due.
///
/// Until the first certificate is obtained it **fails** (it is critical):
/// readiness and the startup probe fail while the temporary self-signed
/// pair answers the CA's validations, so no load balancer sends clients to
/// it. To accept traffic on the temporary pair meanwhile, make it
/// non-critical: `acme_check(..).critical(false)`.
///
/// [`Acme`]: seaworthy_listener::tls::acme::Acme
#[cfg(feature = "acme")]
#[cfg_attr(docsrs, doc(cfg(feature = "acme")))]
pub fn acme_check(acme: &seaworthy_listener::tls::acme::Acme, warn_before: Duration) -> Check {
    let acme = acme.clone();
    Check::new("tls", move || {
        let status = acme.tls().status();
        let renewal = acme.status();
        async move {
            let soonest = status.soonest_expiry();
            let days = soonest.map_or(0.0, |cert| cert.days_left());
            let remaining = soonest.map_or(Duration::ZERO, |cert| cert.remaining());
            let next = renewal
                .next_order
                .map(|at| {
                    let left = at
                        .duration_since(std::time::SystemTime::now())
                        .unwrap_or_default();
                    format!("; next order in {:.1} days", left.as_secs_f64() / 86_400.0)
                })
                .unwrap_or_default();
            let failing = renewal.failures >= 3 || (renewal.failures > 0 && remaining < warn_before);
            let placeholder = soonest.is_some_and(|cert| cert.issuer.contains(PLACEHOLDER_ISSUER));
            let result = if placeholder {
                let why = renewal
                    .last_error
                    .map(|err| format!(" (last try: {err})"))
                    .unwrap_or_default();
                CheckResult::fail().with_output(format!(
                    "waiting for the first certificate from the CA{why}{next}"
                ))
            } else if failing {
                CheckResult::warn().with_output(format!(
                    "renewal failed {} times in a row ({}); the certificate expires in {days:.1} days{next}",
                    renewal.failures,
                    renewal.last_error.unwrap_or_default()
                ))
            } else if let Some(error) = status.last_error {
                CheckResult::warn().with_output(format!("reload refused: {error}{next}"))
            } else if remaining < warn_before {
                CheckResult::warn().with_output(format!(
                    "the certificate expires in {days:.1} days{next}"
                ))
            } else {
                CheckResult::pass().with_output(format!("expires in {days:.1} days{next}"))
            };
            Ok::<_, std::convert::Infallible>(
                result.with_observed((days * 10.0).floor() / 10.0, "days"),
            )
        }
    })
    .kind(Kind::Process)
    .measurement("expiry")
    .component_type("system")
    .critical(true)
    .cached(Duration::from_secs(1))
}
