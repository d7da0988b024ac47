//! Runnable examples for seaworthy; see the `[[example]]` targets. This
//! library holds what they share.

/// `EX_CONFIG` from sysexits.h: the configuration is wrong.
pub const EX_CONFIG: u8 = 78;

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
