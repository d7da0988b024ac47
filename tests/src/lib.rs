//! Helpers for the end-to-end tests: run a built example as a child
//! process, read its output line by line, send it real signals.
//!
//! Every wait polls its condition with a generous bound and fails with the
//! whole output seen so far, so a failure says what the process did.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Once;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub mod certs;
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

/// A child process whose stdout and stderr are read line by line.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// Lines before it were consumed by `next_line`.
    cursor: usize,
}

impl Child {
    /// Starts the example `name` with `env` added to the environment.
    pub fn example(name: &str, env: &[(&str, &str)]) -> Child {
        Child::example_with_args(name, &[], env)
    }

    /// Starts the example `name` with arguments and `env`.
    pub fn example_with_args(name: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut command = Command::new(example_path(name));
        command.args(args);
        command.env("RUST_LOG", "info").envs(env.iter().copied());
        Child::spawn(command)
    }

    /// Starts `command` with no standard input and its output read line by
    /// line.
    pub fn spawn(mut command: Command) -> Child {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the child starts");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        forward(stdout, sender.clone());
        forward(stderr, sender);
        Child {
            child,
            lines,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child (and only to it, by its pid).
    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal).expect("the child can be signalled");
    }

    /// Waits up to `bound` for a line containing `needle`, and returns it.
    ///
    /// # Panics
    ///
    /// When no such line comes in time, with all the output seen.
    pub fn wait_for_line(&mut self, needle: &str, bound: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {needle:?} within {bound:?}; output:\n{}",
                        self.output()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the child closed its output without a line with {needle:?}; output:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Waits up to `bound` for a line containing `needle` that comes after
    /// the last line this method returned, and returns it: for a line that
    /// appears again and again (each upgraded process's `listening on`).
    /// Lines of processes the child started, which share its output, count.
    ///
    /// # Panics
    ///
    /// When no such line comes in time, with all the output seen.
    pub fn next_line(&mut self, needle: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        // Lines already seen are scanned once; then each new line alone
        // (a busy child's access log is thousands of lines).
        if let Some(offset) = self.seen[self.cursor..]
            .iter()
            .position(|line| line.contains(needle))
        {
            let index = self.cursor + offset;
            self.cursor = index + 1;
            return self.seen[index].clone();
        }
        self.cursor = self.seen.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line);
                    self.cursor = self.seen.len();
                    let line = &self.seen[self.cursor - 1];
                    if line.contains(needle) {
                        return line.clone();
                    }
                }
                Err(_) => panic!(
                    "no new line with {needle:?} within {bound:?}; output:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Waits up to `bound` for the child to exit, then reads the rest of its
    /// output. Returns its status and how long the wait took.
    ///
    /// # Panics
    ///
    /// When it is still running after `bound` (it is killed first).
    pub fn wait_exit(&mut self, bound: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                let waited = start.elapsed();
                self.drain();
                return (status, waited);
            }
            if start.elapsed() > bound {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                panic!("still running after {bound:?}; output:\n{}", self.output());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line seen so far, joined.
    pub fn output(&self) -> String {
        self.seen.join("\n")
    }

    /// How many lines seen so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.seen
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Reads what is left of the output after the child exited.
    /// Bounded: a process the child started (an upgrade's) shares the
    /// output and may write on for as long as it serves.
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return,
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Only our own child, by its handle: never left running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward(stream: impl Read + Send + 'static, sender: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
}

impl Child {
    /// Starts the flagship example with `env`, on a free loopback port
    /// unless `env` sets `PORT`, and waits for its `listening on` line.
    /// Returns the child and the address it listens on.
    ///
    /// Every test talks from loopback, one client as far as the rate limit
    /// can tell: the limit is raised out of the way unless `env` sets
    /// `RATE_LIMIT` and `RATE_LIMIT_BURST` itself.
    pub fn production(env: &[(&str, &str)]) -> (Child, std::net::SocketAddr) {
        Child::flagship("production", env)
    }

    /// As [`production`](Self::production), for either flagship:
    /// `production` (axum on seaworthy's server) or `actix` (actix-web with
    /// seaworthy-actix), which keep one contract.
    pub fn flagship(example: &str, env: &[(&str, &str)]) -> (Child, std::net::SocketAddr) {
        let mut all: Vec<(&str, &str)> = vec![
            ("PORT", "0"),
            ("RATE_LIMIT", "1000000/s"),
            ("RATE_LIMIT_BURST", "1000000"),
        ];
        all.extend_from_slice(env);
        let mut child = Child::example(example, &all);
        let line = child.wait_for_line("listening on http", GENEROUS);
        (child, listening_addr(&line))
    }

    /// The child's CPU time so far (user + system), from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }
}

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

pub mod http1 {
    //! A minimal blocking HTTP/1.1 client over a raw socket, for tests that
    //! need to control the connection: keep it idle, send half a head,
    //! see exactly when the server closes it.

    use std::io::{self, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    /// One keep-alive connection.
    #[derive(Debug)]
    pub struct Conn {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    /// A parsed response.
    #[derive(Debug, Clone)]
    pub struct Response {
        /// The status code.
        pub status: u16,
        /// Header names in lowercase, with their values.
        pub headers: Vec<(String, String)>,
        /// The body.
        pub body: Vec<u8>,
    }

    impl Response {
        /// The first value of header `name` (lowercase).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }

        /// Whether the server said it closes the connection.
        pub fn closes(&self) -> bool {
            self.header("connection")
                .is_some_and(|value| value.eq_ignore_ascii_case("close"))
        }
    }

    impl Conn {
        /// Connects, with a 10 s read timeout.
        pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                stream,
                buf: Vec::new(),
            })
        }

        /// Sends raw bytes.
        pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.stream.write_all(bytes)
        }

        /// Sends a request (with `body` when given).
        pub fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<()> {
            let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
            if let Some(body) = body {
                request.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            request.push_str("\r\n");
            let mut bytes = request.into_bytes();
            bytes.extend_from_slice(body.unwrap_or_default());
            self.stream.write_all(&bytes)
        }

        /// Sends `GET path` and reads the response.
        pub fn get(&mut self, path: &str) -> io::Result<Response> {
            self.send("GET", path, None)?;
            self.read_response()
        }

        /// Reads one response (heads with `content-length` only).
        pub fn read_response(&mut self) -> io::Result<Response> {
            let head_end = loop {
                if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                    break at;
                }
                self.fill()?;
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.parse().ok())
                .unwrap_or(0);
            let total = head_end + 4 + length;
            while self.buf.len() < total {
                self.fill()?;
            }
            let body = self.buf[head_end + 4..total].to_vec();
            self.buf.drain(..total);
            Ok(Response {
                status,
                headers,
                body,
            })
        }

        /// Waits up to `bound` for the server to close the connection
        /// (end of file or reset). Returns how long that took, or `None`.
        pub fn wait_closed(&mut self, bound: Duration) -> Option<Duration> {
            let start = Instant::now();
            let _ = self.stream.set_read_timeout(Some(bound));
            let mut byte = [0_u8; 1];
            let closed = match self.stream.read(&mut byte) {
                Ok(0) => true,
                Ok(_) => false,
                Err(err) => !matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
            };
            let _ = self.stream.set_read_timeout(Some(Duration::from_secs(10)));
            closed.then(|| start.elapsed())
        }

        fn fill(&mut self) -> io::Result<()> {
            let mut chunk = [0_u8; 4096];
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a full response",
                ));
            }
            self.buf.extend_from_slice(&chunk[..read]);
            Ok(())
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
    }
}

pub mod load {
    //! A load client that tags every request and reconciles them all, in
    //! three modes at once: a new connection per request, a keep-alive
    //! connection, and HTTP/2. Each request is a `POST /echo` whose body is
    //! its tag; an answer counts as good only if it is a 200 that echoes
    //! that tag. Failures are counted by kind: refused, reset, early end of
    //! file, timed out, 5xx, other.
    //!
    //! A well-behaved client reconnects when the server said
    //! `Connection: close` or sent an HTTP/2 GOAWAY, so that is not a
    //! failure; a request that was sent and got no answer is. As HTTP
    //! clients do (RFC 9113 §8.7, hyper-util's pool), a request the protocol
    //! proves was never processed is sent again on a new connection and
    //! counted under `retried`: an HTTP/2 stream above the last stream id of
    //! the server's GOAWAY, or a request hyper had not yet written when the
    //! connection closed.

    use std::collections::BTreeMap;
    use std::fmt;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::Request;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    /// How one request is carried.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Mode {
        /// HTTP/1.1, a new connection for each request (`Connection: close`).
        NewConnection,
        /// HTTP/1.1 on a kept-alive connection, reconnecting when told to.
        KeepAlive,
        /// HTTP/2 (h2c, prior knowledge), many requests per connection.
        Http2,
    }

    /// The outcomes of one mode's requests.
    #[derive(Clone, Debug, Default)]
    pub struct Tally {
        /// Requests sent (every one ends in exactly one outcome below).
        pub sent: u64,
        /// Answered 200 with the request's own tag.
        pub ok: u64,
        /// The connection was refused.
        pub refused: u64,
        /// The connection was reset (or the pipe broke) with a request on it.
        pub reset: u64,
        /// The connection closed before the whole answer.
        pub early_eof: u64,
        /// No answer within the request timeout.
        pub timed_out: u64,
        /// Answered with a 5xx.
        pub server_error: u64,
        /// Sent again because the protocol proved the first attempt was
        /// never processed (not a failure; see the module docs).
        pub retried: u64,
        /// Anything else (a wrong body, an unexpected status, an error of
        /// another kind).
        pub other: u64,
        /// The first few failures, described.
        pub examples: Vec<String>,
    }

    impl Tally {
        /// Requests that failed, of any kind.
        pub fn failed(&self) -> u64 {
            self.refused
                + self.reset
                + self.early_eof
                + self.timed_out
                + self.server_error
                + self.other
        }

        fn fail(&mut self, kind: Kind, what: String) {
            match kind {
                Kind::Unprocessed | Kind::Other => self.other += 1,
                Kind::Refused => self.refused += 1,
                Kind::Reset => self.reset += 1,
                Kind::EarlyEof => self.early_eof += 1,
                Kind::TimedOut => self.timed_out += 1,
                Kind::ServerError => self.server_error += 1,
            }
            if self.examples.len() < 5 {
                self.examples.push(what);
            }
        }

        fn add(&mut self, other: &Tally) {
            self.sent += other.sent;
            self.ok += other.ok;
            self.refused += other.refused;
            self.reset += other.reset;
            self.early_eof += other.early_eof;
            self.timed_out += other.timed_out;
            self.server_error += other.server_error;
            self.retried += other.retried;
            self.other += other.other;
            for example in &other.examples {
                if self.examples.len() < 5 {
                    self.examples.push(example.clone());
                }
            }
        }
    }

    impl fmt::Display for Tally {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "sent {}, ok {}, refused {}, reset {}, early eof {}, timed out {}, 5xx {}, other {} \
                 (retried unprocessed: {})",
                self.sent,
                self.ok,
                self.refused,
                self.reset,
                self.early_eof,
                self.timed_out,
                self.server_error,
                self.other,
                self.retried
            )?;
            for example in &self.examples {
                write!(f, "\n    e.g. {example}")?;
            }
            Ok(())
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        /// Proven never processed: safe to send again.
        Unprocessed,
        Refused,
        Reset,
        EarlyEof,
        TimedOut,
        ServerError,
        Other,
    }

    /// A request's whole time limit.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

    /// Load running in the background; [`stop`](Self::stop) it to get the
    /// tallies.
    #[derive(Debug)]
    pub struct Load {
        stop: Arc<AtomicBool>,
        workers: Vec<JoinHandle<(Mode, Tally)>>,
    }

    impl Load {
        /// Starts `per_mode` workers of each mode against `addr`, on the
        /// current tokio runtime.
        pub fn start(addr: SocketAddr, per_mode: usize) -> Load {
            Load::start_modes(
                addr,
                per_mode,
                &[Mode::NewConnection, Mode::KeepAlive, Mode::Http2],
            )
        }

        /// As [`start`](Self::start), with the given modes only (a server
        /// without h2c, say).
        pub fn start_modes(addr: SocketAddr, per_mode: usize, modes: &[Mode]) -> Load {
            let stop = Arc::new(AtomicBool::new(false));
            let mut workers = Vec::new();
            for &mode in modes {
                for worker in 0..per_mode {
                    let stop = Arc::clone(&stop);
                    workers.push(tokio::spawn(run(addr, mode, worker, stop)));
                }
            }
            Load { stop, workers }
        }

        /// Stops every worker after its current request; the tallies by mode.
        pub async fn stop(self) -> BTreeMap<Mode, Tally> {
            self.stop.store(true, Ordering::Release);
            let mut tallies: BTreeMap<Mode, Tally> = BTreeMap::new();
            for worker in self.workers {
                let (mode, tally) = worker.await.expect("a load worker panicked");
                tallies.entry(mode).or_default().add(&tally);
            }
            tallies
        }
    }

    enum Sender {
        Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
        Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    }

    async fn connect(addr: SocketAddr, mode: Mode) -> Result<Sender, (Kind, String)> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| classify_io(&err))?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        match mode {
            Mode::Http2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|err| classify(&err))?;
                tokio::spawn(conn);
                Ok(Sender::Http2(sender))
            }
            _ => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|err| classify(&err))?;
                tokio::spawn(conn);
                Ok(Sender::Http1(sender))
            }
        }
    }

    async fn run(
        addr: SocketAddr,
        mode: Mode,
        worker: usize,
        stop: Arc<AtomicBool>,
    ) -> (Mode, Tally) {
        let mut tally = Tally::default();
        let mut sender: Option<Sender> = None;
        let mut seq = 0_u64;
        while !stop.load(Ordering::Acquire) {
            // A connection the server closed between requests (it said
            // `Connection: close`, or GOAWAY) is replaced before sending.
            let usable = match &mut sender {
                Some(Sender::Http1(s)) => s.ready().await.is_ok(),
                Some(Sender::Http2(s)) => s.ready().await.is_ok(),
                None => false,
            };
            if !usable || mode == Mode::NewConnection {
                sender = None;
            }
            seq += 1;
            let tag = format!("{mode:?}-{worker}-{seq}");
            tally.sent += 1;
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                match attempt(addr, mode, &tag, &mut sender).await {
                    Ok(Err((Kind::Unprocessed, _))) if attempts < 3 => {
                        tally.retried += 1;
                        sender = None;
                    }
                    outcome => break outcome,
                }
            };
            match outcome {
                Ok(Ok(())) => tally.ok += 1,
                Ok(Err((kind, what))) => {
                    tally.fail(kind, format!("{tag}: {what}"));
                    sender = None;
                }
                Err(_) => {
                    tally.fail(
                        Kind::TimedOut,
                        format!("{tag}: no answer in {REQUEST_TIMEOUT:?}"),
                    );
                    sender = None;
                }
            }
        }
        (mode, tally)
    }

    /// One attempt at one tagged request, within the request timeout.
    async fn attempt(
        addr: SocketAddr,
        mode: Mode,
        tag: &str,
        sender: &mut Option<Sender>,
    ) -> Result<Result<(), (Kind, String)>, tokio::time::error::Elapsed> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            if sender.is_none() {
                *sender = Some(connect(addr, mode).await?);
            }
            let mut request = Request::post("/echo").header("host", addr.to_string());
            if mode == Mode::NewConnection {
                request = request.header("connection", "close");
            }
            let request = request
                .body(Full::new(Bytes::from(tag.to_owned())))
                .expect("a valid request");
            let response = match sender.as_mut().expect("connected above") {
                Sender::Http1(s) => s.send_request(request).await,
                Sender::Http2(s) => {
                    let (mut parts, body) = request.into_parts();
                    parts.version = hyper::Version::HTTP_2;
                    parts.uri = format!("http://{addr}/echo").parse().expect("a valid URI");
                    parts.headers.remove("host");
                    s.send_request(Request::from_parts(parts, body)).await
                }
            }
            .map_err(|err| classify(&err))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|err| classify(&err))?
                .to_bytes();
            if status.is_server_error() {
                return Err((Kind::ServerError, format!("status {status}")));
            }
            if status != 200 || body != tag.as_bytes() {
                return Err((
                    Kind::Other,
                    format!(
                        "status {status}, body {:?} for tag {tag}",
                        String::from_utf8_lossy(&body)
                    ),
                ));
            }
            Ok(())
        })
        .await
    }

    fn classify_io(err: &io::Error) -> (Kind, String) {
        let kind = match err.kind() {
            io::ErrorKind::ConnectionRefused => Kind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => Kind::Reset,
            io::ErrorKind::UnexpectedEof => Kind::EarlyEof,
            io::ErrorKind::TimedOut => Kind::TimedOut,
            _ => Kind::Other,
        };
        (kind, err.to_string())
    }

    fn classify(err: &hyper::Error) -> (Kind, String) {
        let what = format!("{err} ({err:?})");
        // Never written: hyper's dispatcher still held it at the close.
        if err.is_canceled() {
            return (Kind::Unprocessed, what);
        }
        let h2 = std::error::Error::source(err).and_then(|s| s.downcast_ref::<h2::Error>());
        if let Some(h2) = h2 {
            // A stream above the last stream id of the server's GOAWAY, or
            // refused: the server says it did nothing with it.
            let above_goaway =
                h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
            if above_goaway || h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return (Kind::Unprocessed, what);
            }
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                return (classify_io(io).0, what);
            }
            source = cause.source();
        }
        let kind = if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
            Kind::EarlyEof
        } else if err.is_timeout() {
            Kind::TimedOut
        } else {
            Kind::Other
        };
        (kind, what)
    }
}
