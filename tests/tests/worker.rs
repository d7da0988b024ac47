//! The `worker` example under real signals: graceful exit, a stuck task cut
//! off at the budget, a second signal forcing, a third exiting at once.

use std::time::Duration;

use seaworthy_tests::{Child, GENEROUS, Signal};

fn start(env: &[(&str, &str)]) -> Child {
    let mut child = Child::example("worker", env);
    child.wait_for_line("ready (pid", GENEROUS);
    child
}

#[test]
fn sigterm_exits_zero_and_runs_the_cleanup_hook_once() {
    let mut child = start(&[("SHUTDOWN_TIMEOUT", "10s")]);
    child.signal(Signal::SIGTERM);
    let (status, took) = child.wait_exit(GENEROUS);

    assert_eq!(status.code(), Some(0), "output:\n{}", child.output());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(child.count("cleanup: pool closed"), 1, "{}", child.output());
    assert_eq!(child.count("ticker stopped"), 1, "{}", child.output());
    let report = child.wait_for_line("shutdown complete", Duration::ZERO);
    assert!(report.contains("reason: signal SIGTERM"), "{report}");
    assert!(report.contains("exit code 0"), "{report}");
}

#[test]
fn sigint_works_too() {
    let mut child = start(&[]);
    child.signal(Signal::SIGINT);
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(0), "output:\n{}", child.output());
    child.wait_for_line("reason: signal SIGINT", Duration::ZERO);
}

#[test]
fn a_stuck_task_is_abandoned_at_the_budget_and_named() {
    // Budget 2 s: workers are abandoned at the latest a sixth of it before
    // the deadline, so the process exits after about 1.7 s, not 60 s.
    let mut child = start(&[("SHUTDOWN_TIMEOUT", "2s"), ("WORKER_STUCK_MS", "60000")]);
    child.signal(Signal::SIGTERM);
    let (status, took) = child.wait_exit(GENEROUS);

    assert_eq!(status.code(), Some(124), "output:\n{}", child.output());
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let report = child.wait_for_line("shutdown complete", Duration::ZERO);
    assert!(report.contains("abandoned: \"slow-job\""), "{report}");
    assert!(report.contains("exit code 124"), "{report}");
    // The cleanup hook still ran: the reserve kept time for it.
    assert_eq!(child.count("cleanup: pool closed"), 1, "{}", child.output());
}

#[test]
fn a_second_signal_during_the_drain_delay_forces() {
    let mut child = start(&[
        ("SHUTDOWN_TIMEOUT", "120s"),
        ("SHUTDOWN_DRAIN_DELAY", "60s"),
    ]);
    child.signal(Signal::SIGTERM);
    child.wait_for_line("phase=\"draining\"", GENEROUS);
    child.signal(Signal::SIGINT);
    let (status, took) = child.wait_exit(GENEROUS);

    // Well before the 60 s drain delay.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(status.code(), Some(0), "output:\n{}", child.output());
    child.wait_for_line("second signal: forcing shutdown", Duration::ZERO);
    let report = child.wait_for_line("shutdown complete", Duration::ZERO);
    assert!(report.contains("reason: signal SIGTERM"), "{report}");
    assert!(report.contains("; forced"), "{report}");
    assert_eq!(child.count("cleanup: pool closed"), 1, "{}", child.output());
}

#[test]
fn a_third_signal_exits_at_once_with_130() {
    // The slow job and a long force grace keep the process busy after the
    // second signal, so the third one finds it still shutting down.
    let mut child = start(&[
        ("SHUTDOWN_TIMEOUT", "120s"),
        ("SHUTDOWN_DRAIN_DELAY", "60s"),
        ("SHUTDOWN_FORCE_GRACE", "60s"),
        ("WORKER_STUCK_MS", "100000"),
    ]);
    child.signal(Signal::SIGTERM);
    child.wait_for_line("phase=\"draining\"", GENEROUS);
    child.signal(Signal::SIGINT);
    child.wait_for_line("phase=\"cancelling\"", GENEROUS);
    child.signal(Signal::SIGINT);
    let (status, took) = child.wait_exit(GENEROUS);

    assert_eq!(status.code(), Some(130), "output:\n{}", child.output());
    assert!(took < Duration::from_secs(30), "took {took:?}");
    child.wait_for_line("third signal: exiting now", Duration::ZERO);
    assert_eq!(child.count("shutdown complete"), 0, "{}", child.output());
}

#[test]
fn a_bad_variable_stops_the_start_with_78_naming_every_one() {
    let mut child = Child::example(
        "worker",
        &[("SHUTDOWN_TIMEOUT", "soon"), ("WORKER_STUCK_MS", "-5")],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78), "output:\n{}", child.output());
    child.wait_for_line("invalid configuration: 2 problems", Duration::ZERO);
    child.wait_for_line(
        "SHUTDOWN_TIMEOUT (environment): invalid, expected a duration like 30s",
        Duration::ZERO,
    );
    child.wait_for_line(
        "WORKER_STUCK_MS (environment): invalid, expected an integer from 0 to",
        Duration::ZERO,
    );
    assert_eq!(child.count("ready (pid"), 0);
}

#[test]
fn a_budget_that_cannot_fit_stops_the_start_with_78() {
    let mut child = Child::example(
        "worker",
        &[("SHUTDOWN_TIMEOUT", "5s"), ("SHUTDOWN_DRAIN_DELAY", "5s")],
    );
    let (status, _) = child.wait_exit(GENEROUS);
    assert_eq!(status.code(), Some(78), "output:\n{}", child.output());
    child.wait_for_line(
        "drain_delay (5s) must be shorter than timeout (5s)",
        Duration::ZERO,
    );
}
