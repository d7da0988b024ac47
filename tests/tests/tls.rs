//! The flagship over HTTPS, with real clients (curl, openssl s_client) and
//! real files: HTTP/1.1 and HTTP/2, HSTS, old TLS and plain HTTP refused,
//! the redirect listener, mutual TLS, bad settings (78), reload on rename
//! and on SIGHUP, a half-written pair refused while serving on, silent
//! handshakes cut, and an upgrade that refuses a bad certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use seaworthy_tests::certs::{Ca, Pair, Validity, write_atomically};
use seaworthy_tests::{
    Adopted, Child, GENEROUS, Signal, TempDir, check_status, example_path, free_port,
    listening_pid, signal, wait_gone,
};

/// Runs curl against the flagship, trusting `ca`; returns its output.
fn curl(ca: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "--cacert"])
        .arg(ca)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `https://localhost:PORT{path}`, with localhost pinned to the address.
fn url(addr: SocketAddr, path: &str) -> (String, String) {
    (
        format!("https://localhost:{}{path}", addr.port()),
        format!("localhost:{}:{}", addr.port(), addr.ip()),
    )
}

/// The certificate the server presents (PEM, whitespace removed), by
/// `openssl s_client`.
fn served_leaf(addr: SocketAddr) -> String {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    match (begin, end) {
        (Some(begin), Some(end)) => squash(&text[begin..end]),
        _ => String::new(),
    }
}

/// A PEM block's base64 alone, for comparing two encodings of one
/// certificate.
fn squash(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
}

fn leaf_of(pair: &Pair) -> String {
    squash(&pair.cert)
}

/// Whether a TLS handshake at `version` (`-tls1`, `-tls1_1`, …) succeeds.
fn handshake_with(addr: SocketAddr, version: &str) -> bool {
    Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), version])
        // OpenSSL 3 refuses TLS 1.0 and 1.1 itself at its default level.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs")
        .status
        .success()
}

/// Polls `condition` every 25 ms until it holds or `bound` passes; how
/// long it took.
fn eventually(bound: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < bound {
        if condition() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

struct Setup {
    dir: TempDir,
    ca: Ca,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    pair: Pair,
}

fn setup(name: &str) -> Setup {
    let dir = TempDir::new(name);
    let ca = Ca::new("seaworthy test CA");
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let pair = ca.server(&["localhost", "127.0.0.1"], Validity::Current);
    let (cert, key) = pair.write(&ca, &dir.0, "tls");
    Setup {
        dir,
        ca,
        ca_file,
        cert,
        key,
        pair,
    }
}

impl Setup {
    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("TLS_CERT", self.cert.to_str().unwrap()),
            ("TLS_KEY", self.key.to_str().unwrap()),
            ("SHUTDOWN_DRAIN_DELAY", "0s"),
        ];
        env.extend_from_slice(extra);
        env
    }
}

#[test]
fn https_serves_http1_and_http2_with_hsts_refuses_old_tls_and_plain_http_and_redirects() {
    let setup = setup("https");
    let redirect_port = free_port();
    let redirect_port_text = redirect_port.to_string();
    let (mut child, addr) =
        Child::production(&setup.env(&[("HTTP_REDIRECT_PORT", &redirect_port_text)]));
    assert!(
        child.output().contains("listening on https://"),
        "{}",
        child.output()
    );

    let (target, resolve) = url(addr, "/");
    for (flag, version) in [("--http1.1", "HTTP/1.1 200"), ("--http2", "HTTP/2 200")] {
        let output = curl(&setup.ca_file, &[flag, "--resolve", &resolve, &target]);
        let answer = text(&output);
        assert!(output.status.success(), "{answer}");
        assert!(answer.starts_with(version), "{answer}");
        assert!(
            answer.contains("strict-transport-security: max-age="),
            "HSTS over TLS: {answer}"
        );
        assert!(answer.contains("hello from seaworthy"), "{answer}");
    }
    // Old protocol versions and plain HTTP are refused; 1.2 and 1.3 work.
    assert!(!handshake_with(addr, "-tls1"));
    assert!(!handshake_with(addr, "-tls1_1"));
    assert!(handshake_with(addr, "-tls1_2"));
    assert!(handshake_with(addr, "-tls1_3"));
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://{addr}/")])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "{}", text(&plain));
    assert!(!text(&plain).contains("hello"), "{}", text(&plain));

    // The redirect listener: 308 to the same path and query on HTTPS, no
    // HSTS; and the client that follows it gets its answer.
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-"])
        .arg(format!("http://127.0.0.1:{redirect_port}/echo?x=1"))
        .output()
        .unwrap();
    let answer = text(&output);
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer.contains(&format!(
            "location: https://127.0.0.1:{}/echo?x=1",
            addr.port()
        )),
        "{answer}"
    );
    assert!(!answer.contains("strict-transport-security"), "{answer}");
    let followed = curl(
        &setup.ca_file,
        &["-L", &format!("http://127.0.0.1:{redirect_port}/")],
    );
    assert!(
        text(&followed).contains("hello from seaworthy"),
        "{}",
        text(&followed)
    );

    // The self-probe speaks TLS.
    let probe = Command::new(example_path("production"))
        .arg("healthcheck")
        .env("PORT", addr.port().to_string())
        .env("TLS_CERT", &setup.cert)
        .env("TLS_KEY", &setup.key)
        .output()
        .unwrap();
    assert!(probe.status.success(), "{}", text(&probe));

    // The certificate's health check: days left, passing.
    let (target, resolve) = url(addr, "/health/ready");
    let ready = text(&curl(&setup.ca_file, &["--resolve", &resolve, &target]));
    assert!(ready.contains("\"tls:expiry\""), "{ready}");
    assert!(ready.contains("\"observedUnit\":\"days\""), "{ready}");

    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success(), "{}", child.output());
}

#[test]
fn bad_tls_settings_stop_the_start_with_78_naming_the_variable() {
    let setup = setup("bad-tls");
    let other = setup.ca.server(&["localhost"], Validity::Current);
    let other_key = setup.dir.0.join("other.key");
    std::fs::write(&other_key, &other.key).unwrap();
    let expired = setup.ca.server(&["localhost"], Validity::Expired);
    let (expired_cert, expired_key) = expired.write(&setup.ca, &setup.dir.0, "expired");
    let missing = setup.dir.0.join("missing.pem");
    let cert = setup.cert.to_str().unwrap();
    let key = setup.key.to_str().unwrap();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("TLS_CERT", cert)], "TLS_KEY: required with TLS_CERT"),
        (vec![("TLS_KEY", key)], "TLS_CERT: required with TLS_KEY"),
        (
            vec![("TLS_CERT", cert), ("TLS_KEY", other_key.to_str().unwrap())],
            "TLS_KEY: key",
        ),
        (
            vec![
                ("TLS_CERT", expired_cert.to_str().unwrap()),
                ("TLS_KEY", expired_key.to_str().unwrap()),
            ],
            "TLS_CERT: certificate",
        ),
        (
            vec![("TLS_CERT", missing.to_str().unwrap()), ("TLS_KEY", key)],
            "TLS_CERT: certificate",
        ),
        (
            vec![
                ("TLS_CERT", cert),
                ("TLS_KEY", key),
                ("TLS_CLIENT_CA", missing.to_str().unwrap()),
            ],
            "TLS_CLIENT_CA: client CA bundle",
        ),
        (
            vec![
                ("TLS_CERT", cert),
                ("TLS_KEY", key),
                ("TLS_TICKET_KEYS", missing.to_str().unwrap()),
            ],
            "TLS_TICKET_KEYS: ticket key file",
        ),
        (
            vec![("HTTP_REDIRECT_PORT", "8080")],
            "HTTP_REDIRECT_PORT: redirects to HTTPS",
        ),
        (
            vec![("TLS_CLIENT_CA", cert)],
            "TLS_CLIENT_CA: needs TLS_CERT",
        ),
    ];
    for (env, needle) in cases {
        let output = Command::new(example_path("production"))
            .env("PORT", "0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(78), "{env:?}: {all}");
        assert!(all.contains(needle), "{env:?} should say {needle:?}: {all}");
        assert!(!all.contains("BEGIN"), "never the PEM itself: {all}");
        assert!(!all.contains("listening on"), "{all}");
    }
}

#[test]
fn a_renamed_pair_is_served_within_2s_sighup_reloads_and_a_half_written_one_is_refused() {
    // TLS_CERT and TLS_KEY are links in `live/` to files in `store/`, as
    // certbot lays them out: a change in `store/` is invisible to the
    // watch of `live/`, so there only SIGHUP (or the 10 s poll) sees it.
    let setup = setup("reload");
    let live = setup.dir.0.join("live");
    let store = setup.dir.0.join("store");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    let (cert, key) = setup.pair.write(&setup.ca, &store, "tls");
    std::os::unix::fs::symlink(&cert, live.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink(&key, live.join("tls.key")).unwrap();
    let live_cert = live.join("tls.crt");
    let live_key = live.join("tls.key");
    let (mut child, addr) = Child::production(&[
        ("TLS_CERT", live_cert.to_str().unwrap()),
        ("TLS_KEY", live_key.to_str().unwrap()),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ]);
    assert_eq!(served_leaf(addr), leaf_of(&setup.pair));

    // A renewal renamed into place in the watched directory.
    let second = setup.ca.server(&["localhost"], Validity::Current);
    let (cert2, key2) = second.write(&setup.ca, &store, "tls2");
    let link = |target: &Path, name: &str| {
        let staged = live.join(format!("{name}.new"));
        std::os::unix::fs::symlink(target, &staged).unwrap();
        std::fs::rename(&staged, live.join(name)).unwrap();
    };
    link(&key2, "tls.key");
    link(&cert2, "tls.crt");
    let took = eventually(Duration::from_secs(10), || {
        served_leaf(addr) == leaf_of(&second)
    })
    .expect("the renamed pair is served");
    // The watch, not the 10 s poll (with slack for a loaded machine).
    assert!(took < Duration::from_secs(6), "served after {took:?}");

    // Rewritten where the watch does not look: SIGHUP reloads.
    let third = setup.ca.server(&["localhost"], Validity::Current);
    third.write(&setup.ca, &store, "tls2");
    child.signal(Signal::SIGHUP);
    child.wait_for_line("SIGHUP: TLS certificates reloaded changed=true", GENEROUS);
    assert_eq!(served_leaf(addr), leaf_of(&third));

    // Half a certificate, written in place: refused and logged, the third
    // pair serves on, the health check warns.
    let fourth = setup.ca.server(&["localhost"], Validity::Current);
    let chain = fourth.chain(&setup.ca);
    std::fs::write(&key2, &fourth.key).unwrap();
    std::fs::write(&cert2, &chain.as_bytes()[..chain.len() / 2]).unwrap();
    child.signal(Signal::SIGHUP);
    let refused = child.next_line("TLS certificate reload refused", GENEROUS);
    assert!(refused.contains("not valid PEM"), "{refused}");
    assert_eq!(served_leaf(addr), leaf_of(&third));
    // (The check's result is cached for a second.) Wait for the TLS
    // check's own words: the overall status may warn for another reason
    // (a machine with little free disk makes the disk check warn).
    let (target, resolve) = url(addr, "/health/ready");
    let mut ready = String::new();
    let warned = eventually(GENEROUS, || {
        ready = text(&curl(&setup.ca_file, &["--resolve", &resolve, &target]));
        ready.contains("reload refused")
    });
    assert!(warned.is_some(), "{ready}");
    assert!(
        ready.lines().next().unwrap_or("").ends_with(" 200 "),
        "{ready}"
    );
    // (curl printed the head, a blank line, then the body.)
    let body = ready.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(
        check_status(body, "tls:expiry").as_deref(),
        Some("warn"),
        "{ready}"
    );

    // The rest of the file arrives: served, and the check passes again.
    write_atomically(&cert2, chain.as_bytes());
    child.signal(Signal::SIGHUP);
    assert!(eventually(GENEROUS, || served_leaf(addr) == leaf_of(&fourth)).is_some());
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success(), "{}", child.output());
}

#[test]
fn mutual_tls_admits_signed_clients_and_the_self_probe_uses_the_health_port() {
    let setup = setup("mtls");
    let clients = Ca::new("client CA");
    let bundle = setup.dir.0.join("clients.pem");
    std::fs::write(&bundle, &clients.pem).unwrap();
    let alice = clients.client("alice");
    let alice_cert = setup.dir.0.join("alice.crt");
    let alice_key = setup.dir.0.join("alice.key");
    std::fs::write(&alice_cert, &alice.cert).unwrap();
    std::fs::write(&alice_key, &alice.key).unwrap();
    let health_port = free_port().to_string();
    let (mut child, addr) = Child::production(&setup.env(&[
        ("TLS_CLIENT_CA", bundle.to_str().unwrap()),
        ("HEALTH_PORT", &health_port),
    ]));
    let (target, resolve) = url(addr, "/");
    let refused = curl(&setup.ca_file, &["--resolve", &resolve, &target]);
    assert!(!refused.status.success());
    assert!(!text(&refused).contains("hello"), "{}", text(&refused));
    let admitted = curl(
        &setup.ca_file,
        &[
            "--cert",
            alice_cert.to_str().unwrap(),
            "--key",
            alice_key.to_str().unwrap(),
            "--resolve",
            &resolve,
            &target,
        ],
    );
    assert!(
        text(&admitted).contains("hello from seaworthy"),
        "{}",
        text(&admitted)
    );

    let probe = |health_port: Option<&str>| {
        let mut command = Command::new(example_path("production"));
        command
            .arg("healthcheck")
            .env("PORT", addr.port().to_string())
            .env("TLS_CERT", &setup.cert)
            .env("TLS_KEY", &setup.key)
            .env("TLS_CLIENT_CA", &bundle);
        if let Some(port) = health_port {
            command.env("HEALTH_PORT", port);
        }
        command.output().unwrap()
    };
    assert!(probe(Some(&health_port)).status.success());
    let without = probe(None);
    assert!(!without.status.success());
    assert!(
        text(&without).contains("set HEALTH_PORT"),
        "{}",
        text(&without)
    );

    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success(), "{}", child.output());
}

#[test]
fn silent_handshakes_are_cut_and_sigterm_exits_within_the_budget() {
    let setup = setup("silent");
    let (mut child, addr) = Child::production(&setup.env(&[
        ("HEADER_READ_TIMEOUT", "1s"),
        ("SHUTDOWN_TIMEOUT", "5s"),
        ("MAX_CONNECTIONS_PER_IP", "0"),
    ]));
    // Fifty clients that connect and say nothing, ten that send half a
    // ClientHello: every one is closed at the handshake timeout.
    let mut silent: Vec<std::net::TcpStream> = (0..60)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for stream in &mut silent[50..] {
        std::io::Write::write_all(stream, &[0x16, 0x03, 0x01, 0x01, 0x00, 0x01]).unwrap();
    }
    let opened = Instant::now();
    for stream in &mut silent {
        stream.set_read_timeout(Some(GENEROUS)).unwrap();
        let mut buf = [0_u8; 16];
        let read = std::io::Read::read(stream, &mut buf);
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let cut_after = opened.elapsed();
    assert!(cut_after < Duration::from_secs(10), "{cut_after:?}");
    // The server serves on.
    let (target, resolve) = url(addr, "/");
    assert!(text(&curl(&setup.ca_file, &["--resolve", &resolve, &target])).contains("hello"));

    // New silent clients, then SIGTERM: the exit does not wait for them
    // beyond the budget.
    let _more: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    child.signal(Signal::SIGTERM);
    let (status, took) = child.wait_exit(GENEROUS);
    assert!(status.success(), "{}", child.output());
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn an_upgrade_whose_certificate_fails_the_gate_is_refused_and_the_old_process_serves_on() {
    let setup = setup("tls-upgrade");
    let mut adopted = Adopted::default();
    let (mut child, addr) = Child::production(&setup.env(&[("UPGRADE_TIMEOUT", "10s")]));
    let pid = child.pid();
    child.next_line("listening on https://", GENEROUS);

    // The files now hold an expired pair: the running process refuses it
    // (its watch) and serves on; the new process refuses to start (78).
    let expired = setup.ca.server(&["localhost"], Validity::Expired);
    expired.write(&setup.ca, &setup.dir.0, "tls");
    child.next_line("TLS certificate reload refused", GENEROUS);
    signal(pid, Signal::SIGUSR2);
    let failed = child.next_line("upgrade failed; still serving", GENEROUS);
    assert!(failed.contains("exited"), "{failed}");
    // The new process said why (its stderr, read by another thread: waited
    // for, not looked up, or a slow reader races the assertion).
    child.wait_for_line("TLS_CERT: certificate", GENEROUS);
    assert_eq!(served_leaf(addr), leaf_of(&setup.pair));

    // A good renewal: served by the running process, then the upgrade
    // takes the listener over TLS.
    let renewed = setup.ca.server(&["localhost"], Validity::Current);
    renewed.write(&setup.ca, &setup.dir.0, "tls");
    assert!(eventually(GENEROUS, || served_leaf(addr) == leaf_of(&renewed)).is_some());
    signal(pid, Signal::SIGUSR2);
    let line = child.next_line("listening on https://", GENEROUS);
    let new = listening_pid(&line);
    adopted.push(new);
    assert_ne!(new, pid);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success());
    assert_eq!(served_leaf(addr), leaf_of(&renewed));
    let (target, resolve) = url(addr, "/");
    assert!(text(&curl(&setup.ca_file, &["--resolve", &resolve, &target])).contains("hello"));
    signal(new, Signal::SIGTERM);
    wait_gone(new, GENEROUS);
}
