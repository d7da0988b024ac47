//! seaworthy's `Server` beside `axum::serve`, on the same router, in the
//! same run: hello-world throughput and p99 latency under wrk, and the time
//! from the shutdown trigger to exit with idle keep-alive connections and
//! with a client stuck mid-head.
//!
//! `cargo bench -p seaworthy-benches --bench serve` (needs `wrk`: Debian
//! package `wrk`). Results and ratios in `docs/benchmarks.md`.
//!
//! Each server runs on its own runtime with one worker thread, leaving the
//! second core to wrk; implementations alternate, A B A B, so that drift on
//! the machine touches both.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use seaworthy::listener::{Listener, Server};
use seaworthy::shutdown::{Shutdown, ShutdownReason};
use seaworthy_benches::wrk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Axum,
    Seaworthy,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Axum => "axum::serve",
            Impl::Seaworthy => "seaworthy Server",
        }
    }
}

fn router() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

/// A server on its own thread and runtime. Sending on `stop` starts its
/// shutdown; `exited` reports how long the shutdown took.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    exited: mpsc::Receiver<Duration>,
}

impl Running {
    fn start(which: Impl, header_read_timeout: Duration) -> Running {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (exited_tx, exited) = mpsc::channel();
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                match which {
                    Impl::Axum => {
                        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                        ready_tx.send(listener.local_addr().unwrap()).unwrap();
                        let (triggered_tx, triggered_rx) = oneshot::channel();
                        let serve =
                            axum::serve(listener, router()).with_graceful_shutdown(async move {
                                let _ = stop_rx.await;
                                let _ = triggered_tx.send(Instant::now());
                            });
                        serve.await.unwrap();
                        let triggered = triggered_rx.await.unwrap();
                        let _ = exited_tx.send(triggered.elapsed());
                    }
                    Impl::Seaworthy => {
                        let shutdown = Shutdown::builder().signals([]).build().unwrap();
                        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                        ready_tx
                            .send(listener.local_addr().unwrap().as_tcp().unwrap())
                            .unwrap();
                        let server = Server::new()
                            .idle_grace(Duration::ZERO)
                            .header_read_timeout(header_read_timeout);
                        shutdown.spawn("http", server.serve(listener, router(), shutdown.token()));
                        let _ = stop_rx.await;
                        let triggered = Instant::now();
                        shutdown.trigger(ShutdownReason::requested("bench"));
                        shutdown.wait().await;
                        let _ = exited_tx.send(triggered.elapsed());
                    }
                }
            });
        });
        let addr = ready_rx.recv().expect("the server starts");
        Running {
            addr,
            stop: Some(stop_tx),
            exited,
        }
    }

    /// Starts the shutdown and waits up to `bound` for the server to exit.
    fn stop(&mut self, bound: Duration) -> Option<Duration> {
        let _ = self.stop.take().expect("stopped once").send(());
        self.exited.recv_timeout(bound).ok()
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Rounds of the throughput bench, alternating the servers.
const ROUNDS: usize = 5;

fn throughput() {
    println!("## hello-world throughput, wrk -t1 -c64 -d10s, server on 1 worker thread\n");
    let mut results = vec![(Impl::Axum, Vec::new()), (Impl::Seaworthy, Vec::new())];
    for _round in 0..ROUNDS {
        for (which, runs) in &mut results {
            let mut server = Running::start(*which, Duration::from_secs(10));
            wrk(server.addr, 64, 2); // warm-up
            let run = wrk(server.addr, 64, 10);
            eprintln!("{}: {:.0} requests/s, p99 {:?}", which.name(), run.0, run.1);
            runs.push(run);
            server.stop(Duration::from_secs(30));
        }
    }
    let summary: Vec<(Impl, f64, Duration)> = results
        .iter()
        .map(|(which, runs)| {
            let rps = runs.iter().map(|run| run.0).sum::<f64>() / runs.len() as f64;
            let p99 = median(runs.iter().map(|run| run.1).collect());
            (*which, rps, p99)
        })
        .collect();
    println!("| server | requests/s (mean of {ROUNDS}) | p99 (median of {ROUNDS}) |");
    println!("|---|---|---|");
    for (which, rps, p99) in &summary {
        println!("| {} | {rps:.0} | {p99:?} |", which.name());
    }
    println!(
        "\nthroughput ratio seaworthy / axum: {:.3}; p99 ratio: {:.3}\n",
        summary[1].1 / summary[0].1,
        summary[1].2.as_secs_f64() / summary[0].2.as_secs_f64()
    );
}

/// Opens `count` keep-alive connections, each used once and then idle.
async fn idle_connections(addr: SocketAddr, count: usize) -> Vec<tokio::net::TcpStream> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0_u8; 512];
        let read = stream.read(&mut buf).await.unwrap();
        assert!(buf[..read].starts_with(b"HTTP/1.1 200"));
        connections.push(stream);
    }
    connections
}

fn drain_idle() {
    println!("## trigger to exit, 1000 idle keep-alive connections, nothing in flight\n");
    println!("drain delay 0, idle grace 0; median of 5 runs each\n");
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for which in [Impl::Axum, Impl::Seaworthy] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut server = Running::start(which, Duration::from_secs(10));
            let connections = client.block_on(idle_connections(server.addr, 1000));
            thread::sleep(Duration::from_millis(200));
            let took = server.stop(Duration::from_secs(60)).expect("exits");
            times.push(took);
            drop(connections);
        }
        rows.push((which, median(times)));
    }
    println!("| server | trigger to exit |");
    println!("|---|---|");
    for (which, took) in &rows {
        println!("| {} | {took:?} |", which.name());
    }
    let difference = rows[1].1.as_secs_f64() - rows[0].1.as_secs_f64();
    println!("\nseaworthy minus axum: {:.1} ms\n", difference * 1e3);
}

fn half_head() {
    println!("## trigger to exit, one client stuck mid-head (header-read timeout 1 s)\n");
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| server | trigger to exit |");
    println!("|---|---|");
    for which in [Impl::Axum, Impl::Seaworthy] {
        let mut server = Running::start(which, Duration::from_secs(1));
        let stuck = client.block_on(async {
            let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: be")
                .await
                .unwrap();
            stream
        });
        thread::sleep(Duration::from_millis(100));
        let bound = Duration::from_secs(20);
        match server.stop(bound) {
            Some(took) => println!("| {} | {took:?} |", which.name()),
            None => println!("| {} | still running after {bound:?} |", which.name()),
        }
        drop(stuck);
    }
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and wants a quick run: skip then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    // `cargo bench --bench serve -- drain` runs the benches whose name
    // contains "drain".
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let benches: [(&str, fn()); 3] = [
        ("throughput", throughput),
        ("drain_idle", drain_idle),
        ("half_head", half_head),
    ];
    for (name, bench) in benches {
        if filter.is_empty() || filter.iter().any(|wanted| name.contains(wanted.as_str())) {
            bench();
        }
    }
}
