//! Listeners that survive restarts, and a serve loop whose drain drops
//! nothing.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

mod addr;
mod bind;
mod connection;
mod error;
mod listener;
mod server;
#[allow(unsafe_code)]
mod sys;
#[cfg(unix)]
pub mod systemd;

pub use addr::Addr;
pub use bind::Bind;
pub use connection::ConnectionInfo;
pub use error::Error;
pub use listener::{Listener, Source, Stream};
pub use server::{Counters, CountersSnapshot, Server};
