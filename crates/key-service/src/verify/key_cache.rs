//! The in-process cache of key records on the verification path, and its negative cache of
//! digests that match no key.
//!
//! A verification of a cached key makes no database query: the entry holds everything
//! `Verifier::verify` reads from the store (the record, its effective rate limits and,
//! for a personal key, its effective scopes under its member's current role). The verdict is
//! not cached: expiry is judged against the current clock at every verification.
//!
//! Entries are dropped at once, in this process, by every change that alters a verdict (the
//! operations call `KeyCache::forget`, `forget_organization` and `forget_member`). On
//! PostgreSQL, changes committed by other replicas arrive as cache notices
//! (`jobs::CacheNotices`), which drop the same entries here. While this process has no
//! listener for those notices, the cache is suspended ([`KeyCache::suspend`]): every
//! verification reads the store. Every entry also lives at most `ttl` by the application's
//! clock, the last line of defence against a change that announced nothing.
//!
//! A verification that read the store while a change was being made must not put what it read
//! back into the cache after the change dropped it. Every drop first moves `epoch` forward;
//! a verification notes the epoch before its read and, after inserting, takes its entry out
//! again if the epoch moved meanwhile. Whichever of the two runs last removes the entry.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{KeyDigest, KeyView, RateLimits, ScopeSet};
use quick_cache::sync::Cache;
use uuid::Uuid;

/// How many keys are cached by default. An entry takes a few hundred bytes.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 1_000_000;
/// How long a cached key is trusted by default. Changes reach every replica's cache at once
/// (in-process drops, and cache notices on PostgreSQL), so the TTL only bounds a change that
/// announced nothing: a row edited while its replica's listener was between a loss and its
/// suspension, say. A minute keeps that bound short while a busy key is read from the store
/// once a minute per replica rather than every few seconds.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// How many unknown digests are remembered by default.
pub const DEFAULT_NEGATIVE_CACHE_CAPACITY: usize = 100_000;
/// How long an unknown digest is remembered by default.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(60);

/// The sizes and lifetimes of the key cache (`Settings::key_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCacheSettings {
    /// At most this many keys are cached; the least useful ones are evicted first.
    pub capacity: usize,
    /// A cached key is read again from the store after this long. Zero (or a zero capacity)
    /// turns the whole cache off, the negative cache included.
    pub ttl: Duration,
    /// At most this many unknown digests are remembered, apart from the keys, so a flood of
    /// random keys evicts no known one.
    pub negative_capacity: usize,
    /// An unknown digest is looked up again after this long. Zero (or a zero capacity) turns
    /// the negative cache off.
    pub negative_ttl: Duration,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        KeyCacheSettings {
            capacity: DEFAULT_KEY_CACHE_CAPACITY,
            ttl: DEFAULT_KEY_CACHE_TTL,
            negative_capacity: DEFAULT_NEGATIVE_CACHE_CAPACITY,
            negative_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
        }
    }
}

impl KeyCacheSettings {
    /// No cache at all: every verification of a well-formed key reads the store.
    pub const DISABLED: KeyCacheSettings = KeyCacheSettings {
        capacity: 0,
        ttl: Duration::ZERO,
        negative_capacity: 0,
        negative_ttl: Duration::ZERO,
    };
}

/// What a verification needs from the store about a known key.
#[derive(Debug, Clone)]
pub(crate) struct CachedKey {
    /// What verification reads of the key's record: a view, not the whole record, so a
    /// million cached keys stay within a few hundred MiB.
    pub(crate) record: KeyView,
    /// Its own rate limits, or else its organization's default.
    pub(crate) limits: RateLimits,
    /// What it may do (`key_core::effective_scopes`); `None` for a personal key whose member
    /// is gone, which makes it invalid.
    pub(crate) effective: Option<ScopeSet>,
}

/// The answer of the cache for a digest.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A known key, fresh enough to be trusted.
    Known(CachedKey),
    /// A digest recently found to match no key.
    Unknown,
    /// Nothing usable: the store must be read.
    Miss,
}

#[derive(Debug, Clone)]
struct Entry {
    key: CachedKey,
    cached_at: DateTime<Utc>,
}

/// The caches, shared by every clone of the verifier and the operations.
pub(crate) struct KeyCache {
    known: Option<Cache<KeyDigest, Entry>>,
    unknown: Option<Cache<KeyDigest, DateTime<Utc>>>,
    ttl: TimeDelta,
    negative_ttl: TimeDelta,
    /// Moves forward at every drop; see the module documentation.
    epoch: AtomicU64,
    /// Whether entries may be used: false while changes made elsewhere could go unannounced.
    trusted: AtomicBool,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Entries are keyed by digests, which stay out of logs.
        f.debug_struct("KeyCache")
            .field("keys", &self.len())
            .field("unknown", &self.unknown_len())
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .finish()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(KeyCacheSettings::default())
    }
}

/// The duration as a `TimeDelta`, zero for one too long to represent (which turns the cache
/// off rather than keeping entries for ever).
fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::zero())
}

/// Whether an entry stored at `cached_at` may still be used at `now`. A clock that went back
/// makes the entry stale rather than young.
fn fresh(cached_at: DateTime<Utc>, now: DateTime<Utc>, ttl: TimeDelta) -> bool {
    let age = now - cached_at;
    age >= TimeDelta::zero() && age < ttl
}

impl KeyCache {
    /// Caches as `settings` say.
    pub(crate) fn new(settings: KeyCacheSettings) -> KeyCache {
        let ttl = delta(settings.ttl);
        let negative_ttl = delta(settings.negative_ttl);
        let enabled = settings.capacity > 0 && ttl > TimeDelta::zero();
        let negative =
            enabled && settings.negative_capacity > 0 && negative_ttl > TimeDelta::zero();
        KeyCache {
            known: enabled.then(|| Cache::new(settings.capacity)),
            unknown: negative.then(|| Cache::new(settings.negative_capacity)),
            ttl,
            negative_ttl,
            epoch: AtomicU64::new(0),
            trusted: AtomicBool::new(true),
        }
    }

    /// Stops using the cache, and empties it: changes made elsewhere may not be announced
    /// from now on (the listener for them is gone, or not yet there). Every verification
    /// reads the store until [`KeyCache::resume`].
    pub(crate) fn suspend(&self) {
        self.trusted.store(false, Ordering::SeqCst);
        self.clear();
    }

    /// Uses the cache again, from empty: changes are announced again from now on, and what
    /// was cached before (or read while suspended) may predate one that was missed.
    pub(crate) fn resume(&self) {
        self.clear();
        self.trusted.store(true, Ordering::SeqCst);
    }

    /// Whether the cache is in use (not suspended).
    pub(crate) fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(known) = &self.known {
            known.clear();
        }
        if let Some(unknown) = &self.unknown {
            unknown.clear();
        }
    }

    /// What is known about `digest` at `now`.
    pub(crate) fn lookup(&self, digest: &KeyDigest, now: DateTime<Utc>) -> Lookup {
        if !self.is_trusted() {
            return Lookup::Miss;
        }
        if let Some(known) = &self.known
            && let Some(entry) = known.get(digest)
        {
            if fresh(entry.cached_at, now, self.ttl) {
                return Lookup::Known(entry.key);
            }
            known.remove_if(digest, |entry| !fresh(entry.cached_at, now, self.ttl));
        }
        if let Some(unknown) = &self.unknown
            && let Some(cached_at) = unknown.get(digest)
        {
            if fresh(cached_at, now, self.negative_ttl) {
                return Lookup::Unknown;
            }
            unknown.remove_if(digest, |cached_at| {
                !fresh(*cached_at, now, self.negative_ttl)
            });
        }
        Lookup::Miss
    }

    /// The epoch to note before reading the store, for [`KeyCache::remember`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `key` under `digest`, as read from the store after `epoch` was noted at `now`.
    pub(crate) fn remember(
        &self,
        digest: KeyDigest,
        key: CachedKey,
        epoch: u64,
        now: DateTime<Utc>,
    ) {
        let Some(known) = &self.known else {
            return;
        };
        if !self.is_trusted() {
            return;
        }
        known.insert(
            digest,
            Entry {
                key,
                cached_at: now,
            },
        );
        if self.epoch() != epoch {
            // A change was made while the store was read: what was read may predate it.
            known.remove(&digest);
        }
    }

    /// Remembers that `digest` matched no key, as read from the store after `epoch` was noted.
    pub(crate) fn remember_unknown(&self, digest: KeyDigest, epoch: u64, now: DateTime<Utc>) {
        let Some(unknown) = &self.unknown else {
            return;
        };
        if !self.is_trusted() {
            return;
        }
        unknown.insert(digest, now);
        if self.epoch() != epoch {
            // A key may have been created meanwhile, under this very digest.
            unknown.remove(&digest);
        }
    }

    /// Drops the key stored under `digest`, after a change to it was written.
    pub(crate) fn forget(&self, digest: &KeyDigest) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(known) = &self.known {
            known.remove(digest);
        }
    }

    /// Drops every key of `organization_id`, after a change to its policy (role scopes,
    /// default limits) was written. Other organizations' keys stay: one tenant's changes, in a
    /// loop even, cannot send every tenant's verifications to the database. Such changes are
    /// rare; the walk over the cache takes its shards' locks one at a time.
    pub(crate) fn forget_organization(&self, organization_id: Uuid) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(known) = &self.known {
            known.retain(|_, entry| entry.key.record.organization_id != organization_id);
        }
    }

    /// Drops the keys of the member `member_id`, after their role changed or they were removed.
    pub(crate) fn forget_member(&self, member_id: Uuid) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(known) = &self.known {
            known.retain(|_, entry| entry.key.record.member_id != Some(member_id));
        }
    }

    /// Forgets that `digest` was unknown, after a key with that digest was stored.
    pub(crate) fn key_created(&self, digest: &KeyDigest) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(unknown) = &self.unknown {
            unknown.remove(digest);
        }
    }

    /// Drops everything known about `digest`, after another process changed, created or
    /// deleted the key stored under it.
    pub(crate) fn forget_digest(&self, digest: &KeyDigest) {
        self.forget(digest);
        self.key_created(digest);
    }

    /// How many keys are cached.
    pub(crate) fn len(&self) -> usize {
        self.known.as_ref().map_or(0, Cache::len)
    }

    /// How many unknown digests are remembered.
    pub(crate) fn unknown_len(&self) -> usize {
        self.unknown.as_ref().map_or(0, Cache::len)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use key_core::{Environment, KeyType, Scope};
    use uuid::Uuid;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn digest(byte: u8) -> KeyDigest {
        KeyDigest::from_slice(&[byte; 32]).unwrap()
    }

    fn key() -> CachedKey {
        let scopes: ScopeSet = [Scope::Admin].into_iter().collect();
        CachedKey {
            record: KeyView {
                id: Uuid::now_v7(),
                organization_id: Uuid::now_v7(),
                member_id: None,
                name: "k".into(),
                scopes,
                environment: Environment::Live,
                key_type: KeyType::Organization,
                operator: false,
                revoked: false,
                disabled: false,
                expires_at: None,
                controls: None,
                has_credits: false,
            },
            limits: RateLimits::NONE,
            effective: Some(scopes),
        }
    }

    fn cache() -> KeyCache {
        KeyCache::new(KeyCacheSettings {
            capacity: 100,
            ttl: Duration::from_secs(5),
            negative_capacity: 100,
            negative_ttl: Duration::from_secs(60),
        })
    }

    #[test]
    fn entries_live_for_their_ttl_by_the_given_clock() {
        let cache = cache();
        cache.remember(digest(1), key(), cache.epoch(), at(0));
        cache.remember_unknown(digest(2), cache.epoch(), at(0));
        assert!(matches!(cache.lookup(&digest(1), at(4)), Lookup::Known(_)));
        assert!(matches!(cache.lookup(&digest(1), at(5)), Lookup::Miss));
        assert!(matches!(cache.lookup(&digest(2), at(59)), Lookup::Unknown));
        assert!(matches!(cache.lookup(&digest(2), at(60)), Lookup::Miss));
        // A clock that went back does not make an entry younger.
        cache.remember(digest(3), key(), cache.epoch(), at(10));
        assert!(matches!(cache.lookup(&digest(3), at(9)), Lookup::Miss));
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = cache();
        let noted = cache.epoch();
        cache.forget(&digest(1));
        cache.remember(digest(1), key(), noted, at(0));
        assert!(matches!(cache.lookup(&digest(1), at(0)), Lookup::Miss));
        let noted = cache.epoch();
        cache.key_created(&digest(2));
        cache.remember_unknown(digest(2), noted, at(0));
        assert!(matches!(cache.lookup(&digest(2), at(0)), Lookup::Miss));
    }

    #[test]
    fn drops_take_effect_at_once() {
        let cache = cache();
        cache.remember(digest(1), key(), cache.epoch(), at(0));
        cache.remember(digest(2), key(), cache.epoch(), at(0));
        cache.remember_unknown(digest(3), cache.epoch(), at(0));
        cache.forget(&digest(1));
        assert!(matches!(cache.lookup(&digest(1), at(0)), Lookup::Miss));
        assert!(matches!(cache.lookup(&digest(2), at(0)), Lookup::Known(_)));
        let organization = match cache.lookup(&digest(2), at(0)) {
            Lookup::Known(cached) => cached.record.organization_id,
            _ => unreachable!(),
        };
        let mut member_key = key();
        member_key.record.member_id = Some(Uuid::from_u128(7));
        cache.remember(digest(4), member_key, cache.epoch(), at(0));
        cache.forget_member(Uuid::from_u128(7));
        assert!(matches!(cache.lookup(&digest(4), at(0)), Lookup::Miss));
        assert!(matches!(cache.lookup(&digest(2), at(0)), Lookup::Known(_)));
        cache.forget_organization(Uuid::now_v7());
        assert!(matches!(cache.lookup(&digest(2), at(0)), Lookup::Known(_)));
        cache.forget_organization(organization);
        assert!(matches!(cache.lookup(&digest(2), at(0)), Lookup::Miss));
        cache.key_created(&digest(3));
        assert!(matches!(cache.lookup(&digest(3), at(0)), Lookup::Miss));
    }

    #[test]
    fn a_suspended_cache_answers_nothing_and_resumes_empty() {
        let cache = cache();
        cache.remember(digest(1), key(), cache.epoch(), at(0));
        cache.remember_unknown(digest(2), cache.epoch(), at(0));
        let noted = cache.epoch();
        cache.suspend();
        assert!(matches!(cache.lookup(&digest(1), at(0)), Lookup::Miss));
        cache.remember(digest(3), key(), cache.epoch(), at(0));
        assert!(matches!(cache.lookup(&digest(3), at(0)), Lookup::Miss));
        cache.resume();
        // Neither what was cached before nor a read that began before the resume comes back.
        cache.remember(digest(4), key(), noted, at(0));
        for gone in 1..=4 {
            assert!(matches!(cache.lookup(&digest(gone), at(0)), Lookup::Miss));
        }
        cache.remember(digest(5), key(), cache.epoch(), at(0));
        assert!(matches!(cache.lookup(&digest(5), at(0)), Lookup::Known(_)));
        cache.forget_digest(&digest(5));
        assert!(matches!(cache.lookup(&digest(5), at(0)), Lookup::Miss));
    }

    #[test]
    fn a_zero_ttl_turns_both_caches_off() {
        let cache = KeyCache::new(KeyCacheSettings {
            ttl: Duration::ZERO,
            ..KeyCacheSettings::default()
        });
        cache.remember(digest(1), key(), cache.epoch(), at(0));
        cache.remember_unknown(digest(2), cache.epoch(), at(0));
        assert!(matches!(cache.lookup(&digest(1), at(0)), Lookup::Miss));
        assert!(matches!(cache.lookup(&digest(2), at(0)), Lookup::Miss));
        assert_eq!((cache.len(), cache.unknown_len()), (0, 0));
    }
}
