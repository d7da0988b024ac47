//! Out of file descriptors: a connect flood against the flagship under a
//! low `RLIMIT_NOFILE` must not make it spin, and it must serve again once
//! descriptors free up.

use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use seaworthy_tests::http1::Conn;
use seaworthy_tests::{Child, GENEROUS, Signal, example_path, listening_addr};

#[test]
fn emfile_backs_off_without_spinning_and_recovers() {
    // 40 descriptors: a dozen for the runtime, the listener and the reserve,
    // the rest for connections.
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -n 40 && exec \"$0\""])
        .arg(example_path("production"))
        .env("RUST_LOG", "info")
        .env("PORT", "0")
        .env("SHUTDOWN_DRAIN_DELAY", "0s")
        // One client floods here: the per-client limit would close its
        // connections before the descriptors run out (tests/hostile.rs).
        .env("MAX_CONNECTIONS_PER_IP", "0");
    let mut child = Child::spawn(command);
    let addr = listening_addr(&child.wait_for_line("listening on http", GENEROUS));

    // The flood: far more connections than the server has descriptors.
    let flood: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(flood.len() > 60, "only {} connections", flood.len());
    child.wait_for_line("accept failed", GENEROUS);

    // Two seconds out of descriptors, with connections still queued.
    let cpu_before = child.cpu_time();
    let measured = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let cpu = child.cpu_time() - cpu_before;
    let wall = measured.elapsed();
    assert!(
        cpu < wall / 10,
        "{cpu:?} of CPU in {wall:?} while out of descriptors: spinning; output:\n{}",
        child.output()
    );
    // One warning for the whole burst, not one per attempt.
    assert_eq!(child.count("accept failed"), 1, "{}", child.output());

    // Descriptors free up: the server serves again.
    drop(flood);
    let deadline = Instant::now() + GENEROUS;
    let response = loop {
        match Conn::connect(addr).and_then(|mut conn| conn.get("/")) {
            Ok(response) => break response,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("not serving again: {err}; output:\n{}", child.output()),
        }
    };
    assert_eq!(response.status, 200);
    child.wait_for_line("accept recovered", GENEROUS);

    child.signal(Signal::SIGTERM);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "{}", child.output());
}
