//! Rate limiting in this process: the [`Limiter`] seam with its in-memory implementation, and
//! the brute-force guard.
//!
//! The limiter is a trait so that a Redis-backed limiter (global limits across replicas) can be
//! plugged in later; only [`LocalLimiter`] exists so far. Both structures are sharded maps
//! (`Mutex<HashMap>` per shard, chosen by key id or address): there is no lock every request
//! contends on, and no lock is held across an `await` (every method here is synchronous).

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, RandomState},
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{RateDecision, RateLimits, RateWindows};
use uuid::Uuid;

const SHARDS: usize = 64;

/// Where a key's counters live. Implementations decide all-or-nothing (see
/// `key_core::RateWindows::acquire`).
pub trait Limiter: Send + Sync + std::fmt::Debug + 'static {
    /// Decides one request of key `key_id` at `now` under `limits`, and counts it if allowed.
    fn acquire(&self, key_id: Uuid, limits: &RateLimits, now: DateTime<Utc>) -> RateDecision;
}

/// Sharded maps keyed by `K`.
#[derive(Debug)]
struct Shards<K, V> {
    shards: Box<[Mutex<HashMap<K, V>>]>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V> Shards<K, V> {
    fn new() -> Self {
        Shards {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn with<R>(&self, key: &K, f: impl FnOnce(&mut HashMap<K, V>) -> R) -> R {
        // The modulo keeps the index below SHARDS, so the truncation is harmless.
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut map = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut map)
    }
}

/// Limits kept in this process's memory: one `RateWindows` per key. Right for one replica;
/// several replicas each allow the full limit.
#[derive(Debug)]
pub struct LocalLimiter {
    windows: Shards<Uuid, RateWindows>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter {
            windows: Shards::new(),
        }
    }
}

impl Limiter for LocalLimiter {
    fn acquire(&self, key_id: Uuid, limits: &RateLimits, now: DateTime<Utc>) -> RateDecision {
        if limits.is_empty() {
            return RateDecision::Allowed;
        }
        self.windows.with(&key_id, |map| {
            map.entry(key_id).or_default().acquire(limits, now)
        })
    }
}

/// How many failed verifications in a row a client address may make by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 100;
/// How long, by default, an address that reached the threshold is refused.
pub const DEFAULT_COOLING_PERIOD: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    failures: u32,
    blocked_until: Option<DateTime<Utc>>,
}

/// The brute-force guard: after `threshold` consecutive failed verifications (verdict
/// `invalid_api_key`) from one client address, that address is refused for `cooling` without
/// any key lookup. A valid verification resets the streak; other verdicts (expired, lacking a
/// scope) neither count nor reset.
#[derive(Debug)]
pub struct BruteForceGuard {
    streaks: Shards<IpAddr, Streak>,
    threshold: u32,
    cooling: TimeDelta,
    blocks: AtomicU64,
}

impl BruteForceGuard {
    /// A guard refusing an address for `cooling` after `threshold` failures in a row.
    pub fn new(threshold: u32, cooling: TimeDelta) -> Self {
        BruteForceGuard {
            streaks: Shards::new(),
            threshold: threshold.max(1),
            cooling,
            blocks: AtomicU64::new(0),
        }
    }

    /// When `ip` is cooling off at `now`: the instant it may try again.
    pub fn blocked_until(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
    /// `None` neither.
    pub fn record(&self, ip: IpAddr, failed: Option<bool>, now: DateTime<Utc>) {
        match failed {
            None => {}
            Some(false) => {
                self.streaks.with(&ip, |map| map.remove(&ip));
            }
            Some(true) => {
                let blocked = self.streaks.with(&ip, |map| {
                    let streak = map.entry(ip).or_default();
                    streak.failures = streak.failures.saturating_add(1);
                    if streak.failures >= self.threshold && streak.blocked_until.is_none() {
                        streak.blocked_until = Some(now + self.cooling);
                        streak.failures = 0;
                        true
                    } else {
                        false
                    }
                });
                if blocked {
                    self.blocks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(client_ip = %ip, threshold = self.threshold, "client address blocked after consecutive failed verifications");
                }
            }
        }
    }

    /// How many times an address was blocked since start.
    pub fn blocks(&self) -> u64 {
        self.blocks.load(Ordering::Relaxed)
    }
}

impl Default for BruteForceGuard {
    fn default() -> Self {
        BruteForceGuard::new(DEFAULT_FAILURE_THRESHOLD, DEFAULT_COOLING_PERIOD)
    }
}
