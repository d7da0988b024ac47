//! Who orders among the replicas that share a cache directory.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// The future an [`OrderLock`] method returns.
pub type LockFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long a lock may be held before another replica may take it over
/// (its holder died mid-order): far longer than an order takes (seconds),
/// short enough that a crash delays a renewal by minutes, not days.
pub const LOCK_TTL: Duration = Duration::from_secs(600);

/// How a [`FileLock`]'s file begins: a stale file is taken over only if it
/// is one.
const TOKEN_PREFIX: &str = "seaworthy ACME order lock, held by process ";

/// The right to place an order, among the replicas that share a cache
/// directory: one holds it while it orders; the others answer its
/// challenges (published in the directory) and pick its pair up from the
/// directory. [`FileLock`] in the cache directory is the default
/// ([`AcmeConfig::order_lock`](super::AcmeConfig::order_lock) sets
/// another; seaworthy's facade has one in Redis for `REDIS_URL`).
///
/// An implementation lets a lock held longer than [`LOCK_TTL`] go, so a
/// holder that died does not stop renewals.
pub trait OrderLock: fmt::Debug + Send + Sync + 'static {
    /// Takes the lock if no replica holds it: whether this one holds it now.
    fn acquire(&self) -> LockFuture<'_, bool>;

    /// Gives back the lock this replica took (nothing if it holds none, or
    /// if the lock has since passed to another replica).
    fn release(&self) -> LockFuture<'_, ()>;

    /// Whether a replica (this one or another) holds the lock now: while
    /// one does, the others look for its challenges four times a second.
    fn held(&self) -> LockFuture<'_, bool>;
}

/// An [`OrderLock`] as a file made exclusively (`O_EXCL`, 0600) holding
/// its holder's token, removed on release only while it still holds that
/// token; a lock file older than [`LOCK_TTL`] is taken over, and a file
/// at the path that is not a lock file is never removed (the lock is not
/// taken while it is there, with a warning). Needs a directory
/// whose filesystem honours `O_EXCL` for every replica (a local disk, a
/// volume shared on one host, NFSv3+); else use a lock in Redis.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    /// The token this replica wrote, while it holds the lock.
    ours: Mutex<Option<String>>,
}

impl FileLock {
    /// The lock file at `path` (the default: `order.lock` in the cache
    /// directory).
    pub fn new(path: impl Into<PathBuf>) -> FileLock {
        FileLock {
            path: path.into(),
            ours: Mutex::new(None),
        }
    }

    fn ours(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.ours
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the lock now (the file operations are a few microseconds on a
    /// local disk, so they run in place). A stale file is taken over only
    /// if it is a lock file of ours: any other file at the path is left
    /// alone and the lock is not taken (with a warning).
    pub fn try_acquire(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let token = format!(
            "{TOKEN_PREFIX}{} {:?}\n",
            std::process::id(),
            std::time::SystemTime::now()
        );
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&self.path)
            {
                Ok(mut file) => {
                    if let Err(err) = file.write_all(token.as_bytes()) {
                        // Ours, just made: never left behind unreadable.
                        tracing::warn!(path = %self.path.display(), error = %err, "ACME: cannot write the order lock");
                        let _ = std::fs::remove_file(&self.path);
                        return false;
                    }
                    *self.ours() = Some(token);
                    return true;
                }
                Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
                    tracing::warn!(path = %self.path.display(), error = %err, "ACME: cannot make the order lock");
                    return false;
                }
                Err(_) if !self.stale() => return false,
                Err(_) if !self.is_lock_file() => {
                    tracing::warn!(path = %self.path.display(), "ACME: the order lock's path holds a file that is not an order lock; it is left alone and nothing is ordered until it is moved");
                    return false;
                }
                Err(_) => {
                    tracing::warn!(path = %self.path.display(), "ACME: taking over a stale order lock");
                    let _ = std::fs::remove_file(&self.path);
                }
            }
        }
        false
    }

    /// Whether the file at the path is an order lock (a holder's token, or
    /// empty: a holder that died before writing it).
    fn is_lock_file(&self) -> bool {
        std::fs::read(&self.path)
            .is_ok_and(|held| held.is_empty() || held.starts_with(TOKEN_PREFIX.as_bytes()))
    }

    /// Gives the lock back now, if this replica holds it.
    pub fn release_now(&self) {
        let Some(token) = self.ours().take() else {
            return;
        };
        // Only our own file: after a takeover the file is another's.
        if std::fs::read_to_string(&self.path).is_ok_and(|held| held == token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Whether the lock file exists now.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    fn stale(&self) -> bool {
        std::fs::metadata(&self.path)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > LOCK_TTL)
    }
}

impl OrderLock for FileLock {
    fn acquire(&self) -> LockFuture<'_, bool> {
        Box::pin(async move { self.try_acquire() })
    }

    fn release(&self) -> LockFuture<'_, ()> {
        Box::pin(async move { self.release_now() })
    }

    fn held(&self) -> LockFuture<'_, bool> {
        Box::pin(async move { self.exists() })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn one_holder_and_a_release_never_removes_anothers_file() {
        let dir = std::env::temp_dir().join(format!("seaworthy-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("order.lock");
        let (first, second) = (FileLock::new(&path), FileLock::new(&path));
        assert!(first.try_acquire());
        assert!(!second.try_acquire());
        assert!(second.exists());
        // Not holding it: a release does nothing.
        second.release_now();
        assert!(path.exists());
        first.release_now();
        assert!(!path.exists());

        // Another's file in its place (a takeover after we were stale):
        // our release leaves it.
        assert!(first.try_acquire());
        std::fs::write(&path, "someone else\n").unwrap();
        first.release_now();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else\n");

        // Older than the TTL: a lock of ours is taken over, any other file
        // is left alone and the lock not taken.
        let age = |path: &Path| {
            let old = std::time::SystemTime::now() - LOCK_TTL - Duration::from_secs(60);
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        age(&path);
        assert!(!first.try_acquire());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else\n");
        std::fs::remove_file(&path).unwrap();
        assert!(second.try_acquire());
        age(&path);
        assert!(first.try_acquire());
        second.release_now();
        assert!(path.exists(), "the new holder's file stays");
        first.release_now();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
