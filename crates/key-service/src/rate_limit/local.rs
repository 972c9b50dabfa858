//! Limits kept in this process's memory.

use chrono::{DateTime, Utc};
use key_core::{Period, RateDecision, RateLimit, RateLimits, RateWindows};
use uuid::Uuid;

use crate::shards::Shards;

/// Limits kept in this process's memory: one `RateWindows` per key.
#[derive(Debug)]
pub struct LocalLimiter {
    windows: Shards<Uuid, RateWindows, foldhash::fast::RandomState>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter {
            windows: Shards::new(),
        }
    }
}

impl LocalLimiter {
    /// Decides one request of key `key_id` at `now` under `limits`, and counts it if allowed.
    pub fn acquire(&self, key_id: Uuid, limits: &RateLimits, now: DateTime<Utc>) -> RateDecision {
        if limits.is_empty() {
            return RateDecision::Allowed;
        }
        self.windows.with(&key_id, |map| {
            map.entry(key_id).or_default().acquire(limits, now)
        })
    }

    /// Forgets every key whose windows have all ended at `now`: it has counted nothing in any
    /// current window, so a fresh entry would decide exactly alike. Returns how many were
    /// forgotten.
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        self.windows.retain(|_, windows| {
            Period::ALL.into_iter().any(|per| {
                // `used` ignores the request count; only the period picks the window.
                windows.used(RateLimit { requests: 1, per }, now) > 0
            })
        })
    }

    /// How many keys have counters.
    pub fn entries(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
    }

    #[test]
    fn pruning_forgets_keys_once_all_their_windows_have_ended() {
        let limiter = LocalLimiter::default();
        let limits = RateLimits::parse("x", "5/minute 100/hour").unwrap();
        let minute_only = RateLimits::parse("x", "5/minute").unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        limiter.acquire(a, &limits, at(12, 0, 30));
        limiter.acquire(b, &minute_only, at(12, 0, 30));
        assert_eq!(limiter.entries(), 2);

        // Next minute: b's only window ended; a's hour window still counts.
        assert_eq!(limiter.prune(at(12, 1, 0)), 1);
        assert_eq!(limiter.entries(), 1);
        assert_eq!(limiter.prune(at(12, 59, 59)), 0);
        assert_eq!(limiter.prune(at(13, 0, 0)), 1);
        assert_eq!(limiter.entries(), 0);
    }
}
