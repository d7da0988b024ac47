//! Runnable examples for seaworthy; see the `[[example]]` targets. This
//! library holds what they share: reading settings from the environment
//! until seaworthy-config lands.

use std::str::FromStr;
use std::time::Duration;

/// `EX_CONFIG` from sysexits.h: the configuration is wrong.
pub const EX_CONFIG: u8 = 78;

/// Reads variables, collecting every problem instead of stopping at the
/// first, so that one error names every bad variable.
#[derive(Debug, Default)]
pub struct Env {
    errors: Vec<String>,
}

impl Env {
    /// A reader with no errors yet.
    pub fn new() -> Self {
        Env::default()
    }

    fn raw(&mut self, name: &str) -> Option<String> {
        match std::env::var(name) {
            Ok(value) => Some(value.trim().to_owned()),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                self.errors.push(format!("{name}: not valid UTF-8"));
                None
            }
        }
    }

    /// A duration like `30s`, `500ms` or `5m`.
    pub fn duration(&mut self, name: &str, default: Duration) -> Duration {
        match self.raw(name) {
            None => default,
            Some(value) => humantime::parse_duration(&value).unwrap_or_else(|err| {
                self.errors.push(format!(
                    "{name}: expected a duration like 30s or 500ms ({err})"
                ));
                default
            }),
        }
    }

    /// A value parsed with `FromStr`; `expected` says what it should be.
    pub fn parse<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.raw(name) {
            None => default,
            Some(value) => value.parse().unwrap_or_else(|_| {
                self.errors.push(format!("{name}: expected {expected}"));
                default
            }),
        }
    }

    /// Records that `name` is invalid, saying what was expected (and never
    /// its value).
    pub fn invalid(&mut self, name: &str, expected: &str) {
        self.errors.push(format!("{name}: expected {expected}"));
    }

    /// Every problem found, or `Ok` with `value`.
    ///
    /// # Errors
    ///
    /// One line per bad variable.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
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
