//! Where rate-limit state lives: the bounded in-memory store
//! ([`MemoryStore`], in `memory.rs`, model-checked with loom in
//! `model.rs`), and the [`Store`] trait for shared ones (`RedisStore`,
//! feature `redis`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
#[cfg(not(target_os = "linux"))]
use std::time::Instant;

use crate::Decision;
use crate::Quota;

mod memory;
mod sync;

pub use memory::MemoryStore;

/// A rate-limit key: a client address (IPv6 aggregated to its prefix), or a
/// 128-bit digest of any other key. Sixteen bytes, so that a million keys
/// fit in about 28 MB.
pub type Key = [u64; 2];

/// A monotonic clock in nanoseconds. Injectable for tests; never a TSC
/// (governor #299: TSC clocks drift across cores and suspend).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since an origin of the clock's choosing.
    fn now(&self) -> u64;
}

/// The monotonic clock: on Linux `CLOCK_MONOTONIC_COARSE` (read from the
/// vDSO without a system call, a few nanoseconds; it advances every tick,
/// 1 to 4 ms), elsewhere `std::time::Instant`.
///
/// A coarse clock lags real time by at most one tick, and a late "now" can
/// only add debt: the limiter may refuse up to a tick early, never allow
/// more than the quota. For limits of up to a few hundred requests a second
/// per key, the tick is below one interval.
#[derive(Debug)]
pub struct MonotonicClock {
    /// Where `Instant` counts from (Linux reads the kernel's clock, whose
    /// origin is boot).
    #[cfg(not(target_os = "linux"))]
    origin: Instant,
}

// Derivable on Linux only (no field there); elsewhere it reads the time.
#[allow(clippy::derivable_impls)]
impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            #[cfg(not(target_os = "linux"))]
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    #[cfg(target_os = "linux")]
    fn now(&self) -> u64 {
        use nix::time::{ClockId, clock_gettime};
        // Available on every Linux since 2.6.32; an error is impossible for
        // a valid clock id.
        let now = clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE)
            .expect("CLOCK_MONOTONIC_COARSE exists on Linux");
        // Starts above 1 s: a TAT of 0 always means "no debt".
        (now.tv_sec() as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(now.tv_nsec() as u64)
            + 1_000_000_000
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> u64 {
        // Starts above 1 s: a TAT of 0 always means "no debt".
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX) + 1_000_000_000
    }
}

/// A clock moved by hand, for tests.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Duration) -> Self {
        ManualClock(Arc::new(AtomicU64::new(
            u64::try_from(start.as_nanos()).unwrap_or(u64::MAX),
        )))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            u64::try_from(by.as_nanos()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a store could not decide (a shared store that is down).
#[derive(Debug)]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// The store failed because of `source`.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError(source.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rate-limit store failed")
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Keeps each key's state and decides. The in-memory [`MemoryStore`] is the
/// default; a shared store (Redis) implements the same trait, with an
/// asynchronous answer.
pub trait Store: Send + Sync + 'static {
    /// The answer: ready at once for the memory store (a shared store
    /// returns a boxed future, which is `Unpin`).
    type Future: Future<Output = Result<Decision, StoreError>> + Send + Unpin + 'static;

    /// Checks one request of `cost` for `key` under `quota`.
    fn check(&self, key: Key, quota: &Quota, cost: u32) -> Self::Future;

    /// Whether other processes read the same state (Redis): then the
    /// limiter derives keys from header values and key functions with a
    /// hash every process computes alike (SHA-256), instead of one seeded
    /// at random in this process. Default `false`.
    fn is_shared(&self) -> bool {
        false
    }
}
