//! At most so many connections open at once from one client address
//! (nginx's `limit_conn`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Addr;

/// Which peers the per-client limit does not apply to.
#[derive(Clone)]
pub(crate) struct Exempt(pub(crate) Arc<dyn Fn(IpAddr) -> bool + Send + Sync>);

impl fmt::Debug for Exempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exempt(..)")
    }
}

/// How often a refusal is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The open connections of each client: IPv4 by address, IPv6 by /64 (one
/// host commonly holds a whole /64), IPv4-mapped addresses as IPv4.
#[derive(Debug)]
pub(crate) struct PerIp {
    cap: usize,
    exempt: Option<Exempt>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<u128, usize>,
    refused_since_warning: u64,
    warned_at: Option<Instant>,
}

/// Holds one connection's place in its client's count.
#[derive(Debug)]
pub(crate) struct Place {
    table: Arc<PerIp>,
    key: u128,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut state = self.table.lock();
        if let Some(count) = state.open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                state.open.remove(&self.key);
            }
        }
    }
}

impl PerIp {
    pub(crate) fn new(cap: usize, exempt: Option<Exempt>) -> Self {
        PerIp {
            cap: cap.max(1),
            exempt,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `peer`: `Ok(None)` when the limit does
    /// not apply (a Unix socket, an exempt peer), `Err(())` when the client
    /// already has `cap` connections open.
    pub(crate) fn admit(self: &Arc<Self>, peer: &Addr) -> Result<Option<Place>, ()> {
        let Some(ip) = peer.as_tcp().map(|addr| addr.ip()) else {
            return Ok(None);
        };
        if self.exempt.as_ref().is_some_and(|exempt| (exempt.0)(ip)) {
            return Ok(None);
        }
        let key = key(ip);
        let mut state = self.lock();
        let count = state.open.entry(key).or_insert(0);
        if *count >= self.cap {
            state.refused_since_warning += 1;
            let now = Instant::now();
            if state.warned_at.is_none_or(|at| now - at >= WARN_EVERY) {
                let refused = std::mem::take(&mut state.refused_since_warning);
                state.warned_at = Some(now);
                drop(state);
                tracing::warn!(
                    client = %ip,
                    cap = self.cap,
                    refused,
                    "a client reached its limit of open connections; further ones are closed"
                );
            }
            return Err(());
        }
        *count += 1;
        Ok(Some(Place {
            table: Arc::clone(self),
            key,
        }))
    }
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) & !u128::from(u64::MAX)) | 1 << 127 | 1,
        },
    }
}

/// The process's soft limit on open descriptors, where the system says.
pub(crate) fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        // `rlim_t` is unsigned on Linux and macOS, signed on the BSDs.
        #[allow(clippy::useless_conversion)]
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .and_then(|(soft, _hard)| u64::try_from(soft).ok())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Addr {
        Addr::Tcp(std::net::SocketAddr::new(text.parse().unwrap(), 1))
    }

    #[test]
    fn each_client_gets_its_cap_ipv6_by_slash_64_and_places_come_back() {
        let table = Arc::new(PerIp::new(2, None));
        let a = table.admit(&addr("192.0.2.1")).unwrap();
        let b = table.admit(&addr("::ffff:192.0.2.1")).unwrap();
        assert!(table.admit(&addr("192.0.2.1")).is_err());
        assert!(table.admit(&addr("192.0.2.2")).unwrap().is_some());
        drop(a);
        assert!(table.admit(&addr("192.0.2.1")).unwrap().is_some());
        drop(b);
        let _x = table.admit(&addr("2001:db8::1")).unwrap();
        let _y = table.admit(&addr("2001:db8::ffff")).unwrap();
        assert!(
            table.admit(&addr("2001:db8::1234")).is_err(),
            "the same /64"
        );
        assert!(table.admit(&addr("2001:db8:0:1::1")).unwrap().is_some());
    }

    #[test]
    fn exempt_peers_and_unix_sockets_are_not_counted() {
        let exempt = Exempt(Arc::new(|ip: IpAddr| ip.is_loopback()));
        let table = Arc::new(PerIp::new(1, Some(exempt)));
        for _ in 0..5 {
            assert!(table.admit(&addr("127.0.0.1")).unwrap().is_none());
        }
        #[cfg(unix)]
        assert!(table.admit(&Addr::Unix(None)).unwrap().is_none());
        let _one = table.admit(&addr("192.0.2.1")).unwrap();
        assert!(table.admit(&addr("192.0.2.1")).is_err());
    }
}
