//! Reading a certificate and key from PEM files, and the gate a pair must
//! pass before it is served.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::Error;

/// The largest PEM file read: a chain of a dozen certificates is 20 KiB.
const MAX_PEM: u64 = 1 << 20;

/// What a certificate must satisfy to be served.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    /// How far in the future `not_before` may be (clocks differ).
    pub(crate) skew: Duration,
    /// The least lifetime left.
    pub(crate) min_lifetime: Option<Duration>,
    /// Names the certificate must cover.
    pub(crate) names: Vec<String>,
}

/// The issuer (and subject) of ACME's temporary pair, served until the
/// first certificate is obtained.
pub(crate) const PLACEHOLDER_ISSUER: &str = "seaworthy ACME placeholder";

/// Whether the first certificate at `path` is ACME's temporary one (its
/// issuer [`PLACEHOLDER_ISSUER`]): false when it cannot be read.
#[cfg(feature = "acme")]
pub(crate) fn is_placeholder(path: &Path) -> bool {
    read_certificates(path, "certificate").is_ok_and(|(chain, _)| {
        X509Certificate::from_der(&chain[0])
            .is_ok_and(|(_, leaf)| leaf.issuer().to_string().contains(PLACEHOLDER_ISSUER))
    })
}

/// A pair that passed the gate.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    /// The leaf's DNS names and IP addresses (lowercase).
    pub(crate) names: Vec<String>,
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// The files' bytes, to tell a change from a touch.
    pub(crate) contents: Vec<u8>,
}

/// Reads at most [`MAX_PEM`] of a regular file (symbolic links followed).
pub(crate) fn read_capped(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path)
        .map_err(|err| Error::file(what, path, format!("cannot open: {err}")))?;
    let meta = file
        .metadata()
        .map_err(|err| Error::file(what, path, format!("cannot read: {err}")))?;
    if !meta.is_file() {
        return Err(Error::file(what, path, "not a regular file".to_owned()));
    }
    if meta.len() > MAX_PEM {
        return Err(Error::file(
            what,
            path,
            format!(
                "{} bytes, more than the 1 MiB a PEM file may hold",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_PEM)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::file(what, path, format!("cannot read: {err}")))?;
    Ok(bytes)
}

/// A PEM error in words (rustls' own prints the missing marker as bytes).
fn pem_error(err: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as Pem;
    match err {
        Pem::MissingSectionEnd { .. } => {
            "a block has no END line: the file is cut short, perhaps half-written".to_owned()
        }
        Pem::IllegalSectionStart { .. } => {
            "a block's opening line is malformed (the file may be cut short)".to_owned()
        }
        Pem::Base64Decode(_) => "a block is not valid base64".to_owned(),
        Pem::NoItemsFound => "no PEM block found".to_owned(),
        other => other.to_string(),
    }
}

/// Reads a PEM bundle of certificates.
pub(crate) fn read_certificates(
    path: &Path,
    what: &str,
) -> Result<(Vec<CertificateDer<'static>>, Vec<u8>), Error> {
    let bytes = read_capped(path, what)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::file(what, path, format!("not valid PEM ({})", pem_error(&err))))?;
    if chain.is_empty() {
        return Err(Error::file(
            what,
            path,
            "holds no certificate (no PEM CERTIFICATE block)".to_owned(),
        ));
    }
    Ok((chain, bytes))
}

/// Reads a certificate chain and its key, and checks them against the gate.
pub(crate) fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    gate: &Gate,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Loaded, Error> {
    let (chain, mut contents) = read_certificates(cert_path, "certificate")?;
    let key_bytes = read_capped(key_path, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|err| {
        Error::file(
            "key",
            key_path,
            format!("holds no private key in PEM ({})", pem_error(&err)),
        )
    })?;
    let signing = provider.key_provider.load_private_key(key).map_err(|err| {
        Error::file(
            "key",
            key_path,
            format!("cannot be used as a signing key ({err})"),
        )
    })?;
    // The chain first: a chain in the wrong order would otherwise be
    // reported as a key that does not match.
    let checked = check_chain(&chain, gate, now)
        .map_err(|reason| Error::file("certificate", cert_path, reason))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            tracing::debug!(key = %key_path.display(), "cannot tell whether the key matches");
        }
        Err(_) => {
            return Err(Error::file(
                "key",
                key_path,
                format!(
                    "does not belong to the certificate in {} (a certificate and key from \
                     different pairs, or one of them half-replaced)",
                    cert_path.display()
                ),
            ));
        }
    }
    contents.extend_from_slice(&key_bytes);
    Ok(Loaded {
        key: Arc::new(certified),
        names: checked.names,
        subject: checked.subject,
        issuer: checked.issuer,
        not_before: checked.not_before,
        not_after: checked.not_after,
        contents,
    })
}

/// What the gate read off the leaf.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) names: Vec<String>,
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

/// Parses a DER certificate, saying which one failed.
fn parse(der: &[u8], index: usize) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|err| format!("certificate {} cannot be parsed ({err})", index + 1))
}

/// The gate: leaf first and each next certificate its issuer, valid now
/// (`not_before` within the skew), not expired, lifetime left, names
/// covered.
pub(crate) fn check_chain(
    chain: &[CertificateDer<'_>],
    gate: &Gate,
    now: SystemTime,
) -> Result<Checked, String> {
    let certs = chain
        .iter()
        .enumerate()
        .map(|(index, der)| parse(der, index))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = &certs[0];
    if leaf.is_ca() && certs.len() > 1 && !certs[1].is_ca() {
        return Err(
            "the chain is out of order: the first certificate is a CA and the second is not; \
             put the server's certificate first, then each issuer"
                .to_owned(),
        );
    }
    for (index, pair) in certs.windows(2).enumerate() {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            return Err(format!(
                "the chain is out of order: certificate {} ({}) did not issue certificate {} \
                 (issued by {}); put the server's certificate first, then each issuer",
                index + 2,
                pair[1].subject(),
                index + 1,
                pair[0].issuer(),
            ));
        }
    }
    let not_before = time_of(leaf.validity().not_before.timestamp());
    let not_after = time_of(leaf.validity().not_after.timestamp());
    if not_before > now + gate.skew {
        return Err(format!(
            "not valid yet: valid from {} (now {})",
            rfc3339(not_before),
            rfc3339(now)
        ));
    }
    if not_after <= now {
        return Err(format!("expired at {}", rfc3339(not_after)));
    }
    if let Some(min) = gate.min_lifetime {
        let left = not_after.duration_since(now).unwrap_or_default();
        if left < min {
            return Err(format!(
                "expires at {}, in {} days, less than the {} days required",
                rfc3339(not_after),
                left.as_secs() / 86_400,
                min.as_secs() / 86_400
            ));
        }
    }
    let names = names_of(leaf);
    let missing: Vec<&str> = gate
        .names
        .iter()
        .filter(|name| !covers(&names, name))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "does not cover {} (it names {})",
            missing.join(", "),
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            }
        ));
    }
    Ok(Checked {
        names,
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        not_before,
        not_after,
    })
}

/// The leaf's subject alternative names (DNS and IP), lowercase; the
/// subject's common name when it has none.
fn names_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(ip) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*ip) {
                        names.push(std::net::Ipv4Addr::from(octets).to_string());
                    } else if let Ok(octets) = <[u8; 16]>::try_from(*ip) {
                        names.push(std::net::Ipv6Addr::from(octets).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    names
}

/// Whether `names` (exact, or a `*.` wildcard for one label) cover `name`.
pub(crate) fn covers(names: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|have| {
        if *have == name {
            return true;
        }
        match (have.strip_prefix("*."), name.split_once('.')) {
            (Some(suffix), Some((label, rest))) => !label.is_empty() && rest == suffix,
            _ => false,
        }
    })
}

pub(crate) fn time_of(timestamp: i64) -> SystemTime {
    if timestamp >= 0 {
        UNIX_EPOCH + Duration::from_secs(timestamp.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(timestamp.unsigned_abs())
    }
}

/// A time as `2026-11-30T12:00:00Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    match x509_parser::time::ASN1Time::from_timestamp(secs) {
        Ok(time) => {
            let time = time.to_datetime();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            )
        }
        Err(_) => format!("{secs} s after 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["*.example.com".to_owned(), "example.org".to_owned()];
        assert!(covers(&names, "www.example.com"));
        assert!(covers(&names, "WWW.Example.com."));
        assert!(!covers(&names, "example.com"));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(covers(&names, "example.org"));
        assert!(!covers(&names, "www.example.org"));
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_796_040_000)),
            "2026-11-30T12:00:00Z"
        );
    }
}
