//! The restart-under-load harness: the same load (a new connection per
//! request, kept-alive connections, HTTP/2; every request tagged and
//! reconciled) across three ways of replacing a server process:
//!
//! - a naive stop-and-start of a plain `axum::serve` server (SIGTERM, wait
//!   for the exit, start the new one);
//! - `SO_REUSEPORT`: start the new plain server beside the old one, then
//!   SIGTERM the old one;
//! - seaworthy's upgrade of the flagship: SIGUSR2, the listening socket
//!   handed to the new process, the old one drains once it is ready.
//!
//! `cargo bench -p seaworthy-benches --bench upgrade` (UPGRADES=100 and
//! RESTARTS=20 by default). Prints one table for docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use seaworthy_tests::load::{Load, Mode, Tally};
use seaworthy_tests::{
    Adopted, Child, GENEROUS, Signal, listening_addr, listening_pid, signal, wait_gone,
};

/// Time between two restarts, with load running.
const PAUSE: Duration = Duration::from_millis(150);
/// Load workers per mode.
const WORKERS: usize = 4;

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The release build of the flagship, built now if needed.
fn flagship() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "seaworthy-examples",
            "--example",
            "production",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the flagship failed");
    let exe = std::env::current_exe().expect("the bench has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/release/deps")
        .join("examples/production")
}

fn start(program: &PathBuf, env: &[(&str, &str)]) -> (Child, String) {
    let mut command = Command::new(program);
    command
        .env("RATE_LIMIT", "1000000/s")
        .env("RATE_LIMIT_BURST", "1000000")
        .env("SHUTDOWN_DRAIN_DELAY", "0s")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    let mut child = Child::spawn(command);
    let line = child.next_line("listening on http", GENEROUS);
    (child, line)
}

struct Outcome {
    name: &'static str,
    restarts: usize,
    elapsed: Duration,
    tallies: BTreeMap<Mode, Tally>,
}

fn naive(rt: &tokio::runtime::Runtime, restarts: usize, reuse_port: bool) -> Outcome {
    let plain = PathBuf::from(env!("CARGO_BIN_EXE_plain_axum"));
    let reuse = if reuse_port { "1" } else { "0" };
    let (mut old, line) = start(&plain, &[("PORT", "0"), ("REUSE_PORT", reuse)]);
    let addr = listening_addr(&line);
    let port = addr.port().to_string();
    let load = rt.block_on(async { Load::start(addr, WORKERS) });
    let started = Instant::now();
    for _ in 0..restarts {
        std::thread::sleep(PAUSE);
        let env = [("PORT", port.as_str()), ("REUSE_PORT", reuse)];
        if reuse_port {
            let (new, _) = start(&plain, &env);
            old.signal(Signal::SIGTERM);
            old.wait_exit(GENEROUS);
            old = new;
        } else {
            old.signal(Signal::SIGTERM);
            old.wait_exit(GENEROUS);
            old = start(&plain, &env).0;
        }
    }
    std::thread::sleep(PAUSE);
    let elapsed = started.elapsed();
    let tallies = rt.block_on(load.stop());
    old.signal(Signal::SIGTERM);
    old.wait_exit(GENEROUS);
    Outcome {
        name: if reuse_port {
            "SO_REUSEPORT: start new, then SIGTERM old (axum::serve)"
        } else {
            "naive stop-and-start (axum::serve)"
        },
        restarts,
        elapsed,
        tallies,
    }
}

fn seaworthy(rt: &tokio::runtime::Runtime, upgrades: usize) -> Outcome {
    let program = flagship();
    let (mut child, line) = start(&program, &[("PORT", "0")]);
    let addr = listening_addr(&line);
    let mut pid = listening_pid(&line);
    let mut adopted = Adopted::default();
    let load = rt.block_on(async { Load::start(addr, WORKERS) });
    let started = Instant::now();
    for _ in 0..upgrades {
        std::thread::sleep(PAUSE);
        signal(pid, Signal::SIGUSR2);
        let line = child.next_line("listening on http", GENEROUS);
        let new = listening_pid(&line);
        adopted.push(new);
        wait_gone(pid, GENEROUS);
        pid = new;
    }
    std::thread::sleep(PAUSE);
    let elapsed = started.elapsed();
    let tallies = rt.block_on(load.stop());
    signal(pid, Signal::SIGTERM);
    wait_gone(pid, GENEROUS);
    Outcome {
        name: "seaworthy upgrade (SIGUSR2, socket handed over)",
        restarts: upgrades,
        elapsed,
        tallies,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once,
    // small.
    let quick = std::env::args().any(|arg| arg == "--test");
    let upgrades = if quick { 3 } else { count("UPGRADES", 100) };
    let restarts = if quick { 3 } else { count("RESTARTS", 20) };
    let rt = seaworthy_benches::runtime();
    let outcomes = [
        naive(&rt, restarts, false),
        naive(&rt, restarts, true),
        seaworthy(&rt, upgrades),
    ];
    println!(
        "\n| restart | count | mode | requests | ok | failed | refused | reset | early EOF | timed out | 5xx | retried (unprocessed) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for outcome in &outcomes {
        for (mode, tally) in &outcome.tallies {
            println!(
                "| {} | {} in {:.1} s | {mode:?} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} |",
                outcome.name,
                outcome.restarts,
                outcome.elapsed.as_secs_f64(),
                tally.sent,
                tally.ok,
                tally.failed(),
                tally.refused,
                tally.reset,
                tally.early_eof,
                tally.timed_out,
                tally.server_error,
                tally.retried,
            );
        }
    }
}
