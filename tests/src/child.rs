//! The child-process harness: run a built example, read its output line by
//! line, send it real signals, wait for it to exit; every wait polls with a
//! bound and fails with the whole output seen so far.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{GENEROUS, Signal, cpu_time, example_path, listening_addr};

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
