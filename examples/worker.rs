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

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use seaworthy::shutdown::Shutdown;
use tracing_subscriber::EnvFilter;

/// `EX_CONFIG` from sysexits.h: the configuration is wrong.
const EX_CONFIG: u8 = 78;

struct Settings {
    timeout: Duration,
    drain_delay: Duration,
    force_grace: Duration,
    stuck: Duration,
}

/// Reads the settings, naming every bad variable at once.
fn settings() -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let mut duration = |name: &str, default: Duration| match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => default,
        Ok(value) => humantime::parse_duration(value.trim()).unwrap_or_else(|err| {
            errors.push(format!(
                "{name}: expected a duration like 30s or 500ms ({err})"
            ));
            default
        }),
        Err(std::env::VarError::NotUnicode(_)) => {
            errors.push(format!("{name}: not valid UTF-8"));
            default
        }
    };
    let timeout = duration("SHUTDOWN_TIMEOUT", Duration::from_secs(30));
    let drain_delay = duration("SHUTDOWN_DRAIN_DELAY", Duration::ZERO);
    let force_grace = duration("SHUTDOWN_FORCE_GRACE", Duration::from_secs(1));
    let stuck = match std::env::var("WORKER_STUCK_MS") {
        Err(_) => Duration::ZERO,
        Ok(value) => match value.trim().parse() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                errors.push("WORKER_STUCK_MS: expected a whole number of milliseconds".into());
                Duration::ZERO
            }
        },
    };
    if errors.is_empty() {
        Ok(Settings {
            timeout,
            drain_delay,
            force_grace,
            stuck,
        })
    } else {
        Err(errors)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();

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
