//! The memory store under threads that race: exact counts, no lost state
//! while shards grow. (In their own process: the in-crate flood test
//! measures the process's RSS.)

use std::sync::Arc;
use std::time::Duration;

use seaworthy_layers::Quota;
use seaworthy_layers::store::{ManualClock, MemoryStore};

#[test]
fn threads_racing_on_one_key_never_get_more_than_its_burst() {
    let clock = ManualClock::new(Duration::from_secs(1));
    let store = Arc::new(MemoryStore::with_clock(1000, Arc::new(clock)));
    // 100 at once, then one an hour: the clock stands still.
    let quota = Quota::per_hour(1).burst(99);
    let allowed: u32 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|thread| {
                let store = Arc::clone(&store);
                scope.spawn(move || {
                    let mut allowed = 0;
                    for i in 0..10_000_u64 {
                        // A shared hot key, and keys of its own around it.
                        allowed += u32::from(store.check_now([1, 1], &quota, 1).allowed);
                        store.check_now([thread + 10, i], &quota, 1);
                    }
                    allowed
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    assert_eq!(allowed, 100);
}

#[test]
fn no_state_is_lost_while_shards_grow_under_concurrent_checks() {
    let clock = ManualClock::new(Duration::from_secs(1));
    // Room to spare: 80,000 keys in a store of 1 << 20 see 9 land in one
    // set of a shard at its cap about one run in 400 (a set-associative
    // table's nature, documented on `MemoryStore`; seen single-threaded
    // too), and one give way. This test is about growth races: no cap.
    let store = Arc::new(MemoryStore::with_clock(1 << 24, Arc::new(clock)));
    let quota = Quota::per_hour(1);
    std::thread::scope(|scope| {
        for thread in 0..4_u64 {
            let store = Arc::clone(&store);
            scope.spawn(move || {
                // Every shard grows from 4 sets to 256 meanwhile.
                for i in 0..20_000 {
                    assert!(store.check_now([thread + 10, i], &quota, 1).allowed);
                }
                for i in 0..20_000 {
                    assert!(
                        !store.check_now([thread + 10, i], &quota, 1).allowed,
                        "key {i} of thread {thread} lost its debt"
                    );
                }
            });
        }
    });
    assert_eq!(store.len(), 80_000);
}
