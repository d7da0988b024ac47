//! ACME against a real ACME server: Pebble, started here on loopback, its
//! validation authority connecting back to this test's TLS listener for
//! TLS-ALPN-01 (the names resolve to 127.0.0.1 through
//! pebble-challtestsrv's DNS). No `PEBBLE_VA_ALWAYS_VALID`: the responder
//! is what is proven.
#![cfg(feature = "acme")]

#[path = "../../../tests/src/certs.rs"]
#[allow(dead_code, unreachable_pub)]
mod certs;
#[path = "../../../tests/src/pebble.rs"]
#[allow(dead_code, unreachable_pub)]
mod pebble;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use certs::{Ca, Validity};
use pebble::Pebble;
use seaworthy_listener::tls::acme::{self, Acme, AcmeConfig};
use seaworthy_listener::tls::{Tls, TlsConfig};
use seaworthy_listener::{Listener, Server};
use seaworthy_shutdown::{Shutdown, ShutdownReason};

struct Dir(PathBuf);

impl Dir {
    /// `seaworthy-NAME-PID` in the temporary directory, empty.
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("seaworthy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

fn free_port() -> u16 {
    pebble::free_port()
}

/// Serves `GET /` → `hello` over `tls` on `listener` until the shutdown.
fn serve_hello(listener: Listener, tls: &Tls, shutdown: &Shutdown) {
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    shutdown.spawn(
        "https",
        Server::new()
            .tls(tls.clone())
            .serve(listener, router, shutdown.token()),
    );
}

/// A shutdown of the test's own: no signals, no drain delay.
fn shutdown() -> Shutdown {
    Shutdown::builder()
        .signals([])
        .drain_delay(Duration::ZERO)
        .build()
        .unwrap()
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_cache_directory_holding_files_seaworthy_did_not_write_is_refused_untouched() {
    let dir = Dir::new("acme-foreign");
    let config = |dir: PathBuf| AcmeConfig::new("https://127.0.0.1:9/dir", ["acme.test"], dir);
    // Somebody's key where ACME keeps (and rewrites) its own.
    let foreign = dir.0.join("theirs");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("key.pem"), "their key\n").unwrap();
    let err = config(foreign.clone())
        .tls(|tls| tls)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key.pem that seaworthy did not write"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("key.pem")).unwrap(),
        "their key\n"
    );
    assert!(!foreign.join("certificate.pem").exists());
    // An order is refused the same way, before asking the CA.
    let ours = config(dir.0.join("ours")).tls(|tls| tls).unwrap();
    let err = acme::order(&config(foreign.clone()), &ours)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not write"), "{err}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("key.pem")).unwrap(),
        "their key\n"
    );
    // A directory of ours, with its pair: taken again.
    config(dir.0.join("ours")).tls(|tls| tls).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_an_empty_directory_all_start() {
    // Each writes a placeholder pair at once: one's key beside another's
    // certificate must not stop a start (nor every later one).
    for round in 0..10 {
        let dir = Dir::new(&format!("acme-together-{round}"));
        let config = AcmeConfig::new("https://127.0.0.1:9/dir", ["acme.test"], dir.0.join("acme"));
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let (config, barrier) = (config.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    config
                        .tls(|tls| tls)
                        .map(drop)
                        .map_err(|err| err.to_string())
                })
            })
            .collect();
        for start in starts {
            start.join().unwrap().unwrap();
        }
        // What is left is one consistent pair: a later start takes it.
        config.tls(|tls| tls).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir.0.join("acme"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| {
                !["certificate.pem", "key.pem", ".seaworthy-acme"].contains(&name.as_str())
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_obtained_through_tls_alpn_01_on_the_listener_and_passes_the_gate() {
    let dir = Dir::new("acme");

    // The listener the CA validates against, serving a temporary
    // self-signed pair meanwhile.
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls_port = listener.local_addr().unwrap().as_tcp().unwrap().port();
    let placeholder = Ca::new("placeholder");
    let (cert, key) = placeholder.server(&["acme.test"], Validity::Current).write(
        &placeholder,
        &dir.0,
        "placeholder",
    );
    let tls = TlsConfig::new(cert, key).build().unwrap();
    let shutdown = shutdown();
    serve_hello(listener, &tls, &shutdown);

    let http_port = free_port();
    let pebble = Pebble::start(&dir.0, tls_port, http_port);
    let cache = dir.0.join("acme");
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], &cache)
        .root_ca(&pebble.api_ca)
        .contact("ops@acme.test");

    let started = std::time::Instant::now();
    acme::order(&config, &tls)
        .await
        .unwrap_or_else(|err| panic!("{err}\npebble:\n{}", Pebble::log(&dir.0)));
    eprintln!("first certificate in {:?}", started.elapsed());
    // Pebble's validation authority reached the listener (the only thing
    // on that port) and found the challenge: the authorization is valid.
    let log = Pebble::log(&dir.0);
    assert!(log.contains("set VALID by completed challenge"), "{log}");

    // Written for this user alone, and good enough for the gate.
    for path in [
        config.certificate_path(),
        config.key_path(),
        cache.join("account.json"),
    ] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let issued = TlsConfig::new(config.certificate_path(), config.key_path())
        .require_names(["acme.test"])
        .build()
        .expect("the issued pair passes the gate");
    assert_eq!(issued.status().certificates.len(), 1);

    // A second order reuses the account.
    let account = std::fs::read(cache.join("account.json")).unwrap();
    acme::order(&config, &tls).await.unwrap();
    assert_eq!(std::fs::read(cache.join("account.json")).unwrap(), account);

    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}

/// A handshake and `GET /` to `acme.test`: the served leaf's DER and
/// issuer, or why it failed.
async fn fetch(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> Result<(Vec<u8>, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|err| err.to_string())?;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(ServerName::try_from("acme.test").unwrap(), tcp)
        .await
        .map_err(|err| err.to_string())?;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: acme.test\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|err| err.to_string())?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    if !answer.ends_with(b"hello") {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&answer)));
    }
    let issuer = X509Certificate::from_der(&leaf)
        .unwrap()
        .1
        .issuer()
        .to_string();
    Ok((leaf, issuer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_certificate_replaces_the_placeholder_and_renewals_need_no_restart() {
    let dir = Dir::new("acme-renew");
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let http_port = free_port();
    // Certificates of 12 s: renewed at about 8 s.
    let pebble = Pebble::start_with_validity(
        &dir.0,
        addr.port(),
        http_port,
        Some(Duration::from_secs(12)),
    );
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], dir.0.join("acme"))
        .root_ca(&pebble.api_ca);
    let tls = config.tls(|tls| tls).unwrap();
    let shutdown = shutdown();
    serve_hello(listener, &tls, &shutdown);
    let client = certs::any_cert_client(&[b"http/1.1"]);
    let (_, issuer) = fetch(addr, &client).await.unwrap();
    assert!(issuer.contains("seaworthy ACME placeholder"), "{issuer}");

    // Handshakes and requests all along, none may fail.
    let failures = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (failures, served, stop, client) = (
            Arc::clone(&failures),
            Arc::clone(&served),
            Arc::clone(&stop),
            Arc::clone(&client),
        );
        async move {
            while !stop.load(Relaxed) {
                match fetch(addr, &client).await {
                    Ok(_) => served.fetch_add(1, Relaxed),
                    Err(err) => {
                        eprintln!("failed: {err}");
                        failures.fetch_add(1, Relaxed)
                    }
                };
            }
        }
    });

    let acme = Acme::new(config, tls);
    shutdown.spawn("acme", acme.clone().run(shutdown.token()));
    let started = Instant::now();
    let first = loop {
        let (leaf, issuer) = fetch(addr, &client).await.unwrap();
        if issuer.contains("Pebble") {
            break leaf;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("first certificate served after {:?}", started.elapsed());
    // The CA was asked for its renewal window (ARI) for this pair: Debian's
    // Pebble offers none, so the 2/3 rule stands (the whole path ran: the
    // pair read back, the account loaded, the CA's directory asked).
    let asked = Instant::now();
    while acme.status().window == acme::RenewalWindow::NotAsked {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "{:?}",
            acme.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        acme.status().window,
        acme::RenewalWindow::NotOffered,
        "{:?}",
        acme.status()
    );
    let renewed_at = Instant::now();
    loop {
        let (leaf, issuer) = fetch(addr, &client).await.unwrap();
        if leaf != first {
            assert!(issuer.contains("Pebble"), "{issuer}");
            break;
        }
        assert!(
            renewed_at.elapsed() < Duration::from_secs(30),
            "never renewed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("renewed {:?} after the first", renewed_at.elapsed());
    stop.store(true, Relaxed);
    load.await.unwrap();
    assert_eq!(failures.load(Relaxed), 0);
    assert!(served.load(Relaxed) > 10, "{}", served.load(Relaxed));
    let status = acme.status();
    assert!(status.certificates >= 2, "{status:?}");
    assert_eq!(status.failures, 0, "{status:?}");
    assert!(status.next_order.is_some(), "{status:?}");

    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}

/// One replica: a listener on the shared port (SO_REUSEPORT), its Tls from
/// the shared cache directory, its Acme.
fn replica(port: u16, config: &AcmeConfig, shutdown: &Shutdown) -> (Tls, Acme) {
    let listener = seaworthy_listener::Bind::tcp(SocketAddr::from(([127, 0, 0, 1], port)))
        .reuse_port(true)
        .bind()
        .unwrap();
    let tls = config.tls(|tls| tls).unwrap();
    serve_hello(listener, &tls, shutdown);
    let acme = Acme::new(config.clone(), tls.clone());
    shutdown.spawn("acme", acme.clone().run(shutdown.token()));
    (tls, acme)
}

fn orders_placed(dir: &std::path::Path) -> usize {
    Pebble::log(dir).matches("POST /order-plz").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_directory_place_one_order_and_a_restart_places_none() {
    let dir = Dir::new("acme-replicas");
    let port = free_port();
    let http_port = free_port();
    let pebble = Pebble::start(&dir.0, port, http_port);
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], dir.0.join("shared"))
        .root_ca(&pebble.api_ca);
    let shutdown = shutdown();
    // Two replicas behind one address: the CA's validation reaches either.
    let (first, _) = replica(port, &config, &shutdown);
    let (second, _) = replica(port, &config, &shutdown);
    let started = Instant::now();
    while ![&first, &second]
        .iter()
        .all(|tls| tls.status().certificates[0].issuer.contains("Pebble"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not both served: {:?} / {:?}\n{}",
            first.status(),
            second.status(),
            Pebble::log(&dir.0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "both replicas serve the certificate after {:?}",
        started.elapsed()
    );
    assert_eq!(orders_placed(&dir.0), 1, "{}", Pebble::log(&dir.0));
    // And both answer with it.
    let client = certs::any_cert_client(&[b"http/1.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..10 {
        let (_, issuer) = fetch(addr, &client).await.unwrap();
        assert!(issuer.contains("Pebble"), "{issuer}");
    }

    // A restart (a new Tls and Acme on the same directory) orders nothing:
    // the pair in the cache is good for most of its life.
    let (_, restarted) = replica(port, &config, &shutdown);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(restarted.status().certificates, 0);
    assert!(restarted.status().next_order.is_some());
    assert_eq!(orders_placed(&dir.0), 1);

    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_answered_by_the_redirect_listener() {
    use seaworthy_listener::tls::HttpsRedirect;
    use seaworthy_listener::tls::acme::Challenge;

    let dir = Dir::new("acme-http01");
    // The plain-HTTP listener the CA validates against: everything
    // redirected to HTTPS but the challenges.
    let redirect = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let http_port = redirect.local_addr().unwrap().as_tcp().unwrap().port();
    let tls_port = free_port();
    let pebble = Pebble::start(&dir.0, tls_port, http_port);
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], dir.0.join("acme"))
        .root_ca(&pebble.api_ca)
        .challenge(Challenge::Http01);
    let shutdown = shutdown();
    shutdown.spawn(
        "http",
        Server::new().serve(
            redirect,
            HttpsRedirect::new().acme_challenges(config.http01_answers()),
            shutdown.token(),
        ),
    );
    let tls = config.tls(|tls| tls).unwrap();
    acme::order(&config, &tls)
        .await
        .unwrap_or_else(|err| panic!("{err}\npebble:\n{}", Pebble::log(&dir.0)));
    let log = Pebble::log(&dir.0);
    assert!(log.contains("set VALID by completed challenge"), "{log}");
    let issued = TlsConfig::new(config.certificate_path(), config.key_path())
        .require_names(["acme.test"])
        .build()
        .expect("the issued pair passes the gate");
    assert!(issued.status().certificates[0].issuer.contains("Pebble"));
    // The published token is gone once the order is done.
    let tokens = std::fs::read_dir(dir.0.join("acme/http-01"))
        .unwrap()
        .count();
    assert_eq!(tokens, 0);
    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_issued_refuse_answers_only_the_ca_before_the_first_certificate() {
    let dir = Dir::new("acme-refuse");
    let port = free_port();
    let pebble = Pebble::start(&dir.0, port, free_port());
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], dir.0.join("acme"))
        .root_ca(&pebble.api_ca)
        .until_issued(acme::UntilIssued::Refuse);
    let listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let tls = config.tls(|tls| tls).unwrap();
    let shutdown = shutdown();
    serve_hello(listener, &tls, &shutdown);
    let acme = Acme::new(config, tls.clone());
    let client = certs::any_cert_client(&[b"http/1.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Before the order: the temporary pair is never shown.
    let refused = fetch(addr, &client).await.unwrap_err();
    assert!(refused.to_lowercase().contains("alert"), "{refused}");
    assert_eq!(
        tls.status().certificates[0].issuer,
        format!("CN={}", acme::PLACEHOLDER)
    );

    // The CA's validation still gets through, and then everyone does.
    shutdown.spawn("acme", acme.clone().run(shutdown.token()));
    let started = Instant::now();
    let issuer = loop {
        if let Ok((_, issuer)) = fetch(addr, &client).await {
            break issuer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}\n{}",
            acme.status(),
            Pebble::log(&dir.0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(issuer.contains("Pebble"), "{issuer}");
    assert_eq!(acme.status().certificates, 1);

    shutdown.trigger(ShutdownReason::requested("test"));
    assert!(shutdown.wait().await.is_clean());
}
