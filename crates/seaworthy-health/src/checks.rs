//! Built-in checks: a TCP connect, an HTTP GET, the free disk space.

use std::borrow::Cow;
use std::time::Instant;

#[cfg(feature = "http-check")]
use bytes::Bytes;
#[cfg(feature = "http-check")]
use http::{StatusCode, Uri};
#[cfg(feature = "http-check")]
use http_body_util::Empty;
#[cfg(feature = "http-check")]
use hyper_util::client::legacy::Client;
#[cfg(feature = "http-check")]
use hyper_util::rt::TokioExecutor;

use crate::{Check, CheckResult};

/// A check that connects to `addr` (`host:port`) over TCP and reports the
/// time it took, in milliseconds. A dependency check of readiness by
/// default, keyed `name:responseTime`.
pub fn tcp(name: impl Into<Cow<'static, str>>, addr: impl Into<String>) -> Check {
    let addr: String = addr.into();
    Check::new(name, move || {
        let addr = addr.clone();
        async move {
            let started = Instant::now();
            tokio::net::TcpStream::connect(addr.as_str()).await?;
            Ok::<_, std::io::Error>(
                CheckResult::pass().with_observed(started.elapsed().as_secs_f64() * 1e3, "ms"),
            )
        }
    })
    .measurement("responseTime")
    .component_type("component")
}

/// A check that sends `GET uri` (plain HTTP) and passes when the answer has
/// status `expect`. Reports the time it took, in milliseconds. A
/// dependency check of readiness by default, keyed `name:responseTime`.
#[cfg(feature = "http-check")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-check")))]
pub fn http_get(name: impl Into<Cow<'static, str>>, uri: Uri, expect: StatusCode) -> Check {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    Check::new(name, move || {
        let client = client.clone();
        let uri = uri.clone();
        async move {
            let started = Instant::now();
            let response = client.get(uri).await?;
            let took = started.elapsed().as_secs_f64() * 1e3;
            let result = if response.status() == expect {
                CheckResult::pass()
            } else {
                CheckResult::fail().with_output(format!("status {}", response.status().as_u16()))
            };
            Ok::<_, hyper_util::client::legacy::Error>(result.with_observed(took, "ms"))
        }
    })
    .measurement("responseTime")
    .component_type("component")
}

/// The free space of the filesystem holding `path` (Unix): warns under
/// 10 %, fails under 2 %, the percentage free as the observed value.
/// Non-critical (a full disk makes readiness warn, still 200: the process
/// can serve on), run in the background every 10 s, keyed
/// `name:utilization`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use seaworthy_health::{HealthRegistry, Probe, Status, checks};
///
/// let registry = HealthRegistry::builder()
///     .check(checks::disk_space("disk", "."))
///     .build()
///     .unwrap();
/// let status = registry.check(Probe::Readiness).await.status();
/// assert_ne!(status, Status::Fail); // non-critical: at worst a warning
/// # }
/// ```
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub fn disk_space(
    name: impl Into<Cow<'static, str>>,
    path: impl Into<std::path::PathBuf>,
) -> Check {
    let path: std::path::PathBuf = path.into();
    Check::new(name, move || {
        let path = path.clone();
        async move {
            let stat = nix::sys::statvfs::statvfs(&path)?;
            #[allow(clippy::cast_precision_loss, clippy::useless_conversion)]
            let (total, free) = (
                u64::from(stat.blocks()) as f64,
                u64::from(stat.blocks_available()) as f64,
            );
            let free_percent = if total > 0.0 {
                free / total * 100.0
            } else {
                100.0
            };
            let result = match free_percent {
                p if p < 2.0 => CheckResult::fail(),
                p if p < 10.0 => CheckResult::warn(),
                _ => CheckResult::pass(),
            };
            Ok::<_, nix::Error>(
                result.with_observed((free_percent * 10.0).round() / 10.0, "percent free"),
            )
        }
    })
    .kind(crate::Kind::Process)
    .measurement("utilization")
    .component_type("system")
    .critical(false)
    .background(std::time::Duration::from_secs(10))
}
