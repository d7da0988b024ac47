//! Helpers for the end-to-end tests: run a built example as a child
//! process, read its output line by line, send it real signals.
//!
//! The modules: `child` (the process harness, [`Child`]), [`http1`] (a
//! raw HTTP/1.1 client), [`load`] (the tagged load generator), [`certs`],
//! [`pebble`] and [`redis_server`] (real servers for a test); process and
//! port helpers stay here.
//!
//! Every wait polls its condition with a generous bound and fails with the
//! whole output seen so far, so a failure says what the process did.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub mod certs;
mod child;
pub mod pebble;
pub mod redis_server;

/// The two flagships that keep the contract: axum on seaworthy's server,
/// and actix-web with seaworthy-actix.
pub const FLAGSHIPS: [&str; 2] = ["production", "actix"];

/// A bound for waits that should take milliseconds: generous, so that a
/// loaded CI machine does not fail a correct program.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// The path of a built example of the `seaworthy-examples` crate, building
/// it first if `cargo test` has not.
pub fn example_path(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        static BUILD: Once = Once::new();
        BUILD.call_once(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = Command::new(cargo)
                .args(["build", "-p", "seaworthy-examples", "--examples"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the examples failed");
        });
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub use child::Child;

/// A private directory for one test, removed at its end.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `seaworthy-NAME-PID` in the system's temporary directory, empty.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("seaworthy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the temporary directory can be made");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The resident memory of process `pid`, in bytes (`VmRSS`).
pub fn rss(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process exists");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS in kB")
        * 1024
}

/// A tokio runtime for a test's clients: two worker threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The pid in a `listening on http://ADDR (pid N)` line.
pub fn listening_pid(line: &str) -> u32 {
    line.rsplit("(pid ")
        .next()
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// Whether process `pid` is gone (or a zombie: exited, not yet reaped).
pub fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat[stat.rfind(')').map_or(0, |end| end + 2)..].starts_with('Z'),
        Err(_) => true,
    }
}

/// Polls up to `bound` for process `pid` to be gone.
///
/// # Panics
///
/// When it is still running after `bound`.
pub fn wait_gone(pid: u32, bound: Duration) {
    let deadline = Instant::now() + bound;
    while !is_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} still running after {bound:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// How many descriptors process `pid` holds.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Processes a test came to own without starting them itself (the new
/// processes of an upgrade): killed by pid when the test ends, pass or
/// fail, if still running.
#[derive(Debug, Default)]
pub struct Adopted(Vec<u32>);

impl Adopted {
    /// Takes `pid` into care.
    pub fn push(&mut self, pid: u32) {
        self.0.push(pid);
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !is_gone(pid) {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
        .expect("the process can be signalled");
}

/// A TCP port free on loopback right now (for a setting that takes a
/// port: the flagship's `HEALTH_PORT`, `HTTP_REDIRECT_PORT`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port can be bound")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// The address in a `listening on http://ADDR (pid N)` line.
pub fn listening_addr(line: &str) -> std::net::SocketAddr {
    let rest = line
        .split("://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let addr = rest.split_whitespace().next().unwrap_or_default();
    addr.parse()
        .unwrap_or_else(|_| panic!("bad address {addr:?} in {line:?}"))
}

/// A process's CPU time (user + system), from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process exists");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').expect("stat has a command") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The status (`pass`, `warn`, `fail`) of the check `name` in a detailed
/// health body (the flagship's JSON), if the body has it. Tests read their
/// own check's status: the overall one may warn for another reason (a
/// machine with little free disk makes the disk check warn).
pub fn check_status(body: &str, name: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    Some(json["checks"][name][0]["status"].as_str()?.to_owned())
}

pub mod http1;

pub mod load;
