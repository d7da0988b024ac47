//! The ACME order lock in Redis, for replicas that share `REDIS_URL`.

use std::sync::{Mutex, PoisonError};

use seaworthy_layers::redis_store::{Lease, RedisStore};
use seaworthy_listener::tls::acme::{FileLock, LOCK_TTL, LockFuture, OrderLock};

/// An ACME [`OrderLock`] in Redis: a lease (`SET NX PX`, ten minutes)
/// named after the domains, taken through the shared [`RedisStore`], so
/// that of the replicas sharing the Redis one orders at a time even where
/// the shared cache directory's filesystem does not honour `O_EXCL`. While
/// Redis does not answer, it falls back to the [`FileLock`] in the cache
/// directory (logged), so renewals never stop on Redis alone.
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use seaworthy::layers::redis_store::RedisStore;
/// use seaworthy::listener::tls::acme::AcmeConfig;
///
/// let store = RedisStore::builder("redis://cache:6379").build()?;
/// let domains = ["example.com"];
/// let config = AcmeConfig::new("https://acme-v02.api.letsencrypt.org/directory", domains, "/var/lib/app/acme")
///     .order_lock(seaworthy::RedisOrderLock::new(store, &domains, "/var/lib/app/acme"));
/// # let _ = config; Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisOrderLock {
    store: RedisStore,
    name: String,
    file: FileLock,
    held: Mutex<Option<Held>>,
}

/// Which lock this replica holds.
#[derive(Debug)]
enum Held {
    Redis(Lease),
    File,
}

impl RedisOrderLock {
    /// The lock for `domains` (the lease `acme:DOMAINS` in the store's
    /// namespace), falling back to `order.lock` in `cache_dir`.
    pub fn new(
        store: RedisStore,
        domains: &[impl AsRef<str>],
        cache_dir: impl AsRef<std::path::Path>,
    ) -> RedisOrderLock {
        let mut names: Vec<String> = domains
            .iter()
            .map(|domain| domain.as_ref().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        names.sort();
        RedisOrderLock {
            store,
            name: format!("acme:{}", names.join(",")),
            file: FileLock::new(cache_dir.as_ref().join("order.lock")),
            held: Mutex::new(None),
        }
    }

    /// The lease's name (`acme:` and the sorted domains).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which lock this replica holds (not [`OrderLock::held`]: whether any
    /// replica holds one).
    fn holding(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OrderLock for RedisOrderLock {
    fn acquire(&self) -> LockFuture<'_, bool> {
        Box::pin(async move {
            match self.store.try_lease(&self.name, LOCK_TTL).await {
                Ok(Some(lease)) => {
                    *self.holding() = Some(Held::Redis(lease));
                    true
                }
                Ok(None) => false,
                Err(err) => {
                    tracing::warn!(error = %err, "ACME: the order lock in Redis is out of reach; using the lock file in the cache directory");
                    let taken = self.file.try_acquire();
                    if taken {
                        *self.holding() = Some(Held::File);
                    }
                    taken
                }
            }
        })
    }

    fn release(&self) -> LockFuture<'_, ()> {
        Box::pin(async move {
            let held = self.holding().take();
            match held {
                Some(Held::Redis(lease)) => {
                    if let Err(err) = self.store.release(lease).await {
                        tracing::warn!(error = %err, "ACME: the order lock in Redis was not released; it ends with its time-to-live");
                    }
                }
                Some(Held::File) => self.file.release_now(),
                None => {}
            }
        })
    }

    fn held(&self) -> LockFuture<'_, bool> {
        Box::pin(async move {
            self.file.exists() || self.store.is_leased(&self.name).await.unwrap_or(false)
        })
    }
}
