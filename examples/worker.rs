//! A process with no HTTP, shut down gracefully: the shape of a queue
//! consumer or a cron runner.
//!
//! - `ticker` ticks every 100 ms until its token is cancelled;
//! - `slow-job` keeps working `WORKER_STUCK_MS` milliseconds after its token
//!   is cancelled (default 0): set it past the budget to see a straggler;
//! - a cleanup hook "closes a pool";
//! - the report is logged as one event and becomes the exit status.
//!
//! ```text
//! cargo run --release --example worker
//! SHUTDOWN_TIMEOUT=2s WORKER_STUCK_MS=60000 cargo run --example worker   # exits 124
//! ```
//!
//! Environment: `SHUTDOWN_TIMEOUT` (default `30s`), `SHUTDOWN_DRAIN_DELAY`
//! (`0s`), `SHUTDOWN_FORCE_GRACE` (`1s`), `WORKER_STUCK_MS` (`0`). A bad
//! value exits with status 78 (`EX_CONFIG`) before anything starts.

use std::process::ExitCode;
use std::time::Duration;

use seaworthy::config::Loader;
use seaworthy::shutdown::{EXIT_CONFIG, Shutdown};
use seaworthy_examples::{exit, init_tracing};

#[derive(serde::Deserialize)]
#[serde(default)]
struct Settings {
    #[serde(with = "seaworthy::config::duration")]
    shutdown_timeout: Duration,
    #[serde(with = "seaworthy::config::duration")]
    shutdown_drain_delay: Duration,
    #[serde(with = "seaworthy::config::duration")]
    shutdown_force_grace: Duration,
    /// How long the slow job keeps working after its token is cancelled.
    worker_stuck_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shutdown_timeout: Duration::from_secs(30),
            shutdown_drain_delay: Duration::ZERO,
            shutdown_force_grace: Duration::from_secs(1),
            worker_stuck_ms: 0,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();

    let settings: Settings = match Loader::new("").load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return exit(EXIT_CONFIG);
        }
    };
    let shutdown = match Shutdown::builder()
        .timeout(settings.shutdown_timeout)
        .drain_delay(settings.shutdown_drain_delay)
        .force_grace(settings.shutdown_force_grace)
        .build()
    {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("invalid configuration: {err}");
            return exit(EXIT_CONFIG);
        }
    };

    let token = shutdown.token();
    shutdown.spawn("ticker", async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut ticks = 0_u64;
        loop {
            tokio::select! {
                _ = tick.tick() => ticks += 1,
                () = token.cancelled() => break,
            }
        }
        tracing::info!(ticks, "ticker stopped");
    });

    let token = shutdown.token();
    let stuck = Duration::from_millis(settings.worker_stuck_ms);
    shutdown.spawn("slow-job", async move {
        token.cancelled().await;
        // Ignores the cancellation for a while, as a job mid-batch would.
        tokio::time::sleep(stuck).await;
        tracing::info!("slow-job stopped");
    });

    shutdown.on_cleanup("close pool", Duration::from_secs(5), || async {
        println!("cleanup: pool closed");
    });

    println!("ready (pid {})", std::process::id());
    let report = shutdown.wait().await;
    // Exit now: the report is logged, and stragglers are abandoned by design.
    std::process::exit(report.exit_code());
}
