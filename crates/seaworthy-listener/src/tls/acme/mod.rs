//! Certificates from an ACME CA (RFC 8555) that get and renew themselves,
//! with instant-acme as the protocol client. Feature `acme`.
//!
//! - **Order** ([`order`]): an account (created once, its credentials kept
//!   in the cache directory), one order for the domains, each authorization
//!   answered by the TLS listener itself ([`Challenge::TlsAlpn01`], RFC
//!   8737: no port 80 needed) or by the redirect listener
//!   ([`Challenge::Http01`]), the key and CSR made here, the chain and key
//!   written to the cache directory (0600, by an atomic rename).
//! - **Renewal** ([`Acme`]): inside the CA's renewal window when it offers
//!   one (ARI, RFC 9773), else at about 2/3 of the lifetime with jitter;
//!   failures retried after 10 s, 20 s, 40 s… up to an hour, at most 6
//!   orders an hour; each new pair reloaded through the gate, no restart.
//! - **Replicas** sharing the cache directory: one orders at a time
//!   ([`OrderLock`]: a [`FileLock`] in the directory by default, or a lock
//!   in Redis), publishes its challenges there for the others to answer,
//!   and they reload its pair from there. A restart orders nothing while
//!   the pair there is good.
//! - **First start**, with no certificate yet: a temporary self-signed pair
//!   serves meanwhile (the default: the listener and any probes on it keep
//!   answering, and `seaworthy::acme_check` keeps readiness failing until
//!   the first certificate), or with [`UntilIssued::Refuse`] every handshake
//!   but the CA's validations is refused until then.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod lock;
mod order;
mod renew;

pub use lock::{FileLock, LOCK_TTL, LockFuture, OrderLock};
pub use order::order;
pub use renew::{Acme, AcmeStatus, RenewalWindow};

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
    lock: Option<Arc<dyn OrderLock>>,
    until_issued: UntilIssued,
}

/// What the listener does before the first certificate is obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UntilIssued {
    /// Serve a temporary self-signed pair (issuer [`PLACEHOLDER`]): clients
    /// get a certificate error, probes on the same port answer (the
    /// default; keep readiness failing meanwhile, as
    /// `seaworthy::acme_check` does).
    #[default]
    ServePlaceholder,
    /// Refuse every handshake but the CA's TLS-ALPN-01 validations (a
    /// handshake failure alert) until the first certificate: nobody can
    /// click through a warning, but liveness probes over HTTPS on this
    /// port fail meanwhile too (serve them on their own port).
    Refuse,
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
            lock: None,
            until_issued: UntilIssued::default(),
        }
    }

    /// Who orders among replicas sharing the cache directory (default: a
    /// [`FileLock`] `order.lock` in it).
    pub fn order_lock(mut self, lock: impl OrderLock) -> Self {
        self.lock = Some(Arc::new(lock));
        self
    }

    /// What the listener does before the first certificate (default
    /// [`UntilIssued::ServePlaceholder`]).
    pub fn until_issued(mut self, until_issued: UntilIssued) -> Self {
        self.until_issued = until_issued;
        self
    }

    /// The lock in force: the one set, else the file in the cache
    /// directory.
    fn lock(&self) -> Arc<dyn OrderLock> {
        self.lock
            .clone()
            .unwrap_or_else(|| Arc::new(FileLock::new(self.cache_dir.join("order.lock"))))
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
        let dir = order::http01_dir(self);
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

    /// The domains it orders for.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
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

/// The file that says a cache directory is ACME's own here: the key, chain
/// and account in it are rewritten (every renewal rewrites the key and the
/// chain), so they are written only where this file is.
const MARKER: &str = ".seaworthy-acme";

/// Makes the cache directory, or checks that it is ours: a directory that
/// holds a key, chain or account seaworthy did not write (a cache directory
/// named by mistake, holding somebody's key) is refused, never written
/// over.
fn claim_cache_dir(config: &AcmeConfig) -> Result<(), AcmeError> {
    let dir = &config.cache_dir;
    let failed = |err: std::io::Error| error(&format!("{}", dir.display()), err);
    std::fs::create_dir_all(dir).map_err(failed)?;
    // The files first, then the marker: a replica claiming the directory
    // makes the marker before any file, so if files are seen, the marker
    // of a directory that is ours is there too.
    let found: Vec<String> = [
        config.key_path(),
        config.certificate_path(),
        config.account_path(),
    ]
    .iter()
    .filter(|path| path.symlink_metadata().is_ok())
    .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
    .collect();
    let marker = dir.join(MARKER);
    if !found.is_empty() {
        return if marker.exists() {
            Ok(())
        } else {
            Err(AcmeError(format!(
                "{}: holds {} that seaworthy did not write (no {MARKER} there); \
                 name an empty directory: ACME rewrites its key and certificate in it",
                dir.display(),
                found.join(", ")
            )))
        };
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(mut file) => file
            .write_all(
                b"seaworthy keeps its ACME account, key and certificate here, and rewrites them.\n",
            )
            .map_err(failed),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(failed(err)),
    }
}

/// Writes `bytes` to `path` readable by this user alone (0600), by a
/// rename: a reader sees the old file or the new one, never half. The
/// temporary file is this writer's own (replicas sharing the directory may
/// write the same file at once) and is removed if the write fails.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension(format!("{:016x}.tmp", random()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&temporary);
        error(&format!("{}", path.display()), err)
    })
}

/// 64 random bits from the OS's source (std's hasher keys).
fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

/// The issuer (and subject) of the temporary certificate served until the
/// first real one is obtained.
pub const PLACEHOLDER: &str = super::certs::PLACEHOLDER_ISSUER;

impl AcmeConfig {
    /// The [`Tls`] to serve with ACME: the pair in the cache directory when
    /// there is one, else a temporary self-signed pair for the domains
    /// (written there, replaced by the first certificate obtained; the
    /// listener must run meanwhile to answer the validations). `customize`
    /// sets the other options (handshake timeout, client CA, tickets).
    /// Blocking file work, for startup: when replicas starting together
    /// write their temporary pairs at once, it may pause a few times (under
    /// half a second in all) and write its own again.
    ///
    /// # Errors
    ///
    /// As [`TlsConfig::build`](super::TlsConfig::build), or the cache
    /// directory not writable, or holding a key, chain or account that
    /// seaworthy did not write (never written over).
    pub fn tls(
        &self,
        customize: impl FnOnce(super::TlsConfig) -> super::TlsConfig,
    ) -> Result<Tls, super::Error> {
        claim_cache_dir(self).map_err(|err| super::Error::other(err.to_string()))?;
        let config = customize(super::TlsConfig::new(
            self.certificate_path(),
            self.key_path(),
        ));
        let mut attempts = 0;
        loop {
            if !self.certificate_path().exists() || !self.key_path().exists() {
                self.write_placeholder()?;
                tracing::info!(domains = ?self.domains, "ACME: serving a temporary self-signed certificate until the first is obtained");
            }
            match config.clone().build() {
                Ok(tls) => {
                    tls.refuse_placeholder(self.until_issued == UntilIssued::Refuse);
                    return Ok(tls);
                }
                // Replicas starting together on an empty shared directory
                // write their placeholders at once, and one's key may land
                // beside another's certificate: a placeholder pair that
                // does not build is ours, and is written again (after a
                // random pause, so that the racers part).
                Err(err)
                    if attempts < 8 && super::certs::is_placeholder(&self.certificate_path()) =>
                {
                    attempts += 1;
                    tracing::debug!(error = %err, "ACME: the temporary pair in the cache directory is being written by another replica; again");
                    std::thread::sleep(std::time::Duration::from_millis(5 + random() % 50));
                    self.write_placeholder()?;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// A new temporary pair in the cache directory, the key first.
    fn write_placeholder(&self) -> Result<(), super::Error> {
        let (chain, key) = placeholder(&self.domains)?;
        let write = |path: &Path, bytes: &[u8]| {
            write_private(path, bytes).map_err(|err| super::Error::other(err.to_string()))
        };
        write(&self.key_path(), key.as_bytes())?;
        write(&self.certificate_path(), chain.as_bytes())
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
