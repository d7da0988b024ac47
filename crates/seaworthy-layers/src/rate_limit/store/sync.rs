//! What the memory store synchronises with: std's atomics and mutex and
//! arc-swap's table pointer, or, under `--cfg seaworthy_loom`, loom's, so
//! that the model in `model.rs` checks the store's own code.
//!
//! arc-swap's internals are out of loom's reach (its atomics are std's). Under
//! loom a table is held in a loom `Mutex<Arc<_>>` instead: a linearizable
//! register of the current table, which is the contract the store relies
//! on from arc-swap (a load returns the last table stored, or a later one,
//! with everything written into it before the store visible).

#[cfg(not(seaworthy_loom))]
pub(super) use std::sync::atomic::AtomicU64;
#[cfg(not(seaworthy_loom))]
pub(super) use std::sync::{Mutex, PoisonError};

#[cfg(seaworthy_loom)]
pub(super) use loom::sync::Mutex;
#[cfg(seaworthy_loom)]
pub(super) use loom::sync::atomic::AtomicU64;
#[cfg(seaworthy_loom)]
pub(super) use std::sync::PoisonError;

use std::sync::Arc;

/// A shard's table: read without a lock, replaced whole when it grows.
#[cfg(not(seaworthy_loom))]
pub(super) struct TableCell<T>(arc_swap::ArcSwap<T>);

#[cfg(not(seaworthy_loom))]
impl<T> TableCell<T> {
    pub(super) fn new(value: T) -> Self {
        TableCell(arc_swap::ArcSwap::from_pointee(value))
    }

    /// The current table, for a moment (no reference count touched).
    pub(super) fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.0.load()
    }

    /// The current table, to hold.
    pub(super) fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Publishes `value` (with release: its contents are seen by loaders).
    pub(super) fn store(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

/// A shard's table (loom: a register behind a loom mutex).
#[cfg(seaworthy_loom)]
pub(super) struct TableCell<T>(Mutex<Arc<T>>);

#[cfg(seaworthy_loom)]
impl<T> TableCell<T> {
    pub(super) fn new(value: T) -> Self {
        TableCell(Mutex::new(Arc::new(value)))
    }

    pub(super) fn load(&self) -> Arc<T> {
        Arc::clone(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn load_full(&self) -> Arc<T> {
        self.load()
    }

    pub(super) fn store(&self, value: T) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}
