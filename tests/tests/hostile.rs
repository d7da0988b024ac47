//! What a red-team pass found, as an attacker and as an operator with a bad
//! day, each against the flagship: every test here failed before its fix.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use seaworthy_tests::{Child, GENEROUS, TempDir};

#[test]
fn an_upgrade_socket_path_that_is_not_our_socket_is_refused_and_left_untouched() {
    let dir = TempDir::new("upgrade-socket-path");
    let file = dir.0.join("precious.conf");
    std::fs::write(&file, "do not delete\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let missing_dir = dir.0.join("no-such-dir").join("handoff.sock");

    for (path, says) in [
        (&file, "a file that is not a socket"),
        (&link, "a symbolic link"),
        (&dir.0, "a directory"),
        (&missing_dir, "a directory that does not exist"),
    ] {
        let path = path.to_str().unwrap();
        let mut child = Child::example("production", &[("PORT", "0"), ("UPGRADE_SOCKET", path)]);
        let (status, _) = child.wait_exit(GENEROUS);
        let output = child.output();
        assert_eq!(status.code(), Some(78), "{path}: {output}");
        assert!(output.contains("UPGRADE_SOCKET"), "{output}");
        assert!(output.contains(says), "{path}: {output}");
        assert_eq!(child.count("listening on"), 0, "{output}");
    }
    // Nothing was unlinked, replaced or changed.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "do not delete\n");
    let meta = std::fs::symlink_metadata(&file).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(dir.0.is_dir());

    // The socket it creates itself is removed at exit, and nothing else.
    let socket = dir.0.join("handoff.sock");
    let (mut child, _) = Child::production(&[
        ("UPGRADE_SOCKET", socket.to_str().unwrap()),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ]);
    child.wait_for_line("serving hand-overs", GENEROUS);
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    child.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
    assert!(!socket.exists(), "its own socket is removed at exit");
    assert!(file.exists() && link.exists());
}

#[test]
fn values_that_parse_but_are_traps_stop_the_start_all_named_at_once() {
    let mut child = Child::example(
        "production",
        &[
            ("PORT", "0"),
            ("HEADER_READ_TIMEOUT", "0s"),
            ("REQUEST_TIMEOUT", "0s"),
            ("MAX_CONNECTIONS", "0"),
        ],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    let output = child.output();
    assert_eq!(status.code(), Some(78), "{output}");
    assert!(
        output.contains("invalid configuration: 3 problems"),
        "{output}"
    );
    for variable in ["HEADER_READ_TIMEOUT", "REQUEST_TIMEOUT", "MAX_CONNECTIONS"] {
        assert!(
            output.contains(&format!("  {variable}: ")),
            "{variable}: {output}"
        );
    }

    // Past tokio's semaphore it once panicked the serve loop while the port
    // stayed open: now a configuration error.
    let mut child = Child::example(
        "production",
        &[("PORT", "0"), ("MAX_CONNECTIONS", "2305843009213693952")],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78), "{}", child.output());
    assert!(
        child.output().contains("MAX_CONNECTIONS: between 1 and"),
        "{}",
        child.output()
    );
}

#[test]
fn trusting_the_whole_internet_is_warned_about_loudly() {
    let (mut child, _) = Child::production(&[("TRUSTED_PROXIES", "10.0.0.0/8,0.0.0.0/0")]);
    let warning = child.wait_for_line("TRUSTED_PROXIES contains a /0 block", GENEROUS);
    assert!(warning.contains("WARN"), "{warning}");
}

/// Sends `bytes` on a fresh connection and reads what comes back until the
/// server closes or `bound` passes.
async fn send_and_read(
    addr: std::net::SocketAddr,
    bytes: Vec<u8>,
    bound: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the client is done writing.
    let _ = stream.write_all(&bytes).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(bound, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn a_head_past_32_kib_is_431_and_unfinished_heads_hold_little_memory() {
    use std::time::Duration;
    let (child, addr) = Child::production(&[]);
    let runtime = seaworthy_tests::runtime();

    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 40 * 1024));
    big.extend(b"\r\n\r\n");
    let response = runtime.block_on(send_and_read(addr, big, Duration::from_secs(10)));
    assert!(response.starts_with("HTTP/1.1 431"), "{response:.200}");
    // hyper's own answer, before any layer: an empty body, and so none of
    // the headers that guard a rendered page (docs/layers.md).
    assert!(
        response.to_ascii_lowercase().contains("content-length: 0"),
        "{response}"
    );
    let ok = runtime.block_on(send_and_read(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::from_secs(10),
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    // 300 clients each send 96 KiB of a head that never ends. hyper alone
    // buffers up to ~400 KiB of each; here each is cut at 32 KiB.
    let before = seaworthy_tests::rss(child.pid());
    let held: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut streams = Vec::new();
        for _ in 0..300 {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
            for n in 0..96 {
                head.extend(format!("X-Pad-{n}: {}\r\n", "b".repeat(1000)).as_bytes());
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&head)).await;
            streams.push(stream);
        }
        streams
    });
    std::thread::sleep(Duration::from_millis(500));
    let grown = seaworthy_tests::rss(child.pid()).saturating_sub(before);
    eprintln!("RSS grew by {} KiB for 300 unfinished heads", grown >> 10);
    assert!(
        grown < 24 << 20,
        "RSS grew by {} KiB for 300 unfinished heads",
        grown >> 10
    );
    drop(held);
}

#[test]
fn expect_100_continue_over_max_body_is_413_at_once() {
    use std::time::Duration;
    let (_child, addr) = Child::production(&[("MAX_BODY", "1KiB")]);
    let runtime = seaworthy_tests::runtime();
    let response = runtime.block_on(send_and_read(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\nExpect: 100-continue\r\n\r\n"
            .to_vec(),
        Duration::from_secs(5),
    ));
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(!response.contains("100 Continue"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{response}"
    );
    // Within the limit, the client is told to go on and is echoed.
    let response = runtime.block_on(send_and_read(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
            .to_vec(),
        Duration::from_secs(5),
    ));
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("hello"),
        "{response}"
    );
}

#[test]
fn smuggled_paths_in_every_encoding_are_400_before_routing() {
    use std::time::Duration;
    let (_child, addr) = Child::production(&[]);
    let runtime = seaworthy_tests::runtime();
    for path in [
        "/%252e%252e/etc/passwd",
        "/static/..;/health",
        "/static/%c0%ae%c0%ae/health",
        "/static/../health",
        "/static/%2e%2e/health",
        "/a%252fb",
        "/%u002e%u002e/",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response = runtime.block_on(send_and_read(
            addr,
            request.into_bytes(),
            Duration::from_secs(5),
        ));
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("x-content-type-options: nosniff"),
            "{path}: {response}"
        );
    }
    let fine = runtime.block_on(send_and_read(
        addr,
        b"GET /?q=100%25 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::from_secs(5),
    ));
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
}

#[test]
fn probe_details_follow_the_resolved_client_and_probes_answer_get_and_head_only() {
    use std::time::Duration;
    // nginx on this host in front: every client arrives from loopback.
    let (_child, addr) = Child::production(&[("TRUSTED_PROXIES", "127.0.0.1/32")]);
    let runtime = seaworthy_tests::runtime();
    let get = |extra: &str| {
        let request =
            format!("GET /health/ready HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
        runtime.block_on(send_and_read(
            addr,
            request.into_bytes(),
            Duration::from_secs(5),
        ))
    };
    // A client on this machine itself sees the details...
    let local = get("");
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    assert!(local.contains("observedValue"), "{local}");
    // ...a client on the internet behind the proxy does not.
    let remote = get("X-Forwarded-For: 203.0.113.5\r\n");
    assert!(remote.starts_with("HTTP/1.1 200"), "{remote}");
    assert!(!remote.contains("observedValue"), "{remote}");
    // Pass, or warn if this machine's disk is nearly full (the disk check).
    assert!(
        remote.contains("\"status\":\"pass\"") || remote.contains("\"status\":\"warn\""),
        "{remote}"
    );

    for method in ["POST", "DELETE", "PUT", "PATCH", "OPTIONS"] {
        let request = format!(
            "{method} /health/ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let response = runtime.block_on(send_and_read(
            addr,
            request.into_bytes(),
            Duration::from_secs(5),
        ));
        assert!(response.starts_with("HTTP/1.1 405"), "{method}: {response}");
        assert!(
            response.to_ascii_lowercase().contains("allow: get, head"),
            "{method}: {response}"
        );
    }
    let head = runtime.block_on(send_and_read(
        addr,
        b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::from_secs(5),
    ));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn a_secret_file_that_never_ends_stops_the_start_at_once() {
    let mut child = Child::example(
        "production",
        &[("PORT", "0"), ("REDIS_URL_FILE", "/dev/zero")],
    );
    let (status, waited) = child.wait_exit(GENEROUS);
    let output = child.output();
    assert_eq!(status.code(), Some(78), "{output}");
    assert!(
        output.contains("REDIS_URL_FILE") && output.contains("not a regular file"),
        "{output}"
    );
    // It once read /dev/zero into memory (1.6 GB in 4 s) until killed.
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
}

#[test]
fn sighup_sigusr1_and_sigalrm_never_kill_the_server_and_sigquit_drains() {
    use seaworthy_tests::Signal;
    use std::time::Duration;
    let (mut child, addr) = Child::production(&[("SHUTDOWN_DRAIN_DELAY", "0s")]);
    let runtime = seaworthy_tests::runtime();
    let get = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        send_and_read(addr, request.into_bytes(), Duration::from_secs(20))
    };
    // A request in flight while the signals arrive.
    let slow = runtime.spawn(get("/slow?ms=1500"));
    std::thread::sleep(Duration::from_millis(200));
    for signal in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGALRM] {
        child.signal(signal);
    }
    child.wait_for_line(
        "SIGHUP: the configuration was re-read and is valid",
        GENEROUS,
    );
    child.wait_for_line("signal=\"SIGUSR1\"", GENEROUS);
    child.wait_for_line("signal=\"SIGALRM\"", GENEROUS);
    assert!(runtime.block_on(get("/")).starts_with("HTTP/1.1 200"));
    let answered = runtime.block_on(slow).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // SIGQUIT drains like SIGTERM: the request in flight is answered.
    let slow = runtime.spawn(get("/slow?ms=1000"));
    std::thread::sleep(Duration::from_millis(200));
    child.signal(Signal::SIGQUIT);
    let answered = runtime.block_on(slow).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
}

/// `count` sockets from `from` (a loopback address) to `addr` that never
/// send a byte.
fn idle_flood(from: &str, addr: std::net::SocketAddr, count: usize) -> Vec<std::net::TcpStream> {
    let runtime = seaworthy_tests::runtime();
    runtime.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
            if let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(2), socket.connect(addr)).await
            {
                streams.push(stream.into_std().unwrap());
            }
        }
        streams
    })
}

/// `GET path` from 127.0.0.1, answered within `bound`, or `None`.
fn probe(addr: std::net::SocketAddr, path: &str, bound: std::time::Duration) -> Option<String> {
    let runtime = seaworthy_tests::runtime();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let response = runtime.block_on(async {
        tokio::time::timeout(bound, send_and_read(addr, request.into_bytes(), bound)).await
    });
    response.ok().filter(|text| !text.is_empty())
}

#[test]
fn one_client_flooding_idle_sockets_cannot_starve_the_probes() {
    use std::time::Duration;
    let (mut child, addr) =
        Child::production(&[("MAX_CONNECTIONS", "400"), ("HEADER_READ_TIMEOUT", "2s")]);
    // 600 sockets from 127.0.0.2 that never send a byte: more than the pool.
    let flood = idle_flood("127.0.0.2", addr, 600);
    assert!(flood.len() >= 500, "only {} connected", flood.len());
    child.wait_for_line("a client reached its limit of open connections", GENEROUS);
    // The probe, from another address, is answered at once.
    let answer = probe(addr, "/health/ready", Duration::from_secs(5));
    let answer = answer.unwrap_or_else(|| panic!("the probe starved; output:\n{}", child.output()));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // And the flood's sockets are closed after the header-read timeout,
    // not the 75 s keep-alive: the server reads EOF-ready sockets.
    let started = std::time::Instant::now();
    let mut closed = 0;
    for mut stream in flood {
        use std::io::Read;
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0_u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => closed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            other => panic!("a flood socket was not closed: {other:?}"),
        }
    }
    eprintln!("{closed} closed in {:?}", started.elapsed());
    assert!(closed >= 500, "{closed} closed");
    // The admitted ones waited for the header-read timeout, not longer.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_health_port_answers_while_the_main_pool_is_full() {
    use std::time::Duration;
    let (mut child, addr) = Child::production(&[
        ("MAX_CONNECTIONS", "100"),
        ("MAX_CONNECTIONS_PER_IP", "0"),
        ("HEALTH_PORT", "0"),
    ]);
    let line = child.wait_for_line("health probes on their own port", GENEROUS);
    let health: std::net::SocketAddr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let _flood = idle_flood("127.0.0.2", addr, 300);
    // The main port's pool is full (the flood works)...
    assert_eq!(probe(addr, "/health/ready", Duration::from_secs(1)), None);
    // ...and the probes' own port answers, with the security headers.
    let answer = probe(health, "/health/ready", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the health port starved; output:\n{}", child.output()));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{answer}"
    );
    // Only the probes there.
    let other = probe(health, "/", Duration::from_secs(5)).unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}

#[test]
fn out_of_descriptors_one_clients_flood_leaves_room_for_the_probes() {
    use std::time::Duration;
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "ulimit -n 256 && exec \"$0\""])
        .arg(seaworthy_tests::example_path("production"))
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("RATE_LIMIT", "1000000/s")
        .env("RATE_LIMIT_BURST", "1000000");
    let mut child = Child::spawn(command);
    let addr = seaworthy_tests::listening_addr(&child.wait_for_line("listening on http", GENEROUS));
    let _flood = idle_flood("127.0.0.2", addr, 400);
    for _ in 0..5 {
        let answer = probe(addr, "/health/ready", Duration::from_secs(5))
            .unwrap_or_else(|| panic!("the probe starved; output:\n{}", child.output()));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(child.count("accept failed"), 0, "{}", child.output());
}

#[test]
fn clients_that_never_read_their_responses_are_cut_after_the_write_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    let (child, addr) = Child::production(&[("WRITE_TIMEOUT", "1s"), ("MAX_BODY", "8MiB")]);
    let runtime = seaworthy_tests::runtime();
    let before = seaworthy_tests::rss(child.pid());
    // 20 connections each POST 6 MiB to /echo and never read the echo:
    // more than the kernel's socket buffers take, so the server's writes
    // wait on the client.
    let body = vec![b'x'; 6 << 20];
    let streams: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..20 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut stream = socket.connect(addr).await.unwrap();
            let head = format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&body).await.unwrap();
            streams.push(stream);
        }
        streams
    });
    let held = seaworthy_tests::rss(child.pid()).saturating_sub(before);
    // Past the write timeout (and well before the 75 s keep-alive), every
    // connection has been cut: reading now finds its end, not a response
    // that goes on.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    runtime.block_on(async {
        use tokio::io::AsyncReadExt;
        for mut stream in streams {
            let mut sink = vec![0_u8; 1 << 16];
            let mut read = 0;
            let ended = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
            })
            .await;
            assert!(
                ended.is_ok(),
                "a connection was not cut ({read} bytes read)"
            );
            assert!(read < 6 << 20, "the whole echo arrived: not cut");
        }
    });
    let after = seaworthy_tests::rss(child.pid()).saturating_sub(before);
    eprintln!(
        "RSS above the start: {} MiB while held, {} MiB after the cut; reads ended in {:?}",
        held >> 20,
        after >> 20,
        started.elapsed()
    );
}

#[test]
fn a_failed_new_version_takes_the_processes_it_started_with_it() {
    use seaworthy_tests::{Signal, is_gone, listening_addr, signal, wait_gone};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    let dir = TempDir::new("upgrade-grandchild");
    let app = dir.0.join("app");
    std::fs::copy(seaworthy_tests::example_path("production"), &app).unwrap();
    let mut command = std::process::Command::new(&app);
    command
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("UPGRADE_TIMEOUT", "1s")
        .env("SHUTDOWN_DRAIN_DELAY", "0s");
    let mut child = Child::spawn(command);
    let addr = listening_addr(&child.wait_for_line("listening on http", GENEROUS));

    // A "new version" that starts a child of its own (holding the sockets it
    // was given) and never gets ready.
    let pid_file = dir.0.join("grandchild.pid");
    let script = format!(
        "#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n",
        pid_file.display()
    );
    let staged = dir.0.join("app.new");
    std::fs::write(&staged, script).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staged, &app).unwrap();
    signal(child.pid(), Signal::SIGUSR2);
    child.wait_for_line("upgrade failed; still serving", GENEROUS);
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .expect("the script wrote its child's pid");
    let gone = std::panic::catch_unwind(|| wait_gone(grandchild, GENEROUS));
    if !is_gone(grandchild) {
        // Ours (our child's child): never left behind.
        signal(grandchild, Signal::SIGKILL);
    }
    assert!(
        gone.is_ok(),
        "the failed version's own child outlived the rollback"
    );

    // Once the server exits, nobody holds the socket: connections are
    // refused, not left hanging in a queue nobody accepts from.
    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "something still listens on {addr}");
}

#[test]
fn every_bad_variable_is_named_at_once_whatever_kind_of_value_it_is() {
    let bad = [
        "HOST",
        "PORT",
        "SHUTDOWN_DRAIN_DELAY",
        "SHUTDOWN_TIMEOUT",
        "RATE_LIMIT",
        "RATE_LIMIT_BURST",
        "TRUSTED_PROXIES",
        "MAX_BODY",
        "REQUEST_TIMEOUT",
        "HEADER_READ_TIMEOUT",
        "WRITE_TIMEOUT",
        "MAX_CONNECTIONS",
        "MAX_CONNECTIONS_PER_IP",
        "HEALTH_PORT",
        "UPGRADE_TIMEOUT",
    ];
    let env: Vec<(&str, &str)> = bad.iter().map(|name| (*name, "bad")).collect();
    let mut child = Child::example("production", &env);
    let (status, _) = child.wait_exit(GENEROUS);
    let output = child.output();
    assert_eq!(status.code(), Some(78), "{output}");
    // RATE_LIMIT, whose type no stand-in value fits, once hid 10 of them.
    assert!(
        output.contains(&format!("invalid configuration: {} problems", bad.len())),
        "{output}"
    );
    for name in bad {
        assert!(
            output.contains(&format!("  {name} (environment): invalid, expected ")),
            "{name}: {output}"
        );
    }
    assert!(!output.contains("expected invalid"), "{output}");

    // A value that stands inside the expectation leaves it whole.
    let mut child = Child::example("production", &[("RATE_LIMIT", "0/s")]);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78));
    assert!(
        child
            .output()
            .contains("expected a rate like 100/min, 10/s or 5000/h"),
        "{}",
        child.output()
    );
}

#[test]
fn an_http2_peer_that_never_opens_its_window_is_cut_after_the_write_timeout() {
    use std::time::{Duration, Instant};
    let (child, addr) = Child::production(&[("WRITE_TIMEOUT", "1s"), ("MAX_BODY", "2MiB")]);
    let runtime = seaworthy_tests::runtime();
    let before = seaworthy_tests::rss(child.pid());
    // Two connections, each 50 streams POSTing 1 MiB to /echo, with a
    // stream window of 0: the server may send headers, never data.
    let (held, ended) = runtime.block_on(async {
        let mut responses = Vec::new();
        let mut connections = Vec::new();
        for _ in 0..2 {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut client, connection) = h2::client::Builder::new()
                .initial_window_size(0)
                .handshake::<_, bytes::Bytes>(tcp)
                .await
                .unwrap();
            connections.push(tokio::spawn(connection));
            for _ in 0..50 {
                client = client.ready().await.unwrap();
                let request = http::Request::post("http://x/echo").body(()).unwrap();
                let (response, mut send) = client.send_request(request, false).unwrap();
                send.send_data(bytes::Bytes::from(vec![b'x'; 1 << 20]), true)
                    .unwrap();
                responses.push(response);
            }
        }
        // Every response head comes (headers need no window)...
        for response in &mut responses {
            let head = tokio::time::timeout(Duration::from_secs(20), response).await;
            assert!(
                matches!(head, Ok(Ok(ref r)) if r.status() == 200),
                "{head:?}"
            );
        }
        let held = seaworthy_tests::rss(child.pid()).saturating_sub(before);
        // ...then both connections are cut, well before the 75 s keep-alive.
        let started = Instant::now();
        for connection in connections {
            let end = tokio::time::timeout(Duration::from_secs(20), connection).await;
            assert!(
                end.is_ok(),
                "an HTTP/2 connection with shut windows was not cut"
            );
        }
        (held, started.elapsed())
    });
    let after = seaworthy_tests::rss(child.pid()).saturating_sub(before);
    eprintln!(
        "RSS above the start: {} MiB while held, {} MiB after the cut ({ended:?} after the heads)",
        held >> 20,
        after >> 20
    );
    assert!(ended < Duration::from_secs(10), "{ended:?}");
}
