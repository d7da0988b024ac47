//! Tokens: cancellation timing, child tokens, reasons.

use std::time::Duration;

use seaworthy_shutdown::{Phase, Shutdown, ShutdownReason};

#[tokio::test(start_paused = true)]
async fn worker_tokens_fire_only_when_cancelling_starts() {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let token = shutdown.token();
    let observer = shutdown.token();
    let (seen, phase_at_cancel) = tokio::sync::oneshot::channel();
    shutdown.spawn("worker", async move {
        token.cancelled().await;
        seen.send(token.phase()).unwrap();
    });
    shutdown.trigger(ShutdownReason::requested("test"));
    let wait = tokio::spawn(shutdown.wait());

    observer.reached(Phase::Draining).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!observer.is_cancelled(), "cancelled during the drain delay");
    assert!(observer.is_shutting_down());

    assert_eq!(phase_at_cancel.await.unwrap(), Phase::Cancelling);
    assert!(observer.is_cancelled());
    wait.await.unwrap();
}

#[tokio::test]
async fn a_child_token_is_cancelled_with_its_parent_and_alone() {
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let parent = shutdown.token();
    let child = parent.child_token();
    let grandchild = child.child_token();
    let sibling = shutdown.token();

    child.cancel();
    assert!(child.is_cancelled());
    assert!(grandchild.is_cancelled());
    assert!(!parent.is_cancelled());
    assert!(!sibling.is_cancelled());
    // Cancelling a token never starts the process shutdown.
    assert_eq!(shutdown.phase(), Phase::Running);
    assert!(parent.reason().is_none());

    let other_child = parent.child_token();
    shutdown.trigger(ShutdownReason::requested("test"));
    shutdown.wait().await;
    assert!(parent.is_cancelled());
    assert!(other_child.is_cancelled());
    assert!(other_child.as_cancellation_token().is_cancelled());
}

#[tokio::test]
async fn a_handle_triggers_the_shutdown_once_and_tokens_see_it_at_once() {
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let token = shutdown.token();
    let handle = shutdown.handle();
    assert!(!token.is_shutting_down());
    assert!(handle.trigger(ShutdownReason::requested("from a worker")));
    // Readiness can fail at once, before `wait` moves the phase.
    assert!(token.is_shutting_down());
    assert_eq!(token.phase(), Phase::Running);
    assert!(!shutdown.trigger(ShutdownReason::requested("second")));
    assert_eq!(
        token.reason(),
        Some(ShutdownReason::requested("from a worker"))
    );
    let report = shutdown.wait().await;
    assert_eq!(report.reason().to_string(), "requested: from a worker");
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_is_shutting_down_not_is_cancelled() {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let token = shutdown.token();
    shutdown.trigger(ShutdownReason::requested("deploy"));
    let wait = tokio::spawn(shutdown.wait());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    // Draining: a readiness probe must fail now, while workers run on.
    assert!(token.is_shutting_down());
    assert!(!token.is_cancelled());
    assert!(wait.await.unwrap().is_clean());
    assert!(token.is_cancelled());
}
