//! Typed settings from the environment: every error at once, by variable
//! name, and no secret ever shown.
//!
//! # Overview
//!
//! Settings are plain serde structs. A [`Loader`] reads the variables that
//! start with a prefix (in any case), nests them by `__`
//! (`APP_DB__POOL_SIZE` is `db.pool_size`), and deserializes:
//!
//! - defaults with `#[serde(default)]`, optional settings as `Option`;
//! - booleans as `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`;
//! - lists from comma-separated values (an empty value is an empty list,
//!   never `[""]`);
//! - durations (`30s`, `250ms`) with [`duration`], byte sizes (`10MiB`,
//!   `512KB`) with [`bytes`], and anything with `FromStr` (a URL, a socket
//!   address, a rate of your own) directly or with [`from_str`];
//! - secrets as [`Secret<T>`]: redacted in `Debug`, `Display`, serialized
//!   output and errors, zeroized on drop, read through `expose()`.
//!
//! Sources, by precedence: the process environment, then `.env` files
//! ([`Loader::env_file`], read with dotenvy's iterator: the process
//! environment is never written), then defaults. `NAME_FILE=/run/secrets/x`
//! reads `NAME` from a file (Docker and Kubernetes secrets), one trailing
//! newline trimmed; setting both is an error.
//!
//! One load reports **everything** wrong in one [`ConfigError`]: each
//! missing and each invalid variable by its full name, where it came from
//! (environment, `.env` line, `_FILE` path), what was expected, and never
//! the value; variables inside the prefix that no setting reads get a "did
//! you mean".
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seaworthy_config::{Loader, Secret};
//!
//! #[derive(serde::Deserialize, Debug)]
//! struct Settings {
//!     port: u16,
//!     #[serde(with = "seaworthy_config::duration", default = "timeout")]
//!     timeout: Duration,
//!     db: Db,
//! }
//!
//! #[derive(serde::Deserialize, Debug)]
//! struct Db {
//!     url: Secret<String>,
//!     #[serde(default)]
//!     replicas: Vec<String>,
//! }
//!
//! fn timeout() -> Duration { Duration::from_secs(30) }
//!
//! // In a program: Loader::new("APP_").env_file(".env").load()
//! let loader = Loader::new("APP_").from_iter([
//!     ("APP_PORT", "8080"),
//!     ("APP_DB__URL", "postgres://app:hunter2@db/app"),
//!     ("APP_DB__REPLICAS", "r1, r2"),
//! ]);
//! let settings: Settings = loader.load().unwrap();
//! assert_eq!(settings.port, 8080);
//! assert_eq!(settings.db.replicas, ["r1", "r2"]);
//! assert!(!format!("{settings:?}").contains("hunter2"));
//!
//! // Everything wrong, at once, by name, without values:
//! let err = Loader::new("APP_")
//!     .from_iter([("APP_PORT", "eighty"), ("APP_TIMEOUT", "soon"), ("APP_DB__URLL", "x")])
//!     .load::<Settings>()
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "invalid configuration: 4 problems
//!   APP_DB__URL: missing, and required
//!   APP_DB__URLL (environment): unknown variable; did you mean APP_DB__URL?
//!   APP_PORT (environment): invalid, expected an integer from 0 to 65535
//!   APP_TIMEOUT (environment): invalid, expected a duration like 30s, 250ms or 5m");
//! ```
//!
//! [`Loader::explain`] lists the effective settings with their sources
//! (for a `--print-config` flag), [`Loader::env_example`] writes a
//! `.env.example`, and [`Loader::reloadable`] gives a lock-free handle whose
//! `reload()` keeps the old settings when the new ones do not validate.
//!
//! # Why its own deserializer
//!
//! envy (and serde generally) stops at the first error a field returns.
//! To name every bad variable in one error, this crate's deserializer parses
//! what it can itself and records a problem with a stand-in value; where only
//! the field's type can tell (a URL, an address), it records the problem and
//! runs again with a stand-in that type accepts. A good load is one pass; a
//! load with k problems takes at most about 8k.
//!
//! A type that no stand-in fits (a `FromStr` type of your own, read with
//! [`from_str`]) is left out of the passes after it failed: with a default
//! (`#[serde(default)]` on the field or the struct, as settings usually
//! have), the load goes on and names every other problem too. A required
//! field of such a type still lets every invalid value, unknown variable
//! and earlier missing field be named; only a missing field declared after
//! it waits for it to be fixed (serde checks missing fields in declaration
//! order). A nested struct with no variable at all is reported by its
//! missing fields (`APP_DB__URL`), never as a variable of its own
//! (`APP_DB`). A parse error that says what went wrong ("invalid IP address
//! syntax") is reported beside what the type expects ("an IP address").
//!
//! # Comparison
//!
//! | | envy | figment | config-rs | pydantic-settings | seaworthy-config |
//! |---|---|---|---|---|---|
//! | every error in one load | no, the first | no, the first | no, the first | yes | yes |
//! | errors name the variable to set | the variable when invalid, the field when missing | key path in the profile | key path | field name (issue #24) | the full variable, with its source |
//! | values kept out of errors | no (invalid value echoed) | no | no | no (issues #256, #530, #937) | yes, secrets included |
//! | secrets type redacted in Debug/Display/serialize | no | no | no | `SecretStr` | `Secret<T>`, zeroized |
//! | `.env` without writing the environment | no | no | no | yes | yes (dotenvy's iterator) |
//! | `NAME_FILE` secrets, conflict detected | no | no | no | secrets dir | yes |
//! | did you mean for typos | no | no | no | no (extra=ignore) | yes |
//! | nesting delimiter | none | `__` (configurable) | configurable | `env_nested_delimiter` | `__`, never `_` |
//! | reload keeping the old on error | no | no | no | no | yes (arc-swap) |
//!
//! # Dependencies
//!
//! 13 normal dependencies in all (`cargo tree -e normal` on Linux): serde,
//! dotenvy, secrecy, arc-swap, strsim, tracing, and what they bring. No
//! async runtime.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod de;
mod error;
mod loader;
mod secret;
mod source;
mod values;

pub use error::{ConfigError, Problem, ProblemKind, Source};
pub use loader::{Explanation, Loader, Reloadable};
pub use secret::Secret;
pub use values::{bytes, duration, from_str};
