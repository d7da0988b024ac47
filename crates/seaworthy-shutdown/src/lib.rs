//! A graceful-shutdown coordinator for tokio processes: one budget, ordered
//! phases, signal escalation, and a report of what was cut off.
//!
//! # Overview
//!
//! Build one [`Shutdown`] at start. Hand [`ShutdownToken`]s to workers,
//! spawn tasks through it so that they are tracked by name, register cleanup
//! hooks, and end `main` by awaiting [`Shutdown::wait`]. When a trigger comes
//! (`SIGTERM` or `SIGINT` by default, [`Shutdown::trigger`], or a failing
//! [critical task](Shutdown::spawn_critical)), the coordinator walks the
//! [`Phase`]s in order within one budget:
//!
//! 1. **Draining**: readiness fails at once; listeners keep accepting for
//!    the drain delay, while load balancers notice.
//! 2. **Closing**: listeners stop accepting; open connections drain (each
//!    holds a [`DrainGuard`]).
//! 3. **Cancelling**: worker tokens fire; tracked tasks finish.
//! 4. **Cleanup**: hooks run, last registered first, each with its timeout.
//! 5. **Done**: a [`ShutdownReport`] names every task still running at its
//!    deadline, every hook that timed out, each phase's duration, the reason,
//!    and the [exit code](ShutdownReport::exit_code).
//!
//! A second signal skips what is left of the drain delay and the connection
//! drain, and gives workers only a short grace. A third exits the process at
//! once with status 130. Signals are counted apart from programmatic
//! triggers: after [`Shutdown::trigger`], the first signal is logged and the
//! second forces. A shutdown for [`ShutdownReason::Upgrade`] skips the drain
//! delay (the new process owns the listening socket and its queue).
//!
//! Other components take part through the token, without this crate knowing
//! them: a health endpoint fails readiness while
//! [`is_shutting_down`](ShutdownToken::is_shutting_down); a listener awaits
//! [`reached(Phase::Closing)`](ShutdownToken::reached) to stop accepting and
//! holds a [`drain_guard`](ShutdownToken::drain_guard) per connection.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seaworthy_shutdown::{Shutdown, ShutdownReason};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let shutdown = Shutdown::builder()
//!     .timeout(Duration::from_secs(30))
//!     .drain_delay(Duration::from_secs(5))
//!     .build()?;
//!
//! let token = shutdown.token();
//! shutdown.spawn("ticker", async move {
//!     let mut tick = tokio::time::interval(Duration::from_millis(100));
//!     loop {
//!         tokio::select! {
//!             _ = tick.tick() => { /* a unit of work */ }
//!             () = token.cancelled() => break,
//!         }
//!     }
//! });
//! shutdown.on_cleanup("close pool", Duration::from_secs(5), || async {
//!     // pool.close().await
//! });
//!
//! // In a real process SIGTERM does this.
//! shutdown.trigger(ShutdownReason::requested("example"));
//!
//! let report = shutdown.wait().await;
//! assert!(report.is_clean());
//! assert_eq!(report.exit_code(), 0);
//! // std::process::exit(report.exit_code());
//! # Ok(())
//! # }
//! ```
//!
//! # The budget
//!
//! [`Builder::timeout`] (30 s by default) bounds the whole shutdown. The
//! connection drain ends at the latest [`worker_grace`](Builder::worker_grace)
//! plus [`cleanup_reserve`](Builder::cleanup_reserve) before the deadline,
//! and workers are abandoned at the latest `cleanup_reserve` before it, so a
//! slow phase never eats the time of the ones after it. The builder refuses a
//! budget whose parts cannot fit, naming the values that clash.
//!
//! # Exit codes
//!
//! | code | when |
//! |---|---|
//! | 0 | every task, connection and hook finished within the budget |
//! | 1 | a critical task failed and triggered the shutdown, or a task or hook panicked |
//! | 124 | the budget ran out: a task was abandoned, a hook timed out, or connections were cut |
//! | 130 | a third signal: immediate exit |
//!
//! # Runtime
//!
//! Works on the multi-thread and the current-thread runtime. Nothing polls
//! in a loop: every wait is a timer, a token or a watch. The library calls
//! `std::process::exit` only on the third signal, which
//! [`Builder::exit_on_third_signal`] turns off.
//!
//! # Comparison with tokio-graceful-shutdown
//!
//! tokio-graceful-shutdown organises a program as a tree of subsystems with
//! one shutdown timeout. It has no drain delay for load balancers, no
//! escalation on a second signal, and no separate phase for connections:
//! everything is cancelled at once. Here the subsystem tree is
//! [`child_token`](ShutdownToken::child_token), and the phases let a listener
//! drain before the workers it needs are cancelled.
//!
//! # Comparison with tokio-graceful
//!
//! tokio-graceful has a delay and a second-signal override, but a single
//! stage: no ordered phases, no reserve for cleanup, no names for what was
//! still running when the time ran out.
//!
//! # Comparison with tokio-util
//!
//! [`CancellationToken`](tokio_util::sync::CancellationToken) and
//! [`TaskTracker`](tokio_util::task::TaskTracker) are the building blocks
//! this crate uses; on their own they leave the signals, the phases, the
//! deadline, the hooks and the report to every program.
//!
//! # Comparison with axum's `with_graceful_shutdown`
//!
//! `axum::serve(..).with_graceful_shutdown(signal)` stops accepting the
//! moment the signal fires (clients still routed to the process are
//! refused) and then waits for connections with no deadline at all. Use this
//! crate's phases to fail readiness first and to bound the wait.
//!
//! # Dependencies
//!
//! 22 normal dependencies in all (`cargo tree -e normal` on Linux): tokio
//! (signals, timers), tokio-util's `CancellationToken` and `TaskTracker`,
//! tracing, and what they bring.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod builder;
mod handle;
mod phase;
mod reason;
mod report;
mod shutdown;
mod signal;
mod task;
mod token;

pub use builder::{BuildError, Builder};
pub use handle::ShutdownHandle;
pub use phase::Phase;
pub use reason::{ShutdownReason, Signal, TaskFailure};
pub use report::{
    EXIT_CLEAN, EXIT_CONFIG, EXIT_FAILED, EXIT_IMMEDIATE, EXIT_TIMED_OUT, EXIT_UNAVAILABLE,
    HookFailure, HookFailureKind, PhaseTiming, ShutdownReport, Straggler,
};
pub use shutdown::Shutdown;
pub use token::{DrainGuard, ShutdownToken};
