//! Socket inheritance into both flagships (axum on seaworthy's server, and
//! actix-web): the real `systemd-socket-activate`, and a parent that builds
//! `LISTEN_FDS` itself, names included.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use seaworthy_tests::http1::Conn;
use seaworthy_tests::{Child, FLAGSHIPS, GENEROUS, Signal, example_path, free_port};

fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Opens sockets (or a file), moves them to descriptors 3, 4, …, sets the
/// `LISTEN_*` variables for its own pid, and execs the flagship: what
/// systemd does, written out.
const PASS_FDS: &str = r#"
import os, socket, sys
mode, exe = sys.argv[1], sys.argv[2]
keep = []
if mode == "sockets":
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        keep.append(s)
    fds = [s.fileno() for s in keep]
    names = "admin:http"
    print("ports", *[s.getsockname()[1] for s in keep], flush=True)
else:
    f = open("/dev/null")
    keep.append(f)
    fds = [f.fileno()]
    names = "http"
high = [os.dup(fd) for fd in fds]
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
pid = os.getpid() if mode != "other-pid" else os.getpid() + 1
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(pid), LISTEN_FDNAMES=names)
os.execv(exe, [exe])
"#;

fn pass_fds(example: &str, mode: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(python());
    command
        .args(["-c", PASS_FDS, mode])
        .arg(example_path(example))
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    Child::spawn(command)
}

#[test]
fn adopts_the_socket_named_http_from_listen_fds() {
    for example in FLAGSHIPS {
        let mut child = pass_fds(
            example,
            "sockets",
            &[("SHUTDOWN_DRAIN_DELAY", "0s"), ("PORT", "1")],
        );
        let ports = child.wait_for_line("ports ", GENEROUS);
        let http_port: u16 = ports.split_whitespace().nth(2).unwrap().parse().unwrap();
        let listening = child.wait_for_line("listening on http", GENEROUS);
        // PORT is ignored: the inherited socket named "http" (the second) serves.
        let addr: SocketAddr = ([127, 0, 0, 1], http_port).into();
        assert_eq!(seaworthy_tests::listening_addr(&listening), addr);
        child.wait_for_line("adopted inherited socket", GENEROUS);
        let line = child.wait_for_line("inherited sockets from systemd", GENEROUS);
        assert!(line.contains(r#"["admin", "http"]"#), "{line}");

        let mut conn = Conn::connect(addr).unwrap();
        assert_eq!(conn.get("/").unwrap().body, b"hello from seaworthy\n");
        child.signal(Signal::SIGTERM);
        let (status, _) = child.wait_exit(GENEROUS);
        assert_eq!(status.code(), Some(0), "{example}: {}", child.output());
    }
}

#[test]
fn a_descriptor_that_is_not_a_socket_is_refused_with_a_clear_error() {
    for example in FLAGSHIPS {
        let mut child = pass_fds(example, "file", &[]);
        let (status, _) = child.wait_exit(GENEROUS);
        assert_eq!(status.code(), Some(69), "{example}: {}", child.output());
        child.wait_for_line(
            r#"inherited systemd socket "http" (index 0) is not a socket"#,
            Duration::ZERO,
        );
    }
}

#[test]
fn variables_meant_for_another_process_are_ignored() {
    for example in FLAGSHIPS {
        let port = free_port();
        let mut child = pass_fds(
            example,
            "other-pid",
            &[("SHUTDOWN_DRAIN_DELAY", "0s"), ("PORT", &port.to_string())],
        );
        let listening = child.wait_for_line("listening on http", GENEROUS);
        assert_eq!(
            seaworthy_tests::listening_addr(&listening),
            SocketAddr::from(([127, 0, 0, 1], port))
        );
        assert_eq!(child.count("adopted inherited socket"), 0);
        child.signal(Signal::SIGTERM);
        let (status, _) = child.wait_exit(GENEROUS);
        assert_eq!(status.code(), Some(0), "{example}: {}", child.output());
    }
}

#[test]
fn systemd_socket_activate_hands_its_socket_over() {
    for example in FLAGSHIPS {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new("systemd-socket-activate");
        command
            .arg(format!("--listen={addr}"))
            .arg("--fdname=http")
            .args(["-E", "RUST_LOG=info", "-E", "SHUTDOWN_DRAIN_DELAY=0s"])
            .arg(example_path(example));
        let mut child = Child::spawn(command);
        child.wait_for_line("Listening on", GENEROUS);

        // The first connection starts the service, which adopts the socket and
        // answers it: nothing is refused while it starts.
        let mut conn = Conn::connect(addr).unwrap();
        assert_eq!(conn.get("/").unwrap().status, 200);
        let line = child.wait_for_line("adopted inherited socket", GENEROUS);
        assert!(line.contains(r#"name: "http""#), "{line}");
        assert_eq!(conn.get("/health/ready").unwrap().status, 200);

        child.signal(Signal::SIGTERM);
        let (status, _) = child.wait_exit(GENEROUS);
        assert_eq!(status.code(), Some(0), "{example}: {}", child.output());
    }
}

/// Opens two listening sockets and a socket pair, all inheritable, names
/// them in the upgrade variables with a descriptor that is not open between
/// them, and execs the probe: what an old process passes, with one
/// descriptor gone bad.
const HAND_OVER_ONE_BAD: &str = r#"
import os, socket, sys
exe = sys.argv[1]
keep = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.set_inheritable(True)
    keep.append(s)
ours, theirs = socket.socketpair()
theirs.set_inheritable(True)
first, last, control = keep[0].fileno(), keep[1].fileno(), theirs.fileno()
bad = 900
print("fds", first, last, control, flush=True)
os.environ.update(
    SEAWORTHY_UPGRADE_FDS=f"{first}:a:0,{bad}:b:0,{last}:c:0",
    SEAWORTHY_UPGRADE_CONTROL=str(control),
    SEAWORTHY_UPGRADE_PARENT=str(os.getppid()),
)
os.execv(exe, [exe])
"#;

#[test]
fn a_bad_descriptor_in_a_hand_over_leaves_none_of_the_others_open() {
    let output = Command::new(python())
        .args(["-c", HAND_OVER_ONE_BAD])
        .arg(env!("CARGO_BIN_EXE_adopt_probe"))
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {text}"))
            .to_owned()
    };
    let passed: Vec<String> = line("fds ").split(' ').map(str::to_owned).collect();
    let error = line("error: ");
    assert!(
        error.contains("900") && error.contains("not open"),
        "{error}"
    );
    let open = line("open: ");
    let open: Vec<&str> = open.split(',').collect();
    for fd in &passed {
        assert!(
            !open.contains(&fd.as_str()),
            "descriptor {fd} was left open after the failed adoption: {open:?}"
        );
    }
}
