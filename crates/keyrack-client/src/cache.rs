//! The cache of VALID verdicts: a second at most, bounded in size, keyed by a digest.

use std::{
    net::IpAddr,
    time::{Duration, Instant, SystemTime},
};

use quick_cache::sync::Cache;
use ring::digest::{Context, SHA256};

use crate::principal::Principal;

/// Valid verdicts, each until its own deadline. Only valid verdicts go in: a refusal is
/// always asked again, so a key refused once (revoked, rate limited) is never refused from
/// memory, and a key revoked after it was cached is refused once its entry is older than the
/// TTL.
pub(crate) struct VerdictCache {
    entries: Option<Cache<[u8; 32], Entry>>,
    ttl: Duration,
}

#[derive(Clone)]
struct Entry {
    principal: Principal,
    until: Instant,
}

/// What a verdict was asked about: the key, the required scopes and the client's address (a
/// verdict for one address says nothing about another, e.g. under an allowlist). A SHA-256
/// digest of them, so the cache never holds a key.
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    pub(crate) fn new(key: &str, scopes: &[String], client_ip: Option<IpAddr>) -> CacheKey {
        let mut context = Context::new(&SHA256);
        // Lengths first, so no two different inputs hash the same bytes.
        context.update(&(key.len() as u64).to_be_bytes());
        context.update(key.as_bytes());
        context.update(&(scopes.len() as u64).to_be_bytes());
        for scope in scopes {
            context.update(&(scope.len() as u64).to_be_bytes());
            context.update(scope.as_bytes());
        }
        match client_ip {
            Some(IpAddr::V4(ip)) => context.update(&ip.octets()),
            Some(IpAddr::V6(ip)) => context.update(&ip.octets()),
            None => {}
        }
        let mut digest = [0; 32];
        digest.copy_from_slice(context.finish().as_ref());
        CacheKey(digest)
    }
}

impl VerdictCache {
    /// A cache keeping each valid verdict `ttl`, at most `capacity` of them; none if either is
    /// zero.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> VerdictCache {
        let entries = (!ttl.is_zero() && capacity > 0).then(|| Cache::new(capacity));
        VerdictCache { entries, ttl }
    }

    /// The principal of a valid verdict younger than the TTL.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Principal> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(&key.0)?;
        let now = Instant::now();
        if now < entry.until {
            return Some(entry.principal);
        }
        // Only if still stale: another request may have put a fresh verdict in meanwhile.
        entries.remove_if(&key.0, |entry| entry.until <= now);
        None
    }

    /// Keeps a valid verdict for the TTL, or until the key expires if that is sooner.
    pub(crate) fn insert(&self, key: CacheKey, principal: &Principal) {
        let Some(entries) = &self.entries else {
            return;
        };
        let mut ttl = self.ttl;
        if let Some(expires_at) = principal.expires_at {
            match expires_at.duration_since(SystemTime::now()) {
                Ok(left) => ttl = ttl.min(left),
                Err(_) => return,
            }
        }
        entries.insert(
            key.0,
            Entry {
                principal: principal.clone(),
                until: Instant::now() + ttl,
            },
        );
    }
}

impl std::fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.entries.as_ref().map(|e| e.capacity()))
            .field("len", &self.entries.as_ref().map(|e| e.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Environment, KeyType};

    fn principal(expires_at: Option<SystemTime>) -> Principal {
        Principal {
            key_id: "k".into(),
            organization_id: "o".into(),
            name: "n".into(),
            scopes: vec!["chat".into()],
            environment: Environment::Live,
            key_type: KeyType::Organization,
            member_id: None,
            expires_at,
            metadata_json: None,
            oauth_client_id: None,
            user_id: None,
        }
    }

    #[test]
    fn an_entry_answers_until_its_ttl_then_never() {
        let cache = VerdictCache::new(Duration::from_millis(50), 10);
        let key = || CacheKey::new("sk_live_x", &["chat".into()], None);
        cache.insert(key(), &principal(None));
        assert_eq!(cache.get(&key()), Some(principal(None)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&key()), None);
    }

    #[test]
    fn scopes_and_addresses_are_part_of_the_question() {
        let cache = VerdictCache::new(Duration::from_secs(1), 10);
        cache.insert(
            CacheKey::new("sk_live_x", &["chat".into()], None),
            &principal(None),
        );
        assert!(
            cache
                .get(&CacheKey::new("sk_live_x", &["admin".into()], None))
                .is_none()
        );
        assert!(cache.get(&CacheKey::new("sk_live_x", &[], None)).is_none());
        let address = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(
            cache
                .get(&CacheKey::new("sk_live_x", &["chat".into()], address))
                .is_none()
        );
        // "ab" + ["c"] and "a" + ["bc"] are different questions.
        cache.insert(CacheKey::new("ab", &["c".into()], None), &principal(None));
        assert!(
            cache
                .get(&CacheKey::new("a", &["bc".into()], None))
                .is_none()
        );
    }

    #[test]
    fn an_expired_key_is_not_kept_and_an_expiring_one_not_past_its_expiry() {
        let cache = VerdictCache::new(Duration::from_secs(1), 10);
        let past = SystemTime::now() - Duration::from_secs(1);
        cache.insert(CacheKey::new("old", &[], None), &principal(Some(past)));
        assert!(cache.get(&CacheKey::new("old", &[], None)).is_none());
        let soon = SystemTime::now() + Duration::from_millis(30);
        cache.insert(CacheKey::new("soon", &[], None), &principal(Some(soon)));
        assert!(cache.get(&CacheKey::new("soon", &[], None)).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&CacheKey::new("soon", &[], None)).is_none());
    }

    #[test]
    fn a_zero_ttl_or_capacity_keeps_nothing() {
        for cache in [
            VerdictCache::new(Duration::ZERO, 10),
            VerdictCache::new(Duration::from_secs(1), 0),
        ] {
            cache.insert(CacheKey::new("k", &[], None), &principal(None));
            assert!(cache.get(&CacheKey::new("k", &[], None)).is_none());
        }
    }
}
