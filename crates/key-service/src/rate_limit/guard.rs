//! The brute-force guard: client addresses that fail too many verifications in a row cool off.

use std::{
    net::IpAddr,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use chrono::{DateTime, TimeDelta, Utc};

use crate::metrics::Metrics;
use crate::shards::Shards;

/// How many failed verifications in a row a client address may make by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 100;
/// How long, by default, an address that reached the threshold is refused.
pub const DEFAULT_COOLING_PERIOD: TimeDelta = TimeDelta::seconds(60);
/// How many client addresses the guard tracks at most, by default.
pub const DEFAULT_MAX_TRACKED_ADDRESSES: usize = 100_000;
/// How long a streak of failures is remembered after its last failure. Failing slower than
/// `threshold` per this period is not brute force worth refusing.
pub const STREAK_IDLE_TIMEOUT: TimeDelta = TimeDelta::minutes(15);

#[derive(Debug, Clone, Copy)]
struct Streak {
    failures: u32,
    last_failure: DateTime<Utc>,
    blocked_until: Option<DateTime<Utc>>,
}

/// The brute-force guard: after `threshold` consecutive failed verifications (verdict
/// `invalid_api_key`) from one client address, that address is refused for `cooling` without
/// any key lookup. A valid verification resets the streak; other verdicts (expired, lacking a
/// scope) neither count nor reset.
///
/// Memory is bounded: `prune` forgets finished blocks and streaks idle for
/// [`STREAK_IDLE_TIMEOUT`], and at most `max_addresses` addresses are tracked. At the cap, a
/// new address's failures are not counted (it cannot be blocked) until pruning makes room;
/// addresses already tracked keep counting, and blocked ones stay blocked.
#[derive(Debug)]
pub struct BruteForceGuard {
    streaks: Shards<IpAddr, Streak>,
    threshold: u32,
    cooling: TimeDelta,
    max_addresses: usize,
    blocks: AtomicU64,
    /// Whether the cap was reached since the last prune below it, so it is logged once.
    full: AtomicBool,
}

impl BruteForceGuard {
    /// A guard refusing an address for `cooling` after `threshold` failures in a row.
    pub fn new(threshold: u32, cooling: TimeDelta) -> Self {
        BruteForceGuard {
            streaks: Shards::new(),
            threshold: threshold.max(1),
            cooling,
            max_addresses: DEFAULT_MAX_TRACKED_ADDRESSES,
            blocks: AtomicU64::new(0),
            full: AtomicBool::new(false),
        }
    }

    /// Tracks at most `max_addresses` client addresses ([`DEFAULT_MAX_TRACKED_ADDRESSES`] by
    /// default).
    pub fn with_max_addresses(mut self, max_addresses: usize) -> Self {
        self.max_addresses = max_addresses;
        self
    }

    /// When `ip` is cooling off at `now`: the instant it may try again.
    pub fn blocked_until(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Nearly always no address is failing: then no shard needs locking. (A streak started
        // by a request running at this very instant is no streak this request must see.)
        if self.streaks.len() == 0 {
            return None;
        }
        self.streaks.with(&ip, |map| {
            let until = map.get(&ip)?.blocked_until?;
            if until > now {
                Some(until)
            } else {
                // Cooled off: a fresh streak.
                map.remove(&ip);
                None
            }
        })
    }

    /// Records a verification from `ip`: `Some(true)` a failure, `Some(false)` a success,
    /// `None` neither. A block is counted in `metrics` and logged.
    pub fn record(&self, ip: IpAddr, failed: Option<bool>, now: DateTime<Utc>, metrics: &Metrics) {
        match failed {
            None => {}
            // A success only ends a streak; with none tracked there is nothing to end.
            Some(false) if self.streaks.len() > 0 => {
                self.streaks.with(&ip, |map| map.remove(&ip));
            }
            Some(false) => {}
            Some(true) => self.record_failure(ip, now, metrics),
        }
    }

    fn record_failure(&self, ip: IpAddr, now: DateTime<Utc>, metrics: &Metrics) {
        let outcome = self.streaks.with(&ip, |map| {
            if !map.contains_key(&ip) && self.streaks.len() >= self.max_addresses {
                return FailureOutcome::Untracked;
            }
            let streak = map.entry(ip).or_insert(Streak {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            });
            streak.failures = streak.failures.saturating_add(1);
            streak.last_failure = now;
            if streak.failures >= self.threshold && streak.blocked_until.is_none() {
                streak.blocked_until = Some(now + self.cooling);
                streak.failures = 0;
                FailureOutcome::Blocked
            } else {
                FailureOutcome::Counted
            }
        });
        match outcome {
            FailureOutcome::Counted => {}
            FailureOutcome::Blocked => {
                self.blocks.fetch_add(1, Ordering::Relaxed);
                metrics.brute_force_block();
                tracing::warn!(client_ip = %ip, threshold = self.threshold, "client address blocked after consecutive failed verifications");
            }
            FailureOutcome::Untracked => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max_addresses = self.max_addresses,
                        "brute-force guard full: failures of new client addresses are not counted until idle ones are forgotten"
                    );
                }
            }
        }
    }

    /// Forgets blocks that ended and streaks without a failure for [`STREAK_IDLE_TIMEOUT`] at
    /// `now`; returns how many addresses were forgotten.
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        let removed = self.streaks.retain(|_, streak| match streak.blocked_until {
            Some(until) => until > now,
            None => now - streak.last_failure < STREAK_IDLE_TIMEOUT,
        });
        if self.streaks.len() < self.max_addresses {
            self.full.store(false, Ordering::Relaxed);
        }
        removed
    }

    /// How many client addresses are tracked.
    pub fn entries(&self) -> usize {
        self.streaks.len()
    }

    /// How many times an address was blocked since start.
    pub fn blocks(&self) -> u64 {
        self.blocks.load(Ordering::Relaxed)
    }
}

enum FailureOutcome {
    Counted,
    Blocked,
    Untracked,
}

impl Default for BruteForceGuard {
    fn default() -> Self {
        BruteForceGuard::new(DEFAULT_FAILURE_THRESHOLD, DEFAULT_COOLING_PERIOD)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn the_guard_forgets_idle_streaks_and_ended_blocks() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(3, TimeDelta::seconds(60));
        for _ in 0..3 {
            guard.record(ip(1), Some(true), at(12, 0, 0), &metrics);
        }
        guard.record(ip(2), Some(true), at(12, 0, 0), &metrics);
        assert_eq!(guard.entries(), 2);
        assert!(
            metrics
                .render()
                .contains("keyrack_brute_force_blocks_total 1")
        );

        // The block ends at 12:01; the lone failure is idle from 12:15.
        assert_eq!(guard.prune(at(12, 0, 59)), 0);
        assert_eq!(guard.prune(at(12, 1, 0)), 1);
        assert_eq!(guard.blocked_until(ip(1), at(12, 1, 0)), None);
        assert_eq!(guard.prune(at(12, 14, 59)), 0);
        assert_eq!(guard.prune(at(12, 15, 0)), 1);
        assert_eq!(guard.entries(), 0);
    }

    #[test]
    fn at_the_cap_new_addresses_are_not_tracked_and_known_ones_still_get_blocked() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(2, TimeDelta::seconds(60)).with_max_addresses(10);
        for n in 0..20 {
            guard.record(ip(n), Some(true), at(12, 0, 0), &metrics);
        }
        assert_eq!(guard.entries(), 10);
        // The first ten addresses are tracked: the next failure blocks one of them. The others
        // are not, so no number of failures blocks them.
        guard.record(ip(0), Some(true), at(12, 0, 1), &metrics);
        assert!(guard.blocked_until(ip(0), at(12, 0, 1)).is_some());
        assert_eq!(guard.blocks(), 1);
        for _ in 0..5 {
            guard.record(ip(15), Some(true), at(12, 0, 1), &metrics);
        }
        assert_eq!(guard.blocked_until(ip(15), at(12, 0, 1)), None);
        assert_eq!(guard.blocks(), 1);
        assert!(guard.entries() <= 10);
        // Pruning the idle ones makes room again.
        guard.prune(at(12, 20, 0));
        assert_eq!(guard.entries(), 0);
        guard.record(ip(99), Some(true), at(12, 20, 0), &metrics);
        assert_eq!(guard.entries(), 1);
    }
}
