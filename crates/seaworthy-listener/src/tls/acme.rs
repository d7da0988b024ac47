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
    let mut answered = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|err| error("authorization", err))?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge = authorization
                .challenge(ChallengeType::TlsAlpn01)
                .ok_or_else(|| AcmeError("the CA offers no TLS-ALPN-01 challenge".into()))?;
            let domain = challenge.identifier().to_string();
            let digest: [u8; 32] = challenge
                .key_authorization()
                .digest()
                .as_ref()
                .try_into()
                .map_err(|_| AcmeError("a key authorization digest of another size".into()))?;
            tls.set_challenge(&domain, &digest)
                .map_err(|err| error("challenge certificate", err))?;
            answered.push(domain);
            challenge
                .set_ready()
                .await
                .map_err(|err| error("challenge", err))?;
        }
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
    .await;
    for domain in &answered {
        tls.remove_challenge(domain);
    }
    let (chain, key) = result?;
    // The key first: a watcher that sees the new chain finds its key.
    write_private(&config.key_path(), key.as_bytes())?;
    write_private(&config.certificate_path(), chain.as_bytes())?;
    tracing::info!(domains = ?config.domains, "ACME: certificate obtained");
    Ok(())
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
