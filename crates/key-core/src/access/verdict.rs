use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    Error, KeyRecord, KeyState, KeyType, KeyView, RateLimit, Scope, ScopeSet,
    key::expiry::last_valid_day,
};

/// The answer to "may this key do an operation needing these scopes?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Yes.
    Valid,
    /// Unknown or revoked key (malformed keys never get this far).
    Invalid,
    /// The key expired.
    Expired,
    /// The key lacks this scope (the first missing one, in request order).
    InsufficientScope(Scope),
    /// The key is valid but one of its rate limits is exhausted; nothing was counted against
    /// its other limits.
    RateLimited {
        /// The exhausted limit.
        limit: RateLimit,
        /// How long until it allows a request again.
        retry_after: TimeDelta,
        /// Requests left in its window: always 0 when limited.
        remaining: u32,
        /// When its window ends.
        reset: DateTime<Utc>,
    },
    /// The client's address failed too many verifications in a row; it is refused, without a
    /// lookup, until `reset`.
    TooManyFailures {
        /// How long until it may try again.
        retry_after: TimeDelta,
        /// When the cooling period ends.
        reset: DateTime<Utc>,
    },
}

/// Decides the verdict for a looked-up key. `record` is `None` when no key has the presented
/// digest. Revocation is checked first, then expiry, then scopes.
pub fn verify(record: Option<&KeyRecord>, required: &[Scope], now: DateTime<Utc>) -> Verdict {
    decide(
        record.map(|record| (record.state(now), record.scopes)),
        required,
    )
}

/// A key's effective scopes: an organization key's own; a personal key's limited by what its
/// member's current role may hold (`member_limit`), or `None` when the member is gone, which
/// makes the key invalid.
pub fn effective_scopes(record: &KeyRecord, member_limit: Option<ScopeSet>) -> Option<ScopeSet> {
    match record.key_type {
        KeyType::Organization => Some(record.scopes),
        KeyType::Personal => member_limit.map(|limit| record.scopes.limited_to(limit)),
    }
}

/// [`verify`] with the key's effective scopes (see [`effective_scopes`]), on the view the key
/// cache keeps: `effective` `None` means the key's member was removed, which makes the key
/// invalid like a revocation (and before expiry).
pub fn verify_effective(
    record: Option<&KeyView>,
    effective: Option<ScopeSet>,
    required: &[Scope],
    now: DateTime<Utc>,
) -> Verdict {
    decide(
        record.and_then(|record| Some((record.state(now), effective?))),
        required,
    )
}

/// The one rule behind both: no key (or no effective scopes) is invalid; then revoked,
/// expired, the first missing scope in request order, valid.
fn decide(key: Option<(KeyState, ScopeSet)>, required: &[Scope]) -> Verdict {
    let Some((state, scopes)) = key else {
        return Verdict::Invalid;
    };
    match state {
        KeyState::Revoked => Verdict::Invalid,
        KeyState::Expired => Verdict::Expired,
        KeyState::Active => match scopes.first_missing(required) {
            Some(missing) => Verdict::InsufficientScope(missing),
            None => Verdict::Valid,
        },
    }
}

impl Verdict {
    /// Every verdict's name, in the order of [`Verdict::index`].
    pub const NAMES: [&'static str; 6] = [
        "valid",
        "invalid_api_key",
        "expired_api_key",
        "insufficient_scope",
        "rate_limited",
        "too_many_failures",
    ];

    /// The verdict's position in [`Verdict::NAMES`].
    pub const fn index(&self) -> usize {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Expired => 2,
            Verdict::InsufficientScope(_) => 3,
            Verdict::RateLimited { .. } => 4,
            Verdict::TooManyFailures { .. } => 5,
        }
    }

    /// The verdict's name, for metrics and traces: `valid`, or the reason a refusal gives
    /// (`too_many_failures` for the brute-force guard's, whose reason is `rate_limited`).
    pub const fn name(&self) -> &'static str {
        Verdict::NAMES[self.index()]
    }

    /// The verdict as the error a caller reports, or `None` when valid. `expires_at`, the
    /// key's expiry, supplies the date for [`Verdict::Expired`].
    pub fn into_error(self, expires_at: Option<DateTime<Utc>>) -> Option<Error> {
        match self {
            Verdict::Valid => None,
            Verdict::Invalid => Some(Error::InvalidApiKey),
            Verdict::Expired => Some(match expires_at {
                Some(at) => Error::ExpiredApiKey(last_valid_day(at)),
                // An expired verdict always comes with its record; stay safe if not.
                None => Error::InvalidApiKey,
            }),
            Verdict::InsufficientScope(scope) => Some(Error::InsufficientScope(scope)),
            Verdict::RateLimited { limit, .. } => Some(Error::RateLimited(limit)),
            Verdict::TooManyFailures { .. } => Some(Error::TooManyFailures),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use uuid::Uuid;

    use super::*;
    use crate::{Environment, RedactedKey};

    fn record(scopes: &[&str]) -> KeyRecord {
        KeyRecord {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            name: "test".into(),
            scopes: ScopeSet::parse_list("scopes", scopes).unwrap(),
            environment: Environment::Live,
            redacted: RedactedKey {
                environment: Environment::Live,
                last4: "abcd".into(),
            },
            created_at: now() - TimeDelta::days(10),
            expires_at: None,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            rotated_from: None,
            rotated_to: None,
            key_type: crate::KeyType::Organization,
            member_id: None,
            operator: false,
            rate_limits: crate::RateLimits::NONE,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 12, 31, 12, 0, 0).unwrap()
    }

    #[test]
    fn unknown_and_revoked_keys_are_invalid() {
        assert_eq!(verify(None, &[], now()), Verdict::Invalid);
        let mut revoked = record(&["chat"]);
        revoked.revoked_at = Some(now());
        revoked.expires_at = Some(now() - TimeDelta::days(1));
        assert_eq!(verify(Some(&revoked), &[], now()), Verdict::Invalid);
    }

    #[test]
    fn expiry_boundary_is_exclusive() {
        let mut key = record(&["chat"]);
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        key.expires_at = Some(at);
        let just_before = at - TimeDelta::nanoseconds(1);
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], just_before),
            Verdict::Valid
        );
        let verdict = verify(Some(&key), &[Scope::Chat], at);
        assert_eq!(verdict, Verdict::Expired);
        let message = verdict.into_error(key.expires_at).unwrap().to_string();
        assert_eq!(message, "API key expired on 2024-12-31");
    }

    #[test]
    fn the_first_missing_scope_is_named() {
        let key = record(&["chat", "agents:read"]);
        let verdict = verify(
            Some(&key),
            &[Scope::AgentsRead, Scope::AgentsWrite, Scope::DataWrite],
            now(),
        );
        assert_eq!(verdict, Verdict::InsufficientScope(Scope::AgentsWrite));
        assert_eq!(
            verdict.into_error(key.expires_at).unwrap().to_string(),
            "API key lacks required scope: agents:write"
        );
        assert_eq!(
            verify(Some(&record(&["admin"])), &[Scope::DataWrite], now()),
            Verdict::Valid
        );
    }

    #[test]
    fn a_personal_key_is_limited_by_its_member_and_dies_with_it() {
        let mut key = record(&["chat", "data:write"]);
        key.key_type = KeyType::Personal;
        key.member_id = Some(Uuid::from_u128(7));
        let viewer = ScopeSet::parse_list("s", &["agents:read", "data:read"]).unwrap();
        let member = ScopeSet::parse_list("s", &["chat", "data:read"]).unwrap();
        let effective = effective_scopes(&key, Some(member));
        assert_eq!(effective.unwrap().names(), vec!["chat"]);
        assert_eq!(
            verify_effective(
                Some(&KeyView::from(&key)),
                effective,
                &[Scope::DataWrite],
                now()
            ),
            Verdict::InsufficientScope(Scope::DataWrite)
        );
        let demoted = effective_scopes(&key, Some(viewer));
        assert_eq!(
            verify_effective(Some(&KeyView::from(&key)), demoted, &[Scope::Chat], now()),
            Verdict::InsufficientScope(Scope::Chat)
        );
        assert_eq!(
            verify_effective(
                Some(&KeyView::from(&key)),
                effective_scopes(&key, None),
                &[],
                now()
            ),
            Verdict::Invalid
        );
        let org = record(&["chat"]);
        assert_eq!(effective_scopes(&org, None), Some(org.scopes));
    }
}
