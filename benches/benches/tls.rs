//! HTTPS side by side, in one run: seaworthy's `Server` with TLS,
//! axum-server with rustls, and nginx (Debian's, OpenSSL) terminating TLS
//! in front of `axum::serve` on plain HTTP (the seed's architecture). The
//! same `GET /` → `hello` router and the same ECDSA P-256 certificate
//! behind each.
//!
//! `cargo bench -p seaworthy-benches --bench tls` (needs `wrk`, `nginx` and
//! `taskset`). Results and ratios in `docs/benchmarks.md`.
//!
//! The server side (each server; for nginx, its one worker and the upstream
//! together) is pinned to core 0, wrk to core 1: every contender gets one
//! core. Two loads, 5 s each, implementations alternating, 3 rounds:
//!
//! - keep-alive requests per second: `wrk -t1 -c64` over TLS;
//! - full handshakes per second: the same with `Connection: close`, so that
//!   every request opens a new connection with a full handshake (wrk
//!   resumes no session), with the ECDSA P-256 certificate and with an RSA
//!   2048 one. With ECDSA the client's half of the handshake (verifying the
//!   signature) costs wrk as much as the server's half costs the server, so
//!   that row measures wrk as much as the servers; RSA's signature costs
//!   the server ten times what its check costs the client, so that row
//!   measures the servers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seaworthy_tests::certs::{Ca, Validity};
use seaworthy_tests::{cpu_time, free_port};

const ROUNDS: usize = 3;
const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    Seaworthy,
    AxumServer,
    NginxProxy,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Seaworthy => "seaworthy Server + tls",
            Contender::AxumServer => "axum-server (rustls)",
            Contender::NginxProxy => "nginx (OpenSSL) + proxy to axum::serve",
        }
    }
}

/// Processes to end when the contender is done: killed by their pid.
struct Running {
    addr: SocketAddr,
    processes: Vec<Child>,
}

impl Running {
    /// The CPU time of every process serving (nginx's workers included).
    fn cpu(&self) -> Duration {
        let mut pids: Vec<u32> = self.processes.iter().map(Child::id).collect();
        // taskset execs the program: the pid is the server's; nginx's
        // workers are the master's children.
        let parents = pids.clone();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = &stat[stat.rfind(')').unwrap_or(0) + 2..];
            let ppid: u32 = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if parents.contains(&ppid) && !after.starts_with('Z') {
                pids.push(pid);
            }
        }
        pids.iter().map(|&pid| cpu_time(pid)).sum()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM, so that nginx's master takes its worker with it.
        for process in &mut self.processes {
            let _ = Command::new("kill").arg(process.id().to_string()).status();
            let _ = process.wait();
        }
    }
}

/// Starts the bench's `tls_server` in `mode` on core 0; returns it and its
/// address.
fn tls_server(mode: &str, cert: &Path, key: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_tls_server"), mode])
        .arg(cert)
        .arg(key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("taskset and tls_server run");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

fn start(contender: Contender, dir: &Path, cert: &Path, key: &Path) -> Running {
    match contender {
        Contender::Seaworthy | Contender::AxumServer => {
            let mode = if contender == Contender::Seaworthy {
                "seaworthy"
            } else {
                "axum-server"
            };
            let (child, addr) = tls_server(mode, cert, key);
            Running {
                addr,
                processes: vec![child],
            }
        }
        Contender::NginxProxy => {
            let (upstream, upstream_addr) = tls_server("plain", cert, key);
            let port = free_port();
            let conf = dir.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "worker_processes 1;\n\
                     daemon off;\n\
                     pid {dir}/nginx.pid;\n\
                     error_log {dir}/error.log warn;\n\
                     events {{ worker_connections 4096; }}\n\
                     http {{\n\
                       access_log off;\n\
                       client_body_temp_path {dir}/body;\n\
                       proxy_temp_path {dir}/proxy;\n\
                       upstream app {{ server {upstream_addr}; keepalive 128; }}\n\
                       server {{\n\
                         listen 127.0.0.1:{port} ssl http2;\n\
                         ssl_certificate {cert};\n\
                         ssl_certificate_key {key};\n\
                         ssl_protocols TLSv1.2 TLSv1.3;\n\
                         ssl_session_cache shared:SSL:10m;\n\
                         keepalive_requests 100000;\n\
                         location / {{\n\
                           proxy_pass http://app;\n\
                           proxy_http_version 1.1;\n\
                           proxy_set_header Connection \"\";\n\
                         }}\n\
                       }}\n\
                     }}\n",
                    dir = dir.display(),
                    cert = cert.display(),
                    key = key.display(),
                ),
            )
            .unwrap();
            let nginx = Command::new("taskset")
                .args(["-c", "0", "nginx", "-p"])
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .stderr(Stdio::inherit())
                .spawn()
                .expect("nginx runs (apt-get install nginx)");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let started = Instant::now();
            while std::net::TcpStream::connect(addr).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "nginx did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Running {
                addr,
                processes: vec![nginx, upstream],
            }
        }
    }
}

/// wrk on core 1 against `https://addr/`; requests per second and errors.
fn wrk(addr: SocketAddr, close: bool) -> (f64, u64) {
    let mut command = Command::new("taskset");
    command.args([
        "-c",
        "1",
        "wrk",
        "-t1",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{SECONDS}s"),
    ]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let output = command
        .arg(format!("https://{addr}/"))
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let rps = seaworthy_benches::requests_per_second(&text);
    // "Socket errors: connect 0, read 0, write 0, timeout 0" and
    // "Non-2xx or 3xx responses: N".
    let errors = text
        .lines()
        .filter(|line| line.contains("Socket errors") || line.contains("Non-2xx"))
        .flat_map(|line| line.split(|c: char| !c.is_ascii_digit()))
        .filter_map(|number| number.parse::<u64>().ok())
        .sum();
    (rps, errors)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("seaworthy-tls-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new("bench CA");
    let names = ["localhost", "127.0.0.1"];
    let (cert, key) = ca.server(&names, Validity::Current).write(&ca, &dir, "tls");
    let (rsa_cert, rsa_key) = ca.server_rsa(&names).write(&ca, &dir, "rsa");

    let contenders = [
        Contender::Seaworthy,
        Contender::AxumServer,
        Contender::NginxProxy,
    ];
    // (load, contender) -> requests per second of each round.
    let loads = [
        "keep-alive requests/s",
        "full handshakes/s, ECDSA",
        "full handshakes/s, RSA 2048",
    ];
    let mut results: std::collections::BTreeMap<(usize, Contender), Vec<f64>> = Default::default();
    let mut capacity = results.clone();
    for round in 0..ROUNDS {
        for contender in contenders {
            for (load, what) in loads.iter().enumerate() {
                let (cert, key) = if load == 2 {
                    (&rsa_cert, &rsa_key)
                } else {
                    (&cert, &key)
                };
                let running = start(contender, &dir, cert, key);
                // Warm up: the first handshakes fill caches and the allocator.
                let _ = wrk_short(running.addr);
                let before = running.cpu();
                let (rps, errors) = wrk(running.addr, load > 0);
                let cpu = running.cpu() - before;
                // What one core could do: requests per CPU-second.
                let per_core = rps * f64::from(SECONDS) / cpu.as_secs_f64();
                println!(
                    "round {round} {:<42} {what:<28} {rps:>9.0} req/s, {:>5.1} µs CPU each, {per_core:>9.0}/s per core  errors {errors}",
                    contender.name(),
                    cpu.as_secs_f64() * 1e6 / (rps * f64::from(SECONDS)),
                );
                results.entry((load, contender)).or_default().push(rps);
                capacity
                    .entry((load, contender))
                    .or_default()
                    .push(per_core);
            }
        }
    }
    println!();
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    for (load, what) in loads.iter().enumerate() {
        let ours = mean(&results[&(load, Contender::Seaworthy)]);
        for contender in contenders {
            let values = &results[&(load, contender)];
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            let per_core = mean(&capacity[&(load, contender)]);
            println!(
                "{what:<28} {:<42} mean {:>9.0} (range {min:.0} – {max:.0})  seaworthy / it = {:.2}x;  per core {per_core:>9.0}/s  seaworthy / it = {:.2}x",
                contender.name(),
                mean(values),
                ours / mean(values),
                mean(&capacity[&(load, Contender::Seaworthy)]) / per_core,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-second keep-alive run to warm the server up.
fn wrk_short(addr: SocketAddr) -> bool {
    Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "-c8", "-d1s"])
        .arg(format!("https://{addr}/"))
        .output()
        .is_ok_and(|output| output.status.success())
}
