//! Rate limiting: the [`RateLimiter`] that VerifyKey consults (in this process's memory, or
//! shared by every replica through Redis), its in-memory [`LocalLimiter`], and the
//! [`BruteForceGuard`].
//!
//! The limiter is an enum, not a trait object: deciding in Redis is asynchronous, and an
//! `async fn` behind `dyn` would box a future on every verification. With two implementations
//! known at compile time, a `match` costs nothing and the local case stays a plain function call.
//!
//! The in-memory structures are sharded maps (`Mutex<HashMap>` per shard, chosen by key id or
//! address): there is no lock every request contends on, and no lock is held across an `await`.
//! They are pruned periodically (`prune`, called by the server's flusher every second), so keys
//! and addresses that went quiet do not stay in memory.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, RandomState},
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{Period, RateDecision, RateLimit, RateLimits, RateWindows};
use uuid::Uuid;

use crate::{metrics::Metrics, redis_limiter::RedisLimiter};

const SHARDS: usize = 64;

/// Where a key's rate limit counters live. Both decide all-or-nothing (see
/// `key_core::RateWindows::acquire`) on fixed windows aligned to the epoch, so they answer
/// alike.
#[derive(Debug)]
pub enum RateLimiter {
    /// In this process's memory: right for one replica; several replicas each allow the full
    /// limit.
    Local(LocalLimiter),
    /// In Redis, shared by every replica, with a local fallback while Redis is unreachable.
    Redis(RedisLimiter),
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::Local(LocalLimiter::default())
    }
}

impl From<LocalLimiter> for RateLimiter {
    fn from(limiter: LocalLimiter) -> Self {
        RateLimiter::Local(limiter)
    }
}

impl From<RedisLimiter> for RateLimiter {
    fn from(limiter: RedisLimiter) -> Self {
        RateLimiter::Redis(limiter)
    }
}

impl RateLimiter {
    /// Decides one request of key `key_id` at `now` under `limits`, and counts it if allowed.
    /// Never fails: a shared limiter that cannot be reached is replaced by local limits (counted
    /// in `metrics`).
    pub async fn acquire(
        &self,
        key_id: Uuid,
        limits: &RateLimits,
        now: DateTime<Utc>,
        metrics: &Metrics,
    ) -> RateDecision {
        match self {
            RateLimiter::Local(local) => local.acquire(key_id, limits, now),
            RateLimiter::Redis(redis) => redis.acquire(key_id, limits, now, metrics).await,
        }
    }

    /// Forgets the in-memory counters of windows that have all ended at `now`; returns how many
    /// keys were forgotten. (Redis expires its own counters.)
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        self.local().prune(now)
    }

    /// How many keys have counters in this process's memory.
    pub fn entries(&self) -> usize {
        self.local().entries()
    }

    fn local(&self) -> &LocalLimiter {
        match self {
            RateLimiter::Local(local) => local,
            RateLimiter::Redis(redis) => redis.fallback(),
        }
    }
}

/// Sharded maps keyed by `K`, with their total size kept in an atomic so it can be read (and
/// capped) without visiting every shard. `S` hashes the keys: std's SipHash by default, for
/// keys a client chooses (its address); the rate limiter, keyed by key ids the server drew,
/// takes the faster foldhash.
#[derive(Debug)]
struct Shards<K, V, S = RandomState> {
    shards: Box<[Mutex<HashMap<K, V, S>>]>,
    hasher: S,
    len: AtomicUsize,
}

impl<K: Hash + Eq, V, S: BuildHasher + Default + Clone> Shards<K, V, S> {
    fn new() -> Self {
        let hasher = S::default();
        Shards {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
            len: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on the shard of `key`, under its lock.
    fn with<R>(&self, key: &K, f: impl FnOnce(&mut HashMap<K, V, S>) -> R) -> R {
        // The modulo keeps the index below SHARDS, so the truncation is harmless.
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut map = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = map.len();
        let result = f(&mut map);
        self.count_change(before, map.len());
        result
    }

    /// Keeps the entries for which `keep` is true, one shard at a time; returns how many were
    /// removed.
    fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let before = map.len();
            map.retain(&mut keep);
            removed += before - map.len();
            self.count_change(before, map.len());
        }
        removed
    }

    fn count_change(&self, before: usize, after: usize) {
        // Only inserts and removals touch the shared counter; most calls change nothing.
        if after > before {
            self.len.fetch_add(after - before, Ordering::Relaxed);
        } else if after < before {
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

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
