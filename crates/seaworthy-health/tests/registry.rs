//! The registry on paused time: caching, single flight, concurrency,
//! timeouts, panics, staleness, hysteresis, background runs, startup,
//! draining, maintenance, configuration errors.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use seaworthy_health::{Check, CheckResult, HealthRegistry, Kind, Probe, Status};
use seaworthy_shutdown::{Shutdown, ShutdownReason};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// A check that counts its runs and passes after `delay`.
fn counting(name: &'static str, runs: &Arc<AtomicU32>, delay: Duration) -> Check {
    let runs = Arc::clone(runs);
    Check::new(name, move || {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::io::Error>(CheckResult::pass())
        }
    })
}

/// A check that returns the statuses of `script` in turn, then the last.
fn scripted(name: &'static str, script: Vec<Status>) -> Check {
    let at = Arc::new(AtomicU32::new(0));
    Check::new(name, move || {
        let index = at.fetch_add(1, Ordering::SeqCst) as usize;
        let status = script[index.min(script.len() - 1)];
        async move {
            Ok::<_, std::io::Error>(match status {
                Status::Pass => CheckResult::pass(),
                Status::Warn => CheckResult::warn(),
                Status::Fail => CheckResult::fail(),
            })
        }
    })
}

#[tokio::test(start_paused = true)]
async fn results_are_cached_for_the_ttl() {
    let runs = Arc::new(AtomicU32::new(0));
    let registry = HealthRegistry::builder()
        .check(counting("db", &runs, 10 * MS).cached(5 * SECOND))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            registry.check(Probe::Readiness).await.status(),
            Status::Pass
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    tokio::time::sleep(5 * SECOND).await;
    registry.check(Probe::Readiness).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_simultaneous_probes_run_each_check_once() {
    let runs = Arc::new(AtomicU32::new(0));
    let registry = HealthRegistry::builder()
        .check(counting("db", &runs, 100 * MS))
        .build()
        .unwrap();
    let probes: Vec<_> = (0..1000)
        .map(|_| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.check(Probe::Readiness).await.status() })
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap(), Status::Pass);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn checks_run_concurrently_so_a_probe_takes_the_slowest_not_the_sum() {
    let runs = Arc::new(AtomicU32::new(0));
    let mut builder = HealthRegistry::builder();
    for name in [
        "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "c12", "c13",
        "c14", "c15", "c16", "c17", "c18", "c19",
    ] {
        builder = builder.check(counting(name, &runs, 50 * MS));
    }
    let registry = builder.build().unwrap();
    let started = Instant::now();
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(started.elapsed(), 50 * MS);
    assert_eq!(report.checks().len(), 20);
    assert_eq!(report.status(), Status::Pass);
    assert_eq!(runs.load(Ordering::SeqCst), 20);
}

#[tokio::test(start_paused = true)]
async fn a_check_that_never_returns_fails_within_the_probe_deadline() {
    let registry = HealthRegistry::builder()
        .check(Check::new("hung", || {
            pending::<Result<CheckResult, std::io::Error>>()
        }))
        .build()
        .unwrap();
    let started = Instant::now();
    let report = registry.check(Probe::Readiness).await;
    // The check's own 800 ms timeout, inside the probe's 900 ms deadline.
    assert_eq!(started.elapsed(), 800 * MS);
    assert_eq!(report.status(), Status::Fail);
    assert_eq!(
        report.get("hung").unwrap().result().output(),
        Some("timed out after 800ms")
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_check_leaves_the_probe_on_time_with_the_last_known_result() {
    let slow = Arc::new(AtomicU32::new(0));
    let calls = Arc::clone(&slow);
    let registry = HealthRegistry::builder()
        .check(
            Check::new("db", move || {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if !first {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok::<_, std::io::Error>(CheckResult::pass())
                }
            })
            .cached(SECOND)
            .timeout(Duration::from_secs(60))
            .max_staleness(5 * SECOND),
        )
        .build()
        .unwrap();
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
    tokio::time::sleep(2 * SECOND).await;
    // The rerun hangs: the probe answers at its deadline with the last pass.
    let started = Instant::now();
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
    assert_eq!(started.elapsed(), 900 * MS);
    // Past the maximum staleness, the last pass no longer counts.
    tokio::time::sleep(3 * SECOND).await;
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(report.status(), Status::Fail);
    assert!(
        report
            .get("db")
            .unwrap()
            .result()
            .output()
            .unwrap()
            .starts_with("stale")
    );
    // Still one run in flight: single flight holds across probes.
    assert_eq!(slow.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_probes_of_a_hung_check_leave_no_task_behind() {
    let registry = HealthRegistry::builder()
        .check(
            Check::new("hung", pending::<Result<CheckResult, std::io::Error>>)
                .timeout(MS)
                .cached(Duration::ZERO),
        )
        .probe_timeout(20 * MS)
        .build()
        .unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    for _ in 0..10_000 {
        assert_eq!(
            registry.check(Probe::Readiness).await.status(),
            Status::Fail
        );
    }
    // Runs end with their timeout; give the last one a moment.
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            break;
        }
        tokio::time::sleep(10 * MS).await;
    }
    assert_eq!(metrics.num_alive_tasks(), before);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_is_a_failure_and_the_registry_keeps_answering() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let registry = HealthRegistry::builder()
        .check(
            Check::new("flaky", move || {
                let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    assert!(!first, "boom");
                    Ok::<_, std::io::Error>(CheckResult::pass())
                }
            })
            .cached(Duration::ZERO),
        )
        .build()
        .unwrap();
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(report.status(), Status::Fail);
    assert_eq!(
        report.get("flaky").unwrap().result().output(),
        Some("the check panicked")
    );
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
}

#[tokio::test(start_paused = true)]
async fn hysteresis_fails_after_n_and_recovers_after_m() {
    use Status::{Fail, Pass};
    let registry = HealthRegistry::builder()
        .check(
            scripted("db", vec![Pass, Fail, Fail, Fail, Pass, Fail, Pass, Pass])
                .cached(Duration::ZERO)
                .hysteresis(3, 2),
        )
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(registry.check(Probe::Readiness).await.status());
    }
    // Fails on the third failure in a row; one pass is not enough to recover.
    assert_eq!(seen, [Pass, Pass, Pass, Fail, Fail, Fail, Fail, Pass]);
}

#[tokio::test(start_paused = true)]
async fn background_checks_run_on_their_interval_and_probes_never_wait() {
    let runs = Arc::new(AtomicU32::new(0));
    let registry = HealthRegistry::builder()
        .check(
            counting("disk", &runs, 100 * MS)
                .kind(Kind::Process)
                .background(10 * SECOND),
        )
        .build()
        .unwrap();
    tokio::time::sleep(35 * SECOND).await;
    // At 0, then every 9 to 10 s (jitter shortens): 4 runs by 35 s.
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    let started = Instant::now();
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_for_startup_which_latches() {
    use Status::{Fail, Pass};
    let registry = HealthRegistry::builder()
        .check(
            scripted("migrations", vec![Fail, Fail, Pass, Fail])
                .kind(Kind::Process)
                .probes([Probe::Startup])
                .cached(Duration::ZERO),
        )
        .build()
        .unwrap();
    assert!(!registry.is_started());
    let report = registry.check(Probe::Startup).await;
    assert_eq!((report.status(), report.output()), (Fail, Some("starting")));
    let report = registry.check(Probe::Readiness).await;
    assert_eq!((report.status(), report.output()), (Fail, Some("starting")));
    assert_eq!(registry.check(Probe::Liveness).await.status(), Pass);
    assert_eq!(registry.check(Probe::Startup).await.status(), Pass);
    assert!(registry.is_started());
    // Latched: the startup check no longer gates readiness.
    assert_eq!(registry.check(Probe::Readiness).await.status(), Pass);
}

#[tokio::test(start_paused = true)]
async fn readiness_fails_from_the_drain_while_liveness_passes() {
    let shutdown = Shutdown::builder()
        .signals([])
        .drain_delay(5 * SECOND)
        .build()
        .unwrap();
    let registry = HealthRegistry::builder()
        .shutdown(shutdown.token())
        .build()
        .unwrap();
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
    shutdown.trigger(ShutdownReason::requested("test"));
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(
        (report.status(), report.output()),
        (Status::Fail, Some("draining"))
    );
    assert_eq!(registry.check(Probe::Liveness).await.status(), Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn maintenance_takes_readiness_out_and_expires_by_itself() {
    let registry = HealthRegistry::builder().build().unwrap();
    registry.set_maintenance("reindexing", 30 * SECOND);
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(report.status(), Status::Fail);
    assert_eq!(report.output(), Some("maintenance: reindexing"));
    assert_eq!(registry.check(Probe::Liveness).await.status(), Status::Pass);
    tokio::time::sleep(31 * SECOND).await;
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
    assert!(registry.maintenance().is_none());

    registry.set_maintenance("again", 30 * SECOND);
    registry.clear_maintenance();
    assert_eq!(
        registry.check(Probe::Readiness).await.status(),
        Status::Pass
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_non_critical_check_warns_and_still_answers_200() {
    let registry = HealthRegistry::builder()
        .check(scripted("cache", vec![Status::Fail]).critical(false))
        .build()
        .unwrap();
    let report = registry.check(Probe::Readiness).await;
    assert_eq!(report.status(), Status::Warn);
    assert_eq!(report.http_status(), http::StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn probe_status_changes_are_watched() {
    use Status::{Fail, Pass};
    let registry = HealthRegistry::builder()
        .check(scripted("db", vec![Pass, Fail, Pass]).cached(Duration::ZERO))
        .build()
        .unwrap();
    let mut watch = registry.watch(Probe::Readiness);
    let mut seen = Vec::new();
    for _ in 0..3 {
        registry.check(Probe::Readiness).await;
        if watch.has_changed().unwrap() {
            seen.push(*watch.borrow_and_update());
        }
    }
    assert_eq!(seen, [Fail, Pass]);
}

#[tokio::test]
async fn a_dependency_in_liveness_is_refused_unless_allowed() {
    let dependency = || scripted("db", vec![Status::Pass]).probes([Probe::Liveness]);
    let err = HealthRegistry::builder()
        .check(dependency())
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("dependency check \"db\" is in the liveness probe"),
        "{err}"
    );
    assert!(
        HealthRegistry::builder()
            .check(dependency().allow_in_liveness())
            .build()
            .is_ok()
    );
    assert!(
        HealthRegistry::builder()
            .check(dependency().kind(Kind::Process))
            .build()
            .is_ok()
    );

    let err = HealthRegistry::builder()
        .check(scripted("db", vec![Status::Pass]))
        .check(scripted("db", vec![Status::Pass]))
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "two checks are keyed \"db\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_ready_waits_for_readiness_and_gives_up_at_once_when_shutdown_starts() {
    // Not ready at first, then ready: the gate opens once it passes.
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&ready);
    let registry = HealthRegistry::builder()
        .check(
            Check::new("warming", move || {
                let ready = flag.load(Ordering::Acquire);
                async move {
                    Ok::<_, std::convert::Infallible>(if ready {
                        CheckResult::pass()
                    } else {
                        CheckResult::fail()
                    })
                }
            })
            .cached(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let gate = tokio::spawn({
        let registry = registry.clone();
        async move { registry.until_ready().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!gate.is_finished(), "open before the check passed");
    ready.store(true, Ordering::Release);
    let opened = tokio::time::timeout(Duration::from_secs(10), gate).await;
    assert!(matches!(opened, Ok(Ok(true))), "{opened:?}");

    // A start whose check hangs: a shutdown meanwhile closes the gate at
    // once, not after the check's timeout (the slow start that hung a
    // SIGTERM before this gate existed).
    let shutdown = Shutdown::builder().signals([]).build().unwrap();
    let registry = HealthRegistry::builder()
        .shutdown(shutdown.token())
        .check(
            Check::new("hangs", pending::<Result<CheckResult, std::io::Error>>)
                .timeout(Duration::from_secs(60)),
        )
        .probe_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let gate = tokio::spawn({
        let registry = registry.clone();
        async move { registry.until_ready().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let triggered = std::time::Instant::now();
    shutdown.trigger(ShutdownReason::requested("test"));
    let closed = tokio::time::timeout(Duration::from_secs(10), gate).await;
    assert!(matches!(closed, Ok(Ok(false))), "{closed:?}");
    assert!(
        triggered.elapsed() < Duration::from_secs(5),
        "{:?}",
        triggered.elapsed()
    );
}
