//! Built-in checks: a TCP connect, an HTTP GET.

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
