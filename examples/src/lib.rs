//! Runnable examples for seaworthy; see the `[[example]]` targets. This
//! library holds what they share.

/// `EX_CONFIG` from sysexits.h: the configuration is wrong.
pub const EX_CONFIG: u8 = 78;

/// Logs to stdout, with colours only on a terminal; `RUST_LOG` filters
/// (default `info`).
pub fn init_tracing() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

use std::net::IpAddr;

use seaworthy::layers::TrustedProxies;
use seaworthy::layers::client_ip::IpNet;

/// An address block like `10.0.0.0/8` or `::1/128` (a bare address is /32
/// or /128).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cidr {
    /// The first address.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl std::str::FromStr for Cidr {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "address blocks like 10.0.0.0/8 or ::1/128, comma-separated";
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| EXPECTED)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => len
                .trim()
                .parse()
                .ok()
                .filter(|len| *len <= max)
                .ok_or(EXPECTED)?,
            None => max,
        };
        Ok(Cidr { addr, len })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        seaworthy::config::from_str::deserialize(deserializer)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `TRUSTED_PROXIES` as the layers take it.
pub fn trusted(cidrs: &[Cidr]) -> TrustedProxies {
    TrustedProxies::new(
        cidrs
            .iter()
            .filter_map(|cidr| IpNet::new(cidr.addr, cidr.len).ok()),
    )
}
