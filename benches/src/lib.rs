//! Benchmarks for seaworthy; see `benches/` and `docs/benchmarks.md`. This
//! library holds what the load benches share.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// The criterion configuration every criterion bench here uses: 1 s of
/// warm-up, 3 s of measurement per function (criterion's own 3 s and 5 s
/// make the suite's 60-odd functions take too long on two cores).
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// A multi-thread tokio runtime with two workers, for criterion's async
/// benches.
///
/// # Panics
///
/// When the runtime cannot start.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `wrk -t1 -cCONNECTIONS -dSECONDS --latency` against `http://addr/`
/// and returns requests per second and the p99 latency.
///
/// # Panics
///
/// When wrk is missing (`apt-get install wrk`) or prints no result.
pub fn wrk(addr: SocketAddr, connections: u32, seconds: u32) -> (f64, Duration) {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let rps = requests_per_second(&text);
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .map(|value| parse_latency(value.trim()))
        .unwrap_or_else(|| panic!("no 99% in wrk's output:\n{text}"));
    (rps, p99)
}

/// The `Requests/sec:` figure of wrk's output.
///
/// # Panics
///
/// When the output has none (wrk failed: the panic shows what it printed).
pub fn requests_per_second(wrk_output: &str) -> f64 {
    wrk_output
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{wrk_output}"))
}

fn parse_latency(value: &str) -> Duration {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| c.is_alphabetic())
            .unwrap_or(value.len()),
    );
    let number: f64 = number.parse().unwrap_or(0.0);
    match unit {
        "us" => Duration::from_secs_f64(number / 1e6),
        "ms" => Duration::from_secs_f64(number / 1e3),
        "s" => Duration::from_secs_f64(number),
        other => panic!("unknown unit {other}"),
    }
}
