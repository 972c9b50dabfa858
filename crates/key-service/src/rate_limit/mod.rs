//! Rate limiting: the [`RateLimiter`] that VerifyKey consults (in this process's memory, or
//! shared by every replica through Redis), its in-memory [`LocalLimiter`], and the
//! [`BruteForceGuard`].
//!
//! The limiter is an enum, not a trait object: deciding in Redis is asynchronous, and an
//! `async fn` behind `dyn` would box a future on every verification. With two implementations
//! known at compile time, a `match` costs nothing and the local case stays a plain function call.
//!
//! The in-memory structures are sharded maps (`crate::shards`: a `Mutex<HashMap>` per shard,
//! chosen by key id or address): there is no lock every request contends on, and no lock is held
//! across an `await`. They are pruned periodically (`prune`, called by a job every flush
//! interval), so keys and addresses that went quiet do not stay in memory.
//!
//! The arrows point one way: `mod.rs` → `local`, `redis` and `guard`; `redis` → `local` (its
//! fallback).

mod guard;
mod local;
mod redis;

use chrono::{DateTime, Utc};
use key_core::{RateDecision, RateLimits};
use uuid::Uuid;

pub use self::{
    guard::{
        BruteForceGuard, BruteForceSettings, DEFAULT_COOLING_PERIOD, DEFAULT_FAILURE_THRESHOLD,
        DEFAULT_FAILURE_WINDOW, DEFAULT_MAX_TRACKED, Suspect,
    },
    local::LocalLimiter,
    redis::{DEFAULT_REDIS_RETRY_INTERVAL, DEFAULT_REDIS_TIMEOUT, RedisLimiter},
};
use crate::metrics::Metrics;

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
