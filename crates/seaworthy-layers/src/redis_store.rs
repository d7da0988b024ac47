//! The rate limit shared by every replica: GCRA in Redis, one round trip
//! per decision, and a local fallback while Redis is away.
//!
//! ```no_run
//! use seaworthy_layers::redis_store::{Fallback, RedisStore};
//! use seaworthy_layers::{KeyBy, Policy, Quota, RateLimitLayer, RateLimiter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Three replicas share 100/min per client; while Redis is away each
//! // keeps a third of it locally.
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .fallback(Fallback::Local { replicas: 3 })
//!     .build()?;
//! let quota = Quota::per_minute(100).burst(20);
//! let limiter = RateLimiter::with_store(
//!     Policy::new("default", quota, KeyBy::ClientIp { ipv6_prefix: 64 }),
//!     store,
//! );
//! let layer = RateLimitLayer::with_limiter(limiter);
//! # let _ = layer;
//! # Ok(()) }
//! ```
//!
//! # One round trip
//!
//! Each decision is one `EVALSHA` of a Lua script (loaded once, reloaded by
//! the redis crate on `NOSCRIPT`) that reads Redis's own clock (`TIME`),
//! so replicas whose clocks disagree still agree on the decision, applies
//! the GCRA to the key's theoretical arrival time, writes it back with a
//! time-to-live of exactly the debt (a key disappears when it would no
//! longer change a decision), and answers allowed, remaining, retry-after
//! and reset-after: the same facts as the memory store, so the same 429,
//! `Retry-After` and `RateLimit` fields. Requests from many tasks share one
//! multiplexed connection (the redis crate's `ConnectionManager`), which
//! pipelines them; and decisions that queue up while calls are in flight
//! share one script call (up to 64), so that under load Redis runs the
//! script once for many (its Lua call, not the keys, is most of a
//! decision's cost there). A lone decision goes at once, alone.
//!
//! # What Redis sees
//!
//! One string key per (client, quota): `{namespace}:` and 32 hex digits of
//! SHA-256 over a salt, the limiter's key (a client address, or the digest
//! of a header or a key function's value) and the quota. No address or API
//! key is stored in clear, every replica derives the same key, and a
//! decision never needs a second key. The value is the key's theoretical
//! arrival time in microseconds of Redis's clock. For Redis Cluster, turn
//! [batching](RedisStoreBuilder::batching) off: each decision is then one
//! key on its own slot.
//!
//! # When Redis goes away
//!
//! Every call has a timeout (5 ms by default: a loopback round trip is
//! about 50 µs, a cross-zone one 1 ms). After 3 failures in a row the
//! circuit opens: for 1 s no request waits on Redis, the [`Fallback`]
//! decides; then one request probes Redis, and a success closes the
//! circuit. A failure never becomes a 5xx. The state changes are logged
//! once each (a warning when limits degrade, an info line when they are
//! shared again), and [`RedisStore::status`] reports them for a health
//! check. A store built while Redis is down starts degraded and connects
//! in the background.
//!
//! [`Fallback::Local`] (the default, with 1 replica) keeps limits in a
//! memory store with each quota divided by the number of replicas: with
//! `replicas` set to the number of instances behind the balancer, the
//! service as a whole still allows about the shared quota.
//! [`Fallback::Open`] lets every request through (limits off while Redis
//! is away); [`Fallback::Closed`] refuses every request with a retry after
//! the cool-down (for limits that protect something costly, such as an
//! upstream billed per call).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use crate::store::{Key, MemoryStore, Store, StoreError};
use crate::{Decision, Quota};

/// The decisions, in Redis: KEYS the keys; ARGV, three per key, the
/// interval and the tolerance in microseconds and the cost. Answers four
/// numbers per key: allowed, remaining, retry-after µs, reset-after µs. One
/// `TIME` for the whole batch; a key twice in a batch is decided twice, in
/// order.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local out = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local debt = tat + interval * tonumber(ARGV[3 * i]) - now
  if debt <= tolerance then
    redis.call('SET', KEYS[i], string.format('%d', now + debt), 'PX', math.max(1, math.ceil(debt / 1000)))
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tolerance - debt) / interval)
    out[#out + 1] = 0
    out[#out + 1] = debt
  else
    out[#out + 1] = 0
    out[#out + 1] = math.floor((tolerance - tat + now) / interval)
    out[#out + 1] = debt - tolerance
    out[#out + 1] = tat - now
  end
end
return out
";

/// The most decisions in one script call.
const MAX_BATCH: usize = 64;
/// Script calls in flight at once; more decisions wait and join a batch.
const IN_FLIGHT: usize = 4;
/// Decisions queued for a batch at most; past it, the fallback decides.
const QUEUE: usize = 16_384;

/// What decides while Redis is away (the circuit is open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// A memory store with each quota divided by `replicas`, the number of
    /// instances sharing the limit: together they still allow about the
    /// shared quota.
    Local {
        /// The instances behind the balancer (at least 1).
        replicas: u32,
    },
    /// Every request passes: no limit while Redis is away.
    Open,
    /// Every request is refused (429, retry after the cool-down).
    Closed,
}

/// Builds a [`RedisStore`]; from [`RedisStore::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RedisStoreBuilder {
    url: String,
    namespace: String,
    salt: Vec<u8>,
    timeout: Duration,
    failures: u32,
    cooldown: Duration,
    fallback: Fallback,
    max_batch: usize,
    #[cfg(feature = "redis-tls")]
    root_ca: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("RedisStoreBuilder")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key (default `ratelimit`): several services can
    /// share one Redis.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Mixed into every key's hash. Keys are only as hard to reverse as the
    /// salt is secret: an IPv4 address hashed without one is found by
    /// trying all 2^32. Give every replica the same salt. Default: the
    /// namespace.
    pub fn salt(mut self, salt: impl Into<Vec<u8>>) -> Self {
        self.salt = salt.into();
        self
    }

    /// How long one decision may wait for Redis (default 5 ms); past it the
    /// fallback decides and the wait counts as a failure.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_micros(100));
        self
    }

    /// Failures in a row that open the circuit (default 3), and how long it
    /// stays open before one request probes Redis again (default 1 s).
    pub fn circuit(mut self, failures: u32, cooldown: Duration) -> Self {
        self.failures = failures.max(1);
        self.cooldown = cooldown;
        self
    }

    /// Whether decisions queued at the same moment share one script call
    /// (default true: under load Redis runs the script once for many).
    /// Turn it off for Redis Cluster, where the keys of one call must live
    /// on one node.
    pub fn batching(mut self, on: bool) -> Self {
        self.max_batch = if on { MAX_BATCH } else { 1 };
        self
    }

    /// For `rediss://`: trust the CA certificates in this PEM instead of
    /// the public roots (a Redis with a certificate of a private CA).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca = Some(pem.into());
        self
    }

    /// What decides while Redis is away. Default `Local { replicas: 1 }`.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = match fallback {
            Fallback::Local { replicas } => Fallback::Local {
                replicas: replicas.max(1),
            },
            other => other,
        };
        self
    }

    /// The store; it connects in the background (a Redis that is down at
    /// start degrades the limits, never the start). Call it within a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// The URL is not a Redis URL (`redis://`, `rediss://` with the
    /// `redis-tls` feature, `redis+unix://`). The error never repeats the
    /// URL, which may hold a password.
    pub fn build(self) -> Result<RedisStore, RedisStoreError> {
        // rediss:// takes rustls' process-wide provider; when the program
        // installed none and the tree enables two, rustls would panic.
        #[cfg(feature = "redis-tls")]
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let unusable = |err: redis::RedisError| RedisStoreError {
            message: format!("not a usable Redis URL ({})", describe(&err)),
        };
        #[cfg(feature = "redis-tls")]
        let client = match self.root_ca {
            Some(root) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            ),
            None => redis::Client::open(self.url.as_str()),
        }
        .map_err(unusable)?;
        #[cfg(not(feature = "redis-tls"))]
        let client = redis::Client::open(self.url.as_str()).map_err(unusable)?;
        let connection = Arc::new(OnceLock::new());
        let (jobs, queue) = tokio::sync::mpsc::channel(QUEUE);
        tokio::spawn(batch(queue, Arc::clone(&connection), self.max_batch));
        let shared = Arc::new(Shared {
            connection,
            jobs,
            namespace: self.namespace,
            salt: self.salt,
            timeout: self.timeout,
            breaker: Breaker::new(self.failures, self.cooldown),
            fallback: self.fallback,
            local: MemoryStore::new(100_000),
        });
        // Degraded until connected (said only if connecting fails).
        shared.breaker.start();
        tokio::spawn(connect(client, Arc::downgrade(&shared)));
        Ok(RedisStore { shared })
    }
}

/// Connects, retrying with back-off until Redis answers; the connection
/// manager then reconnects by itself.
async fn connect(client: redis::Client, shared: std::sync::Weak<Shared>) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_number_of_retries(1)
        .set_max_delay(1000);
    let mut delay = Duration::from_millis(50);
    loop {
        // On a task of its own: a connection attempt that panics (a TLS
        // setup the client library cannot do) is a failure to report, not
        // the end of the retries.
        let attempt = tokio::spawn(ConnectionManager::new_with_config(
            client.clone(),
            config.clone(),
        ))
        .await;
        // The store was dropped: nobody needs the connection.
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let attempt = match attempt {
            Ok(attempt) => attempt.map_err(|err| describe(&err)),
            Err(_) => Err("the connection attempt panicked".to_owned()),
        };
        match attempt {
            Ok(manager) => {
                let _ = shared.connection.set(manager);
                // The next request probes at once.
                shared.breaker.allow_probe();
                return;
            }
            Err(err) => {
                shared.breaker.trip(&format!("cannot connect: {err}"));
                drop(shared);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Why a [`RedisStore`] could not be built.
#[derive(Debug)]
pub struct RedisStoreError {
    message: String,
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RedisStoreError {}

/// The rate-limit [`Store`] in Redis; see the [module docs](self). Cheap to
/// clone: clones share the connection and the circuit.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    connection: Arc<OnceLock<ConnectionManager>>,
    /// Decisions for the batcher.
    jobs: tokio::sync::mpsc::Sender<Job>,
    namespace: String,
    salt: Vec<u8>,
    timeout: Duration,
    breaker: Breaker,
    fallback: Fallback,
    /// The fallback's memory store.
    local: MemoryStore,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.shared.namespace)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// How the store stands, for a health check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStatus {
    /// Whether limits are decided by the fallback now (the circuit is open).
    pub degraded: bool,
    /// Why it degraded last (an error kind, never a URL).
    pub last_error: Option<String>,
    /// Decisions made by the fallback since start.
    pub fallback_decisions: u64,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[user:password@]host:port[/db]`);
    /// the URL is a secret and is never printed.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            namespace: "ratelimit".to_owned(),
            salt: b"ratelimit".to_vec(),
            timeout: Duration::from_millis(5),
            failures: 3,
            cooldown: Duration::from_secs(1),
            fallback: Fallback::Local { replicas: 1 },
            max_batch: MAX_BATCH,
            #[cfg(feature = "redis-tls")]
            root_ca: None,
        }
    }

    /// Whether the limits are shared now, and why not.
    pub fn status(&self) -> RedisStatus {
        let breaker = &self.shared.breaker;
        RedisStatus {
            degraded: breaker.degraded.load(Ordering::Relaxed),
            last_error: breaker
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            fallback_decisions: breaker.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// One `PING`, within `timeout`: how long Redis took to answer. For a
    /// readiness check. An answer closes an open circuit (Redis is back,
    /// even if no request came to find out); a failure does not open it.
    ///
    /// # Errors
    ///
    /// Not connected, an error reply, or no answer in time.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, RedisStoreError> {
        let Some(connection) = self.shared.connection.get() else {
            return Err(RedisStoreError {
                message: "not connected".to_owned(),
            });
        };
        let mut connection = connection.clone();
        let started = Instant::now();
        match tokio::time::timeout(
            timeout,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.shared.breaker.success();
                Ok(started.elapsed())
            }
            Ok(Err(err)) => Err(RedisStoreError {
                message: format!("PING failed: {}", describe(&err)),
            }),
            Err(_) => Err(RedisStoreError {
                message: format!("no answer to PING within {timeout:?}"),
            }),
        }
    }
}

/// How long a lease operation may wait for Redis: leases guard rare, slow
/// work (an ACME order), not a request, so the 5 ms request timeout would
/// be too tight across zones.
const LEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Deletes a lease's key only while it still holds this holder's token: a
/// lease that expired and was taken by another is not released by mistake.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A lease taken with [`RedisStore::try_lease`]: one holder at a time
/// among every process sharing the Redis, until it is
/// [released](RedisStore::release) or its time-to-live ends (a holder that
/// died does not keep it).
#[derive(Debug)]
pub struct Lease {
    key: String,
    token: String,
}

impl RedisStore {
    /// Takes the lease `name` for at most `ttl` if nobody holds it
    /// (`SET {namespace}:lease:{name} TOKEN NX PX ttl`): `Some` when this
    /// process holds it now, `None` when another does. For rare work only
    /// one replica should do (seaworthy's ACME orders use it); each call
    /// waits at most 2 s for a store built a moment ago to connect, and 2 s
    /// for the answer. The circuit and fallback of the rate limit are not
    /// involved.
    ///
    /// # Errors
    ///
    /// Not connected, an error reply, or no answer in time: whether the
    /// lease is free is then unknown.
    pub async fn try_lease(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, RedisStoreError> {
        let key = self.lease_key(name);
        let token = lease_token();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut command = redis::cmd("SET");
        command
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis);
        let reply: Option<String> = self.lease_query(command, "SET NX").await?;
        Ok(reply.map(|_| Lease { key, token }))
    }

    /// Gives `lease` back: whether it was still held (false when its
    /// time-to-live had ended; then it is not taken from a new holder).
    ///
    /// # Errors
    ///
    /// As [`try_lease`](Self::try_lease); the lease then ends with its
    /// time-to-live.
    pub async fn release(&self, lease: Lease) -> Result<bool, RedisStoreError> {
        static RELEASE_SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(RELEASE));
        let mut connection = self.lease_connection().await?;
        let mut invocation = RELEASE_SCRIPT.key(&lease.key);
        invocation.arg(&lease.token);
        let deleted: i64 =
            lease_answer("release", invocation.invoke_async(&mut connection)).await?;
        Ok(deleted == 1)
    }

    /// Whether any process holds the lease `name` now.
    ///
    /// # Errors
    ///
    /// As [`try_lease`](Self::try_lease).
    pub async fn is_leased(&self, name: &str) -> Result<bool, RedisStoreError> {
        let mut command = redis::cmd("EXISTS");
        command.arg(self.lease_key(name));
        let count: i64 = self.lease_query(command, "EXISTS").await?;
        Ok(count > 0)
    }

    fn lease_key(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.shared.namespace)
    }

    /// The connection, waiting up to [`LEASE_TIMEOUT`] for a store built a
    /// moment ago to connect (a lease asked for at start must not be
    /// refused only because the first connection is still being made).
    async fn lease_connection(&self) -> Result<ConnectionManager, RedisStoreError> {
        let deadline = tokio::time::Instant::now() + LEASE_TIMEOUT;
        loop {
            if let Some(connection) = self.shared.connection.get() {
                return Ok(connection.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RedisStoreError {
                    message: "not connected".to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn lease_query<T: redis::FromRedisValue>(
        &self,
        command: redis::Cmd,
        what: &str,
    ) -> Result<T, RedisStoreError> {
        let mut connection = self.lease_connection().await?;
        lease_answer(what, command.query_async(&mut connection)).await
    }
}

/// Redis's answer to a lease operation within [`LEASE_TIMEOUT`], or why
/// there is none.
async fn lease_answer<T>(
    what: &str,
    answer: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RedisStoreError> {
    match tokio::time::timeout(LEASE_TIMEOUT, answer).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(err)) => Err(RedisStoreError {
            message: format!("lease {what} failed: {}", describe(&err)),
        }),
        Err(_) => Err(RedisStoreError {
            message: format!("no answer to lease {what} within {LEASE_TIMEOUT:?}"),
        }),
    }
}

/// A token no other holder has: the process, the time and the random keys
/// of the standard hasher (not a secret: it only tells holders apart).
fn lease_token() -> String {
    use std::hash::BuildHasher;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let random = std::collections::hash_map::RandomState::new().hash_one(now);
    format!("{}-{now}-{random:016x}", std::process::id())
}

impl Shared {
    /// `{namespace}:{hex}`: SHA-256 over the salt, the key and the quota.
    fn redis_key(&self, key: &Key, quota: &Quota) -> String {
        let mut hash = Sha256::new();
        hash.update((self.salt.len() as u64).to_le_bytes());
        hash.update(&self.salt);
        hash.update(key[0].to_le_bytes());
        hash.update(key[1].to_le_bytes());
        hash.update(micros(quota.interval()).to_le_bytes());
        hash.update(quota.burst_size().to_le_bytes());
        let digest = hash.finalize();
        let mut text = String::with_capacity(self.namespace.len() + 33);
        text.push_str(&self.namespace);
        text.push(':');
        for byte in &digest[..16] {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 15)]));
        }
        text
    }

    /// The decision when Redis cannot give one.
    fn fall_back(&self, key: Key, quota: &Quota, cost: u32) -> Result<Decision, StoreError> {
        self.breaker.fallbacks.fetch_add(1, Ordering::Relaxed);
        match self.fallback {
            Fallback::Local { replicas } => {
                let mut check = self.local.check(key, &divided(quota, replicas), cost);
                // The memory store answers at once.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match Pin::new(&mut check).poll(&mut cx) {
                    std::task::Poll::Ready(answer) => answer,
                    std::task::Poll::Pending => unreachable!("the memory store is ready at once"),
                }
            }
            Fallback::Open => Ok(Decision {
                allowed: true,
                remaining: quota.burst_size(),
                retry_after: Duration::ZERO,
                reset_after: Duration::ZERO,
            }),
            Fallback::Closed => Ok(Decision {
                allowed: false,
                remaining: 0,
                retry_after: self.breaker.cooldown,
                reset_after: self.breaker.cooldown,
            }),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A Redis error in words that never hold the URL (nor its password): the
/// category, and whether the connection was refused, dropped or timed out.
fn describe(err: &redis::RedisError) -> String {
    let what = if err.is_connection_refusal() {
        "connection refused"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_connection_dropped() {
        "connection dropped"
    } else {
        err.category()
    };
    what.to_owned()
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// `quota` shared by `replicas`: the rate divided, the burst too (each
/// replica keeps at least one request at once).
fn divided(quota: &Quota, replicas: u32) -> Quota {
    if replicas <= 1 {
        return *quota;
    }
    let interval = quota.interval().saturating_mul(replicas);
    let capacity = (quota.capacity() / replicas).max(1);
    Quota::new(1, interval).burst(capacity - 1)
}

impl Store for RedisStore {
    type Future = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send>>;

    fn is_shared(&self) -> bool {
        true
    }

    fn check(&self, key: Key, quota: &Quota, cost: u32) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let quota = *quota;
        Box::pin(async move {
            if shared.connection.get().is_none() || !shared.breaker.allow() {
                return shared.fall_back(key, &quota, cost);
            }
            let interval = micros(quota.interval());
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job = Job {
                key: shared.redis_key(&key, &quota),
                args: [
                    interval,
                    interval.saturating_mul(u64::from(quota.capacity())),
                    u64::from(cost.max(1)),
                ],
                reply,
            };
            if shared.jobs.try_send(job).is_err() {
                shared.breaker.failure("too many decisions waiting");
                return shared.fall_back(key, &quota, cost);
            }
            match tokio::time::timeout(shared.timeout, answer).await {
                Ok(Ok(Ok([allowed, remaining, retry_after, reset_after]))) => {
                    shared.breaker.success();
                    Ok(Decision {
                        allowed: allowed == 1,
                        remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                        retry_after: Duration::from_micros(retry_after.max(0).unsigned_abs()),
                        reset_after: Duration::from_micros(reset_after.max(0).unsigned_abs()),
                    })
                }
                Ok(Ok(Err(why))) => {
                    shared.breaker.failure(&why);
                    shared.fall_back(key, &quota, cost)
                }
                Ok(Err(_)) | Err(_) => {
                    shared.breaker.failure("timed out");
                    shared.fall_back(key, &quota, cost)
                }
            }
        })
    }
}

/// One decision waiting for a batch: its key, the script's three
/// arguments, and where the answer goes.
struct Job {
    key: String,
    args: [u64; 3],
    reply: tokio::sync::oneshot::Sender<Result<[i64; 4], String>>,
}

/// Sends the queued decisions to Redis, many per script call when they
/// queue up: at most [`IN_FLIGHT`] calls at once, each with every decision
/// queued when it starts (up to [`MAX_BATCH`]). A lone decision goes at
/// once, alone; under load, one call carries many, and Redis runs the
/// script once for them all (one `TIME`, one Lua call). Ends when the
/// store is dropped.
async fn batch(
    mut queue: tokio::sync::mpsc::Receiver<Job>,
    connection: Arc<OnceLock<ConnectionManager>>,
    max_batch: usize,
) {
    static DECIDE: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(SCRIPT));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // A request that stopped waiting (its timeout) is not sent.
        jobs.retain(|job| !job.reply.is_closed());
        let Some(mut connection) = connection.get().cloned() else {
            continue;
        };
        if jobs.is_empty() {
            continue;
        }
        let mut invocation = DECIDE.prepare_invoke();
        for job in &jobs {
            invocation.key(&job.key);
            for arg in job.args {
                invocation.arg(arg);
            }
        }
        let call = async move {
            let answer = invocation.invoke_async::<Vec<i64>>(&mut connection).await;
            match answer {
                Ok(numbers) if numbers.len() == 4 * jobs.len() => {
                    for (job, four) in jobs.into_iter().zip(numbers.chunks_exact(4)) {
                        let _ = job.reply.send(Ok([four[0], four[1], four[2], four[3]]));
                    }
                }
                Ok(_) => {
                    for job in jobs {
                        let _ = job.reply.send(Err("a malformed answer".to_owned()));
                    }
                }
                Err(err) => {
                    let why = describe(&err);
                    for job in jobs {
                        let _ = job.reply.send(Err(why.clone()));
                    }
                }
            }
            drop(permit);
        };
        tokio::spawn(call);
    }
}

/// The circuit: closed (Redis decides), open (the fallback decides until
/// the cool-down ends), half-open (one request probes).
struct Breaker {
    origin: Instant,
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// Milliseconds since `origin` until which the circuit is open; 0 when
    /// closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    degraded: AtomicBool,
    /// Whether the degradation was logged (its end is logged only then).
    warned: AtomicBool,
    last_error: Mutex<Option<String>>,
    fallbacks: AtomicU64,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            origin: Instant::now(),
            threshold,
            cooldown,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            last_error: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this request may ask Redis: always while closed; while open,
    /// one request once the cool-down is over.
    fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if self.now_ms() < until {
            return false;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Ends the cool-down now (connected at last).
    fn allow_probe(&self) {
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(1, Ordering::Release);
        }
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
        if self.degraded.swap(false, Ordering::AcqRel) {
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            if self.warned.swap(false, Ordering::AcqRel) {
                tracing::info!("rate-limit store: Redis answers again; limits are shared again");
            }
        }
    }

    fn failure(&self, why: &str) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let probing = self.probing.swap(false, Ordering::AcqRel);
        if failures >= self.threshold || probing {
            self.trip(why);
        }
    }

    /// Open until connected, without a word: connecting takes a moment.
    fn start(&self) {
        self.open_until.store(u64::MAX, Ordering::Release);
        self.degraded.store(true, Ordering::Release);
        self.note("connecting");
    }

    /// Opens the circuit for the cool-down; the first time since limits
    /// were last shared, says so.
    fn trip(&self, why: &str) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        self.open_until.store(until, Ordering::Release);
        self.note(why);
        self.degraded.store(true, Ordering::Release);
        if !self.warned.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error = why,
                "rate-limit store: Redis unavailable; limits fall back until it answers"
            );
        }
    }

    /// Remembers why, for the status.
    fn note(&self, why: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_divided_quota_keeps_a_share_of_rate_and_burst() {
        let quota = Quota::per_minute(90).burst(29);
        let third = divided(&quota, 3);
        assert_eq!(third.interval(), quota.interval() * 3);
        assert_eq!(third.capacity(), 10);
        assert_eq!(divided(&quota, 1), quota);
        // A burst smaller than the replicas still lets one through.
        assert_eq!(divided(&Quota::per_second(1), 5).capacity(), 1);
    }

    #[test]
    fn the_circuit_opens_after_failures_probes_once_and_closes_on_success() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        assert!(breaker.allow());
        breaker.failure("x");
        breaker.failure("x");
        assert!(breaker.allow());
        breaker.failure("x");
        assert!(!breaker.allow());
        assert!(breaker.degraded.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "one probe after the cool-down");
        assert!(!breaker.allow(), "only one");
        breaker.failure("still down");
        assert!(!breaker.allow(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow());
        breaker.success();
        assert!(breaker.allow() && breaker.allow());
        assert!(!breaker.degraded.load(Ordering::Relaxed));
    }

    #[test]
    fn keys_are_hashed_salted_and_per_quota() {
        let store = Shared {
            connection: Arc::new(OnceLock::new()),
            jobs: tokio::sync::mpsc::channel(1).0,
            namespace: "rl".to_owned(),
            salt: b"s".to_vec(),
            timeout: Duration::from_millis(5),
            breaker: Breaker::new(3, Duration::from_secs(1)),
            fallback: Fallback::Open,
            local: MemoryStore::new(16),
        };
        let ip = crate::rate_limit::ip_key("192.0.2.7".parse().unwrap(), 64);
        let a = store.redis_key(&ip, &Quota::per_minute(100));
        assert!(a.starts_with("rl:") && a.len() == 3 + 32, "{a}");
        assert!(!a.contains("192"), "{a}");
        assert_eq!(a, store.redis_key(&ip, &Quota::per_minute(100)));
        assert_ne!(a, store.redis_key(&ip, &Quota::per_minute(100).burst(1)));
        assert_ne!(a, store.redis_key(&ip, &Quota::per_second(100)));
    }
}
