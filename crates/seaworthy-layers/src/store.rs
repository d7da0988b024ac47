//! Where rate-limit state lives: the bounded in-memory store, and the
//! `Store` trait for shared ones (Redis, in a later release).

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{Decision, Quota};

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

/// `std::time::Instant`: `CLOCK_MONOTONIC` on Linux.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> u64 {
        // Starts at 1 s: a TAT of 0 then always means "no debt".
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
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate-limit store failed: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Keeps each key's state and decides. The in-memory [`MemoryStore`] is the
/// default; a shared store (Redis) implements the same trait, with an
/// asynchronous answer.
pub trait Store: Send + Sync + 'static {
    /// The answer: ready at once for the memory store.
    type Future: Future<Output = Result<Decision, StoreError>> + Send + 'static;

    /// Checks one request of `cost` for `key` under `quota`.
    fn check(&self, key: Key, quota: &Quota, cost: u32) -> Self::Future;
}

/// The in-memory store: sharded, bounded, and self-cleaning.
///
/// At most `capacity` keys (rounded up so that each shard's table is full
/// before it evicts, and never grows past it). A key whose theoretical
/// arrival time has passed carries no state (a new key would be decided the
/// same way), so such keys are dropped first, by a sweep the store runs
/// itself when a shard fills; when every key is active (a flood), the least
/// indebted of a small sample, the one closest to expiry, goes. Memory stays
/// within about 25 bytes per key of capacity, whatever arrives.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    seed: u64,
    clock: Arc<dyn Clock>,
}

struct Shard {
    map: HashMap<Key, u64, RandomState>,
    last_sweep: u64,
}

const SHARDS: usize = 64;
const EVICTION_SAMPLE: usize = 8;

impl MemoryStore {
    /// A store for about `capacity` keys (default in
    /// [`RateLimitLayer`](crate::RateLimitLayer): 1,000,000).
    pub fn new(capacity: usize) -> Self {
        MemoryStore::with_clock(capacity, Arc::new(MonotonicClock::default()))
    }

    /// The same, on `clock`.
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        // A hashbrown table of 2^n buckets holds 7/8 of them before growing.
        let wanted = capacity.div_ceil(SHARDS).max(8);
        let buckets = (wanted * 8).div_ceil(7).next_power_of_two();
        let per_shard = buckets / 8 * 7;
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(RandomState::new()),
                    last_sweep: 0,
                })
            })
            .collect();
        MemoryStore {
            shards,
            per_shard,
            seed: RandomState::new().hash_one(0_u8) | 1,
            clock,
        }
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .map
                    .len()
            })
            .sum()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision, at once.
    pub fn check_now(&self, key: Key, quota: &Quota, cost: u32) -> Decision {
        let now = self.clock.now();
        let index =
            ((key[0] ^ key[1].rotate_left(32)).wrapping_mul(self.seed) >> 58) as usize % SHARDS;
        let seen = (now / 1_000_000_000) as u16;
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = shard.map.get_mut(&key) {
            let mut tat = unpack(*state);
            let decision = quota.check(&mut tat, now, cost);
            *state = pack(tat, seen);
            return decision;
        }
        let mut tat = 0;
        let decision = quota.check(&mut tat, now, cost);
        if decision.allowed {
            if shard.map.len() >= self.per_shard {
                shard.make_room(now, quota.tolerance(), seen);
            }
            shard.map.insert(key, pack(tat, seen));
        }
        decision
    }
}

/// A TAT in nanoseconds and the second last seen, in one word.
fn pack(tat: u64, seen: u16) -> u64 {
    (tat.div_ceil(1000) << 16) | u64::from(seen)
}

fn unpack(state: u64) -> u64 {
    (state >> 16) * 1000
}

impl Shard {
    fn make_room(&mut self, now: u64, tolerance: u64, seen: u16) {
        // Expired keys first: a sweep at most once per tolerance window.
        if now.saturating_sub(self.last_sweep) >= tolerance.max(1_000_000) {
            self.last_sweep = now;
            let before = self.map.len();
            self.map.retain(|_, state| unpack(*state) > now);
            if self.map.len() < before {
                return;
            }
        }
        // All active: drop the least recently seen of a sample.
        let victim = self
            .map
            .iter()
            .take(EVICTION_SAMPLE)
            .max_by_key(|(_, state)| seen.wrapping_sub(**state as u16))
            .map(|(key, _)| *key);
        if let Some(key) = victim {
            self.map.remove(&key);
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Store for MemoryStore {
    type Future = Ready<Result<Decision, StoreError>>;

    fn check(&self, key: Key, quota: &Quota, cost: u32) -> Self::Future {
        ready(Ok(self.check_now(key, quota, cost)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_never_holds_more_than_its_capacity_and_keeps_active_keys() {
        let clock = ManualClock::new(Duration::from_secs(1));
        let store = MemoryStore::with_clock(10_000, Arc::new(clock.clone()));
        let quota = Quota::per_hour(1);
        // A key in debt that keeps sending: it must keep its state through
        // the flood.
        let active = [7, 7];
        assert!(store.check_now(active, &quota, 1).allowed);
        for i in 0..200_000_u64 {
            if i % 100 == 0 {
                clock.advance(Duration::from_secs(1));
                assert!(
                    !store.check_now(active, &quota, 1).allowed,
                    "state lost at {i}"
                );
            }
            store.check_now([i, 1], &quota, 1);
        }
        assert!(store.len() <= store.capacity());
        // Later, everything has expired and space is reused.
        clock.advance(Duration::from_secs(7200));
        for i in 0..20_000_u64 {
            store.check_now([i, 2], &quota, 1);
        }
        assert!(store.len() <= store.capacity());
    }
}
