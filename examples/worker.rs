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

use seaworthy::shutdown::Shutdown;
use seaworthy_examples::{EX_CONFIG, Env, init_tracing};

struct Settings {
    timeout: Duration,
    drain_delay: Duration,
    force_grace: Duration,
    stuck: Duration,
}

/// Reads the settings, naming every bad variable at once.
fn settings() -> Result<Settings, Vec<String>> {
    let mut env = Env::new();
    let settings = Settings {
        timeout: env.duration("SHUTDOWN_TIMEOUT", Duration::from_secs(30)),
        drain_delay: env.duration("SHUTDOWN_DRAIN_DELAY", Duration::ZERO),
        force_grace: env.duration("SHUTDOWN_FORCE_GRACE", Duration::from_secs(1)),
        stuck: Duration::from_millis(env.parse(
            "WORKER_STUCK_MS",
            0,
            "a whole number of milliseconds",
        )),
    };
    env.finish(settings)
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();

    let settings = match settings() {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("invalid configuration:\n  {}", errors.join("\n  "));
            return ExitCode::from(EX_CONFIG);
        }
    };
    let shutdown = match Shutdown::builder()
        .timeout(settings.timeout)
        .drain_delay(settings.drain_delay)
        .force_grace(settings.force_grace)
        .build()
    {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("invalid configuration: {err}");
            return ExitCode::from(EX_CONFIG);
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
    let stuck = settings.stuck;
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
