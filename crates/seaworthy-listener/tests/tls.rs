//! TLS in process, over real sockets with a real rustls client: ALPN,
//! profiles, SNI, the gate, reloads (explicit, watched, under load),
//! resumption across a reload, handshake timeouts, mutual TLS, close_notify
//! on the drain.
#![cfg(feature = "tls")]

#[path = "../../../tests/src/certs.rs"]
#[allow(dead_code, unreachable_pub)]
mod certs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::routing;
use bytes::Bytes;
use certs::{Ca, Pair, Validity, write_atomically};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, SupportedProtocolVersion};
use seaworthy_listener::tls::{Profile, Tls, TlsConfig};
use seaworthy_listener::{ConnectionInfo, Counters, Listener, Server};
use seaworthy_shutdown::{Shutdown, ShutdownReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A directory of the test's own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "seaworthy-tls-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn router() -> Router {
    Router::new()
        .route("/", routing::get(|| async { "hello" }))
        .route("/big", routing::get(|| async { vec![b'x'; 16 << 20] }))
        .route(
            "/whoami",
            routing::get(|request: Request| async move {
                let info = request.extensions().get::<ConnectionInfo>().unwrap();
                let tls = info.tls().unwrap();
                format!(
                    "tls={} version={} alpn={} sni={} client={}",
                    info.is_tls(),
                    tls.version().unwrap_or("-"),
                    tls.alpn().map_or("-".into(), String::from_utf8_lossy),
                    tls.server_name().unwrap_or("-"),
                    tls.client_subject().unwrap_or("-"),
                )
            }),
        )
}

struct Running {
    shutdown: Shutdown,
    addr: SocketAddr,
    counters: Counters,
}

async fn start(tls: Tls, server: Server) -> Running {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(Duration::ZERO)
        .build()
        .unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let server = server.tls(tls);
    let counters = server.counters();
    shutdown.spawn("https", server.serve(listener, router(), shutdown.token()));
    Running {
        shutdown,
        addr,
        counters,
    }
}

/// Drains and checks that nothing was cut.
async fn drain(running: Running) {
    running.shutdown.trigger(ShutdownReason::requested("test"));
    let report = running.shutdown.wait().await;
    assert!(report.is_clean(), "{report:?}");
}

const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn client(
    ca: &Ca,
    alpn: &[&[u8]],
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Pair>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(pair) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::clone(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

/// One GET over an established TLS stream, by the protocol ALPN chose.
async fn get_over(
    stream: TlsStream<TcpStream>,
    path: &str,
) -> Result<(http::Version, String), BoxError> {
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let request = http::Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())?;
    let response = if http2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    };
    let version = response.version();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((version, String::from_utf8_lossy(&body).into_owned()))
}

async fn get(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    path: &str,
) -> Result<(http::Version, String), BoxError> {
    get_over(connect(addr, config, "localhost").await?, path).await
}

/// The certificate the server presents to a client asking for `name`.
async fn served_cert(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> Vec<u8> {
    // A resumed session shows the certificate of the session it resumed.
    let mut fresh = ClientConfig::clone(config);
    fresh.resumption = rustls::client::Resumption::disabled();
    let stream = connect(addr, &Arc::new(fresh), name).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pair: &Pair) -> Vec<u8> {
    CertificateDer::from_pem_slice(pair.cert.as_bytes())
        .unwrap()
        .to_vec()
}

/// A test's directory and CA, and a current pair for `localhost` written
/// there as `tls.crt` and `tls.key`.
struct Pki {
    dir: Dir,
    ca: Ca,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(name: &str) -> Pki {
    let dir = Dir::new(name);
    let ca = Ca::new("test CA");
    let (cert, key) = ca
        .server(&["localhost"], Validity::Current)
        .write(&ca, &dir.0, "tls");
    Pki { dir, ca, cert, key }
}

/// Waits (5 s at most) until the server's counters satisfy `condition`.
async fn counted(
    running: &Running,
    condition: impl Fn(seaworthy_listener::CountersSnapshot) -> bool,
) {
    let reached = eventually(Duration::from_secs(5), || async {
        condition(running.counters.snapshot())
    })
    .await;
    assert!(reached, "{:?}", running.counters.snapshot());
}

/// Polls `condition` every 20 ms until it holds or `bound` passes.
async fn eventually<F, Fut>(bound: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_http1_and_http2_by_alpn_over_tls12_and_13() {
    let Pki {
        dir: _dir,
        ca,
        cert,
        key,
    } = pki("alpn");
    let running = start(TlsConfig::new(cert, key).build().unwrap(), Server::new()).await;

    let h2 = client(&ca, &[b"h2", b"http/1.1"], TLS13, None);
    let (version, body) = get(running.addr, &h2, "/whoami").await.unwrap();
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(
        body,
        "tls=true version=TLSv1.3 alpn=h2 sni=localhost client=-"
    );

    let h1 = client(&ca, &[b"http/1.1"], TLS12, None);
    let (version, body) = get(running.addr, &h1, "/whoami").await.unwrap();
    assert_eq!(version, http::Version::HTTP_11);
    assert_eq!(
        body,
        "tls=true version=TLSv1.2 alpn=http/1.1 sni=localhost client=-"
    );

    // No ALPN at all: HTTP/1.1 by default.
    let none = client(&ca, &[], BOTH, None);
    let (version, _) = get(running.addr, &none, "/").await.unwrap();
    assert_eq!(version, http::Version::HTTP_11);
    assert_eq!(running.counters.snapshot().tls_handshakes, 3);
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_modern_profile_refuses_tls12_and_plain_http_is_refused() {
    let Pki {
        dir: _dir,
        ca,
        cert,
        key,
    } = pki("modern");
    let tls = TlsConfig::new(cert, key)
        .profile(Profile::Modern)
        .build()
        .unwrap();
    let running = start(tls, Server::new()).await;

    let old = client(&ca, &[b"http/1.1"], TLS12, None);
    assert!(connect(running.addr, &old, "localhost").await.is_err());
    let new = client(&ca, &[b"http/1.1"], TLS13, None);
    assert_eq!(get(running.addr, &new, "/").await.unwrap().1, "hello");

    // Plain HTTP on the TLS port: no HTTP response, the connection closed.
    let mut plain = TcpStream::connect(running.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(read.is_ok() || answer.is_empty());
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    counted(&running, |c| c.tls_handshake_failures == 2).await;
    // The server serves on.
    assert_eq!(get(running.addr, &new, "/").await.unwrap().1, "hello");
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_chooses_the_certificate_and_the_first_is_the_default() {
    let dir = Dir::new("sni");
    let ca = Ca::new("test CA");
    let first = ca.server(&["a.test", "localhost"], Validity::Current);
    let second = ca.server(&["b.test", "*.wild.test"], Validity::Current);
    let (cert_a, key_a) = first.write(&ca, &dir.0, "a");
    let (cert_b, key_b) = second.write(&ca, &dir.0, "b");
    let tls = TlsConfig::new(cert_a, key_a)
        .certificate(cert_b, key_b)
        .build()
        .unwrap();
    assert_eq!(tls.status().certificates.len(), 2);
    let running = start(tls, Server::new()).await;
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    assert_eq!(
        served_cert(running.addr, &config, "b.test").await,
        der(&second)
    );
    assert_eq!(
        served_cert(running.addr, &config, "x.wild.test").await,
        der(&second)
    );
    assert_eq!(
        served_cert(running.addr, &config, "a.test").await,
        der(&first)
    );
    // A name no certificate covers gets the default, which the client
    // rejects: the name is not on it.
    let other = connect(running.addr, &config, "c.test").await;
    assert!(other.is_err());
    drain(running).await;
}

#[test]
fn the_gate_refuses_what_must_not_be_served_and_names_the_file() {
    let dir = Dir::new("gate");
    let ca = Ca::new("test CA");
    let good = ca.server(&["localhost"], Validity::Current);
    let other = ca.server(&["localhost"], Validity::Current);
    let write = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = write("good.crt", &good.chain(&ca));
    let key = write("good.key", &good.key);
    let refuse = |config: TlsConfig, file: &Path, needle: &str| {
        let err = config.build().expect_err(needle);
        assert_eq!(err.path(), Some(file), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        // Never the key or certificate itself.
        assert!(!err.to_string().contains("BEGIN"), "{err}");
    };

    TlsConfig::new(&cert, &key).build().unwrap();
    let other_key = write("other.key", &other.key);
    refuse(
        TlsConfig::new(&cert, &other_key),
        &other_key,
        "does not belong to the certificate",
    );
    let expired = ca.server(&["localhost"], Validity::Expired);
    let expired_cert = write("expired.crt", &expired.chain(&ca));
    let expired_key = write("expired.key", &expired.key);
    refuse(
        TlsConfig::new(&expired_cert, &expired_key),
        &expired_cert,
        "expired at",
    );
    let early = ca.server(&["localhost"], Validity::NotYet);
    let early_cert = write("early.crt", &early.chain(&ca));
    let early_key = write("early.key", &early.key);
    refuse(
        TlsConfig::new(&early_cert, &early_key),
        &early_cert,
        "not valid yet",
    );
    let backwards = write("backwards.crt", &format!("{}{}", ca.pem, good.cert));
    refuse(TlsConfig::new(&backwards, &key), &backwards, "out of order");
    let pem = good.chain(&ca);
    let half = write("half.crt", &pem[..pem.len() / 2]);
    refuse(TlsConfig::new(&half, &key), &half, "not valid PEM");
    let empty = write("empty.crt", "");
    refuse(TlsConfig::new(&empty, &key), &empty, "holds no certificate");
    let missing = dir.0.join("missing.crt");
    refuse(TlsConfig::new(&missing, &key), &missing, "cannot open");
    let not_a_key = write("cert-as.key", &good.cert);
    refuse(
        TlsConfig::new(&cert, &not_a_key),
        &not_a_key,
        "no private key",
    );
    refuse(TlsConfig::new(&cert, &dir.0), &dir.0, "not a regular file");
    refuse(
        TlsConfig::new(&cert, &key).min_lifetime(Duration::from_secs(100 * 86_400)),
        &cert,
        "less than the 100 days required",
    );
    refuse(
        TlsConfig::new(&cert, &key).require_names(["localhost", "www.example.com"]),
        &cert,
        "does not cover www.example.com",
    );
    TlsConfig::new(&cert, &key)
        .require_names(["LOCALHOST"])
        .min_lifetime(Duration::from_secs(30 * 86_400))
        .build()
        .unwrap();
    let bad_ca = write("bad-ca.pem", "no certificates here\n");
    refuse(
        TlsConfig::new(&cert, &key).client_ca(&bad_ca),
        &bad_ca,
        "holds no certificate",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_pair_and_a_refused_one_keeps_the_old_serving() {
    let dir = Dir::new("reload");
    let ca = Ca::new("test CA");
    let first = ca.server(&["localhost"], Validity::Current);
    let (cert, key) = first.write(&ca, &dir.0, "tls");
    let tls = TlsConfig::new(&cert, &key).build().unwrap();
    let running = start(tls.clone(), Server::new()).await;
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    assert_eq!(
        served_cert(running.addr, &config, "localhost").await,
        der(&first)
    );

    // Unchanged files: nothing swapped.
    assert!(!tls.reload().unwrap());
    let second = ca.server(&["localhost"], Validity::Current);
    second.write(&ca, &dir.0, "tls");
    assert!(tls.reload().unwrap());
    assert_eq!(
        served_cert(running.addr, &config, "localhost").await,
        der(&second)
    );

    // A certificate from one pair and the key from another: refused, the
    // second pair serves on, and the status says why.
    let third = ca.server(&["localhost"], Validity::Current);
    write_atomically(&cert, third.chain(&ca).as_bytes());
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    let status = tls.status();
    assert!(status.last_error.unwrap().contains("does not belong"));
    assert_eq!((status.reloads, status.failed_reloads), (1, 1));
    assert_eq!(
        served_cert(running.addr, &config, "localhost").await,
        der(&second)
    );
    assert_eq!(get(running.addr, &config, "/").await.unwrap().1, "hello");

    // Its key arrives: the third pair passes, the error clears.
    write_atomically(&key, third.key.as_bytes());
    assert!(tls.reload().unwrap());
    assert_eq!(
        served_cert(running.addr, &config, "localhost").await,
        der(&third)
    );
    let status = tls.status();
    assert!(status.last_error.is_none());
    let days = status.soonest_expiry().unwrap().days_left();
    assert!((89.0..90.1).contains(&days), "{days}");
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_serves_a_renamed_pair_within_2s_and_never_a_half_written_one() {
    let dir = Dir::new("watch");
    let ca = Ca::new("test CA");
    let first = ca.server(&["localhost"], Validity::Current);
    let (cert, key) = first.write(&ca, &dir.0, "tls");
    let tls = TlsConfig::new(&cert, &key)
        // Far apart: what is seen here is the directory watch's doing.
        .poll_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let running = start(tls.clone(), Server::new()).await;
    running
        .shutdown
        .spawn("tls-watch", tls.clone().watch(running.shutdown.token()));
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let second = ca.server(&["localhost"], Validity::Current);
    let renamed = Instant::now();
    second.write(&ca, &dir.0, "tls");
    let mut served_after = None;
    while renamed.elapsed() < Duration::from_secs(10) {
        if served_cert(running.addr, &config, "localhost").await == der(&second) {
            served_after = Some(renamed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served_after = served_after.expect("the renamed pair is served");
    assert!(served_after < Duration::from_secs(2), "{served_after:?}");

    // Written in place, half of it first: the half is refused, the second
    // pair serves on; the rest arrives and the third pair is served.
    let third = ca.server(&["localhost"], Validity::Current);
    let chain = third.chain(&ca);
    std::fs::write(&key, third.key.as_bytes()).unwrap();
    std::fs::write(&cert, &chain.as_bytes()[..chain.len() / 2]).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            tls.status().last_error.is_some()
        })
        .await
    );
    assert_eq!(
        served_cert(running.addr, &config, "localhost").await,
        der(&second)
    );
    std::fs::write(&cert, chain.as_bytes()).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            served_cert(running.addr, &config, "localhost").await == der(&third)
        })
        .await
    );
    assert!(tls.status().last_error.is_none());
    drain(running).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_follows_a_kubernetes_secret_swap() {
    // A mounted secret: tls.crt -> ..data/tls.crt, ..data -> ..2026_v1.
    // The kubelet writes ..2026_v2, then renames a new ..data link over the
    // old one: the files' own paths never change.
    use std::os::unix::fs::symlink;
    let dir = Dir::new("k8s");
    let ca = Ca::new("test CA");
    let write_version = |name: &str, pair: &Pair| {
        let version = dir.0.join(name);
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("tls.crt"), pair.chain(&ca)).unwrap();
        std::fs::write(version.join("tls.key"), &pair.key).unwrap();
    };
    let first = ca.server(&["localhost"], Validity::Current);
    write_version("..2026_v1", &first);
    symlink("..2026_v1", dir.0.join("..data")).unwrap();
    symlink("..data/tls.crt", dir.0.join("tls.crt")).unwrap();
    symlink("..data/tls.key", dir.0.join("tls.key")).unwrap();
    let tls = TlsConfig::new(dir.0.join("tls.crt"), dir.0.join("tls.key"))
        .poll_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let running = start(tls.clone(), Server::new()).await;
    running
        .shutdown
        .spawn("tls-watch", tls.clone().watch(running.shutdown.token()));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let second = ca.server(&["localhost"], Validity::Current);
    write_version("..2026_v2", &second);
    symlink("..2026_v2", dir.0.join("..data_tmp")).unwrap();
    std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    assert!(
        eventually(Duration::from_secs(5), || async {
            served_cert(running.addr, &config, "localhost").await == der(&second)
        })
        .await
    );
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_across_a_reload() {
    let Pki { dir, ca, cert, key } = pki("resume");
    let tls = TlsConfig::new(&cert, &key).build().unwrap();
    let running = start(tls.clone(), Server::new()).await;
    for versions in [TLS13, TLS12] {
        // One client configuration: its session store carries the ticket
        // (TLS 1.3) or session ID (TLS 1.2) from one connection to the next.
        let config = client(&ca, &[b"http/1.1"], versions, None);
        let stream = connect(running.addr, &config, "localhost").await.unwrap();
        assert_eq!(
            stream.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
        // TLS 1.3 tickets arrive after the handshake: read a response.
        get_over(stream, "/").await.unwrap();

        ca.server(&["localhost"], Validity::Current)
            .write(&ca, &dir.0, "tls");
        assert!(tls.reload().unwrap());

        let stream = connect(running.addr, &config, "localhost").await.unwrap();
        assert_eq!(
            stream.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{versions:?}"
        );
        assert_eq!(get_over(stream, "/").await.unwrap().1, "hello");
    }
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_handshake_is_cut_at_the_timeout() {
    let Pki {
        dir: _dir,
        ca,
        cert,
        key,
    } = pki("silent");
    let tls = TlsConfig::new(&cert, &key)
        .handshake_timeout(Duration::from_millis(500))
        .max_handshakes(2)
        .build()
        .unwrap();
    let running = start(tls, Server::new()).await;

    // One sends nothing; one sends half a ClientHello's record header and
    // stops. Both hold a handshake slot of the two until the timeout.
    let mut silent = TcpStream::connect(running.addr).await.unwrap();
    let mut half = TcpStream::connect(running.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    // A real client, a little later, waits for a slot (its own timeout
    // runs from its accept), then completes.
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, body) = get(running.addr, &config, "/").await.unwrap();
    assert_eq!(body, "hello");
    for stream in [&mut silent, &mut half] {
        let mut buf = [0_u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server cuts the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    counted(&running, |c| c.tls_handshake_timeouts == 2).await;
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_ca_s_clients_only_and_tells_the_handler_who() {
    let dir = Dir::new("mtls");
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let strangers = Ca::new("stranger CA");
    let (cert, key) = ca
        .server(&["localhost"], Validity::Current)
        .write(&ca, &dir.0, "tls");
    let bundle = dir.0.join("clients.pem");
    std::fs::write(&bundle, &clients.pem).unwrap();
    let tls = TlsConfig::new(&cert, &key)
        .client_ca(&bundle)
        .build()
        .unwrap();
    let running = start(tls, Server::new()).await;

    let alice = clients.client("alice");
    for versions in [TLS13, TLS12] {
        let config = client(&ca, &[b"h2"], versions, Some(&alice));
        let (_, body) = get(running.addr, &config, "/whoami").await.unwrap();
        assert!(body.ends_with("client=CN=alice"), "{body}");
    }
    // No certificate, or one from another CA: refused (in TLS 1.3 the client
    // learns it on its first read).
    for identity in [None, Some(&strangers.client("mallory"))] {
        for versions in [TLS13, TLS12] {
            let config = client(&ca, &[b"http/1.1"], versions, identity);
            assert!(get(running.addr, &config, "/").await.is_err());
        }
    }
    counted(&running, |c| c.tls_handshake_failures == 4).await;
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_closes_with_close_notify() {
    let Pki {
        dir: _dir,
        ca,
        cert,
        key,
    } = pki("notify");
    let running = start(TlsConfig::new(&cert, &key).build().unwrap(), Server::new()).await;
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    let mut stream = connect(running.addr, &config, "localhost").await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0_u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Idle keep-alive connection; the shutdown closes it after the grace.
    running.shutdown.trigger(ShutdownReason::requested("test"));
    let report = tokio::spawn(running.shutdown.wait());
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("closed by the drain");
    // rustls reports a close without close_notify as UnexpectedEof.
    assert!(matches!(read, Ok(0)), "{read:?}");
    assert!(report.await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reloads_under_load_fail_no_handshake_and_no_request() {
    let dir = Dir::new("load");
    let ca = Ca::new("test CA");
    let pairs = [
        ca.server(&["localhost"], Validity::Current),
        ca.server(&["localhost"], Validity::Current),
    ];
    let (cert, key) = pairs[0].write(&ca, &dir.0, "tls");
    let tls = TlsConfig::new(&cert, &key).build().unwrap();
    let running = start(tls.clone(), Server::new()).await;
    let addr = running.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let handshakes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    // Two clients that open a new connection per request, two that keep
    // one HTTP/2 connection (and one keep-alive HTTP/1.1) for all.
    for index in 0..4 {
        let mut config = client(
            &ca,
            &[if index == 2 { b"h2" } else { b"http/1.1" }],
            BOTH,
            None,
        );
        if index == 0 {
            // Full handshakes every time (the other resumes).
            Arc::make_mut(&mut config).resumption = rustls::client::Resumption::disabled();
        }
        let (stop, handshakes, requests, failures) = (
            Arc::clone(&stop),
            Arc::clone(&handshakes),
            Arc::clone(&requests),
            Arc::clone(&failures),
        );
        clients.push(tokio::spawn(async move {
            if index < 2 {
                while !stop.load(Relaxed) {
                    match get(addr, &config, "/").await {
                        Ok((_, body)) if body == "hello" => {
                            handshakes.fetch_add(1, Relaxed);
                            requests.fetch_add(1, Relaxed);
                        }
                        other => {
                            eprintln!("new-connection client: {other:?}");
                            failures.fetch_add(1, Relaxed);
                        }
                    }
                }
            } else {
                let stream = connect(addr, &config, "localhost").await.unwrap();
                handshakes.fetch_add(1, Relaxed);
                let request = || {
                    http::Request::get("/")
                        .header(http::header::HOST, "localhost")
                        .body(Empty::<Bytes>::new())
                        .unwrap()
                };
                let count = |status: Result<http::StatusCode, String>| match status {
                    Ok(status) if status == 200 => {
                        requests.fetch_add(1, Relaxed);
                    }
                    other => {
                        eprintln!("keep-alive client: {other:?}");
                        failures.fetch_add(1, Relaxed);
                    }
                };
                let answered = |response: Result<
                    http::Response<hyper::body::Incoming>,
                    hyper::Error,
                >| async move {
                    match response {
                        Ok(response) => {
                            let status = response.status();
                            response
                                .into_body()
                                .collect()
                                .await
                                .map(|_| status)
                                .map_err(|e| e.to_string())
                        }
                        Err(err) => Err(err.to_string()),
                    }
                };
                if index == 2 {
                    let (mut sender, conn) = hyper::client::conn::http2::handshake(
                        TokioExecutor::new(),
                        TokioIo::new(stream),
                    )
                    .await
                    .unwrap();
                    tokio::spawn(conn);
                    while !stop.load(Relaxed) {
                        count(answered(sender.send_request(request()).await).await);
                    }
                } else {
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    while !stop.load(Relaxed) {
                        count(answered(sender.send_request(request()).await).await);
                    }
                }
            }
        }));
    }
    let mut changed = 0;
    for round in 0..1000 {
        pairs[(round + 1) % 2].write(&ca, &dir.0, "tls");
        if tls.reload().unwrap() {
            changed += 1;
        }
        tokio::task::yield_now().await;
    }
    stop.store(true, Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (handshakes, requests, failures) = (
        handshakes.load(Relaxed),
        requests.load(Relaxed),
        failures.load(Relaxed),
    );
    eprintln!("1000 reloads: {changed} swaps, {handshakes} handshakes, {requests} requests");
    assert_eq!(changed, 1000);
    assert_eq!(failures, 0);
    assert!(
        handshakes >= 20 && requests >= 100,
        "{handshakes} {requests}"
    );
    assert_eq!(running.counters.snapshot().tls_handshake_failures, 0);
    drain(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_ticket_keys_resume_each_other_s_sessions() {
    let Pki { dir, ca, cert, key } = pki("tickets");
    let keys = dir.0.join("ticket.keys");
    let old = "first secret, at least thirty-two bytes long";
    let new = "second secret, at least thirty-two bytes long";
    std::fs::write(&keys, format!("# rotated daily\n{old}\n")).unwrap();
    let shared = |path: &Path| {
        TlsConfig::new(&cert, &key)
            .ticket_keys(path)
            .build()
            .unwrap()
    };
    let a = start(shared(&keys), Server::new()).await;
    let b_tls = shared(&keys);
    let b = start(b_tls.clone(), Server::new()).await;
    let alone = start(TlsConfig::new(&cert, &key).build().unwrap(), Server::new()).await;

    let resumed_at = |config: Arc<ClientConfig>, addr| async move {
        let stream = connect(addr, &config, "localhost").await.unwrap();
        let kind = stream.get_ref().1.handshake_kind();
        get_over(stream, "/").await.unwrap();
        kind
    };
    // A fresh client takes a TLS 1.3 ticket from A, B's key file is
    // changed (or not), and the client comes back to B or to the instance
    // with keys of its own.
    let rotated = format!("{new}\n{old}\n");
    let dropped = format!("{new}\n");
    for (keys_at_b, at, expected) in [
        (None, b.addr, HandshakeKind::Resumed),
        (None, alone.addr, HandshakeKind::Full),
        // A new first secret, the old one kept: A's tickets still open.
        (Some(&rotated), b.addr, HandshakeKind::Resumed),
        // The old one dropped: they no longer do.
        (Some(&dropped), b.addr, HandshakeKind::Full),
    ] {
        let config = client(&ca, &[b"http/1.1"], TLS13, None);
        let first = resumed_at(Arc::clone(&config), a.addr).await;
        assert_eq!(first, Some(HandshakeKind::Full));
        if let Some(text) = keys_at_b {
            std::fs::write(&keys, text).unwrap();
            assert!(b_tls.reload().unwrap());
        }
        let kind = resumed_at(config, at).await;
        assert_eq!(kind, Some(expected), "{keys_at_b:?} at {at}");
    }

    // A bad file: refused, naming it and the line, never the secret.
    std::fs::write(&keys, format!("{new}\nshort\n")).unwrap();
    let err = b_tls.reload().unwrap_err();
    assert_eq!(err.path(), Some(keys.as_path()));
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(
        !err.to_string().contains("short") && !err.to_string().contains(new),
        "{err}"
    );
    std::fs::write(&keys, "").unwrap();
    let err = TlsConfig::new(&cert, &key)
        .ticket_keys(&keys)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("holds no secret"), "{err}");
    for running in [a, b, alone] {
        drain(running).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_never_reads_is_cut_at_the_write_timeout() {
    let Pki {
        dir: _dir,
        ca,
        cert,
        key,
    } = pki("slow-reader");
    let tls = TlsConfig::new(&cert, &key).build().unwrap();
    let running = start(tls, Server::new().write_timeout(Duration::from_millis(500))).await;
    let config = client(&ca, &[b"http/1.1"], BOTH, None);
    let mut stream = connect(running.addr, &config, "localhost").await.unwrap();
    // 16 MiB asked for, not a byte read: TLS buffers fill, then the socket.
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    counted(&running, |c| c.write_timeouts == 1).await;
    assert_eq!(running.counters.snapshot().open, 0);
    // Others are served meanwhile and after.
    assert_eq!(get(running.addr, &config, "/").await.unwrap().1, "hello");
    drop(stream);
    drain(running).await;
}

/// A validation server's client (RFC 8737): offers only `acme-tls/1` and
/// takes whatever self-signed certificate it gets (it checks the
/// extension itself).
#[cfg(feature = "acme")]
fn validator() -> Arc<ClientConfig> {
    certs::any_cert_client(&[b"acme-tls/1"])
}

#[cfg(feature = "acme")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_validations_get_the_challenge_and_browsers_never_do() {
    use x509_parser::prelude::{FromDer, X509Certificate};

    let dir = Dir::new("alpn01");
    let ca = Ca::new("test CA");
    let pair = ca.server(&["example.test", "localhost"], Validity::Current);
    let (cert, key) = pair.write(&ca, &dir.0, "site");
    let tls = TlsConfig::new(cert, key).build().unwrap();
    let running = start(tls.clone(), Server::new()).await;
    let digest = [7_u8; 32];
    tls.set_challenge("Example.Test.", &digest).unwrap();

    // The validation: the challenge certificate, then the connection closed.
    let mut stream = connect(running.addr, &validator(), "example.test")
        .await
        .expect("the validation's handshake completes");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let served = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (_, parsed) = X509Certificate::from_der(&served).unwrap();
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(names, ["DNSName(example.test)"]);
    let acme = parsed
        .extensions()
        .iter()
        .find(|ext| ext.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
        .expect("the acmeIdentifier extension");
    assert!(acme.critical);
    // DER: OCTET STRING (0x04), 32 bytes, the digest.
    assert_eq!(acme.value[..2], [0x04, 32]);
    assert_eq!(acme.value[2..], digest);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed after the handshake: {read:?}"
    );

    // A browser asking for the same name gets the real certificate and HTTP.
    let browser = client(&ca, &[b"h2", b"http/1.1"], BOTH, None);
    assert_eq!(
        served_cert(running.addr, &browser, "example.test").await,
        der(&pair)
    );
    assert_eq!(get(running.addr, &browser, "/").await.unwrap().1, "hello");

    // No challenge for the name, or no longer: the validation fails.
    assert!(
        connect(running.addr, &validator(), "other.test")
            .await
            .is_err()
    );
    tls.remove_challenge("example.test");
    assert!(
        connect(running.addr, &validator(), "example.test")
            .await
            .is_err()
    );
    drain(running).await;
}
