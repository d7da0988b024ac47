//! One order: the account, the authorizations answered, the pair written;
//! and the challenges shared with the replicas that do not order.

use std::path::PathBuf;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use super::{AcmeConfig, AcmeError, Challenge, claim_cache_dir, error, write_private};
use crate::tls::Tls;

/// How often a replica looks for another's challenges while an order runs
/// (the orderer waits twice as long before telling the CA to validate).
pub(super) const FOLLOW_ORDER: std::time::Duration = std::time::Duration::from_millis(250);

/// Orders a certificate for the configured domains, answering the CA's
/// TLS-ALPN-01 validations on `tls` (which must be what the CA reaches on
/// port 443 for those names), and writes the chain and key to the cache
/// directory. The account is created on first use and reused after.
///
/// # Errors
///
/// The CA unreachable or refusing, a validation that failed (the CA's
/// reason), the cache directory not writable or holding files seaworthy
/// did not write.
pub async fn order(config: &AcmeConfig, tls: &Tls) -> Result<(), AcmeError> {
    claim_cache_dir(config)?;
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
pub(super) fn http01_dir(config: &AcmeConfig) -> PathBuf {
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
/// removes those it withdrew: `answered` is what this replica installed
/// (a challenge already installed is not made again).
pub(super) fn follow_challenges(
    config: &AcmeConfig,
    tls: &Tls,
    answered: &mut Vec<(String, [u8; 32])>,
) {
    let mut present = Vec::new();
    if let Ok(entries) = std::fs::read_dir(challenges_dir(config)) {
        for entry in entries.flatten() {
            let Some(domain) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if domain.ends_with(".tmp") {
                continue;
            }
            let Some(digest) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|hex| from_hex(&hex))
            else {
                continue;
            };
            let challenge = (domain, digest);
            if answered.contains(&challenge) || tls.set_challenge(&challenge.0, &digest).is_ok() {
                present.push(challenge);
            }
        }
    }
    for (domain, _) in answered.iter() {
        if !present.iter().any(|(present, _)| present == domain) {
            tls.remove_challenge(domain);
        }
    }
    *answered = present;
}

/// 64 hex digits as 32 bytes.
fn from_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|at| {
            hex.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    bytes?.try_into().ok()
}

/// The account in the cache directory, or a new one written there.
pub(super) async fn account(config: &AcmeConfig) -> Result<Account, AcmeError> {
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
