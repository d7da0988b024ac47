//! The platform layer: the only place with `unsafe` in seaworthy.

#[cfg(unix)]
mod unix;

#[cfg(unix)]
pub(crate) use unix::*;
