//! Cleanup hooks: reverse order, each with its own timeout.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seaworthy_shutdown::{EXIT_FAILED, EXIT_TIMED_OUT, HookFailureKind, Shutdown, ShutdownReason};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn hooks_run_last_registered_first_each_within_its_timeout() {
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    for (name, needs, timeout) in [
        ("logger", 1, 5),
        ("pool", 10, 2), // hangs past its own timeout
        ("cache", 1, 5),
    ] {
        let ran = Arc::clone(&ran);
        shutdown.on_cleanup(name, Duration::from_secs(timeout), move || async move {
            ran.lock().unwrap().push((name, start.elapsed().as_secs()));
            tokio::time::sleep(Duration::from_secs(needs)).await;
        });
    }
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;

    // cache at 0 s (1 s), pool at 1 s (cut at 2 s), logger at 3 s.
    assert_eq!(
        *ran.lock().unwrap(),
        [("cache", 0), ("pool", 1), ("logger", 3)]
    );
    let [failure] = report.hook_failures() else {
        panic!("one hook failure expected: {report}");
    };
    assert_eq!(failure.name(), "pool");
    assert_eq!(
        failure.kind(),
        &HookFailureKind::TimedOut {
            after: Duration::from_secs(2)
        }
    );
    assert_eq!(report.total(), Duration::from_secs(4));
    assert_eq!(report.exit_code(), EXIT_TIMED_OUT);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_hook_does_not_stop_the_others() {
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    shutdown.on_cleanup("first", Duration::from_secs(1), move || async move {
        log.lock().unwrap().push("first");
    });
    shutdown.on_cleanup("broken", Duration::from_secs(1), || async {
        panic!("double close");
    });
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    assert_eq!(*ran.lock().unwrap(), ["first"]);
    assert_eq!(
        report.hook_failures()[0].kind(),
        &HookFailureKind::Panicked {
            message: "double close".to_owned()
        }
    );
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test(start_paused = true)]
async fn hooks_past_the_deadline_are_reported_as_timed_out() {
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(Duration::from_secs(6))
        .build()
        .unwrap();
    // Runs second and finds no budget left.
    shutdown.on_cleanup("late", Duration::from_secs(5), || async {});
    // Runs first: nothing else took time, so it may use the whole 6 s budget
    // (less than its own 10 s timeout), and does.
    shutdown.on_cleanup("greedy", Duration::from_secs(10), pending::<()>);
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    let kinds: Vec<_> = report
        .hook_failures()
        .iter()
        .map(|failure| (failure.name(), failure.kind().clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "greedy",
                HookFailureKind::TimedOut {
                    after: Duration::from_secs(6)
                }
            ),
            (
                "late",
                HookFailureKind::TimedOut {
                    after: Duration::ZERO
                }
            ),
        ]
    );
}
