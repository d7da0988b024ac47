//! TLS termination with rustls: certificates from PEM files, chosen by SNI,
//! reloaded without a restart, and never a bad one served.
//!
//! ```no_run
//! use seaworthy_listener::tls::TlsConfig;
//! use seaworthy_listener::{Bind, Listener, Server};
//! use seaworthy_shutdown::Shutdown;
//!
//! # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! let shutdown = Shutdown::builder().build()?;
//! // Fails, naming the file and the reason, if the pair does not pass the gate.
//! let tls = TlsConfig::new("/etc/tls/tls.crt", "/etc/tls/tls.key").build()?;
//! // Reload when the files change (a Kubernetes secret, certbot's renewal).
//! shutdown.spawn("tls-watch", tls.clone().watch(shutdown.token()));
//! let listener = Listener::bind("0.0.0.0:443".parse()?)?;
//! let server = Server::new().tls(tls);
//! shutdown.spawn("https", server.serve(listener, app, shutdown.token()));
//! std::process::exit(shutdown.wait().await.exit_code());
//! # }
//! ```
//!
//! # What it does
//!
//! - **TLS 1.2 and 1.3 only**, ALPN `h2` and `http/1.1`: HTTP/2 over TLS
//!   through the same hyper-util server as plain connections.
//!   [`Profile::Intermediate`] (the default) is rustls' default cipher
//!   suites, which are Mozilla's intermediate set (ECDHE with AES-GCM or
//!   ChaCha20-Poly1305), in the server's order; [`Profile::Modern`] is
//!   TLS 1.3 alone.
//! - **Certificates by SNI**: the first pair is the default; each other
//!   pair answers the names (and `*.` wildcards) its certificate covers.
//! - **The gate**: a pair is served only once it parses (a half-written
//!   file does not), the chain starts with the server's certificate and
//!   each next one issued the one before, the key belongs to the
//!   certificate, `not_before` is not in the future (1 minute of clock skew
//!   allowed), it has not expired, and optionally it has a
//!   [minimum lifetime left](TlsConfig::min_lifetime) and
//!   [covers the names](TlsConfig::require_names) you list. A pair that
//!   fails at [`build`](TlsConfig::build) is an error; one that fails on
//!   reload keeps the pair in service serving, logs why, and shows in
//!   [`Tls::status`].
//! - **Reload without a restart**: [`Tls::reload`], and
//!   [`Tls::watch`], which watches the files' parent directories
//!   (Kubernetes swaps a secret's files through a symbolic link in the
//!   directory, which a watch of the file itself misses), reloads 250 ms
//!   after the last change, and also looks every 10 s in case the watch
//!   missed something (or cannot run: inotify limits, network
//!   filesystems). Only the certificate inside rustls' certificate resolver
//!   is swapped, never the `ServerConfig`: the session cache and ticket
//!   keys survive, so clients resume across reloads, and handshakes under
//!   way finish with the certificate they started with.
//! - **Handshakes cannot hurt the server**: each must finish within the
//!   [handshake timeout](TlsConfig::handshake_timeout) (10 s; a client that
//!   opens a connection and sends nothing, or half a ClientHello, is cut),
//!   at most [`max_handshakes`](TlsConfig::max_handshakes) run at once
//!   (1024; more wait their turn within their timeout), and failures are
//!   counted in the server's counters and logged at debug level, so a
//!   port scan does not flood the logs.
//! - **Resumption**: a stateful session cache (4096 sessions, for TLS 1.2)
//!   and TLS 1.3 tickets from a ticketer whose key rotates every 6 hours
//!   (the previous key still decrypts); or, for several instances behind
//!   one load balancer, tickets under keys from a
//!   [shared secret file](TlsConfig::ticket_keys) (current and previous),
//!   so a client resumes with whichever instance it reaches.
//! - **Mutual TLS** as an option ([`TlsConfig::client_ca`]): client
//!   certificates verified against a CA bundle; the verified subject is in
//!   the request's [`ConnectionInfo::tls`](crate::ConnectionInfo::tls).
//! - **HTTP to HTTPS**: [`HttpsRedirect`], a service for a second plain
//!   listener that answers 308 to `https://` with the same host, path and
//!   query, no HSTS, and a seam for ACME HTTP-01 challenges.
//!
//! The connection facts say TLS, so seaworthy-layers' security headers send
//! HSTS; a connection closed by the drain sends `close_notify`; the upgrade
//! hands over a TLS listener as it does a plain one (the new process loads
//! the certificates itself and, if they fail the gate, never becomes ready,
//! so the old one keeps serving).
//!
//! # The crypto provider
//!
//! aws-lc-rs, rustls' default: its key exchange includes the post-quantum
//! hybrid `X25519MLKEM768` (preferred by current browsers), it has a FIPS
//! build, and its RSA and ECDSA signatures are faster than ring's, which is
//! what a full handshake costs the server. It builds C, once, the slowest
//! crate of a cold build; ring builds faster and has no post-quantum key
//! exchange.
//! The provider is passed to rustls explicitly, so another crate enabling
//! ring elsewhere in the tree changes nothing here.
//!
//! # Compared with nginx + certbot, and axum-server
//!
//! nginx reloads certificates on `SIGHUP` by starting new workers with a
//! new configuration; a bad certificate fails the reload (and a `nginx -t`
//! that was skipped fails the restart). certbot's renewal needs a deploy
//! hook to send the signal. Here the running process notices the files,
//! checks the new pair and swaps it under handshakes in flight, without new
//! workers and without losing the session cache. axum-server's
//! `RustlsConfig::reload_from_pem_file` replaces the whole `ServerConfig`
//! (sessions lost), checks nothing beyond parsing, and has no watch, no
//! handshake timeout and no handshake limit.
//!
//! # Limits
//!
//! The client CA bundle ([`TlsConfig::client_ca`]) and the profile are read
//! at [`build`](TlsConfig::build); a change to them takes a restart (or an
//! upgrade). Without [shared ticket keys](TlsConfig::ticket_keys), tickets
//! are per process: a client resumes with the instance that issued its
//! ticket, and after an upgrade makes a full handshake once. OCSP stapling
//! is not done (Let's Encrypt stopped OCSP in 2025; browsers use CRLs).
//! A certificate's chain is checked for order, not verified to a root: the
//! server cannot know which roots its clients trust.

#[cfg(feature = "acme")]
#[cfg_attr(docsrs, doc(cfg(feature = "acme")))]
pub mod acme;
mod certs;
mod redirect;
mod resolver;
mod tickets;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use redirect::HttpsRedirect;

use self::certs::{Gate, Loaded};
use self::resolver::{CertSet, Resolver};
use self::tickets::{SharedTicketer, TicketKeys};
use crate::{Stream, TlsInfo};

/// Sessions the stateful cache holds (TLS 1.2 session IDs): about 1 MiB.
const SESSION_CACHE: usize = 4096;

/// Which TLS versions and cipher suites are offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// TLS 1.2 and 1.3 with rustls' default suites, which equal Mozilla's
    /// "intermediate" configuration: every client of the last decade.
    #[default]
    Intermediate,
    /// TLS 1.3 only (Mozilla's "modern"): refuses clients older than about
    /// 2018.
    Modern,
}

/// How TLS is set up: the certificates, the gate they must pass, and the
/// handshake limits. [`build`](Self::build) reads the files.
#[derive(Clone, Debug)]
#[must_use = "a TLS configuration does nothing until it is built"]
pub struct TlsConfig {
    pairs: Vec<(PathBuf, PathBuf)>,
    profile: Profile,
    client_ca: Option<PathBuf>,
    gate: Gate,
    handshake_timeout: Duration,
    max_handshakes: usize,
    poll_interval: Duration,
    ticket_keys: Option<PathBuf>,
}

impl TlsConfig {
    /// The default certificate (a PEM chain, the server's certificate
    /// first) and its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsConfig {
            pairs: vec![(cert.into(), key.into())],
            profile: Profile::default(),
            client_ca: None,
            gate: Gate {
                skew: Duration::from_secs(60),
                min_lifetime: None,
                names: Vec::new(),
            },
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 1024,
            poll_interval: Duration::from_secs(10),
            ticket_keys: None,
        }
    }

    /// Another certificate and key, served to clients asking (by SNI) for a
    /// name it covers. The first pair answers every other name.
    pub fn certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.pairs.push((cert.into(), key.into()));
        self
    }

    /// The versions and suites offered. Default
    /// [`Profile::Intermediate`].
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Requires a client certificate signed by a CA in this PEM bundle
    /// (mutual TLS): a client without one fails the handshake. The verified
    /// subject is in [`ConnectionInfo::tls`](crate::ConnectionInfo::tls).
    pub fn client_ca(mut self, bundle: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(bundle.into());
        self
    }

    /// How far in the future a certificate's `not_before` may be and still
    /// be served (the issuer's clock and ours differ). Default 1 minute.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.gate.skew = skew;
        self
    }

    /// Refuses a certificate with less than this lifetime left: a renewal
    /// that produced an almost-expired certificate is caught. Default: any
    /// unexpired certificate.
    pub fn min_lifetime(mut self, lifetime: Duration) -> Self {
        self.gate.min_lifetime = Some(lifetime);
        self
    }

    /// Names every certificate must cover (exactly or by a `*.` wildcard):
    /// a renewal issued for the wrong names is refused.
    pub fn require_names<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.gate.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// How long a handshake may take, from the connection's accept (waiting
    /// for a [handshake slot](Self::max_handshakes) included). Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The most handshakes under way at once; more wait their turn. Default
    /// 1024. Completed connections are limited by the server's own
    /// `max_connections`.
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Makes TLS session tickets with keys from this file, shared by every
    /// instance behind one load balancer, instead of a key of this
    /// process's own: a client resumes with whichever instance it reaches.
    ///
    /// One secret per line, each at least 32 bytes (`openssl rand -base64
    /// 48`); blank lines and `#` comments are skipped. The first line's key
    /// makes new tickets, every line's key opens them. Rotate by putting a
    /// new secret first and dropping the last one after a ticket lifetime
    /// (12 h): the file is reloaded (and watched) with the certificates,
    /// and a file that fails the same checks keeps the keys in force.
    /// Keep it as secret as the private key: it decrypts every session
    /// resumed with it.
    pub fn ticket_keys(mut self, file: impl Into<PathBuf>) -> Self {
        self.ticket_keys = Some(file.into());
        self
    }

    /// How often [`Tls::watch`] also looks at the files, in case the
    /// directory watch missed a change or cannot run. Default 10 s.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Reads the files and checks every pair against the gate.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed, a key that does not match its
    /// certificate, a chain out of order, a certificate not yet valid,
    /// expired, short of the minimum lifetime or not covering the required
    /// names, a client CA bundle with no usable certificate. The error
    /// names the file ([`Error::path`]) and the reason.
    pub fn build(self) -> Result<Tls, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let loaded = load_all(&self.pairs, &self.gate, &provider, SystemTime::now())?;
        let shared_tickets = match &self.ticket_keys {
            Some(path) => Some((
                path.clone(),
                Arc::new(SharedTicketer::new(tickets::read_keys(path)?)),
            )),
            None => None,
        };
        let resolver = Arc::new(Resolver {
            set: ArcSwap::from_pointee(CertSet::new(loaded)),
            challenges: ArcSwap::default(),
            refuse_placeholder: std::sync::atomic::AtomicBool::new(false),
        });
        let versions: &[&rustls::SupportedProtocolVersion] = match self.profile {
            Profile::Intermediate => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Profile::Modern => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|err| Error::other(format!("TLS versions: {err}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => builder.with_client_cert_verifier(client_verifier(path, &provider)?),
        };
        let mut config = builder.with_cert_resolver(
            Arc::clone(&resolver) as Arc<dyn rustls::server::ResolvesServerCert>
        );
        // `acme-tls/1` last: negotiated only with a client that offers it
        // alone (an ACME validation server), which gets a challenge
        // certificate and a closed connection.
        config.alpn_protocols = vec![
            b"h2".to_vec(),
            b"http/1.1".to_vec(),
            resolver::ACME_TLS_ALPN.to_vec(),
        ];
        // The server's order of suites, strongest first (every suite offered
        // is AEAD with forward secrecy, so this only settles ties; testssl
        // rates a client-chosen order as a finding).
        config.ignore_client_order = true;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = match &shared_tickets {
            Some((_, ticketer)) => Arc::clone(ticketer) as Arc<dyn rustls::server::ProducesTickets>,
            None => rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|err| Error::other(format!("TLS ticketer: {err}")))?,
        };
        let config = Arc::new(config);
        Ok(Tls {
            inner: Arc::new(Inner {
                pairs: self.pairs,
                gate: self.gate,
                provider,
                resolver,
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::clone(&config)),
                config,
                handshake_timeout: self.handshake_timeout,
                handshakes: Arc::new(Semaphore::new(self.max_handshakes)),
                poll_interval: self.poll_interval,
                shared_tickets,
                reload_lock: Mutex::new(()),
                last_error: Mutex::new(None),
                refused_contents: Mutex::new(None),
                reloads: AtomicU64::new(0),
                failed_reloads: AtomicU64::new(0),
            }),
        })
    }
}

/// Mutual TLS: the verifier of client certificates against the bundle at
/// `path`.
fn client_verifier(
    path: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, Error> {
    let (bundle, _) = certs::read_certificates(path, "client CA bundle")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in bundle {
        roots.add(cert).map_err(|err| {
            Error::file(
                "client CA bundle",
                path,
                format!("holds a certificate rustls cannot use ({err})"),
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|err| Error::file("client CA bundle", path, format!("unusable ({err})")))
}

fn load_all(
    pairs: &[(PathBuf, PathBuf)],
    gate: &Gate,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Vec<Loaded>, Error> {
    pairs
        .iter()
        .map(|(cert, key)| certs::load_pair(cert, key, gate, provider, now))
        .collect()
}

/// What a reload reads: every pair, and the shared ticket keys.
struct Material {
    pairs: Vec<Loaded>,
    tickets: Option<TicketKeys>,
}

impl Inner {
    /// Reads every file and checks it, as [`TlsConfig::build`] did.
    fn load(&self) -> Result<Material, Error> {
        let pairs = load_all(&self.pairs, &self.gate, &self.provider, SystemTime::now())?;
        let tickets = match &self.shared_tickets {
            Some((path, _)) => Some(tickets::read_keys(path)?),
            None => None,
        };
        Ok(Material { pairs, tickets })
    }

    /// The bytes of the files in force, in the order `read_contents` reads
    /// them.
    fn contents_in_force(&self) -> Vec<u8> {
        let mut contents: Vec<u8> = self
            .resolver
            .set
            .load()
            .loaded
            .iter()
            .flat_map(|pair| pair.contents.iter().copied())
            .collect();
        if let Some((_, ticketer)) = &self.shared_tickets {
            contents.extend_from_slice(&ticketer.keys.load().contents);
        }
        contents
    }
}

/// TLS for a [`Server`](crate::Server): the rustls configuration, the
/// certificates in force, and their reload. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    pairs: Vec<(PathBuf, PathBuf)>,
    gate: Gate,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    handshakes: Arc<Semaphore>,
    poll_interval: Duration,
    /// The ticket-key file and the ticketer using it, when keys are shared.
    shared_tickets: Option<(PathBuf, Arc<SharedTicketer>)>,
    /// One reload at a time.
    reload_lock: Mutex<()>,
    last_error: Mutex<Option<String>>,
    /// The contents last refused, so that a watch does not log the same
    /// bad file every time it looks.
    refused_contents: Mutex<Option<Vec<u8>>>,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("pairs", &self.inner.pairs)
            .field("resolver", &self.inner.resolver)
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files again and, if every pair passes the gate, swaps
    /// them in: handshakes from now on use them. Returns whether anything
    /// changed. On error the pairs in force stay, the error is logged and
    /// kept in [`status`](Self::status) until a reload succeeds.
    ///
    /// # Errors
    ///
    /// As [`TlsConfig::build`]: the first pair that failed the gate.
    pub fn reload(&self) -> Result<bool, Error> {
        // The bytes refused are remembered, so that the watch does not
        // try (and log) them again.
        self.attempt(self.read_contents().ok(), Refusal::Logged)
    }

    /// One reload: swaps in what passes the gate; remembers what fails,
    /// with `contents` (the files' bytes, when they could be read).
    pub(super) fn attempt(
        &self,
        contents: Option<Vec<u8>>,
        refusal: Refusal,
    ) -> Result<bool, Error> {
        let _one = lock(&self.inner.reload_lock);
        match self.inner.load() {
            Ok(material) => Ok(self.swap(material)),
            Err(err) => {
                let repeated = lock(&self.inner.last_error).as_deref() == Some(&*err.to_string());
                if refusal == Refusal::Logged || !repeated {
                    self.refused(&err, contents);
                } else {
                    // Not logged again, but not tried again either.
                    *lock(&self.inner.refused_contents) = contents;
                }
                Err(err)
            }
        }
    }

    /// Swaps what differs from what is in force; whether anything did.
    fn swap(&self, material: Material) -> bool {
        *lock(&self.inner.last_error) = None;
        *lock(&self.inner.refused_contents) = None;
        let mut changed = false;
        if let (Some(new), Some((_, ticketer))) = (material.tickets, &self.inner.shared_tickets)
            && ticketer.keys.load().contents != new.contents
        {
            tracing::info!(keys = new.keys.len(), "TLS ticket keys reloaded");
            ticketer.keys.store(Arc::new(new));
            changed = true;
        }
        let loaded = material.pairs;
        if self.inner.resolver.set.load().same_contents(&loaded) {
            tracing::debug!("TLS certificates unchanged");
            return changed;
        }
        let names: Vec<&[String]> = loaded.iter().map(|pair| pair.names.as_slice()).collect();
        let expires = certs::rfc3339(loaded[0].not_after);
        tracing::info!(?names, %expires, "TLS certificates reloaded");
        drop(names);
        self.inner
            .resolver
            .set
            .store(Arc::new(CertSet::new(loaded)));
        self.inner.reloads.fetch_add(1, Relaxed);
        true
    }

    fn refused(&self, err: &Error, contents: Option<Vec<u8>>) {
        self.inner.failed_reloads.fetch_add(1, Relaxed);
        tracing::error!(
            error = %err,
            "TLS certificate reload refused; the certificates in force keep serving"
        );
        *lock(&self.inner.last_error) = Some(err.to_string());
        *lock(&self.inner.refused_contents) = contents;
    }

    /// The certificates in force, and how the last reload went.
    pub fn status(&self) -> TlsStatus {
        let set = self.inner.resolver.set.load();
        TlsStatus {
            certificates: set
                .loaded
                .iter()
                .map(|pair| CertificateStatus {
                    names: pair.names.clone(),
                    subject: pair.subject.clone(),
                    issuer: pair.issuer.clone(),
                    not_before: pair.not_before,
                    not_after: pair.not_after,
                })
                .collect(),
            last_error: lock(&self.inner.last_error).clone(),
            reloads: self.inner.reloads.load(Relaxed),
            failed_reloads: self.inner.failed_reloads.load(Relaxed),
        }
    }

    /// The rustls configuration, for a server other than seaworthy's.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.inner.config)
    }

    /// Runs the handshake of an accepted connection within the timeout and
    /// the handshake limit.
    pub(crate) async fn accept(
        &self,
        stream: Stream,
        cut: &CancellationToken,
    ) -> Result<(tokio_rustls::server::TlsStream<Stream>, TlsInfo), HandshakeError> {
        let deadline = tokio::time::Instant::now() + self.inner.handshake_timeout;
        let handshake = async {
            let _slot = self
                .inner
                .handshakes
                .acquire()
                .await
                .expect("the handshake semaphore is never closed");
            self.inner.acceptor.accept(stream).await
        };
        let stream = tokio::select! {
            result = tokio::time::timeout_at(deadline, handshake) => match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return Err(HandshakeError::Failed(err)),
                Err(_) => return Err(HandshakeError::TimedOut),
            },
            () = cut.cancelled() => return Err(HandshakeError::Cut),
        };
        if stream.get_ref().1.alpn_protocol() == Some(resolver::ACME_TLS_ALPN) {
            // RFC 8737: the handshake was the answer; nothing is served.
            let mut stream = stream;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            return Err(HandshakeError::Challenge);
        }
        let info = info_of(stream.get_ref().1);
        Ok((stream, info))
    }

    /// Answers TLS-ALPN-01 validations (RFC 8737) for `domain` (feature
    /// `acme`): a client
    /// that offers only the `acme-tls/1` protocol and names `domain` gets a
    /// self-signed certificate for it carrying `digest` (the SHA-256 of the
    /// challenge's key authorization) in the critical `acmeIdentifier`
    /// extension, and the connection is closed after the handshake. Other
    /// clients never see it. Replaces an earlier challenge for the domain.
    ///
    /// # Errors
    ///
    /// When the certificate cannot be made (a name that is not a DNS name).
    #[cfg(feature = "acme")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acme")))]
    pub fn set_challenge(&self, domain: &str, digest: &[u8; 32]) -> Result<(), Error> {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        let key = challenge_certificate(&name, digest, &self.inner.provider)?;
        self.inner.resolver.challenges.rcu(|current| {
            let mut next = std::collections::HashMap::clone(current);
            next.insert(name.clone(), Arc::clone(&key));
            next
        });
        Ok(())
    }

    /// While ACME's temporary self-signed pair is in force, refuse every
    /// handshake but the CA's validations (feature `acme`; see
    /// [`UntilIssued`](acme::UntilIssued)).
    #[cfg(feature = "acme")]
    pub(crate) fn refuse_placeholder(&self, refuse: bool) {
        self.inner
            .resolver
            .refuse_placeholder
            .store(refuse, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops answering validations for `domain` (feature `acme`).
    #[cfg(feature = "acme")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acme")))]
    pub fn remove_challenge(&self, domain: &str) {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        self.inner.resolver.challenges.rcu(|current| {
            let mut next = std::collections::HashMap::clone(current);
            next.remove(&name);
            next
        });
    }
}

/// The TLS-ALPN-01 certificate for `domain` (normalized: lowercase, no
/// final dot; RFC 8737 §3): self-signed, the domain as its only name, the
/// digest in a critical `acmeIdentifier`.
#[cfg(feature = "acme")]
fn challenge_certificate(
    domain: &str,
    digest: &[u8; 32],
    provider: &CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, Error> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|err| Error::other(format!("TLS-ALPN-01 certificate for {domain:?}: {err}")))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key_pair = rcgen::KeyPair::generate()
        .map_err(|err| Error::other(format!("TLS-ALPN-01 key: {err}")))?;
    let cert = params
        .self_signed(&key_pair)
        .map_err(|err| Error::other(format!("TLS-ALPN-01 certificate for {domain:?}: {err}")))?;
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|err| Error::other(format!("TLS-ALPN-01 key: {err}")))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Whether a refused reload that repeats the last refusal is logged again:
/// always when asked for (`reload`, SIGHUP), not when the watch looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Logged,
    QuietIfRepeated,
}

/// How a handshake failed.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// Not done within the handshake timeout.
    TimedOut,
    /// The shutdown's deadline.
    Cut,
    /// The client sent something that is not TLS, a version or suite we do
    /// not offer, no (valid) client certificate, or went away.
    Failed(std::io::Error),
    /// An ACME validation (TLS-ALPN-01) was answered: nothing to serve.
    Challenge,
}

/// What the handshake settled.
fn info_of(conn: &rustls::ServerConnection) -> TlsInfo {
    let mut info = TlsInfo::new();
    if let Some(name) = conn.server_name() {
        info = info.with_server_name(name);
    }
    if let Some(alpn) = conn.alpn_protocol() {
        info = info.with_alpn(alpn);
    }
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => info = info.with_version("TLSv1.3"),
        Some(rustls::ProtocolVersion::TLSv1_2) => info = info.with_version("TLSv1.2"),
        _ => {}
    }
    if let Some(cert) = conn.peer_certificates().and_then(<[_]>::first) {
        use x509_parser::prelude::FromDer;
        if let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(cert) {
            info = info.with_client_subject(parsed.subject().to_string());
        }
        info = info.with_client_certificate(cert.to_vec());
    }
    info
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The certificates in force and the history of reloads, from
/// [`Tls::status`]: for a health check and for alerts on expiry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsStatus {
    /// Each pair in force, the default first.
    pub certificates: Vec<CertificateStatus>,
    /// Why the last reload was refused, until one succeeds.
    pub last_error: Option<String>,
    /// Reloads that changed the certificates.
    pub reloads: u64,
    /// Reloads refused by the gate.
    pub failed_reloads: u64,
}

impl TlsStatus {
    /// The certificate that expires first.
    pub fn soonest_expiry(&self) -> Option<&CertificateStatus> {
        self.certificates.iter().min_by_key(|cert| cert.not_after)
    }
}

/// One certificate in force.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CertificateStatus {
    /// The names it covers (DNS names and IP addresses).
    pub names: Vec<String>,
    /// Its subject, as RFC 4514 text.
    pub subject: String,
    /// Its issuer, as RFC 4514 text.
    pub issuer: String,
    /// When it became valid.
    pub not_before: SystemTime,
    /// When it expires.
    pub not_after: SystemTime,
}

impl CertificateStatus {
    /// The lifetime left (zero once expired).
    pub fn remaining(&self) -> Duration {
        self.not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    /// The lifetime left in days, with a fraction.
    pub fn days_left(&self) -> f64 {
        self.remaining().as_secs_f64() / 86_400.0
    }
}

/// Why TLS could not be set up, or a reload was refused. The message names
/// the file and the reason; the certificate or key itself is never
/// printed.
#[derive(Clone, Debug)]
pub struct Error {
    message: String,
    path: Option<PathBuf>,
}

impl Error {
    pub(crate) fn file(what: &str, path: &Path, reason: String) -> Self {
        Error {
            message: format!("{what} {}: {reason}", path.display()),
            path: Some(path.to_owned()),
        }
    }

    pub(crate) fn other(message: String) -> Self {
        Error {
            message,
            path: None,
        }
    }

    /// The file at fault, when one is: a certificate, key or CA bundle.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
