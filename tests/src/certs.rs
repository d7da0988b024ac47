//! Certificates for the TLS tests: a CA of the test's own, server and
//! client certificates it signs, valid, expired or not yet valid, written
//! as PEM files. (Also included by seaworthy-listener's TLS tests.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

/// A certificate authority of the test's own.
#[allow(missing_debug_implementations)] // rcgen's issuer has no Debug
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate (with the chain up to the CA, excluded) and its key, PEM.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The certificate alone.
    pub cert: String,
    /// The key (PKCS#8).
    pub key: String,
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From an hour ago for 90 days.
    Current,
    /// Expired an hour ago.
    Expired,
    /// Valid from a day from now.
    NotYet,
    /// Valid from an hour ago, for this long.
    For(Duration),
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), as a
    /// public CA issues one: server authentication, a CRL address.
    pub fn server(&self, names: &[&str], validity: Validity) -> Pair {
        self.sign(
            names,
            names.first().copied().unwrap_or("server"),
            validity,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A server certificate with an RSA 2048 key (the others are ECDSA
    /// P-256): RSA's signature costs the server far more than its check
    /// costs the client, so a handshake bench measures the server.
    pub fn server_rsa(&self, names: &[&str]) -> Pair {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA key");
        self.sign_with(
            names,
            names.first().copied().unwrap_or("server"),
            Validity::Current,
            ExtendedKeyUsagePurpose::ServerAuth,
            key,
        )
    }

    /// A client certificate whose subject is `CN={common_name}`.
    pub fn client(&self, common_name: &str) -> Pair {
        self.sign(
            &[],
            common_name,
            Validity::Current,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn sign(
        &self,
        names: &[&str],
        common_name: &str,
        validity: Validity,
        usage: ExtendedKeyUsagePurpose,
    ) -> Pair {
        let key = KeyPair::generate().expect("key");
        self.sign_with(names, common_name, validity, usage, key)
    }

    fn sign_with(
        &self,
        names: &[&str],
        common_name: &str,
        validity: Validity,
        usage: ExtendedKeyUsagePurpose,
        key: KeyPair,
    ) -> Pair {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let now = OffsetDateTime::now_utc();
        let hour = time::Duration::hours(1);
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (now - hour, now + time::Duration::days(90)),
            Validity::Expired => (now - time::Duration::days(90), now - hour),
            Validity::NotYet => (
                now + time::Duration::days(1),
                now + time::Duration::days(90),
            ),
            Validity::For(lifetime) => (
                now - hour,
                now + time::Duration::try_from(lifetime).expect("a lifetime in range"),
            ),
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec!["http://ca.test/crl.der".to_owned()],
        }];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Pair {
    /// The certificate followed by the CA's: the chain a server sends.
    pub fn chain(&self, ca: &Ca) -> String {
        format!("{}{}", self.cert, ca.pem)
    }

    /// Writes `{stem}.crt` (the chain) and `{stem}.key` into `dir`, each by
    /// an atomic rename; returns their paths.
    pub fn write(&self, ca: &Ca, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        write_atomically(&cert, self.chain(ca).as_bytes());
        write_atomically(&key, self.key.as_bytes());
        (cert, key)
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into
/// place: readers see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&temporary, bytes).expect("write a temporary file");
    std::fs::rename(&temporary, path).expect("rename into place");
}

/// A rustls verifier that takes any certificate and any signature, for a
/// test client that reads the certificate itself: an ACME validation server
/// (webpki would refuse the critical `acmeIdentifier` extension), or a
/// reader of what a listener serves under a CA made at run time (Pebble's).
#[derive(Debug)]
pub struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client with [`AnyCert`], offering `alpn`, without resumption (each
/// handshake shows the certificate served now).
pub fn any_cert_client(alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    std::sync::Arc::new(config)
}
