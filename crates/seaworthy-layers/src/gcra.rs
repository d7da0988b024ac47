//! The generic cell rate algorithm, and quotas in nginx's terms.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A rate and a burst, as nginx's `limit_req zone=… rate=100r/m burst=20
/// nodelay`: on average `count` requests per `period`, and up to `burst`
/// requests above the rate at once (so `burst + 1` back to back from a
/// fresh key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds between two requests at the steady rate, in whole
    /// microseconds (at least 1 µs: at most a million requests a second per
    /// key).
    interval: u64,
    burst: u32,
    count: u32,
    period: Duration,
}

impl Quota {
    /// `count` requests per `period` (at least 1 of each), no burst.
    pub fn new(count: u32, period: Duration) -> Self {
        let count = count.max(1);
        let nanos = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
        // Whole microseconds (the store keeps state in them): rounding moves
        // a rate of 1000/s by at most 0.05 %.
        let interval = (nanos / u64::from(count) + 500) / 1000 * 1000;
        Quota {
            interval: interval.max(1000),
            burst: 0,
            count,
            period,
        }
    }

    /// `count` per second.
    pub fn per_second(count: u32) -> Self {
        Quota::new(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    pub fn per_minute(count: u32) -> Self {
        Quota::new(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub fn per_hour(count: u32) -> Self {
        Quota::new(count, Duration::from_secs(3600))
    }

    /// Up to `burst` requests above the rate at once.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// The time between two requests at the steady rate.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The burst.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// Requests a fresh key may send at once: `burst + 1`.
    pub fn capacity(&self) -> u32 {
        self.burst.saturating_add(1)
    }

    /// How long an emptied key takes to refill to its capacity.
    pub(crate) fn tolerance(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.capacity()))
    }

    /// Decides one request of `cost` arriving at `now` (nanoseconds on a
    /// monotonic clock) for a key whose theoretical arrival time is `tat`,
    /// updating it when the request is allowed.
    pub fn check(&self, tat: &mut u64, now: u64, cost: u32) -> Decision {
        let increment = self.interval.saturating_mul(u64::from(cost.max(1)));
        let tolerance = self.tolerance();
        let new_tat = (*tat).max(now).saturating_add(increment);
        let debt = new_tat - now;
        if debt <= tolerance {
            *tat = new_tat;
            Decision {
                allowed: true,
                remaining: u32::try_from((tolerance - debt) / self.interval).unwrap_or(u32::MAX),
                retry_after: Duration::ZERO,
                reset_after: Duration::from_nanos(debt),
            }
        } else {
            let current = (*tat).max(now) - now;
            Decision {
                allowed: false,
                remaining: u32::try_from(tolerance.saturating_sub(current) / self.interval)
                    .unwrap_or(u32::MAX),
                retry_after: Duration::from_nanos(debt - tolerance),
                reset_after: Duration::from_nanos(current),
            }
        }
    }
}

impl FromStr for Quota {
    type Err = InvalidQuota;

    /// `100/min`, `10/s`, `5000/h` (also `sec`, `second`, `m`, `minute`,
    /// `hour`); nginx's `100r/m` works too.
    fn from_str(text: &str) -> Result<Self, InvalidQuota> {
        let (count, unit) = text.split_once('/').ok_or(InvalidQuota(()))?;
        let count = count.trim().trim_end_matches('r');
        let count: u32 = count.parse().map_err(|_| InvalidQuota(()))?;
        if count == 0 {
            return Err(InvalidQuota(()));
        }
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(InvalidQuota(())),
        };
        Ok(Quota::new(count, period))
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{:?}", self.count, self.period),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Not a rate like `100/min`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidQuota(());

impl fmt::Display for InvalidQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rate like 100/min, 10/s or 5000/h")
    }
}

impl std::error::Error for InvalidQuota {}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// Requests the key may still send at once.
    pub remaining: u32,
    /// When rejected: how long until the same request would pass.
    pub retry_after: Duration,
    /// How long until the key is back to its full capacity.
    pub reset_after: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_fresh_key_gets_its_burst_plus_one_then_the_rate() {
        let quota = Quota::per_second(10).burst(5);
        let mut tat = 0;
        let now = 1_000_000_000;
        let allowed = (0..10)
            .filter(|_| quota.check(&mut tat, now, 1).allowed)
            .count();
        assert_eq!(allowed, 6);
        let rejected = quota.check(&mut tat, now, 1);
        assert!(!rejected.allowed);
        assert_eq!(rejected.retry_after, Duration::from_millis(100));
        // One interval later, one more.
        assert!(quota.check(&mut tat, now + 100_000_000, 1).allowed);
        assert!(!quota.check(&mut tat, now + 100_000_000, 1).allowed);
    }

    #[test]
    fn quotas_parse_in_nginx_terms() {
        assert_eq!("100/min".parse::<Quota>().unwrap(), Quota::per_minute(100));
        assert_eq!("10r/s".parse::<Quota>().unwrap(), Quota::per_second(10));
        assert_eq!("5000/h".parse::<Quota>().unwrap().to_string(), "5000/h");
        for bad in ["lots", "0/s", "10/day", "/s"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }

    /// A leaky bucket, written the obvious way: the reference GCRA must
    /// agree with.
    struct Bucket {
        level: u128,
        last: u128,
    }

    impl Bucket {
        fn offer(&mut self, now: u128, increment: u128, capacity: u128) -> bool {
            let leaked = now.saturating_sub(self.last);
            self.level = self.level.saturating_sub(leaked);
            self.last = self.last.max(now);
            if self.level + increment <= capacity {
                self.level += increment;
                true
            } else {
                false
            }
        }
    }

    proptest! {
        #[test]
        fn gcra_agrees_with_a_leaky_bucket(
            count in 1_u32..1000,
            period_ms in 1_u64..10_000,
            burst in 0_u32..50,
            gaps in proptest::collection::vec(0_u64..50_000_000, 1..300),
            costs in proptest::collection::vec(1_u32..4, 300),
        ) {
            let quota = Quota::new(count, Duration::from_millis(period_ms)).burst(burst);
            let mut tat = 0;
            let mut bucket = Bucket { level: 0, last: 0 };
            let mut now = 0_u64;
            for (gap, cost) in gaps.iter().zip(&costs) {
                now += gap;
                let increment = u128::from(quota.interval) * u128::from(*cost);
                let expected = bucket.offer(u128::from(now), increment, u128::from(quota.tolerance()));
                prop_assert_eq!(quota.check(&mut tat, now, *cost).allowed, expected);
            }
        }
    }
}
