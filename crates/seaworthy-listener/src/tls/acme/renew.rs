//! Renewal: when the next order is due, who places it, how failures back
//! off.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;

use super::{AcmeConfig, AcmeError, OrderLock, PLACEHOLDER, error, order};
use crate::tls::Tls;

/// How the certificate's renewal is going, from [`Acme::status`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AcmeStatus {
    /// When the next order is due (after a failure, the next retry).
    pub next_order: Option<std::time::SystemTime>,
    /// The last order's error, until one succeeds.
    pub last_error: Option<String>,
    /// Orders failed in a row.
    pub failures: u32,
    /// Orders that gave a certificate, since start.
    pub certificates: u64,
    /// What the CA said of the renewal window for the pair in force.
    pub window: RenewalWindow,
}

/// The CA's renewal window (ARI, RFC 9773) for the pair in force, as last
/// asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewalWindow {
    /// Not asked: no certificate from the CA in force yet.
    #[default]
    NotAsked,
    /// The CA's window: renewal at this replica's point in it (at once
    /// once it has begun).
    Offered {
        /// When the window begins.
        start: SystemTime,
        /// When it ends.
        end: SystemTime,
    },
    /// The CA offers no ARI: renewal at 2/3 of the lifetime (asked again
    /// in a day).
    NotOffered,
    /// Asking failed (why): the 2/3 rule meanwhile, asked again within the
    /// hour.
    Failed(String),
}

/// Keeps a [`Tls`] supplied with certificates from an ACME CA: orders the
/// first (while a temporary one serves), then renews each inside the CA's
/// renewal window (ARI) when it offers one, else at about 2/3 of its
/// lifetime (with jitter), retries failures with a growing delay (at most
/// 6 orders an hour), and reloads each new pair through the gate without a
/// restart. Among replicas sharing the cache directory, the holder of the
/// [`OrderLock`] orders. Clone it to read its [`status`](Self::status)
/// while [`run`](Self::run) works.
#[derive(Clone, Debug)]
pub struct Acme {
    inner: Arc<AcmeInner>,
}

#[derive(Debug)]
struct AcmeInner {
    config: AcmeConfig,
    tls: Tls,
    lock: Arc<dyn OrderLock>,
    /// This replica's place in a renewal window, in [0, 1): fixed for its
    /// life, so replicas spread out and one replica's due time holds still.
    jitter: f64,
    status: Mutex<AcmeStatus>,
    /// The CA's renewal window for the pair in force, when asked.
    ari: Mutex<Option<Ari>>,
}

/// What the CA said of the pair in force (RFC 9773).
#[derive(Clone, Debug)]
struct Ari {
    /// The pair it is about (its validity identifies it here).
    pair: (SystemTime, SystemTime),
    /// What the CA said.
    window: RenewalWindow,
    /// When to ask again.
    ask_again: SystemTime,
}

/// The most orders an hour, failures included.
const ORDERS_PER_HOUR: usize = 6;

/// How long asking the CA for its renewal window may take.
const ARI_TIMEOUT: Duration = Duration::from_secs(10);

/// At most [`ORDERS_PER_HOUR`] in any hour: a CA's rate limits are counted
/// in orders, and a loop of failures must not use them up.
#[derive(Debug, Default)]
struct RateCap(std::collections::VecDeque<std::time::Instant>);

impl RateCap {
    /// Whether one more order may be placed now (and counts it if so).
    fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let hour_ago = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        while self.0.front().is_some_and(|at| *at < hour_ago) {
            self.0.pop_front();
        }
        if self.0.len() >= ORDERS_PER_HOUR {
            return false;
        }
        self.0.push_back(now);
        true
    }
}

impl Acme {
    /// Renewing `tls` (made by [`AcmeConfig::tls`], which also applies
    /// [`UntilIssued`](super::UntilIssued)) with `config`.
    pub fn new(config: AcmeConfig, tls: Tls) -> Acme {
        Acme {
            inner: Arc::new(AcmeInner {
                lock: config.lock(),
                config,
                tls,
                jitter: crate_random(),
                status: Mutex::default(),
                ari: Mutex::default(),
            }),
        }
    }

    /// What it orders.
    pub fn config(&self) -> &AcmeConfig {
        &self.inner.config
    }

    /// The certificates it renews.
    pub fn tls(&self) -> &Tls {
        &self.inner.tls
    }

    /// How renewal is going.
    pub fn status(&self) -> AcmeStatus {
        let mut status = self.lock().clone();
        let pair = self.issued_pair();
        if let Some(ari) = self.ari().as_ref().filter(|ari| Some(ari.pair) == pair) {
            status.window = ari.window.clone();
        }
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AcmeStatus> {
        self.inner
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ari(&self) -> std::sync::MutexGuard<'_, Option<Ari>> {
        self.inner
            .ari
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The validity of the pair in force, unless it is the placeholder.
    fn issued_pair(&self) -> Option<(SystemTime, SystemTime)> {
        let status = self.inner.tls.status();
        let cert = status.certificates.first()?;
        (!cert.issuer.contains(PLACEHOLDER)).then_some((cert.not_before, cert.not_after))
    }

    /// When the pair in force should be replaced: now for the placeholder;
    /// else this replica's point in the CA's window when it gave one; else
    /// at 2/3 of the lifetime, up to 1/20 of it earlier for some replicas
    /// than for others.
    fn due(&self) -> SystemTime {
        // Already due: a time in the past, whenever it is compared.
        let past = SystemTime::UNIX_EPOCH;
        let Some(pair) = self.issued_pair() else {
            return past;
        };
        if let Some(Ari {
            window: RenewalWindow::Offered { start, end },
            ..
        }) = self.ari().as_ref().filter(|ari| ari.pair == pair)
        {
            return in_window(*start, *end, SystemTime::now(), self.inner.jitter);
        }
        two_thirds(pair, self.inner.jitter)
    }

    /// Orders and renews until the shutdown reaches `Closing`.
    pub async fn run(self, token: seaworthy_shutdown::ShutdownToken) {
        let mut attempts = RateCap::default();
        let mut closing = std::pin::pin!(token.reached(seaworthy_shutdown::Phase::Closing));
        let mut followed = Vec::new();
        loop {
            // What another replica wrote: its new pair (byte-identical
            // files reload nothing), its challenges.
            let _ = self.inner.tls.reload();
            order::follow_challenges(&self.inner.config, &self.inner.tls, &mut followed);
            let due = tokio::select! {
                () = &mut closing => return,
                () = self.ask_window() => self.next_due(),
            };
            // A lock in Redis may take its timeout to answer: not past Closing.
            let ordering = tokio::select! {
                () = &mut closing => return,
                ordering = self.inner.lock.held() => ordering,
            };
            tokio::select! {
                () = &mut closing => return,
                () = tokio::time::sleep(pause(due, ordering)) => {}
            }
            if SystemTime::now() < due {
                continue;
            }
            // One replica orders; the others follow its challenges and
            // pick its pair up from the shared directory.
            if !self.inner.lock.acquire().await {
                continue;
            }
            self.order_held(&mut attempts).await;
            self.inner.lock.release().await;
        }
    }

    /// With the lock held: orders unless the pair is new already (another
    /// replica renewed it) or the hour's orders are used up.
    async fn order_held(&self, attempts: &mut RateCap) {
        let _ = self.inner.tls.reload();
        if SystemTime::now() < self.due() && self.lock().failures == 0 {
            return;
        }
        if !attempts.allow() {
            let mut status = self.lock();
            status.failures = status.failures.max(1);
            status.next_order = Some(SystemTime::now() + Duration::from_secs(600));
            return;
        }
        let result = match order::order(&self.inner.config, &self.inner.tls).await {
            Ok(()) => self
                .inner
                .tls
                .reload()
                .map(|_| ())
                .map_err(|err| AcmeError(format!("the new pair was refused: {err}"))),
            Err(err) => Err(err),
        };
        self.record(result);
    }

    /// Asks the CA for its renewal window (ARI, RFC 9773) for the pair in
    /// force, when not asked yet for this pair or when the CA said to ask
    /// again. A CA without ARI, or one that does not answer, leaves the
    /// 2/3 rule in force (asked again in a day, or an hour).
    async fn ask_window(&self) {
        let Some(pair) = self.issued_pair() else {
            return;
        };
        let now = SystemTime::now();
        if self
            .ari()
            .as_ref()
            .is_some_and(|ari| ari.pair == pair && now < ari.ask_again)
        {
            return;
        }
        let asked =
            tokio::time::timeout(ARI_TIMEOUT, renewal_window(&self.inner.config, pair)).await;
        let (window, ask_again) = match asked {
            Ok(Ok(Some((start, end, retry_after)))) => {
                tracing::info!(window_start = ?start, window_end = ?end, "ACME: the CA's renewal window");
                (
                    RenewalWindow::Offered { start, end },
                    retry_after.clamp(Duration::from_secs(60), Duration::from_secs(86_400)),
                )
            }
            Ok(Ok(None)) => (RenewalWindow::NotOffered, Duration::from_secs(86_400)),
            Ok(Err(err)) => (
                RenewalWindow::Failed(err.to_string()),
                Duration::from_secs(3600),
            ),
            Err(_) => (
                RenewalWindow::Failed(format!("no answer within {ARI_TIMEOUT:?}")),
                Duration::from_secs(3600),
            ),
        };
        if let RenewalWindow::Failed(why) = &window {
            tracing::debug!(error = %why, "ACME: no renewal window from the CA; renewing at 2/3 of the lifetime");
        }
        let ari = Ari {
            pair,
            window,
            ask_again: now + ask_again,
        };
        *self.ari() = Some(ari);
    }

    /// When to order next: the pair's due time, or after failures the
    /// retry time; recorded in the status.
    fn next_due(&self) -> SystemTime {
        let due = {
            let status = self.lock();
            match (status.failures, status.next_order) {
                (0, _) | (_, None) => None,
                (_, Some(retry)) => Some(retry),
            }
        }
        .unwrap_or_else(|| self.due());
        self.lock().next_order = Some(due);
        due
    }

    /// Records how an order went: on failure, the next try after 10 s,
    /// 20 s, 40 s, … up to an hour.
    fn record(&self, result: Result<(), AcmeError>) {
        let mut status = self.lock();
        match result {
            Ok(()) => {
                status.failures = 0;
                status.last_error = None;
                status.certificates += 1;
                status.next_order = None;
            }
            Err(err) => {
                status.failures += 1;
                let delay = Duration::from_secs(10)
                    .saturating_mul(1 << status.failures.min(9).saturating_sub(1))
                    .min(Duration::from_secs(3600));
                tracing::warn!(error = %err, failures = status.failures, retry_in = ?delay, "ACME: order failed; the certificate in force keeps serving");
                status.last_error = Some(err.to_string());
                status.next_order = Some(SystemTime::now() + delay);
            }
        }
    }
}

/// How long to sleep before looking again: until `due`, but at most a
/// second (another replica may have renewed), and FOLLOW_ORDER while a
/// replica orders (its challenges must be answered here too).
fn pause(due: SystemTime, ordering: bool) -> Duration {
    let most = if ordering {
        order::FOLLOW_ORDER
    } else {
        Duration::from_secs(1)
    };
    due.duration_since(SystemTime::now())
        .unwrap_or_default()
        .min(most)
}

/// 2/3 of the way through `(not_before, not_after)`, up to 1/20 of the
/// lifetime earlier by `jitter` in [0, 1).
fn two_thirds((not_before, not_after): (SystemTime, SystemTime), jitter: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    (not_before + lifetime.mul_f64(2.0 / 3.0))
        .checked_sub(lifetime.mul_f64(jitter / 20.0))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// This replica's point in the CA's window `[start, end)` (RFC 9773 §4.2:
/// uniformly chosen); now when the window has begun.
fn in_window(start: SystemTime, end: SystemTime, now: SystemTime, jitter: f64) -> SystemTime {
    if start <= now {
        return now;
    }
    let width = end.duration_since(start).unwrap_or_default();
    start + width.mul_f64(jitter)
}

/// The CA's renewal window for the pair in force, read from the cache
/// directory (`served`: its validity, to be sure the file is that pair and
/// not one the gate refused): `None` when the CA offers no ARI. Uses the
/// account there; never creates one just to ask.
async fn renewal_window(
    config: &AcmeConfig,
    served: (SystemTime, SystemTime),
) -> Result<Option<(SystemTime, SystemTime, Duration)>, AcmeError> {
    let pem = std::fs::read(config.certificate_path())
        .map_err(|err| error(&format!("{}", config.certificate_path().display()), err))?;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| AcmeError("no certificate in the cache directory".into()))?
        .map_err(|err| error("certificate", err))?;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&der).map_err(|err| error("certificate", err))?;
    let validity = leaf.validity();
    let in_file = (
        crate::tls::certs::time_of(validity.not_before.timestamp()),
        crate::tls::certs::time_of(validity.not_after.timestamp()),
    );
    if in_file != served {
        return Err(AcmeError(
            "the cache directory's pair is not the one served".into(),
        ));
    }
    if !config.account_path().exists() {
        return Err(AcmeError("no account in the cache directory".into()));
    }
    let id = instant_acme::CertificateIdentifier::try_from(&der)
        .map_err(|err| error("certificate identifier", err))?;
    let account = order::account(config).await?;
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => Ok(Some((
            info.suggested_window.start.into(),
            info.suggested_window.end.into(),
            retry_after,
        ))),
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(err) => Err(error("renewal information", err)),
    }
}

/// A number in [0, 1) from the process's random hasher keys: enough to
/// spread replicas, not for secrets.
fn crate_random() -> f64 {
    use std::hash::BuildHasher;
    let hash = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    (hash >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_six_orders_an_hour() {
        let mut cap = RateCap::default();
        for _ in 0..ORDERS_PER_HOUR {
            assert!(cap.allow());
        }
        assert!(!cap.allow());
        assert_eq!(cap.0.len(), ORDERS_PER_HOUR);
    }

    #[test]
    fn due_at_two_thirds_up_to_a_twentieth_earlier() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let pair = (start, start + Duration::from_secs(90 * 86_400));
        assert_eq!(
            two_thirds(pair, 0.0),
            start + Duration::from_secs(60 * 86_400)
        );
        let earliest = two_thirds(pair, 0.999_999);
        let day = Duration::from_secs(86_400);
        assert!(
            earliest > start + day * 55 && earliest < start + day * 56,
            "{earliest:?}"
        );
    }

    #[test]
    fn a_point_in_the_cas_window_or_now_once_it_began() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let (start, end) = (now + hour, now + hour * 3);
        assert_eq!(in_window(start, end, now, 0.0), start);
        assert_eq!(in_window(start, end, now, 0.5), now + hour * 2);
        assert!(in_window(start, end, now, 0.999) < end);
        // Begun (or past): at once.
        assert_eq!(in_window(now - hour, now + hour, now, 0.7), now);
        assert_eq!(in_window(now - hour * 2, now - hour, now, 0.7), now);
    }
}
