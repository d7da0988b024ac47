//! Runnable examples for seaworthy; see the `[[example]]` targets. This
//! library holds what they share.

use std::process::ExitCode;

/// seaworthy's exit code `code` (`EXIT_CONFIG`, `EXIT_UNAVAILABLE`, a
/// report's) as `main`'s return value.
pub fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Logs to stdout, with colours only on a terminal; `RUST_LOG` filters
/// (default `info`).
pub fn init_tracing() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}
