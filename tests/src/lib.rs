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
    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
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
        let mut all: Vec<(&str, &str)> = vec![
            ("PORT", "0"),
            ("RATE_LIMIT", "1000000/s"),
            ("RATE_LIMIT_BURST", "1000000"),
        ];
        all.extend_from_slice(env);
        let mut child = Child::example("production", &all);
        let line = child.wait_for_line("listening on http", GENEROUS);
        (child, listening_addr(&line))
    }

    /// The child's CPU time so far (user + system), from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }
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
