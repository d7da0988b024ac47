//! The shared rate-limit store as a health check.

use std::time::Duration;

use seaworthy_health::{Check, CheckResult, Kind};
use seaworthy_layers::redis_store::RedisStore;

/// A health check `redis` for readiness: a `PING` within 200 ms (its time
/// observed, in ms), and a warning while the shared limit has fallen back
/// to its local store. Non-critical: the service runs on without Redis
/// (the fallback limits meanwhile), so Redis going away never takes every
/// replica out of rotation.
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use seaworthy::health::HealthRegistry;
/// use seaworthy::layers::redis_store::RedisStore;
///
/// let store = RedisStore::builder("redis://cache:6379").build()?;
/// let health = HealthRegistry::builder().check(seaworthy::redis_check(store)).build()?;
/// # Ok(()) }
/// ```
pub fn redis_check(store: RedisStore) -> Check {
    Check::new("redis", move || {
        let store = store.clone();
        async move {
            let ping = store.ping(Duration::from_millis(200)).await;
            let status = store.status();
            let result = match (&ping, status.degraded) {
                (Err(err), _) => CheckResult::fail().with_output(err.to_string()),
                (Ok(_), true) => CheckResult::warn().with_output(format!(
                    "the rate limit has fallen back: {}",
                    status.last_error.unwrap_or_default()
                )),
                (Ok(_), false) => CheckResult::pass(),
            };
            let millis = ping.map_or(0.0, |took| took.as_secs_f64() * 1000.0);
            Ok::<_, std::convert::Infallible>(
                result.with_observed((millis * 100.0).round() / 100.0, "ms"),
            )
        }
    })
    .kind(Kind::Dependency)
    .measurement("responseTime")
    .component_type("datastore")
    .critical(false)
    .timeout(Duration::from_millis(300))
}
