//! Time from nothing to a first certificate from an ACME CA, side by side
//! in one run against the same Pebble (Let's Encrypt's test CA, Debian's
//! package) on loopback, each with a new account and a new key:
//!
//! - seaworthy's in-process order, TLS-ALPN-01 answered by the TLS listener
//!   (no port 80), the pair written to the cache directory;
//! - seaworthy's in-process order, HTTP-01 answered by the redirect
//!   listener;
//! - certbot (Debian's 2.1, `certonly --standalone`, HTTP-01), what the
//!   seed's deployment ran from cron; its nginx reload afterwards is not
//!   counted.
//!
//! `cargo bench -p seaworthy-benches --bench acme` (needs `pebble` and
//! `certbot`). 5 rounds, contenders alternating; the median is reported.
//! Results in `docs/benchmarks.md` and `docs/tls.md`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seaworthy::listener::tls::HttpsRedirect;
use seaworthy::listener::tls::acme::{self, AcmeConfig, Challenge};
use seaworthy::listener::{Listener, Server};
use seaworthy::shutdown::{Shutdown, ShutdownReason};
use seaworthy_tests::pebble::Pebble;
use seaworthy_tests::{TempDir, free_port};

const ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug)]
enum Contender {
    TlsAlpn01,
    Http01,
    Certbot,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::TlsAlpn01 => "seaworthy, TLS-ALPN-01 on the listener",
            Contender::Http01 => "seaworthy, HTTP-01 on the redirect listener",
            Contender::Certbot => "certbot certonly --standalone (HTTP-01)",
        }
    }
}

/// One seaworthy order into `cache`: its time.
async fn seaworthy(
    pebble: &Pebble,
    cache: &Path,
    challenge: Challenge,
    (tls_port, http_port): (u16, u16),
) -> Duration {
    let config = AcmeConfig::new(&pebble.directory, ["acme.test"], cache)
        .root_ca(&pebble.api_ca)
        .contact("ops@acme.test")
        .challenge(challenge);
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let started = Instant::now();
    let tls = config.tls(|tls| tls).unwrap();
    let listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], tls_port))).unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    shutdown.spawn(
        "https",
        Server::new()
            .tls(tls.clone())
            .serve(listener, router, shutdown.token()),
    );
    if challenge == Challenge::Http01 {
        let redirect = Listener::bind(SocketAddr::from(([127, 0, 0, 1], http_port))).unwrap();
        shutdown.spawn(
            "http",
            Server::new().serve(
                redirect,
                HttpsRedirect::new().acme_challenges(config.http01_answers()),
                shutdown.token(),
            ),
        );
    }
    acme::order(&config, &tls).await.expect("an order");
    tls.reload().expect("the pair passes the gate");
    let took = started.elapsed();
    assert!(tls.status().certificates[0].issuer.contains("Pebble"));
    shutdown.trigger(ShutdownReason::requested("bench"));
    shutdown.wait().await;
    took
}

/// One certbot run with its directories in `dir`: its time.
fn certbot(pebble: &Pebble, dir: &Path, http_port: u16) -> Duration {
    let started = Instant::now();
    let output = Command::new("certbot")
        .args([
            "certonly",
            "--standalone",
            "--non-interactive",
            "--agree-tos",
        ])
        .args(["--no-eff-email", "-m", "ops@acme.test", "-d", "acme.test"])
        .args(["--preferred-challenges", "http"])
        .args(["--http-01-port", &http_port.to_string()])
        .args(["--server", &pebble.directory])
        .args(["--key-type", "ecdsa"])
        .arg("--config-dir")
        .arg(dir.join("config"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--logs-dir")
        .arg(dir.join("logs"))
        .env("REQUESTS_CA_BUNDLE", &pebble.api_ca)
        .stdin(Stdio::null())
        .output()
        .expect("certbot runs (apt-get install certbot)");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "certbot: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("config/live/acme.test/fullchain.pem").exists());
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and wants a quick run: skip then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let rounds = ROUNDS;
    let dir = TempDir::new("bench-acme");
    let (tls_port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir.0, tls_port, http_port);
    let runtime = seaworthy_benches::runtime();
    let contenders = [Contender::TlsAlpn01, Contender::Http01, Contender::Certbot];
    let mut times = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (index, contender) in contenders.iter().enumerate() {
            let run = dir.0.join(format!("{index}-{round}"));
            let took = match contender {
                Contender::TlsAlpn01 => runtime.block_on(seaworthy(
                    &pebble,
                    &run,
                    Challenge::TlsAlpn01,
                    (tls_port, http_port),
                )),
                Contender::Http01 => runtime.block_on(seaworthy(
                    &pebble,
                    &run,
                    Challenge::Http01,
                    (tls_port, http_port),
                )),
                Contender::Certbot => certbot(&pebble, &run, http_port),
            };
            times[index].push(took);
        }
    }
    let certbot_median = median(times[2].clone());
    println!("time to a first certificate, median of {rounds} (Pebble on loopback):");
    for (contender, times) in contenders.iter().zip(times) {
        let median = median(times);
        println!(
            "  {:<46} {:>7.0} ms   {:.2}x certbot's time",
            contender.name(),
            median.as_secs_f64() * 1000.0,
            median.as_secs_f64() / certbot_median.as_secs_f64()
        );
    }
}
