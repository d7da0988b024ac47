//! [`Settings`]: every variable of seaworthy's production wiring (the
//! flagship's table in DESIGN.md), typed, defaulted and checked (features
//! `config` and `layers`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use seaworthy_config::Secret;
use seaworthy_layers::{Quota, TrustedProxies};

/// The settings of a production server, read from the environment with
/// seaworthy-config (no prefix: `PORT`, `RATE_LIMIT`, …). A program with
/// settings of its own loads both in one go,
/// with one error for everything
/// ([`Loader::load_both`](seaworthy_config::Loader::load_both)):
///
/// ```
/// use seaworthy::Settings;
/// use seaworthy::config::Loader;
///
/// #[derive(serde::Deserialize)]
/// struct Mine {
///     database_url: String,
/// }
///
/// let loader = Loader::new("").from_iter([("PORT", "9000"), ("DATABASE_URL", "postgres://db")]);
/// let (settings, mine): (Settings, Mine) = loader.load_both().unwrap();
/// assert_eq!(settings.port, 9000);
/// assert_eq!(settings.rate_limit.to_string(), "100/min"); // the default
/// assert!(settings.validate().is_empty());
/// # let _ = mine.database_url;
/// ```
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `HOST`, `PORT` | `127.0.0.1`, `8000` | where to listen (ignored when systemd passes a socket named `http`) |
/// | `SHUTDOWN_DRAIN_DELAY` | `5s` | readiness fails this long before the listener stops accepting |
/// | `SHUTDOWN_TIMEOUT` | `30s` | the whole shutdown budget |
/// | `RATE_LIMIT`, `RATE_LIMIT_BURST` | `100/min`, `20` | per client IP (`N/s`, `N/min`, `N/h`), 429 with `Retry-After` past it |
/// | `TRUSTED_PROXIES` | (none) | comma-separated CIDRs whose forwarding headers are believed |
/// | `MAX_BODY`, `REQUEST_TIMEOUT` | `1MiB`, `30s` | request body limit (413), handler timeout (504; more than 0s) |
/// | `TLS_CERT`, `TLS_KEY` | (none) | PEM files: serve HTTPS, reloaded on SIGHUP and when they change |
/// | `HTTP_REDIRECT_PORT` | (none) | with TLS: plain HTTP answered with a 308 to `https://` |
/// | `TLS_TICKET_KEYS` | (none) | with TLS: session-ticket secrets shared by every instance |
/// | `TLS_CLIENT_CA` | (none) | with TLS: require client certificates signed by this bundle |
/// | `REDIS_URL` | (none) | a secret: the rate limit shared through Redis; a readiness check `redis` |
/// | `RATE_LIMIT_REPLICAS` | `1` | with `REDIS_URL`: the instances sharing the limit (the local fallback divides by it) |
/// | `RATE_LIMIT_FALLBACK` | `local` | with `REDIS_URL`, while Redis is away: `local`, `open` or `closed` |
/// | `HEADER_READ_TIMEOUT` | `10s` | a request head (and a TLS handshake) must arrive within it |
/// | `WRITE_TIMEOUT` | `30s` | a client that reads nothing of a response for it is cut |
/// | `MAX_CONNECTIONS` | `10000` | connections open at once |
/// | `MAX_CONNECTIONS_PER_IP` | `256` | connections open at once from one client address (`0`: no limit) |
/// | `HEALTH_PORT` | (none) | the probes on a listener of their own as well |
/// | `UPGRADE_TIMEOUT` | `30s` | how long an upgrade's new process has to become ready |
/// | `UPGRADE_SOCKET` | (none) | a Unix socket path for a hand-off without exec (never clobbers a non-socket) |
/// | `ACME_DOMAINS` | (none) | comma-separated names: HTTPS with certificates obtained and renewed from an ACME CA (TLS-ALPN-01 on `PORT`), instead of `TLS_CERT`/`TLS_KEY` |
/// | `ACME_EMAIL` | (none) | the account's contact |
/// | `ACME_DIRECTORY` | `letsencrypt` | `letsencrypt`, `letsencrypt-staging` or the directory's `https://` URL |
/// | `ACME_CACHE_DIR` | `acme` | account, certificate and key (0600); share it between replicas (one orders, all serve) |
/// | `ACME_CA_BUNDLE` | (none) | the CA that signs a private ACME server's HTTPS (Pebble, step-ca) |
/// | `ACME_CHALLENGE` | `tls-alpn-01` | `tls-alpn-01` (answered on `PORT`, no port 80) or `http-01` (answered on `HTTP_REDIRECT_PORT`) |
/// | `ACME_UNTIL_ISSUED` | `placeholder` | before the first certificate: `placeholder` (a temporary self-signed pair serves, readiness fails) or `refuse` (every handshake but the CA's refused) |
#[derive(serde::Deserialize, serde::Serialize, Debug, Clone)]
#[serde(default)]
#[non_exhaustive]
pub struct Settings {
    /// `HOST`.
    pub host: IpAddr,
    /// `PORT`.
    pub port: u16,
    /// `SHUTDOWN_DRAIN_DELAY`.
    #[serde(with = "seaworthy_config::duration")]
    pub shutdown_drain_delay: Duration,
    /// `SHUTDOWN_TIMEOUT`.
    #[serde(with = "seaworthy_config::duration")]
    pub shutdown_timeout: Duration,
    /// `RATE_LIMIT` (the burst apart).
    pub rate_limit: Quota,
    /// `RATE_LIMIT_BURST`.
    pub rate_limit_burst: u32,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `MAX_BODY`, in bytes.
    #[serde(with = "seaworthy_config::bytes")]
    pub max_body: u64,
    /// `REQUEST_TIMEOUT`.
    #[serde(with = "seaworthy_config::duration")]
    pub request_timeout: Duration,
    /// `TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// `TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// `HTTP_REDIRECT_PORT`.
    pub http_redirect_port: Option<u16>,
    /// `TLS_CLIENT_CA`.
    pub tls_client_ca: Option<PathBuf>,
    /// `TLS_TICKET_KEYS`.
    pub tls_ticket_keys: Option<PathBuf>,
    /// `REDIS_URL` (a secret: never printed).
    pub redis_url: Option<Secret<String>>,
    /// `RATE_LIMIT_REPLICAS`.
    pub rate_limit_replicas: u32,
    /// `RATE_LIMIT_FALLBACK`.
    #[serde(with = "seaworthy_config::from_str")]
    pub rate_limit_fallback: RateLimitFallback,
    /// `HEADER_READ_TIMEOUT`.
    #[serde(with = "seaworthy_config::duration")]
    pub header_read_timeout: Duration,
    /// `WRITE_TIMEOUT`.
    #[serde(with = "seaworthy_config::duration")]
    pub write_timeout: Duration,
    /// `MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_IP` (`0`: no limit).
    pub max_connections_per_ip: usize,
    /// `HEALTH_PORT`.
    pub health_port: Option<u16>,
    /// `UPGRADE_TIMEOUT`.
    #[serde(with = "seaworthy_config::duration")]
    pub upgrade_timeout: Duration,
    /// `UPGRADE_SOCKET`.
    pub upgrade_socket: Option<PathBuf>,
    /// `ACME_DOMAINS`.
    pub acme_domains: Vec<String>,
    /// `ACME_EMAIL`.
    pub acme_email: Option<String>,
    /// `ACME_DIRECTORY`: a name or a URL (see [`Settings::acme_directory_url`]).
    pub acme_directory: String,
    /// `ACME_CACHE_DIR`.
    pub acme_cache_dir: PathBuf,
    /// `ACME_CA_BUNDLE`.
    pub acme_ca_bundle: Option<PathBuf>,
    /// `ACME_CHALLENGE`: `tls-alpn-01` or `http-01`.
    pub acme_challenge: String,
    /// `ACME_UNTIL_ISSUED`: `placeholder` or `refuse`.
    pub acme_until_issued: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
            shutdown_drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            rate_limit: Quota::per_minute(100),
            rate_limit_burst: 20,
            trusted_proxies: TrustedProxies::none(),
            max_body: 1 << 20,
            request_timeout: Duration::from_secs(30),
            tls_cert: None,
            tls_key: None,
            http_redirect_port: None,
            tls_client_ca: None,
            tls_ticket_keys: None,
            redis_url: None,
            rate_limit_replicas: 1,
            rate_limit_fallback: RateLimitFallback::Local,
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            health_port: None,
            upgrade_timeout: Duration::from_secs(30),
            upgrade_socket: None,
            acme_domains: Vec::new(),
            acme_email: None,
            acme_directory: "letsencrypt".to_owned(),
            acme_cache_dir: PathBuf::from("acme"),
            acme_ca_bundle: None,
            acme_challenge: "tls-alpn-01".to_owned(),
            acme_until_issued: "placeholder".to_owned(),
        }
    }
}

/// The most `MAX_CONNECTIONS` may say: far above any descriptor limit.
pub(crate) const MAX_CONNECTIONS: usize = 1_000_000;

impl Settings {
    /// What the types cannot say: values that parse but are traps, and
    /// settings that need one another. Every problem at once, each naming
    /// its variable (never a value). Empty: the settings are good.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        self.validate_tls(&mut problems);
        self.validate_acme(&mut problems);
        if self
            .redis_url
            .as_ref()
            .is_some_and(|url| !is_redis_url(url.expose()))
        {
            problems.push("REDIS_URL: invalid, expected a URL like redis://host:6379".to_owned());
        }
        if self.rate_limit_replicas == 0 {
            problems.push(
                "RATE_LIMIT_REPLICAS: at least 1 (the instances sharing the limit)".to_owned(),
            );
        }
        if self.header_read_timeout < Duration::from_millis(100) {
            problems.push(
                "HEADER_READ_TIMEOUT: at least 100ms (a shorter one cuts every client whose head \
                 arrives in two packets)"
                    .to_owned(),
            );
        }
        if self.write_timeout < Duration::from_millis(100) {
            problems.push(
                "WRITE_TIMEOUT: at least 100ms (a shorter one cuts clients on any hiccup)"
                    .to_owned(),
            );
        }
        if self.request_timeout.is_zero() {
            problems.push(
                "REQUEST_TIMEOUT: more than 0s (0s would answer every request 504)".to_owned(),
            );
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            problems.push(format!(
                "MAX_CONNECTIONS: between 1 and {MAX_CONNECTIONS} (0 would accept nothing)"
            ));
        }
        if self
            .health_port
            .is_some_and(|port| port != 0 && port == self.port)
        {
            problems.push("HEALTH_PORT: must differ from PORT".to_owned());
        }
        problems
    }

    /// The ACME settings that need one another.
    fn validate_acme(&self, problems: &mut Vec<String>) {
        let acme = !self.acme_domains.is_empty();
        if acme && (self.tls_cert.is_some() || self.tls_key.is_some()) {
            problems.push(
                "ACME_DOMAINS: either certificates from files (TLS_CERT, TLS_KEY) or from ACME, \
                 not both"
                    .to_owned(),
            );
        }
        if !acme && (self.acme_email.is_some() || self.acme_ca_bundle.is_some()) {
            problems.push("ACME_EMAIL, ACME_CA_BUNDLE: need ACME_DOMAINS".to_owned());
        }
        for domain in &self.acme_domains {
            let valid = !domain.is_empty()
                && !domain.starts_with("*.")
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                });
            if !valid {
                problems.push(
                    "ACME_DOMAINS: invalid, expected DNS names like example.com, \
                     comma-separated (no wildcards: they need DNS-01)"
                        .to_owned(),
                );
                break;
            }
        }
        match self.acme_challenge.trim() {
            "tls-alpn-01" => {}
            "http-01" if acme && self.http_redirect_port.is_none() => problems.push(
                "ACME_CHALLENGE: http-01 is answered on HTTP_REDIRECT_PORT, which is not set"
                    .to_owned(),
            ),
            "http-01" => {}
            _ => {
                problems.push("ACME_CHALLENGE: invalid, expected tls-alpn-01 or http-01".to_owned())
            }
        }
        if !matches!(self.acme_until_issued.trim(), "placeholder" | "refuse") {
            problems.push("ACME_UNTIL_ISSUED: invalid, expected placeholder or refuse".to_owned());
        }
        if acme && self.acme_directory_url().is_none() {
            problems.push(
                "ACME_DIRECTORY: invalid, expected letsencrypt, letsencrypt-staging or an \
                 https:// URL"
                    .to_owned(),
            );
        }
    }

    /// `ACME_DIRECTORY` as a URL: the names of Let's Encrypt's directories,
    /// or an `https://` URL as it is.
    pub fn acme_directory_url(&self) -> Option<String> {
        match self.acme_directory.trim() {
            "letsencrypt" => Some("https://acme-v02.api.letsencrypt.org/directory".to_owned()),
            "letsencrypt-staging" => {
                Some("https://acme-staging-v02.api.letsencrypt.org/directory".to_owned())
            }
            url if url.starts_with("https://") && url.len() > "https://".len() => {
                Some(url.to_owned())
            }
            _ => None,
        }
    }

    /// The TLS settings that need one another.
    fn validate_tls(&self, problems: &mut Vec<String>) {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => problems.push("TLS_KEY: required with TLS_CERT".to_owned()),
            (None, Some(_)) => problems.push("TLS_CERT: required with TLS_KEY".to_owned()),
            _ => {}
        }
        let tls =
            self.tls_cert.is_some() || self.tls_key.is_some() || !self.acme_domains.is_empty();
        if !tls && self.http_redirect_port.is_some() {
            problems.push(
                "HTTP_REDIRECT_PORT: redirects to HTTPS, which needs TLS_CERT and TLS_KEY (or ACME_DOMAINS)"
                    .to_owned(),
            );
        }
        if !tls && self.tls_client_ca.is_some() {
            problems.push("TLS_CLIENT_CA: needs TLS_CERT and TLS_KEY (or ACME_DOMAINS)".to_owned());
        }
        if !tls && self.tls_ticket_keys.is_some() {
            problems
                .push("TLS_TICKET_KEYS: needs TLS_CERT and TLS_KEY (or ACME_DOMAINS)".to_owned());
        }
        if self
            .http_redirect_port
            .is_some_and(|port| port != 0 && (port == self.port || Some(port) == self.health_port))
        {
            problems.push("HTTP_REDIRECT_PORT: must differ from PORT and HEALTH_PORT".to_owned());
        }
    }

    /// Whether HTTPS is configured: `TLS_CERT` and `TLS_KEY`, or
    /// `ACME_DOMAINS`.
    pub fn tls(&self) -> bool {
        (self.tls_cert.is_some() && self.tls_key.is_some()) || !self.acme_domains.is_empty()
    }

    /// The quota with its burst: `RATE_LIMIT` and `RATE_LIMIT_BURST`.
    pub fn quota(&self) -> Quota {
        self.rate_limit.burst(self.rate_limit_burst)
    }

    /// The Redis store's fallback: `RATE_LIMIT_FALLBACK` with
    /// `RATE_LIMIT_REPLICAS`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_fallback(&self) -> seaworthy_layers::redis_store::Fallback {
        use seaworthy_layers::redis_store::Fallback;
        match self.rate_limit_fallback {
            RateLimitFallback::Local => Fallback::Local {
                replicas: self.rate_limit_replicas,
            },
            RateLimitFallback::Open => Fallback::Open,
            RateLimitFallback::Closed => Fallback::Closed,
        }
    }
}

/// Whether `url` looks like `redis[s]://[user:password@]host[:port][/db]`
/// (the store parses it for good when it is built).
fn is_redis_url(url: &str) -> bool {
    url.strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit('@').next())
        .is_some_and(|host| !host.is_empty())
}

/// `RATE_LIMIT_FALLBACK`: what limits while Redis is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateLimitFallback {
    /// Each instance limits alone, with the quota divided by
    /// `RATE_LIMIT_REPLICAS` (the default).
    #[default]
    Local,
    /// No limit.
    Open,
    /// Every request refused (429).
    Closed,
}

impl std::str::FromStr for RateLimitFallback {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "local" => Ok(RateLimitFallback::Local),
            "open" => Ok(RateLimitFallback::Open),
            "closed" => Ok(RateLimitFallback::Closed),
            _ => Err("local, open or closed"),
        }
    }
}

impl std::fmt::Display for RateLimitFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateLimitFallback::Local => "local",
            RateLimitFallback::Open => "open",
            RateLimitFallback::Closed => "closed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_told_from_nonsense() {
        for good in [
            "redis://cache:6379",
            "rediss://u:p@cache/0",
            "redis://localhost",
        ] {
            assert!(is_redis_url(good), "{good}");
        }
        for bad in ["cache:6379", "redis://", "http://cache", "redis://u:p@/0"] {
            assert!(!is_redis_url(bad), "{bad}");
        }
    }

    #[test]
    fn every_trap_is_named_at_once() {
        let settings = Settings {
            tls_cert: Some("cert.pem".into()),
            request_timeout: Duration::ZERO,
            max_connections: 0,
            health_port: Some(8000),
            rate_limit_replicas: 0,
            ..Settings::default()
        };
        let problems = settings.validate();
        for variable in [
            "TLS_KEY",
            "REQUEST_TIMEOUT",
            "MAX_CONNECTIONS",
            "HEALTH_PORT",
            "RATE_LIMIT_REPLICAS",
        ] {
            assert!(
                problems.iter().any(|problem| problem.starts_with(variable)),
                "{variable}: {problems:?}"
            );
        }
        assert!(Settings::default().validate().is_empty());
    }
}
