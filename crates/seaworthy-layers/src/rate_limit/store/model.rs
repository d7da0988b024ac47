//! The memory store under loom: every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS` preemptions; `.ci/run` sets 3) of the store's
//! own atomics and mutex, with the shard table modelled as a linearizable
//! register (see `sync.rs`). One shard of 2-way sets, a clock that stands
//! still, so that every racer sees the same "now" and every state is
//! predictable.
//!
//! Run: `RUSTFLAGS="--cfg seaworthy_loom" cargo test -p seaworthy-layers
//! --lib --release rate_limit::store::memory::model`.
//!
//! The invariants:
//! - from N racers on one fresh key whose quota lets C < N through at once
//!   (`capacity()`, a burst of C - 1), exactly C pass;
//! - a check racing a growth loses no update: every key's debt afterwards
//!   is exactly its passes;
//! - a check racing an eviction never moves another key's debt: a key
//!   present afterwards carries no more debt than its own passes (and the
//!   key put in by the eviction exactly its own).

use std::sync::Arc;

use loom::sync::atomic::{AtomicU32, Ordering::SeqCst};
use loom::thread;

use super::*;

/// A clock that stands still at 10 s.
#[derive(Debug)]
struct Still;

const NOW: u64 = 10_000_000_000;

impl Clock for Still {
    fn now(&self) -> u64 {
        NOW
    }
}

/// One a second, four at once.
fn quota() -> Quota {
    Quota::per_second(1).burst(3)
}

/// The debt a key holds now, in passes (`None`: not held), read from its
/// slot.
fn passes_held(store: &MemoryStore, key: Key) -> Option<u64> {
    let hash = store.set_hash(key);
    let shard = &store.shards[(hash >> 58) as usize % SHARDS];
    let table = shard.table.load_full();
    let slot = table.iter().find(|slot| slot.key() == key)?;
    let tat = unpack(slot.state.load(Ordering::Acquire));
    Some(tat.saturating_sub(NOW) / 1_000_000_000)
}

/// Keys that fall in the sets given (of `sets`), for this store's seeds.
fn keys_in(store: &MemoryStore, sets: &[usize], of: usize) -> Vec<Key> {
    let mut found = Vec::new();
    let mut candidate = 1_u64;
    for &set in sets {
        loop {
            candidate += 1;
            let key = [candidate, candidate.rotate_left(29)];
            if (store.set_hash(key) as usize) & (of - 1) == set && !found.contains(&key) {
                found.push(key);
                break;
            }
        }
    }
    found
}

fn model(f: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

#[test]
fn of_three_racers_on_one_key_exactly_the_burst_pass() {
    model(|| {
        let store = Arc::new(MemoryStore::with_clock(4, Arc::new(Still)));
        // Two at once (a burst of 1 above the rate).
        let quota = Quota::per_second(1).burst(1);
        assert_eq!(quota.capacity(), 2);
        let key = [7, 7];
        let passed = Arc::new(AtomicU32::new(0));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (store, passed) = (Arc::clone(&store), Arc::clone(&passed));
                thread::spawn(move || {
                    if store.check_now(key, &quota, 1).allowed {
                        passed.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        if store.check_now(key, &quota, 1).allowed {
            passed.fetch_add(1, SeqCst);
        }
        for racer in racers {
            racer.join().unwrap();
        }
        assert_eq!(passed.load(SeqCst), 2);
        assert_eq!(passes_held(&store, key), Some(2));
    });
}

#[test]
fn a_check_racing_a_growth_loses_no_update() {
    model(|| {
        // Room for two sets: the shard starts with one and grows once.
        let store = Arc::new(MemoryStore::with_clock(4, Arc::new(Still)));
        assert_eq!(store.sets, 2);
        // a and b fill the first set; after the growth a and c part.
        let keys = keys_in(&store, &[0, 1, 1], 2);
        let (a, b, c) = (keys[0], keys[1], keys[2]);
        assert!(store.check_now(a, &quota(), 1).allowed);
        assert!(store.check_now(b, &quota(), 1).allowed);
        let grower = {
            let store = Arc::clone(&store);
            thread::spawn(move || store.check_now(c, &quota(), 1).allowed)
        };
        let checker = {
            let store = Arc::clone(&store);
            thread::spawn(move || store.check_now(a, &quota(), 1).allowed)
        };
        assert!(grower.join().unwrap());
        assert!(checker.join().unwrap());
        assert_eq!(store.shards[0].table.load_full().len(), 2 * WAYS, "grown");
        assert_eq!(passes_held(&store, a), Some(2));
        assert_eq!(passes_held(&store, b), Some(1));
        assert_eq!(passes_held(&store, c), Some(1));
    });
}

#[test]
fn a_check_racing_an_eviction_never_moves_another_keys_debt() {
    model(|| {
        // One set of two, at the cap: a third key evicts one.
        let store = Arc::new(MemoryStore::with_clock(2, Arc::new(Still)));
        assert_eq!(store.sets, 1);
        let (a, b, c) = ([1, 1], [2, 2], [3, 3]);
        assert!(store.check_now(a, &quota(), 1).allowed);
        assert!(store.check_now(b, &quota(), 1).allowed);
        let evicter = {
            let store = Arc::clone(&store);
            thread::spawn(move || store.check_now(c, &quota(), 1).allowed)
        };
        // b is the one evicted (all seen once in the same second, owing the
        // same: the last), unless b's check lands first (then b came back
        // and a goes).
        let checker = {
            let store = Arc::clone(&store);
            thread::spawn(move || store.check_now(b, &quota(), 1).allowed)
        };
        assert!(evicter.join().unwrap());
        let b_passed = checker.join().unwrap();
        assert!(b_passed);
        // Each key present holds at most its own passes: c exactly one (it
        // was checked once), b at most two, a exactly one.
        if let Some(held) = passes_held(&store, c) {
            assert_eq!(held, 1, "c carries another key's debt");
        }
        if let Some(held) = passes_held(&store, b) {
            assert!(held <= 2, "b holds {held}");
        }
        if let Some(held) = passes_held(&store, a) {
            assert_eq!(held, 1, "a holds {held}");
        }
        assert!(store.len() <= store.capacity());
    });
}
