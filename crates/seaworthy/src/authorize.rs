//! Who sees the probes' check details: [`Authorizer`]s over the client the
//! client-IP layer resolved (features `health` and `layers`).
//!
//! A probe answers everyone with its status; the details (each check's
//! output, observed values, times) go only to clients its authorizer
//! admits. Behind a proxy the TCP peer is the proxy for every client, so
//! these read the resolved [`ClientIp`] (from [`ClientIpLayer`] or
//! seaworthy-actix's `ResolveClientIp`), never the peer: mount the probes
//! inside the client-IP layer. A request with no resolved client is not
//! admitted.
//!
//! [`ClientIpLayer`]: seaworthy_layers::ClientIpLayer
//!
//! ```
//! use seaworthy::authorize;
//! use seaworthy::health::{HealthRegistry, HealthService};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = HealthRegistry::builder().build().unwrap();
//! // Details for this machine's clients, and for the ops network.
//! let probes = HealthService::new(registry.clone()).authorizer(authorize::loopback());
//! let ops = HealthService::new(registry)
//!     .authorizer(authorize::clients_in(["10.20.0.0/16".parse().unwrap()]));
//! # let _ = (probes, ops);
//! # }
//! ```

use seaworthy_health::Authorizer;
use seaworthy_layers::ClientIp;
use seaworthy_layers::client_ip::{IpNet, canonical};

/// Admits clients on loopback (`127.0.0.0/8`, `::1`, and IPv4-mapped
/// loopback): a probe from this machine, as Docker's `HEALTHCHECK` or
/// `curl` on the host.
pub fn loopback() -> Authorizer {
    Authorizer::predicate(|parts| {
        parts
            .extensions
            .get::<ClientIp>()
            .is_some_and(|client| canonical(client.ip).is_loopback())
    })
}

/// Admits clients inside `nets`.
pub fn clients_in(nets: impl IntoIterator<Item = IpNet>) -> Authorizer {
    let nets: Vec<IpNet> = nets.into_iter().collect();
    Authorizer::predicate(move |parts| {
        parts
            .extensions
            .get::<ClientIp>()
            .is_some_and(|client| nets.iter().any(|net| net.contains(client.ip)))
    })
}
