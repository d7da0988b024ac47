//! The certificate in force, chosen by SNI, swapped whole on reload.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::Loaded;

/// The certificates of one reload: the first pair is the default, the
/// others answer the names they cover.
#[derive(Debug)]
pub(crate) struct CertSet {
    pub(crate) loaded: Vec<Loaded>,
    exact: HashMap<String, usize>,
    /// `*.example.com` → by `example.com`.
    wildcard: HashMap<String, usize>,
    /// Whether the default pair is ACME's temporary self-signed one.
    placeholder: bool,
}

impl CertSet {
    pub(crate) fn new(loaded: Vec<Loaded>) -> Self {
        assert!(!loaded.is_empty(), "a certificate set has a default");
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, pair) in loaded.iter().enumerate() {
            for name in &pair.names {
                // The first pair that names a host answers for it.
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()).or_insert(index),
                    None => exact.entry(name.clone()).or_insert(index),
                };
            }
        }
        let placeholder = loaded[0].issuer.contains(super::certs::PLACEHOLDER_ISSUER);
        CertSet {
            loaded,
            exact,
            wildcard,
            placeholder,
        }
    }

    /// The pair for `name`: the one naming it exactly, else by wildcard,
    /// else the default.
    pub(crate) fn find(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let index = name
            .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|name| {
                self.exact.get(&name).copied().or_else(|| {
                    let (_, parent) = name.split_once('.')?;
                    self.wildcard.get(parent).copied()
                })
            })
            .unwrap_or(0);
        &self.loaded[index].key
    }

    /// Whether `other` holds the same bytes as this set.
    pub(crate) fn same_contents(&self, other: &[Loaded]) -> bool {
        self.loaded.len() == other.len()
            && self
                .loaded
                .iter()
                .zip(other)
                .all(|(a, b)| a.contents == b.contents)
    }
}

/// rustls asks it for the certificate of each handshake: one atomic load,
/// no lock. A reload stores a new [`CertSet`]; the `ServerConfig` around it,
/// with its session cache and ticketer, stays.
pub(crate) struct Resolver {
    pub(crate) set: ArcSwap<CertSet>,
    /// TLS-ALPN-01 (RFC 8737) challenge certificates by domain: answered
    /// only to a client that offers `acme-tls/1`, never to a browser.
    pub(crate) challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    /// Refuse every other handshake while ACME's temporary pair is in force
    /// (`UntilIssued::Refuse`).
    pub(crate) refuse_placeholder: AtomicBool,
}

/// The ALPN protocol of a TLS-ALPN-01 validation (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.set.load();
        f.debug_struct("Resolver")
            .field(
                "names",
                &set.loaded
                    .iter()
                    .map(|pair| &pair.names)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|protocol| protocol == ACME_TLS_ALPN));
        if validation {
            // A validation server: the challenge certificate for this name,
            // or no certificate (the handshake fails), never the real one.
            let name = hello
                .server_name()?
                .trim_end_matches('.')
                .to_ascii_lowercase();
            return self.challenges.load().get(&name).cloned();
        }
        let set = self.set.load();
        if set.placeholder && self.refuse_placeholder.load(Ordering::Relaxed) {
            return None;
        }
        Some(Arc::clone(set.find(hello.server_name())))
    }
}
