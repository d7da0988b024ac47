//! The in-memory store: sharded, bounded, self-cleaning, lock-free for
//! keys it holds.

use std::cmp::Reverse;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::sync::{AtomicU64, Mutex, PoisonError, TableCell};
use super::{Clock, Key, MonotonicClock, Store, StoreError};
use crate::{Decision, Quota};

/// The in-memory store: sharded, bounded, and self-cleaning.
///
/// A table of 8-slot sets, each slot 24 bytes: a 16-byte key and one word
/// of state. A key goes to one set, picked by a hash under secret random
/// seeds (so a client cannot aim at a set). A key whose theoretical arrival
/// time has passed carries no state (a new key would be decided the same
/// way), so its slot is free. Each of the 64 shards starts with 4 sets and
/// doubles when a set overflows, up to its share of `capacity` (rounded up
/// to a power of two): a few thousand keys stay in cache, and memory never
/// exceeds `capacity × 24` bytes. At the cap, the least recently seen key
/// of a full set gives way; among keys seen in the same second, a key seen
/// only once goes before a key that came back, and then the one with the
/// least debt. So keys that keep sending keep their state, and a client
/// held back keeps its debt through a flood of new keys (even a client
/// whose debt is smaller than each newcomer's, as under a quota with no
/// burst); a flood of distinct keys only churns the sets among its own
/// keys, and no sweep is ever needed.
/// Sets fill unevenly: with keys in debt filling 95 % of the capacity,
/// about one in eight gives way early, so size `capacity` some 20 % above
/// the keys expected to be in debt at once. Even far below the cap a set
/// can overflow once its shard is at its share: with 80,000 keys in debt
/// in a store of 1,048,576, 9 of them land in one set and one gives way
/// about one time in 400 (the Poisson tail gives 0.23 %; a probe of 4,000
/// single-threaded runs saw 10), as in any table of 8-way sets.
///
/// Checks of a key already held take no lock: the shard's table is read
/// through an `arc_swap::ArcSwap` (no shared counter to bounce between
/// cores), the key's slot is found and validated like a seqlock, and its
/// state is updated with a compare-and-swap; a refusal writes nothing
/// (except once a second, to mark the key as seen). Only new keys and
/// growth take the shard's mutex. A slot being rewritten, or a shard being
/// grown, shows a busy state for that moment, and a check that meets it
/// takes the mutex path instead: no update is lost to a rewrite or a
/// growth.
///
/// The lock-free paths are model-checked with loom (`model.rs`: racers on
/// one key, a check racing a growth, a check racing an eviction; it found
/// the ABA that `update`'s key re-read after the swap now closes).
///
/// A key's state is its theoretical arrival time in microseconds (48 bits:
/// 8.9 years of uptime), rounded up so that debt is never forgotten, then
/// whether the key came back after its first check (1 bit) and the second
/// it was last seen (15 bits, wrapping every 9.1 hours), both for eviction
/// only.
pub struct MemoryStore {
    shards: Box<[Shard]>,
    /// The most sets per shard, a power of two.
    sets: usize,
    /// Random keys of the set hash, drawn from the OS at start.
    seeds: [u64; 2],
    clock: Arc<dyn Clock>,
}

/// One shard, alone on its cache lines (128 bytes: x86 fetches lines in
/// pairs), so that threads working on neighbouring shards do not bounce
/// each other's lines.
#[repr(align(128))]
struct Shard {
    /// The slots; replaced (never resized in place) when the shard grows.
    table: TableCell<Box<[Slot]>>,
    /// Taken to put a new key in, or to grow.
    write: Mutex<()>,
}

/// A key and its state, all atomics: read without a lock.
struct Slot {
    key: [AtomicU64; 2],
    state: AtomicU64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            key: [AtomicU64::new(0), AtomicU64::new(0)],
            state: AtomicU64::new(0),
        }
    }
}

/// The state of a slot being rewritten, or of every slot of a shard being
/// grown: checks that meet it take the mutex path. (A real state never
/// reaches it: that TAT is 8.9 years away.)
const BUSY: u64 = u64::MAX;

impl Slot {
    fn key(&self) -> Key {
        [
            self.key[0].load(Ordering::Acquire),
            self.key[1].load(Ordering::Acquire),
        ]
    }

    /// The state, if the slot holds `key` and was not being rewritten while
    /// it was read (the state before and after the key agree).
    fn read(&self, key: Key) -> Option<u64> {
        let before = self.state.load(Ordering::Acquire);
        if self.key() != key {
            return None;
        }
        let after = self.state.load(Ordering::Acquire);
        (before == after).then_some(before)
    }

    /// Rewrites the slot for `key` with `state`, if it still holds `old`
    /// (a concurrent check may have moved it). Only under the shard's
    /// mutex.
    fn rewrite(&self, old: u64, key: Key, state: u64) -> bool {
        if self
            .state
            .compare_exchange(old, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.key[0].store(key[0], Ordering::Release);
        self.key[1].store(key[1], Ordering::Release);
        self.state.store(state, Ordering::Release);
        true
    }
}

/// `sets × WAYS` empty slots.
fn empty_slots(sets: usize) -> Box<[Slot]> {
    (0..sets * WAYS).map(|_| Slot::default()).collect()
}

/// The set of `hash` in `table`.
fn set_of(table: &[Slot], hash: u64) -> &[Slot] {
    let sets = table.len() / WAYS;
    let set = (hash as usize) & (sets - 1);
    &table[set * WAYS..(set + 1) * WAYS]
}

#[cfg(not(seaworthy_loom))]
const SHARDS: usize = 64;
#[cfg(not(seaworthy_loom))]
const WAYS: usize = 8;
/// Sets a shard starts with.
#[cfg(not(seaworthy_loom))]
const INITIAL_SETS: usize = 4;
// The loom model: one shard of one 2-way set to start, so that a few
// checks fill a set, grow it and evict from it.
#[cfg(seaworthy_loom)]
const SHARDS: usize = 1;
#[cfg(seaworthy_loom)]
const WAYS: usize = 2;
#[cfg(seaworthy_loom)]
const INITIAL_SETS: usize = 1;
/// The key that marks an empty slot (a real key equal to it is moved).
const EMPTY: Key = [0, 0];

/// The set hash's secret keys, from the OS's random source.
#[cfg(not(seaworthy_loom))]
fn seeds() -> [u64; 2] {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new();
    [random.hash_one(1_u8) | 1, random.hash_one(2_u8) | 1]
}

/// Fixed under loom: a model must run the same code each time.
#[cfg(seaworthy_loom)]
fn seeds() -> [u64; 2] {
    [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7345]
}

/// Why a lock-free check gave up: the mutex path decides instead.
struct Contended;

impl MemoryStore {
    /// A store for about `capacity` keys (default in
    /// [`RateLimitLayer`](crate::RateLimitLayer): 1,000,000, 24 MB).
    pub fn new(capacity: usize) -> Self {
        MemoryStore::with_clock(capacity, Arc::new(MonotonicClock::default()))
    }

    /// The same, on `clock`.
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let sets = capacity.div_ceil(SHARDS * WAYS).max(1).next_power_of_two();
        // Each shard starts with a few sets and doubles when a set
        // overflows, up to `sets`: a few thousand keys stay in cache.
        let shards = (0..SHARDS)
            .map(|_| Shard {
                table: TableCell::new(empty_slots(sets.min(INITIAL_SETS))),
                write: Mutex::new(()),
            })
            .collect();
        MemoryStore {
            shards,
            sets,
            seeds: seeds(),
            clock,
        }
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        SHARDS * self.sets * WAYS
    }

    /// Keys held now (counts every slot: for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .table
                    .load()
                    .iter()
                    .filter(|slot| slot.key() != EMPTY)
                    .count()
            })
            .sum()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision, at once.
    pub fn check_now(&self, key: Key, quota: &Quota, cost: u32) -> Decision {
        let key = if key == EMPTY { [0, 1] } else { key };
        // State is kept in microseconds: work in whole microseconds (quota
        // intervals are whole microseconds too), so that no rounding ever
        // adds debt. Rounding "now" down can only add less than 1 µs of it.
        let now = self.clock.now() / 1000 * 1000;
        let seen = (now / 1_000_000_000) as u16 & SEEN;
        let hash = self.set_hash(key);
        let shard = &self.shards[(hash >> 58) as usize % SHARDS];
        {
            let table = shard.table.load();
            for slot in set_of(&table, hash) {
                if let Some(state) = slot.read(key) {
                    if let Ok(decision) = update(slot, key, state, quota, now, seen, cost) {
                        return decision;
                    }
                    break;
                }
            }
        }
        self.check_locked(shard, hash, key, quota, now, seen, cost)
    }

    /// The mutex path: a new key, or a check that met a rewrite or growth.
    #[allow(clippy::too_many_arguments)]
    fn check_locked(
        &self,
        shard: &Shard,
        hash: u64,
        key: Key,
        quota: &Quota,
        now: u64,
        seen: u16,
        cost: u32,
    ) -> Decision {
        let _write = shard.write.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let table = shard.table.load_full();
            let set = set_of(&table, hash);
            // Held already (put there meanwhile, or met busy before): no
            // slot is busy while this mutex is held, so only concurrent
            // checks move the state, and `update` retries those.
            if let Some(slot) = set.iter().find(|slot| slot.key() == key) {
                let state = slot.state.load(Ordering::Acquire);
                if let Ok(decision) = update(slot, key, state, quota, now, seen, cost) {
                    return decision;
                }
                continue;
            }
            let mut tat = 0;
            let decision = quota.check(&mut tat, now, cost);
            if !decision.allowed {
                // Refused even fresh (a cost above the capacity): nothing to
                // keep.
                return decision;
            }
            let fresh = pack(tat, seen);
            // A free slot: empty, or a key with no debt left.
            let free = set.iter().find_map(|slot| {
                let state = slot.state.load(Ordering::Acquire);
                (slot.key() == EMPTY || unpack(state) <= now).then_some((slot, state))
            });
            if let Some((slot, old)) = free {
                if slot.rewrite(old, key, fresh) {
                    return decision;
                }
                continue;
            }
            if table.len() / WAYS < self.sets {
                self.grow(shard, &table, now);
                continue;
            }
            // At the cap: the least recently seen key of the set gives way;
            // among keys seen in the same second (a flood), one seen only
            // once before one that came back, then the least indebted, so
            // a client held back keeps its debt.
            let (victim, old) = set
                .iter()
                .map(|slot| (slot, slot.state.load(Ordering::Acquire)))
                .max_by_key(|(_, state)| {
                    (
                        seen.wrapping_sub(*state as u16) & SEEN,
                        *state & CAME_BACK == 0,
                        Reverse(*state >> 16),
                    )
                })
                .expect("a set has slots");
            if victim.rewrite(old, key, fresh) {
                return decision;
            }
        }
    }

    /// Doubles a shard's sets; each old set splits into two, so no key is
    /// lost, and keys with no debt left are dropped on the way. Every old
    /// slot is marked busy as it is copied, so a concurrent update either
    /// lands before the copy (and is copied) or fails and takes the mutex
    /// path (and waits for the new table). Only under the shard's mutex.
    fn grow(&self, shard: &Shard, table: &[Slot], now: u64) {
        let sets = table.len() / WAYS * 2;
        let grown = empty_slots(sets);
        for slot in table {
            let state = slot.state.swap(BUSY, Ordering::AcqRel);
            let key = slot.key();
            if key == EMPTY || unpack(state) <= now {
                continue;
            }
            let set = (self.set_hash(key) as usize) & (sets - 1);
            if let Some(free) = grown[set * WAYS..(set + 1) * WAYS]
                .iter()
                .find(|slot| slot.key() == EMPTY)
            {
                free.key[0].store(key[0], Ordering::Relaxed);
                free.key[1].store(key[1], Ordering::Relaxed);
                free.state.store(state, Ordering::Relaxed);
            }
        }
        // Published with release: readers of the new table see its slots.
        shard.table.store(grown);
    }
}

/// Decides for `key`, held in `slot` with `state`, updating the state with
/// a compare-and-swap: an allowed request moves its TAT and marks the key
/// as come back; a refused one writes only to mark it so, or when the
/// second it was last seen changes (so a key refused again and again stays
/// recently seen, and keeps its debt through eviction, at one write a
/// second). Gives up when the slot turns busy or to another key.
fn update(
    slot: &Slot,
    key: Key,
    state: u64,
    quota: &Quota,
    now: u64,
    seen: u16,
    cost: u32,
) -> Result<Decision, Contended> {
    let mut current = state;
    loop {
        if current == BUSY {
            return Err(Contended);
        }
        let mut tat = unpack(current);
        let decision = quota.check(&mut tat, now, cost);
        let marks = CAME_BACK | u64::from(seen);
        let next = if decision.allowed {
            pack(tat, seen) | CAME_BACK
        } else if current & 0xffff != marks {
            (current & !0xffff) | marks
        } else {
            return Ok(decision);
        };
        match slot
            .state
            .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
        {
            // The slot may have been rewritten for another key between the
            // read and the swap, and that key's state happen to equal the
            // one read (an eviction at the same instant and quota: found by
            // the loom model). The swap synchronised with the rewrite, so
            // the key read now tells: then the swap is undone (unless that
            // key's own checks moved on: it keeps the debt, which only
            // errs on the strict side) and the mutex path decides.
            Ok(_) if slot.key() != key => {
                let _ =
                    slot.state
                        .compare_exchange(next, current, Ordering::AcqRel, Ordering::Acquire);
                return Err(Contended);
            }
            Ok(_) => return Ok(decision),
            Err(actual) => {
                // Moved by another check of the same key, or rewritten for
                // another key (it went through busy first).
                if slot.key() != key {
                    return Err(Contended);
                }
                current = actual;
            }
        }
    }
}

impl MemoryStore {
    /// Which set a key goes to: a multiply-fold hash under random seeds.
    /// The seeds are secret and never observable, so a client cannot aim
    /// its keys at one set; at worst it churns the sets it lands in.
    fn set_hash(&self, key: Key) -> u64 {
        let a = u128::from(key[0] ^ self.seeds[0]) * u128::from(0x9e37_79b9_7f4a_7c15_u64);
        let b = u128::from(key[1] ^ self.seeds[1]) * u128::from(0xc2b2_ae3d_27d4_eb4f_u64);
        let folded = (a as u64 ^ (a >> 64) as u64).wrapping_add(b as u64 ^ (b >> 64) as u64);
        (u128::from(folded) * u128::from(self.seeds[0] | 0x100_0000_01b3)).wrapping_shr(32) as u64
    }
}

/// The bits of the second a key was last seen.
const SEEN: u16 = 0x7fff;

/// The state's bit set once a key is checked again after its first check.
const CAME_BACK: u64 = 0x8000;

/// A TAT in nanoseconds and the second last seen, in one word (a key seen
/// once: `CAME_BACK` clear).
fn pack(tat: u64, seen: u16) -> u64 {
    (tat.div_ceil(1000) << 16) | u64::from(seen)
}

fn unpack(state: u64) -> u64 {
    (state >> 16) * 1000
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

#[cfg(all(test, seaworthy_loom))]
#[path = "model.rs"]
mod model;

#[cfg(all(test, not(seaworthy_loom)))]
mod tests {
    use std::time::Duration;

    use super::super::ManualClock;
    use super::*;

    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn ten_million_distinct_keys_stay_within_the_cap() {
        let clock = ManualClock::new(Duration::from_secs(1));
        let store = MemoryStore::with_clock(100_000, Arc::new(clock.clone()));
        let quota = Quota::per_minute(10);
        let active = [u64::MAX, u64::MAX];
        let before = rss_bytes();
        let mut passes = 0;
        for i in 0..10_000_000_u64 {
            if i % 100_000 == 0 {
                clock.advance(Duration::from_millis(100));
                // A client that keeps sending keeps its state, though each
                // newcomer owes more than it does (no burst: its debt is
                // one interval at most, and shrinks while it is refused).
                passes += u32::from(store.check_now(active, &quota, 1).allowed);
            }
            store.check_now([i, i.rotate_left(17)], &quota, 1);
        }
        let grown = rss_bytes().saturating_sub(before);
        assert!(store.len() <= store.capacity());
        // 24 bytes a slot, allocated at the start: nothing grows.
        let bound = (store.capacity() as u64) * 24 + (1 << 20);
        assert!(grown < bound, "grew {grown} bytes, bound {bound}");
        // The active client sent 100 requests over 10 s at 10 a minute: it
        // passed at 1.1 s and 7.1 s only, and is still in debt, never reset
        // by eviction (it was, about one run in four, when the least
        // indebted of a second gave way whether it had come back or not).
        assert_eq!(passes, 2);
        assert!(!store.check_now(active, &quota, 1).allowed);
    }

    #[test]
    fn a_key_that_came_back_outlasts_a_flood_of_newcomers_that_owe_more() {
        let clock = ManualClock::new(Duration::from_secs(1));
        let store = MemoryStore::with_clock(1, Arc::new(clock.clone()));
        let quota = Quota::per_hour(1);
        for i in 0..10_000_u64 {
            store.check_now([i, 1], &quota, 1);
        }
        // Passes once, then is refused: it came back, owing one interval.
        let held_back = [7, 7];
        assert!(store.check_now(held_back, &quota, 1).allowed);
        assert!(!store.check_now(held_back, &quota, 1).allowed);
        // Later in the same second, a flood of newcomers, each owing a
        // little more than the held-back key (their interval starts later).
        clock.advance(Duration::from_millis(500));
        for i in 0..10_000_u64 {
            store.check_now([i, 2], &quota, 1);
        }
        assert!(
            !store.check_now(held_back, &quota, 1).allowed,
            "the held-back key lost its debt to newcomers seen once"
        );
        assert!(store.len() <= store.capacity());
    }

    #[test]
    fn a_flood_in_one_second_evicts_the_least_indebted_never_the_held_back() {
        // The smallest store: every shard one set of 8, at its cap at once.
        let clock = ManualClock::new(Duration::from_secs(1));
        let store = MemoryStore::with_clock(1, Arc::new(clock));
        let quota = Quota::per_hour(1).burst(5);
        // Full sets first, so the held-back key takes a victim's slot
        // (the last one, where the old rule, by recency alone with ties
        // broken by position, took the next victim from).
        for i in 0..10_000_u64 {
            store.check_now([i, 1], &quota, 1);
        }
        let held_back = [7, 7];
        for _ in 0..6 {
            assert!(store.check_now(held_back, &quota, 1).allowed);
        }
        assert!(!store.check_now(held_back, &quota, 1).allowed);
        // A flood of new keys in the same second: each takes one request,
        // less debt than the held-back key's six.
        for i in 0..10_000_u64 {
            store.check_now([i, 2], &quota, 1);
        }
        assert!(
            !store.check_now(held_back, &quota, 1).allowed,
            "the held-back key lost its debt to the flood"
        );
        assert!(store.len() <= store.capacity());
    }

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
