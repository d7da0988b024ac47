//! A real ACME server for a test: Pebble (Debian package `pebble`, Let's
//! Encrypt's test CA), with pebble-challtestsrv as its DNS (every name is
//! 127.0.0.1), on free loopback ports, its validation authority connecting
//! back to the test's own server for TLS-ALPN-01 (`tls_port`) and HTTP-01
//! (`http_port`). Both processes are ended by their pids when it drops.
//! (Included by seaworthy-listener's ACME tests too.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::{Ca, Validity};

/// Pebble and its DNS, started by this test.
#[derive(Debug)]
pub struct Pebble {
    pebble: Child,
    dns: Child,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA bundle that signs Pebble's own HTTPS (for the ACME client).
    pub api_ca: PathBuf,
    /// Pebble's management address, for its issuing roots
    /// (`https://ADDR/roots/0`).
    pub management: String,
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port can be bound")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

fn wait_listening(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Pebble {
    /// Starts Pebble whose validations connect to 127.0.0.1:`tls_port`
    /// (TLS-ALPN-01) and 127.0.0.1:`http_port` (HTTP-01); files in `dir`.
    pub fn start(dir: &Path, tls_port: u16, http_port: u16) -> Pebble {
        Pebble::start_with_validity(dir, tls_port, http_port, None)
    }

    /// As [`start`](Self::start), issuing certificates valid for
    /// `validity` (short, to watch renewals).
    pub fn start_with_validity(
        dir: &Path,
        tls_port: u16,
        http_port: u16,
        validity: Option<Duration>,
    ) -> Pebble {
        let ca = Ca::new("pebble API CA");
        let (cert, key) = ca
            .server(&["localhost", "127.0.0.1"], Validity::Current)
            .write(&ca, dir, "pebble-api");
        let api_ca = dir.join("pebble-api-ca.pem");
        std::fs::write(&api_ca, &ca.pem).unwrap();

        let dns_port = free_port();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (Debian package pebble; .ci/run installs it)");

        let (port, management) = (free_port(), free_port());
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble": {{
                    "listenAddress": "127.0.0.1:{port}",
                    "managementListenAddress": "127.0.0.1:{management}",
                    "certificate": "{cert}",
                    "privateKey": "{key}",
                    "httpPort": {http_port},
                    "tlsPort": {tls_port},
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": false{validity}
                }}}}"#,
                validity = validity
                    .map(|validity| format!(
                        r#", "certificateValidityPeriod": {}"#,
                        validity.as_secs()
                    ))
                    .unwrap_or_default(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random sleeps before validations; no refused nonces.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble runs (Debian package pebble; .ci/run installs it)");
        wait_listening(port, "pebble");
        wait_listening(management, "pebble's management");
        Pebble {
            pebble,
            dns,
            directory: format!("https://127.0.0.1:{port}/dir"),
            api_ca,
            management: format!("127.0.0.1:{management}"),
        }
    }

    /// Pebble's log so far (its validations say what they saw).
    pub fn log(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
