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

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use certs::{Ca, Validity};
use pebble::Pebble;
use seaworthy_listener::tls::TlsConfig;
use seaworthy_listener::tls::acme::{self, AcmeConfig};
use seaworthy_listener::{Listener, Server};
use seaworthy_shutdown::{Shutdown, ShutdownReason};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_obtained_through_tls_alpn_01_on_the_listener_and_passes_the_gate() {
    let dir = Dir(std::env::temp_dir().join(format!("seaworthy-acme-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();

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
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(Duration::ZERO)
        .build()
        .unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    shutdown.spawn(
        "https",
        Server::new()
            .tls(tls.clone())
            .serve(listener, router, shutdown.token()),
    );

    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
