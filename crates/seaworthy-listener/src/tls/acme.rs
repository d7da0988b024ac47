//! Certificates from an ACME CA (RFC 8555), validated through the TLS
//! listener itself (TLS-ALPN-01, RFC 8737: no port 80 needed), with
//! instant-acme as the protocol client. Feature `acme`.
//!
//! This is the order: an account (created once, its credentials kept in
//! the cache directory), one order for the domains, each authorization
//! answered by [`Tls::set_challenge`] on the listener the CA connects to,
//! the key and CSR made here, the chain and key written to the cache
//! directory (0600, by an atomic rename). Renewal, locks between replicas
//! and the flagship's variables build on it.

use std::io::Write;
use std::path::{Path, PathBuf};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use super::Tls;

/// What to order, from where, and where to keep it.
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    directory: String,
    domains: Vec<String>,
    contact: Vec<String>,
    root_ca: Option<PathBuf>,
    cache_dir: PathBuf,
    challenge: Challenge,
}

/// How the CA checks that the domains are ours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// TLS-ALPN-01 (RFC 8737), answered by the TLS listener itself on port
    /// 443: no port 80 needed (the default).
    #[default]
    TlsAlpn01,
    /// HTTP-01: `http://DOMAIN/.well-known/acme-challenge/TOKEN` on port
    /// 80, answered by the redirect listener with
    /// [`AcmeConfig::http01_answers`].
    Http01,
}

impl AcmeConfig {
    /// Certificates for `domains` from the ACME directory at `directory`
    /// (Let's Encrypt: `https://acme-v02.api.letsencrypt.org/directory`),
    /// kept in `cache_dir`.
    pub fn new(
        directory: impl Into<String>,
        domains: impl IntoIterator<Item = impl Into<String>>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        AcmeConfig {
            directory: directory.into(),
            domains: domains.into_iter().map(Into::into).collect(),
            contact: Vec::new(),
            root_ca: None,
            cache_dir: cache_dir.into(),
            challenge: Challenge::default(),
        }
    }

    /// The challenge the CA is asked for (default TLS-ALPN-01).
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// Answers for the redirect listener's HTTP-01 seam
    /// ([`HttpsRedirect::acme_challenges`](super::HttpsRedirect::acme_challenges)):
    /// the key authorization published for a token in the cache directory,
    /// by whichever replica is ordering.
    pub fn http01_answers(&self) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let dir = http01_dir(self);
        move |token: &str| {
            // The redirect hands over base64url tokens only: no path tricks.
            if token.is_empty()
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return None;
            }
            std::fs::read_to_string(dir.join(token)).ok()
        }
    }

    /// A contact address for the account (`mailto:` is added).
    pub fn contact(mut self, email: impl AsRef<str>) -> Self {
        self.contact.push(format!("mailto:{}", email.as_ref()));
        self
    }

    /// The CA bundle that signs the ACME server's own HTTPS, for a private
    /// ACME server (Pebble, step-ca); default: the web's roots.
    pub fn root_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_ca = Some(path.into());
        self
    }

    /// Where the certificate chain is written.
    pub fn certificate_path(&self) -> PathBuf {
        self.cache_dir.join("certificate.pem")
    }

    /// Where the certificate's key is written.
    pub fn key_path(&self) -> PathBuf {
        self.cache_dir.join("key.pem")
    }

    fn account_path(&self) -> PathBuf {
        self.cache_dir.join("account.json")
    }
}

/// Why an order did not give a certificate.
#[derive(Debug)]
pub struct AcmeError(String);

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ACME: {}", self.0)
    }
}

impl std::error::Error for AcmeError {}

fn error(what: &str, err: impl std::fmt::Display) -> AcmeError {
    AcmeError(format!("{what}: {err}"))
}

/// Orders a certificate for the configured domains, answering the CA's
/// TLS-ALPN-01 validations on `tls` (which must be what the CA reaches on
/// port 443 for those names), and writes the chain and key to the cache
/// directory. The account is created on first use and reused after.
///
/// # Errors
///
/// The CA unreachable or refusing, a validation that failed (the CA's
/// reason), the cache directory not writable.
pub async fn order(config: &AcmeConfig, tls: &Tls) -> Result<(), AcmeError> {
    std::fs::create_dir_all(&config.cache_dir)
        .map_err(|err| error(&format!("{}", config.cache_dir.display()), err))?;
    let account = account(config).await?;
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|domain| Identifier::Dns(domain.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|err| error("new order", err))?;
    let mut published = Published::default();
    let result = match answer(&mut order, config, tls, &mut published).await {
        Ok(()) => finish(&mut order).await,
        Err(err) => Err(err),
    };
    published.withdraw(config, tls);
    let (chain, key) = result?;
    // The key first: a watcher that sees the new chain finds its key.
    write_private(&config.key_path(), key.as_bytes())?;
    write_private(&config.certificate_path(), chain.as_bytes())?;
    tracing::info!(domains = ?config.domains, "ACME: certificate obtained");
    Ok(())
}

/// What an order published for its validations, withdrawn when it ends.
#[derive(Default)]
struct Published {
    /// TLS-ALPN-01: domains with a challenge certificate.
    domains: Vec<String>,
    /// HTTP-01: the key-authorization files.
    tokens: Vec<PathBuf>,
}

impl Published {
    fn withdraw(&self, config: &AcmeConfig, tls: &Tls) {
        for domain in &self.domains {
            tls.remove_challenge(domain);
            let _ = std::fs::remove_file(challenge_path(config, domain));
        }
        for token in &self.tokens {
            let _ = std::fs::remove_file(token);
        }
    }
}

/// Answers each pending authorization with the configured challenge and
/// tells the CA to validate.
async fn answer(
    order: &mut instant_acme::Order,
    config: &AcmeConfig,
    tls: &Tls,
    published: &mut Published,
) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(|err| error("authorization", err))?;
        if authorization.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = match config.challenge {
            Challenge::Http01 => {
                let challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .ok_or_else(|| AcmeError("the CA offers no HTTP-01 challenge".into()))?;
                // Published where every replica's redirect listener reads it.
                let dir = http01_dir(config);
                std::fs::create_dir_all(&dir)
                    .map_err(|err| error(&format!("{}", dir.display()), err))?;
                let path = dir.join(&challenge.token);
                write_private(&path, challenge.key_authorization().as_str().as_bytes())?;
                published.tokens.push(path);
                challenge
            }
            Challenge::TlsAlpn01 => {
                let challenge = authorization
                    .challenge(ChallengeType::TlsAlpn01)
                    .ok_or_else(|| AcmeError("the CA offers no TLS-ALPN-01 challenge".into()))?;
                let domain = challenge.identifier().to_string();
                let digest: [u8; 32] = challenge
                    .key_authorization()
                    .digest()
                    .as_ref()
                    .try_into()
                    .map_err(|_| {
                    AcmeError("a key authorization digest of another size".into())
                })?;
                tls.set_challenge(&domain, &digest)
                    .map_err(|err| error("challenge certificate", err))?;
                // For the other replicas behind the same address: the CA
                // may reach any of them. They look every FOLLOW_ORDER while
                // an order runs: give them time to install it.
                publish_challenge(config, &domain, &digest)?;
                published.domains.push(domain);
                tokio::time::sleep(FOLLOW_ORDER * 2).await;
                challenge
            }
        };
        challenge
            .set_ready()
            .await
            .map_err(|err| error("challenge", err))?;
    }
    Ok(())
}

/// Waits for the validations, then makes the key and CSR and fetches the
/// chain: `(chain, key)` as PEM.
async fn finish(order: &mut instant_acme::Order) -> Result<(String, String), AcmeError> {
    let status = order
        .poll_ready(&RetryPolicy::default())
        .await
        .map_err(|err| error("validation", err))?;
    if status != OrderStatus::Ready {
        return Err(AcmeError(format!(
            "the order is {status:?}, not ready: {:?}",
            order.state().error
        )));
    }
    let key = order
        .finalize()
        .await
        .map_err(|err| error("finalize", err))?;
    let chain = order
        .poll_certificate(&RetryPolicy::default())
        .await
        .map_err(|err| error("certificate", err))?;
    Ok((chain, key))
}

/// The shared directory of challenges being validated.
fn challenges_dir(config: &AcmeConfig) -> PathBuf {
    config.cache_dir.join("challenges")
}

/// The shared directory of HTTP-01 key authorizations, by token.
fn http01_dir(config: &AcmeConfig) -> PathBuf {
    config.cache_dir.join("http-01")
}

fn challenge_path(config: &AcmeConfig, domain: &str) -> PathBuf {
    challenges_dir(config).join(domain.trim_end_matches('.').to_ascii_lowercase())
}

/// Writes `domain`'s challenge digest (hex) where every replica sees it.
fn publish_challenge(
    config: &AcmeConfig,
    domain: &str,
    digest: &[u8; 32],
) -> Result<(), AcmeError> {
    let dir = challenges_dir(config);
    std::fs::create_dir_all(&dir).map_err(|err| error(&format!("{}", dir.display()), err))?;
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private(&challenge_path(config, domain), hex.as_bytes())
}

/// Installs on `tls` the challenges another replica published, and
/// removes those it withdrew: `answered` is what this replica installed.
fn follow_challenges(config: &AcmeConfig, tls: &Tls, answered: &mut Vec<String>) {
    let mut present = Vec::new();
    if let Ok(entries) = std::fs::read_dir(challenges_dir(config)) {
        for entry in entries.flatten() {
            let Some(domain) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if domain.ends_with(".tmp") {
                continue;
            }
            let Ok(hex) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let digest: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|at| {
                    hex.get(at..at + 2)
                        .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                })
                .collect();
            let Some(Ok(digest)) = digest.map(<[u8; 32]>::try_from) else {
                continue;
            };
            if tls.set_challenge(&domain, &digest).is_ok() {
                present.push(domain);
            }
        }
    }
    for domain in answered.iter() {
        if !present.contains(domain) {
            tls.remove_challenge(domain);
        }
    }
    *answered = present;
}

/// How often a replica looks for another's challenges while an order runs
/// (the orderer waits twice as long before telling the CA to validate).
const FOLLOW_ORDER: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a lock may be held before another replica takes it over (its
/// holder died mid-order).
const LOCK_STALE: std::time::Duration = std::time::Duration::from_secs(600);

/// The right to order, among replicas sharing the cache directory: a file
/// made exclusively, removed when dropped.
struct OrderLock(PathBuf);

impl OrderLock {
    fn take(config: &AcmeConfig) -> Option<OrderLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = config.cache_dir.join("order.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    let _ = writeln!(file, "{}", std::process::id());
                    return Some(OrderLock(path));
                }
                Err(_) => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|meta| meta.modified())
                        .ok()
                        .and_then(|modified| modified.elapsed().ok())
                        .is_some_and(|age| age > LOCK_STALE);
                    if !stale {
                        return None;
                    }
                    tracing::warn!(path = %path.display(), "ACME: taking over a stale order lock");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        None
    }
}

impl Drop for OrderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The account in the cache directory, or a new one written there.
async fn account(config: &AcmeConfig) -> Result<Account, AcmeError> {
    let builder = match &config.root_ca {
        Some(path) => Account::builder_with_root(path),
        None => Account::builder(),
    }
    .map_err(|err| error("HTTP client", err))?;
    let path = config.account_path();
    if let Ok(saved) = std::fs::read(&path) {
        let credentials: AccountCredentials = serde_json::from_slice(&saved)
            .map_err(|err| error(&format!("{}", path.display()), err))?;
        return builder
            .from_credentials(credentials)
            .await
            .map_err(|err| error("account", err));
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(|err| error("new account", err))?;
    let saved = serde_json::to_vec(&credentials).map_err(|err| error("account", err))?;
    write_private(&path, &saved)?;
    tracing::info!(id = account.id(), "ACME: account created");
    Ok(account)
}

/// Writes `bytes` to `path` readable by this user alone (0600), by a
/// rename: a reader sees the old file or the new one, never half.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|err| error(&format!("{}", path.display()), err))
}

/// The issuer (and subject) of the temporary certificate served until the
/// first real one is obtained.
pub const PLACEHOLDER: &str = "seaworthy ACME placeholder";

impl AcmeConfig {
    /// The [`Tls`] to serve with ACME: the pair in the cache directory when
    /// there is one, else a temporary self-signed pair for the domains
    /// (written there, replaced by the first certificate obtained; the
    /// listener must run meanwhile to answer the validations). `customize`
    /// sets the other options (handshake timeout, client CA, tickets).
    ///
    /// # Errors
    ///
    /// As [`TlsConfig::build`](super::TlsConfig::build), or the cache
    /// directory not writable.
    pub fn tls(
        &self,
        customize: impl FnOnce(super::TlsConfig) -> super::TlsConfig,
    ) -> Result<Tls, super::Error> {
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|err| super::Error::other(format!("{}: {err}", self.cache_dir.display())))?;
        if !self.certificate_path().exists() || !self.key_path().exists() {
            let (chain, key) = placeholder(&self.domains)?;
            let write = |path: &Path, bytes: &[u8]| {
                write_private(path, bytes).map_err(|err| super::Error::other(err.to_string()))
            };
            write(&self.key_path(), key.as_bytes())?;
            write(&self.certificate_path(), chain.as_bytes())?;
            tracing::info!(domains = ?self.domains, "ACME: serving a temporary self-signed certificate until the first is obtained");
        }
        customize(super::TlsConfig::new(
            self.certificate_path(),
            self.key_path(),
        ))
        .build()
    }
}

/// A self-signed pair for `domains`, valid for a week from an hour ago.
fn placeholder(domains: &[String]) -> Result<(String, String), super::Error> {
    let failed = |err: rcgen::Error| super::Error::other(format!("ACME placeholder: {err}"));
    let mut params = rcgen::CertificateParams::new(domains.to_vec()).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, PLACEHOLDER);
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(7 * 86_400)).into();
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// How the certificate's renewal is going, from [`Acme::status`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AcmeStatus {
    /// When the next order is due (after a failure, the next retry).
    pub next_order: Option<std::time::SystemTime>,
    /// The last order's error, until one succeeds.
    pub last_error: Option<String>,
    /// Orders failed in a row.
    pub failures: u32,
    /// Orders that gave a certificate, since start.
    pub certificates: u64,
}

/// Keeps a [`Tls`] supplied with certificates from an ACME CA: orders the
/// first (while a temporary one serves), then renews each at about 2/3 of
/// its lifetime (with jitter), retries failures with a growing delay (at
/// most 6 orders an hour), and reloads each new pair through the gate
/// without a restart. Clone it to read its [`status`](Self::status) while
/// [`run`](Self::run) works.
#[derive(Clone, Debug)]
pub struct Acme {
    inner: std::sync::Arc<AcmeInner>,
}

#[derive(Debug)]
struct AcmeInner {
    config: AcmeConfig,
    tls: Tls,
    status: std::sync::Mutex<AcmeStatus>,
}

/// The most orders an hour, failures included.
const ORDERS_PER_HOUR: usize = 6;

/// At most [`ORDERS_PER_HOUR`] in any hour: a CA's rate limits are counted
/// in orders, and a loop of failures must not use them up.
#[derive(Debug, Default)]
struct RateCap(std::collections::VecDeque<std::time::Instant>);

impl RateCap {
    /// Whether one more order may be placed now (and counts it if so).
    fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let hour_ago = now
            .checked_sub(std::time::Duration::from_secs(3600))
            .unwrap_or(now);
        while self.0.front().is_some_and(|at| *at < hour_ago) {
            self.0.pop_front();
        }
        if self.0.len() >= ORDERS_PER_HOUR {
            return false;
        }
        self.0.push_back(now);
        true
    }
}

impl Acme {
    /// Renewing `tls` (made by [`AcmeConfig::tls`]) with `config`.
    pub fn new(config: AcmeConfig, tls: Tls) -> Acme {
        Acme {
            inner: std::sync::Arc::new(AcmeInner {
                config,
                tls,
                status: std::sync::Mutex::default(),
            }),
        }
    }

    /// What it orders.
    pub fn config(&self) -> &AcmeConfig {
        &self.inner.config
    }

    /// The certificates it renews.
    pub fn tls(&self) -> &Tls {
        &self.inner.tls
    }

    /// How renewal is going.
    pub fn status(&self) -> AcmeStatus {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AcmeStatus> {
        self.inner
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the pair in force should be replaced: now for the placeholder,
    /// else at 2/3 of its lifetime, a little earlier for some replicas
    /// than for others (up to 1/20 of the lifetime) so they do not all ask
    /// at once.
    fn due(&self) -> std::time::SystemTime {
        // Already due: a time in the past, whenever it is compared.
        let past = std::time::SystemTime::UNIX_EPOCH;
        let status = self.inner.tls.status();
        let Some(cert) = status.certificates.first() else {
            return past;
        };
        if cert.issuer.contains(PLACEHOLDER) {
            return past;
        }
        let lifetime = cert
            .not_after
            .duration_since(cert.not_before)
            .unwrap_or_default();
        let jitter = lifetime.mul_f64(crate_random() / 20.0);
        (cert.not_before + lifetime.mul_f64(2.0 / 3.0))
            .checked_sub(jitter)
            .unwrap_or(past)
    }

    /// Orders and renews until the shutdown reaches `Closing`.
    pub async fn run(self, token: seaworthy_shutdown::ShutdownToken) {
        let mut attempts = RateCap::default();
        let mut closing = std::pin::pin!(token.reached(seaworthy_shutdown::Phase::Closing));
        let mut followed = Vec::new();
        loop {
            // What another replica wrote: its new pair (byte-identical
            // files reload nothing), its challenges.
            let _ = self.inner.tls.reload();
            follow_challenges(&self.inner.config, &self.inner.tls, &mut followed);
            let due = self.next_due();
            tokio::select! {
                () = &mut closing => return,
                () = tokio::time::sleep(self.pause(due)) => {}
            }
            if std::time::SystemTime::now() < due {
                continue;
            }
            // One replica orders; the others follow its challenges and
            // pick its pair up from the shared directory.
            let Some(_lock) = OrderLock::take(&self.inner.config) else {
                continue;
            };
            // Under the lock, look once more: the pair may be new already.
            let _ = self.inner.tls.reload();
            if std::time::SystemTime::now() < self.due() && self.lock().failures == 0 {
                continue;
            }
            if !attempts.allow() {
                let mut status = self.lock();
                status.failures = status.failures.max(1);
                status.next_order =
                    Some(std::time::SystemTime::now() + std::time::Duration::from_secs(600));
                continue;
            }
            let result = match order(&self.inner.config, &self.inner.tls).await {
                Ok(()) => self
                    .inner
                    .tls
                    .reload()
                    .map(|_| ())
                    .map_err(|err| AcmeError(format!("the new pair was refused: {err}"))),
                Err(err) => Err(err),
            };
            self.record(result);
        }
    }

    /// When to order next: the pair's due time, or after failures the
    /// retry time; recorded in the status.
    fn next_due(&self) -> std::time::SystemTime {
        let due = {
            let status = self.lock();
            match (status.failures, status.next_order) {
                (0, _) | (_, None) => self.due(),
                (_, Some(retry)) => retry,
            }
        };
        self.lock().next_order = Some(due);
        due
    }

    /// How long to sleep before looking again: until `due`, but at most a
    /// second (another replica may have renewed), and FOLLOW_ORDER while
    /// another replica orders (its challenges must be answered here too).
    fn pause(&self, due: std::time::SystemTime) -> std::time::Duration {
        let ordering = self.inner.config.cache_dir.join("order.lock").exists();
        let most = if ordering {
            FOLLOW_ORDER
        } else {
            std::time::Duration::from_secs(1)
        };
        due.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .min(most)
    }

    /// Records how an order went: on failure, the next try after 10 s,
    /// 20 s, 40 s, … up to an hour.
    fn record(&self, result: Result<(), AcmeError>) {
        let mut status = self.lock();
        match result {
            Ok(()) => {
                status.failures = 0;
                status.last_error = None;
                status.certificates += 1;
                status.next_order = None;
            }
            Err(err) => {
                status.failures += 1;
                let delay = std::time::Duration::from_secs(10)
                    .saturating_mul(1 << status.failures.min(9).saturating_sub(1))
                    .min(std::time::Duration::from_secs(3600));
                tracing::warn!(error = %err, failures = status.failures, retry_in = ?delay, "ACME: order failed; the certificate in force keeps serving");
                status.last_error = Some(err.to_string());
                status.next_order = Some(std::time::SystemTime::now() + delay);
            }
        }
    }
}

/// A number in [0, 1) from the process's random hasher keys: enough to
/// spread replicas, not for secrets.
fn crate_random() -> f64 {
    use std::hash::BuildHasher;
    let hash = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    (hash >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_six_orders_an_hour() {
        let mut cap = RateCap::default();
        for _ in 0..ORDERS_PER_HOUR {
            assert!(cap.allow());
        }
        assert!(!cap.allow());
        assert_eq!(cap.0.len(), ORDERS_PER_HOUR);
    }
}
