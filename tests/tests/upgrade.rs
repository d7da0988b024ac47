//! Zero-downtime upgrades of the flagship, under load from a client that
//! reconciles every request in three modes (a new connection each, kept
//! alive, HTTP/2): by exec on SIGUSR2, with rollback of a new version that
//! panics or never gets ready, SIGTERM in the middle of an upgrade, the
//! hand-off socket to a process the old one did not start, and systemd's
//! notifications.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use seaworthy_tests::load::{Load, Mode, Tally};
use seaworthy_tests::{
    Adopted, Child, GENEROUS, Signal, TempDir, example_path, fd_count, is_gone, listening_addr,
    listening_pid, runtime, signal, wait_gone,
};

/// The flagship's settings for these tests: out of the rate limit's way,
/// no drain delay for the final stop.
const ENV: [(&str, &str); 4] = [
    ("RATE_LIMIT", "1000000/s"),
    ("RATE_LIMIT_BURST", "1000000"),
    ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ("RUST_LOG", "info"),
];

/// Starts `program` (the flagship or a copy) with the test settings and
/// `env`; waits for its `listening on` line.
fn start(program: &Path, env: &[(&str, &str)]) -> (Child, SocketAddr, u32) {
    let mut command = Command::new(program);
    command.env("PORT", "0").envs(ENV).envs(env.iter().copied());
    let mut child = Child::spawn(command);
    let line = child.next_line("listening on http", GENEROUS);
    let pid = listening_pid(&line);
    assert_eq!(pid, child.pid());
    (child, listening_addr(&line), pid)
}

/// Sends SIGUSR2 to `pid` and waits for the new process's `listening on`
/// line; returns its pid.
fn upgrade(child: &mut Child, pid: u32, adopted: &mut Adopted) -> u32 {
    signal(pid, Signal::SIGUSR2);
    let line = child.next_line("listening on http", GENEROUS);
    let new = listening_pid(&line);
    adopted.push(new);
    assert_ne!(new, pid, "the pid changes at each upgrade");
    new
}

fn assert_no_failure(tallies: &BTreeMap<Mode, Tally>, output: &str) {
    for (mode, tally) in tallies {
        let mode = *mode;
        assert!(tally.ok > 0, "{mode:?} got nothing through: {tally}");
        assert_eq!(
            tally.sent,
            tally.ok + tally.failed(),
            "{mode:?}: unreconciled"
        );
        assert_eq!(
            tally.failed(),
            0,
            "{mode:?} lost requests: {tally}\noutput:\n{output}"
        );
    }
}

/// Copies the flagship where a deploy would put it, so that the test can
/// replace the file as a deploy does.
fn deployed(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("app");
    std::fs::copy(example_path("production"), &path).unwrap();
    path
}

/// Replaces the file at `path` by `with`, atomically (a rename, as a deploy
/// does: the running executable's inode stays).
fn deploy(path: &Path, with: &Path) {
    let staged = path.with_extension("new");
    std::fs::copy(with, &staged).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// A "new version" that never reports ready: it holds the sockets it was
/// given and sleeps.
fn sleeper(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("sleeper");
    std::fs::write(&path, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// The pid in the next `upgrade: started the new process pid=N` line.
fn started_pid(child: &mut Child) -> u32 {
    let started = child.next_line("upgrade: started the new process", GENEROUS);
    started
        .split("pid=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started:?}"))
}

#[test]
fn twenty_upgrades_under_load_lose_no_request_and_leak_no_descriptor() {
    let mut adopted = Adopted::default();
    let (mut child, addr, first) = start(&example_path("production"), &[]);

    // The first upgrade, quiet, sets the descriptor count to compare with.
    let mut pid = upgrade(&mut child, first, &mut adopted);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success(), "the old process exits 0 after an upgrade");
    let quiet_fds = fd_count(pid);

    let rt = runtime();
    let load = rt.block_on(async { Load::start(addr, 3) });
    let mut pids = vec![first, pid];
    for _ in 1..20 {
        std::thread::sleep(Duration::from_millis(150));
        let old = pid;
        pid = upgrade(&mut child, old, &mut adopted);
        pids.push(pid);
        wait_gone(old, GENEROUS);
    }
    std::thread::sleep(Duration::from_millis(150));
    let tallies = rt.block_on(load.stop());
    for (mode, tally) in &tallies {
        eprintln!("{mode:?}: {tally}");
    }
    assert_no_failure(&tallies, &child.output());

    // Only its listener, its own connections (gone now that the load
    // stopped) and what every process has: as many as after the first.
    let deadline = Instant::now() + GENEROUS;
    while fd_count(pid) != quiet_fds && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fd_count(pid),
        quiet_fds,
        "descriptors after 20 upgrades: {:?}",
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .collect::<Vec<_>>()
    );

    signal(pid, Signal::SIGTERM);
    wait_gone(pid, GENEROUS);
    pids.dedup();
    assert_eq!(pids.len(), 21, "a new pid at every upgrade: {pids:?}");
}

#[test]
fn a_new_version_that_panics_or_never_gets_ready_is_rolled_back_while_serving() {
    let dir = TempDir::new("rollback");
    let app = deployed(&dir);
    let mut adopted = Adopted::default();
    let (mut child, addr, pid) = start(&app, &[("UPGRADE_TIMEOUT", "2s")]);
    let rt = runtime();
    let load = rt.block_on(async { Load::start(addr, 2) });

    // A build that panics as it starts.
    deploy(&app, Path::new(env!("CARGO_BIN_EXE_panic_at_start")));
    signal(pid, Signal::SIGUSR2);
    let failed = child.next_line("upgrade failed; still serving", GENEROUS);
    assert!(failed.contains("exited before it was ready"), "{failed}");

    // A build that never reports ready (it holds the sockets and sleeps);
    // a second upgrade meanwhile is refused.
    let sleeper = sleeper(&dir);
    deploy(&app, &sleeper);
    signal(pid, Signal::SIGUSR2);
    let stuck = started_pid(&mut child);
    adopted.push(stuck);
    signal(pid, Signal::SIGUSR2);
    let refused = child.next_line("upgrade failed; still serving", GENEROUS);
    assert!(refused.contains("already under way"), "{refused}");
    let failed = child.next_line("upgrade failed; still serving", GENEROUS);
    assert!(failed.contains("not ready after 2s"), "{failed}");
    wait_gone(stuck, GENEROUS);

    // The real build again: the next upgrade succeeds.
    deploy(&app, &example_path("production"));
    let new = upgrade(&mut child, pid, &mut adopted);
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    let tallies = rt.block_on(load.stop());
    assert_no_failure(&tallies, &child.output());
    signal(new, Signal::SIGTERM);
    wait_gone(new, GENEROUS);
}

#[test]
fn sigterm_during_an_upgrade_aborts_it_and_drains_without_losing_a_request() {
    let dir = TempDir::new("sigterm-upgrade");
    let app = deployed(&dir);
    let mut adopted = Adopted::default();
    let (mut child, addr, pid) = start(&app, &[("UPGRADE_TIMEOUT", "30s")]);
    let sleeper = sleeper(&dir);
    deploy(&app, &sleeper);

    let rt = runtime();
    let slow = rt.spawn(async move {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        answer
    });
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, Signal::SIGUSR2);
    let stuck = started_pid(&mut child);
    adopted.push(stuck);
    child.signal(Signal::SIGTERM);

    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
    assert!(
        child
            .output()
            .contains("the shutdown began while the new process was starting"),
        "{}",
        child.output()
    );
    assert!(is_gone(stuck), "the half-started process is killed");
    let answer = rt.block_on(slow).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("slept 1500 ms"), "{answer}");
}

#[test]
fn a_process_the_old_one_did_not_start_takes_over_through_the_handoff_socket() {
    let dir = TempDir::new("handoff");
    let socket = dir.0.join("handoff.sock");
    let socket_var = socket.to_str().unwrap();
    let mut adopted = Adopted::default();
    let (mut old, addr, _) = start(
        &example_path("production"),
        &[("UPGRADE_SOCKET", socket_var)],
    );
    let rt = runtime();
    let load = rt.block_on(async { Load::start(addr, 2) });
    std::thread::sleep(Duration::from_millis(300));

    // Started by the test (a supervisor), not by the old process; same port.
    let port = addr.port().to_string();
    let mut command = Command::new(example_path("production"));
    command
        .envs(ENV)
        .env("PORT", &port)
        .env("UPGRADE_SOCKET", socket_var);
    let mut new = Child::spawn(command);
    adopted.push(new.pid());
    let line = new.next_line("listening on http", GENEROUS);
    assert_eq!(listening_pid(&line), new.pid());
    assert_eq!(listening_addr(&line), addr);
    let (status, _) = old.wait_exit(GENEROUS);
    assert!(status.success(), "{}", old.output());
    assert!(
        old.output()
            .contains("hand-over: the new process took over")
    );

    std::thread::sleep(Duration::from_millis(300));
    let tallies = rt.block_on(load.stop());
    assert_no_failure(&tallies, &format!("{}\n{}", old.output(), new.output()));

    // The new process serves hand-overs in turn: a third one takes over.
    let mut command = Command::new(example_path("production"));
    command
        .envs(ENV)
        .env("PORT", &port)
        .env("UPGRADE_SOCKET", socket_var);
    let mut third = Child::spawn(command);
    adopted.push(third.pid());
    third.next_line("listening on http", GENEROUS);
    let (status, _) = new.wait_exit(GENEROUS);
    assert!(status.success(), "{}", new.output());
    third.signal(Signal::SIGTERM);
    let (status, _) = third.wait_exit(GENEROUS);
    assert!(status.success());
    assert!(
        !socket.exists(),
        "the last process removes the hand-off socket"
    );
}

#[test]
fn systemd_hears_ready_reloading_mainpid_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let notify = UnixDatagram::bind(&path).unwrap();
    notify.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut adopted = Adopted::default();
    let (mut child, _, pid) = start(
        &example_path("production"),
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut buf = [0_u8; 1024];
    let mut next = || {
        let len = notify.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");

    let new = upgrade(&mut child, pid, &mut adopted);
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(next(), format!("MAINPID={new}\n"));
    assert_eq!(next(), format!("MAINPID={new}\nREADY=1\n"));
    let (status, _) = child.wait_exit(GENEROUS);
    assert!(status.success());

    signal(new, Signal::SIGTERM);
    assert_eq!(next(), "STOPPING=1\n");
    wait_gone(new, GENEROUS);
}

/// Reads the hand-off answer as a new process would: the line and the
/// descriptors attached.
fn ask_for_sockets(path: &Path) -> (std::os::unix::net::UnixStream, String, usize) {
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, RawFd};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

    let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut buf = [0_u8; 1024];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let mut fds = Vec::new();
    for cmsg in message.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            fds.extend(raw);
        }
    }
    // This test does not serve them: closed at once.
    for &fd in &fds {
        nix::unistd::close(fd).unwrap();
    }
    let len = message.bytes;
    let line = String::from_utf8_lossy(&buf[..len]).trim_end().to_owned();
    (stream, line, fds.len())
}

#[test]
fn a_handoff_asker_that_never_gets_ready_is_refused_and_the_old_process_keeps_serving() {
    use std::io::{BufRead, BufReader};

    let dir = TempDir::new("handoff-rollback");
    let socket = dir.0.join("handoff.sock");
    let (mut old, addr, pid) = start(
        &example_path("production"),
        &[
            ("UPGRADE_SOCKET", socket.to_str().unwrap()),
            ("UPGRADE_TIMEOUT", "1s"),
        ],
    );
    let rt = runtime();
    let load = rt.block_on(async { Load::start(addr, 2) });

    // This test plays a new process that takes the sockets and never says
    // ready; a second asker meanwhile is turned away.
    let (stream, line, fds) = ask_for_sockets(&socket);
    assert_eq!(line, "fds http:1", "the answer names the socket");
    assert_eq!(fds, 1, "one descriptor attached");
    let (_second, busy, none) = ask_for_sockets(&socket);
    assert!(busy.starts_with("busy"), "{busy}");
    assert!(busy.contains("already under way"), "{busy}");
    assert_eq!(none, 0);

    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    assert!(
        answer.starts_with("abort") && answer.contains("not ready after 1s"),
        "{answer:?}"
    );
    old.next_line("hand-over failed; still serving", GENEROUS);
    drop(stream);

    // Still the same process, serving; and it takes the next hand-over.
    std::thread::sleep(Duration::from_millis(300));
    let tallies = rt.block_on(load.stop());
    assert_no_failure(&tallies, &old.output());
    assert!(!is_gone(pid));
    let mut command = Command::new(example_path("production"));
    command
        .envs(ENV)
        .env("PORT", addr.port().to_string())
        .env("UPGRADE_SOCKET", socket.to_str().unwrap());
    let mut new = Child::spawn(command);
    new.next_line("listening on http", GENEROUS);
    let (status, _) = old.wait_exit(GENEROUS);
    assert!(status.success(), "{}", old.output());
    new.signal(Signal::SIGTERM);
    new.wait_exit(GENEROUS);
}

#[test]
fn the_actix_flagship_upgrades_under_load_without_losing_a_request() {
    // actix-web built without HTTP/2: new-connection and keep-alive load.
    let dir = TempDir::new("actix-upgrade");
    let app = dir.0.join("app");
    std::fs::copy(example_path("actix"), &app).unwrap();
    let mut adopted = Adopted::default();
    let (mut child, addr, first) = start(&app, &[]);
    let rt = runtime();
    let load =
        rt.block_on(async { Load::start_modes(addr, 2, &[Mode::NewConnection, Mode::KeepAlive]) });
    std::thread::sleep(Duration::from_millis(300));
    let mut pid = first;
    for _ in 0..5 {
        let old = pid;
        pid = upgrade(&mut child, old, &mut adopted);
        wait_gone(old, GENEROUS);
        std::thread::sleep(Duration::from_millis(200));
    }
    let tallies = rt.block_on(load.stop());
    assert_eq!(tallies.len(), 2);
    assert_no_failure(&tallies, &child.output());
    signal(pid, Signal::SIGTERM);
    wait_gone(pid, GENEROUS);
}

/// The parent of `pid`, from /proc.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse().ok())
        .unwrap()
}

#[test]
fn under_init_the_supervisor_outlives_each_upgrade_and_forwards_the_signals() {
    // `app init` is what a container's PID 1 runs: the server is its child;
    // after each upgrade the new server becomes its child (it is a
    // subreaper), and the signals sent to it reach the server of the day.
    let mut command = Command::new(example_path("production"));
    command
        .arg("init")
        .env("PORT", "0")
        .envs(ENV)
        .env("SHUTDOWN_DRAIN_DELAY", "0s");
    let mut init = Child::spawn(command);
    let line = init.next_line("listening on http", GENEROUS);
    let addr = listening_addr(&line);
    let mut pid = listening_pid(&line);
    assert_eq!(parent_of(pid), init.pid(), "the server is init's child");
    let rt = runtime();
    let load = rt.block_on(async { Load::start(addr, 2) });
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        let old = pid;
        // SIGUSR2 to init, not to the server: forwarded.
        signal(init.pid(), Signal::SIGUSR2);
        let line = init.next_line("listening on http", GENEROUS);
        pid = listening_pid(&line);
        assert_ne!(pid, old);
        wait_gone(old, GENEROUS);
        // The old server is gone; init adopted the new one and lives on.
        assert_eq!(parent_of(pid), init.pid());
    }
    std::thread::sleep(Duration::from_millis(200));
    let tallies = rt.block_on(load.stop());
    assert_no_failure(&tallies, &init.output());
    // SIGTERM to init drains the server; init exits with its code, 0.
    signal(init.pid(), Signal::SIGTERM);
    let (status, _) = init.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", init.output());
    wait_gone(pid, GENEROUS);
    init.wait_for_line("init: no server left; exiting", Duration::ZERO);
}
