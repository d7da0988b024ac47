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
        let mut command = Command::new(example_path(name));
        command
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Child::spawn(command)
    }

    /// Starts `command`, which must pipe stdout and stderr.
    pub fn spawn(mut command: Command) -> Child {
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
