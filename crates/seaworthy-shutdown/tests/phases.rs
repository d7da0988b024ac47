//! Phase order, the drain delay, and how components see the phases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seaworthy_shutdown::{Phase, Shutdown, ShutdownReason};
use tokio::time::Instant;

fn builder() -> seaworthy_shutdown::Builder {
    Shutdown::builder().signals([])
}

#[tokio::test(start_paused = true)]
async fn phases_run_in_order_and_each_component_acts_in_its_own() {
    let shutdown = builder()
        .drain_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));

    // A "listener": holds a connection until the Closing phase.
    let token = shutdown.token();
    let guard = token.drain_guard();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        token.reached(Phase::Closing).await;
        log.lock()
            .unwrap()
            .push(("connection closed", token.phase()));
        drop(guard);
    });

    // A worker: stops when its token is cancelled.
    let token = shutdown.token();
    let log = Arc::clone(&seen);
    shutdown.spawn("worker", async move {
        token.cancelled().await;
        log.lock().unwrap().push(("worker stopped", token.phase()));
    });

    // A hook.
    let token = shutdown.token();
    let log = Arc::clone(&seen);
    shutdown.on_cleanup("hook", Duration::from_secs(1), move || async move {
        log.lock().unwrap().push(("hook ran", token.phase()));
    });

    let observer = shutdown.token();
    assert_eq!(observer.phase(), Phase::Running);
    assert!(!observer.is_shutting_down());
    assert!(observer.reason().is_none());

    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;

    let phases: Vec<Phase> = report.phases().iter().map(|timing| timing.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Draining,
            Phase::Closing,
            Phase::Cancelling,
            Phase::Cleanup
        ]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("connection closed", Phase::Closing),
            ("worker stopped", Phase::Cancelling),
            ("hook ran", Phase::Cleanup),
        ]
    );
    assert_eq!(observer.phase(), Phase::Done);
    assert!(observer.is_shutting_down());
    assert_eq!(observer.reason(), Some(ShutdownReason::requested("test")));
    assert!(report.is_clean(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn listeners_keep_accepting_for_the_drain_delay() {
    let shutdown = builder()
        .drain_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let token = shutdown.token();
    let (at, reached) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        token.reached(Phase::Draining).await;
        let draining_at = Instant::now();
        token.reached(Phase::Closing).await;
        at.send(draining_at.elapsed()).unwrap();
    });
    tokio::task::yield_now().await;

    let triggered_at = Instant::now();
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;

    assert_eq!(reached.await.unwrap(), Duration::from_secs(5));
    assert_eq!(
        report.phase_duration(Phase::Draining),
        Some(Duration::from_secs(5))
    );
    // Nothing else to wait for: the rest takes no time.
    assert_eq!(triggered_at.elapsed(), Duration::from_secs(5));
    assert_eq!(report.total(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_phase_watch_follows_the_shutdown() {
    let shutdown = builder().build().unwrap();
    let mut watch = shutdown.phase_watch();
    assert_eq!(*watch.borrow_and_update(), Phase::Running);
    shutdown.trigger(ShutdownReason::requested("test"));
    let wait = tokio::spawn(shutdown.wait());
    watch.wait_for(|phase| *phase == Phase::Done).await.unwrap();
    wait.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_closing_phase_waits_for_every_drain_guard() {
    let shutdown = builder().timeout(Duration::from_secs(60)).build().unwrap();
    let token = shutdown.token();
    for secs in [1, 3, 2] {
        let guard = token.drain_guard();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            drop(guard);
        });
    }
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    assert_eq!(
        report.phase_duration(Phase::Closing),
        Some(Duration::from_secs(3))
    );
    assert_eq!(report.connections_cut(), 0);
    assert!(report.is_clean(), "{report}");
}
