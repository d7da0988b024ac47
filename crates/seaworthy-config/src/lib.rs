//! Typed settings from the environment: every error at once, by variable
//! name, and no secret ever shown.
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
