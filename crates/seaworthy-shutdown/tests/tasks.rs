//! Tracked tasks: reasons, critical failures, panics, runtimes.

use std::fmt;
use std::future::pending;
use std::time::Duration;

use seaworthy_shutdown::{
    EXIT_CLEAN, EXIT_FAILED, Phase, Shutdown, ShutdownReason, ShutdownReport,
};

fn shutdown() -> Shutdown {
    Shutdown::builder().signals([]).build().unwrap()
}

#[derive(Debug)]
struct QueueError(std::io::Error);

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue consumer stopped")
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_critical_task_triggers_the_shutdown() {
    let shutdown = shutdown();
    let token = shutdown.token();
    shutdown.spawn_critical("consumer", async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Err(QueueError(std::io::Error::other("connection reset")))
    });
    let report = shutdown.wait().await;

    let ShutdownReason::TaskFailed(failure) = report.reason() else {
        panic!("expected a task failure: {report}");
    };
    assert_eq!(failure.name(), "consumer");
    assert_eq!(
        failure.message(),
        "queue consumer stopped: connection reset"
    );
    assert!(!failure.is_panic());
    assert!(failure.is_critical());
    assert_eq!(report.task_failures(), std::slice::from_ref(failure));
    assert_eq!(report.exit_code(), EXIT_FAILED);
    assert_eq!(token.reason(), Some(report.reason().clone()));
    assert_eq!(
        report.reason().to_string(),
        "task \"consumer\" failed: queue consumer stopped: connection reset"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_critical_task_triggers_the_shutdown() {
    let shutdown = shutdown();
    shutdown.spawn_critical("indexer", async {
        tokio::task::yield_now().await;
        if true {
            panic!("index out of range");
        }
        Ok::<(), std::io::Error>(())
    });
    let report = shutdown.wait().await;
    let ShutdownReason::TaskFailed(failure) = report.reason() else {
        panic!("expected a task failure: {report}");
    };
    assert_eq!(failure.name(), "indexer");
    assert_eq!(failure.message(), "index out of range");
    assert!(failure.is_panic());
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test(start_paused = true)]
async fn critical_tasks_that_succeed_or_fail_late_do_not_replace_the_reason() {
    let shutdown = shutdown();
    // Ends well: not a failure, no shutdown.
    shutdown.spawn_critical("migration", async { Ok::<(), String>(()) });
    // Fails while the process already shuts down.
    let token = shutdown.token();
    shutdown.spawn_critical("flusher", async move {
        token.cancelled().await;
        Err("flush failed")
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(shutdown.phase(), Phase::Running);

    shutdown.trigger(ShutdownReason::requested("deploy"));
    let report = shutdown.wait().await;
    assert_eq!(report.reason(), &ShutdownReason::requested("deploy"));
    let [failure] = report.task_failures() else {
        panic!("one failure expected: {report}");
    };
    assert_eq!(failure.name(), "flusher");
    assert_eq!(failure.message(), "flush failed");
    // An error during shutdown is reported, not a cause: no panic, clean.
    assert_eq!(report.exit_code(), EXIT_CLEAN);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_is_reported_and_does_not_trigger() {
    let shutdown = shutdown();
    shutdown.spawn("cache warmer", async {
        panic!("bad entry");
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(shutdown.phase(), Phase::Running);
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    let [failure] = report.task_failures() else {
        panic!("one failure expected: {report}");
    };
    assert_eq!(failure.name(), "cache warmer");
    assert!(failure.is_panic());
    assert!(!failure.is_critical());
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test(start_paused = true)]
async fn tasks_spawned_from_a_handle_are_tracked_too() {
    let shutdown = shutdown();
    let handle = shutdown.handle();
    handle.spawn("from handle", pending::<()>());
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    assert_eq!(report.stragglers()[0].name(), "from handle");
}

async fn a_full_shutdown_with_real_time() -> ShutdownReport {
    // A budget far above the work: the shutdown must end when the work
    // does, not at the budget.
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(Duration::from_secs(30))
        .drain_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let token = shutdown.token();
    shutdown.spawn("worker", async move {
        token.cancelled().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    shutdown.on_cleanup("hook", Duration::from_secs(1), || async {
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
    shutdown.trigger(ShutdownReason::requested("test"));
    shutdown.wait().await
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_the_current_thread_runtime() {
    let report = a_full_shutdown_with_real_time().await;
    assert!(report.is_clean(), "{report}");
    assert!(report.total() >= Duration::from_millis(80), "{report}");
    assert!(report.total() < Duration::from_secs(10), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_the_multi_thread_runtime() {
    let report = a_full_shutdown_with_real_time().await;
    assert!(report.is_clean(), "{report}");
    assert!(report.total() >= Duration::from_millis(80), "{report}");
    assert!(report.total() < Duration::from_secs(10), "{report}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Shutdown>();
    assert_send_sync::<seaworthy_shutdown::ShutdownToken>();
    assert_send_sync::<seaworthy_shutdown::DrainGuard>();
    assert_send_sync::<ShutdownReport>();
    assert_send_sync::<seaworthy_shutdown::BuildError>();
    fn assert_send<T: Send>(_: &T) {}
    let shutdown = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async { shutdown() });
    assert_send(&shutdown.wait());
}
