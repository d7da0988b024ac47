//! One budget across the phases, and the builder refusing budgets that
//! cannot fit.

use std::future::pending;
use std::time::Duration;

use seaworthy_shutdown::{EXIT_TIMED_OUT, HookFailureKind, Phase, Shutdown, ShutdownReason};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn each_phase_is_cut_at_its_share_so_later_phases_keep_theirs() {
    // 30 s: drain delay 5 s, workers 6 s, cleanup 4 s; the connection drain
    // gets what is left, 15 s.
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(30 * SECOND)
        .drain_delay(5 * SECOND)
        .worker_grace(6 * SECOND)
        .cleanup_reserve(4 * SECOND)
        .build()
        .unwrap();
    let token = shutdown.token();
    let _connection = token.drain_guard(); // never dropped
    shutdown.spawn("stuck", pending::<()>()); // ignores its token
    shutdown.on_cleanup("slow hook", 60 * SECOND, pending::<()>);

    let spawned_at = Instant::now();
    tokio::time::sleep(2 * SECOND).await;
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;

    assert_eq!(report.phase_duration(Phase::Draining), Some(5 * SECOND));
    assert_eq!(report.phase_duration(Phase::Closing), Some(15 * SECOND));
    assert_eq!(report.phase_duration(Phase::Cancelling), Some(6 * SECOND));
    // The hook's own timeout is 60 s, but only 4 s of the budget are left.
    assert_eq!(report.phase_duration(Phase::Cleanup), Some(4 * SECOND));
    assert_eq!(report.total(), 30 * SECOND);

    assert_eq!(report.connections_cut(), 1);
    let [straggler] = report.stragglers() else {
        panic!("one straggler expected: {report}");
    };
    assert_eq!(straggler.name(), "stuck");
    // Spawned 2 s before the trigger, abandoned 5 + 15 + 6 s after it.
    assert_eq!(straggler.running_for(), 28 * SECOND);
    assert_eq!(spawned_at.elapsed(), 32 * SECOND);
    let [hook] = report.hook_failures() else {
        panic!("one hook failure expected: {report}");
    };
    assert_eq!(hook.name(), "slow hook");
    assert_eq!(
        hook.kind(),
        &HookFailureKind::TimedOut { after: 4 * SECOND }
    );
    assert_eq!(report.exit_code(), EXIT_TIMED_OUT);
    let line = report.to_string();
    assert!(line.contains("\"stuck\" (ran 28s)"), "{line}");
    assert!(line.contains("connections cut: 1"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn a_phase_that_ends_early_hands_its_time_on() {
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(10 * SECOND)
        .worker_grace(SECOND)
        .cleanup_reserve(SECOND)
        .build()
        .unwrap();
    let token = shutdown.token();
    // A connection that needs 3 s, then a worker that needs 4 s after its
    // cancellation: more than its 1 s reserve, but the connections left time.
    let guard = token.drain_guard();
    tokio::spawn(async move {
        tokio::time::sleep(3 * SECOND).await;
        drop(guard);
    });
    shutdown.spawn("slow worker", async move {
        token.cancelled().await;
        tokio::time::sleep(4 * SECOND).await;
    });
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    assert_eq!(report.phase_duration(Phase::Closing), Some(3 * SECOND));
    assert_eq!(report.phase_duration(Phase::Cancelling), Some(4 * SECOND));
    assert!(report.is_clean(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn default_reserves_are_a_sixth_of_the_timeout_each() {
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(12 * SECOND)
        .build()
        .unwrap();
    shutdown.spawn("stuck", pending::<()>());
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = shutdown.wait().await;
    // Workers are abandoned 2 s (12 / 6) before the deadline.
    assert_eq!(report.phase_duration(Phase::Cancelling), Some(10 * SECOND));
    assert_eq!(report.stragglers().len(), 1);
}

#[tokio::test]
async fn the_builder_refuses_budgets_that_cannot_fit() {
    let cases = [
        (
            Shutdown::builder().timeout(Duration::ZERO),
            "timeout must be greater than zero",
        ),
        (
            Shutdown::builder()
                .timeout(10 * SECOND)
                .drain_delay(10 * SECOND),
            "drain_delay (10s) must be shorter than timeout (10s)",
        ),
        (
            Shutdown::builder()
                .timeout(30 * SECOND)
                .drain_delay(25 * SECOND),
            "drain_delay (25s) + worker_grace (5s) + cleanup_reserve (5s) = 35s does not fit in timeout (30s)",
        ),
        (
            Shutdown::builder()
                .timeout(10 * SECOND)
                .worker_grace(8 * SECOND)
                .cleanup_reserve(3 * SECOND),
            "drain_delay (0ns) + worker_grace (8s) + cleanup_reserve (3s) = 11s does not fit in timeout (10s)",
        ),
        (
            Shutdown::builder()
                .timeout(10 * SECOND)
                .cleanup_reserve(2 * SECOND)
                .force_grace(9 * SECOND),
            "force_grace (9s) + cleanup_reserve (2s) does not fit in timeout (10s)",
        ),
    ];
    for (builder, expected) in cases {
        let err = builder.signals([]).build().unwrap_err();
        assert!(err.is_budget());
        assert!(!err.is_signal());
        assert_eq!(
            err.to_string(),
            format!("invalid shutdown budget: {expected}")
        );
    }
}

#[tokio::test]
async fn the_builder_accepts_a_budget_that_fits_exactly() {
    let shutdown = Shutdown::builder()
        .signals([])
        .timeout(10 * SECOND)
        .drain_delay(6 * SECOND)
        .worker_grace(2 * SECOND)
        .cleanup_reserve(2 * SECOND)
        .build();
    assert!(shutdown.is_ok());
}
