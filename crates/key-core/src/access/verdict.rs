use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    Error, IpAllowlist, KeyRecord, KeyState, KeyType, KeyView, RateLimit, Scope, ScopeSet,
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
    /// The key is disabled (it may be enabled again).
    Disabled,
    /// The key has an IP allowlist and the client's address is not on it, or there was no
    /// client address to judge.
    IpNotAllowed,
    /// The key has credits and fewer left than the verification's cost; nothing was spent.
    UsageExceeded,
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

/// Decides the verdict for a looked-up key presented by a client at `client` (if known).
/// `record` is `None` when no key has the presented digest. The order is [`decide`]'s.
pub fn verify(
    record: Option<&KeyRecord>,
    required: &[Scope],
    client: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Verdict {
    decide(
        record.map(|record| (record.state(now), record.scopes, &record.ip_allowlist)),
        required,
        client,
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
    client: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Verdict {
    decide(
        record.and_then(|record| {
            let allowlist = record
                .controls
                .as_ref()
                .map_or(&NO_ALLOWLIST, |controls| &controls.ip_allowlist);
            Some((record.state(now), effective?, allowlist))
        }),
        required,
        client,
    )
}

/// The allowlist of a key without controls (a static: a `const` would be a temporary).
static NO_ALLOWLIST: IpAllowlist = IpAllowlist::EMPTY;

/// The one rule behind both, in this order: no key (or no effective scopes) is invalid; then
/// revoked (invalid), expired, disabled; then a key with an IP allowlist refuses a client
/// outside it, and a verification that names no client at all (it fails closed); then the
/// first missing scope in request order; else valid. (A valid key's rate limits come after,
/// in the verifier.) A state comes before the address, so a disabled key says so wherever it
/// is presented from, and the address before scopes, so a client elsewhere learns nothing of
/// what the key may do.
fn decide(
    key: Option<(KeyState, ScopeSet, &IpAllowlist)>,
    required: &[Scope],
    client: Option<IpAddr>,
) -> Verdict {
    let Some((state, scopes, allowlist)) = key else {
        return Verdict::Invalid;
    };
    match state {
        KeyState::Revoked => Verdict::Invalid,
        KeyState::Expired => Verdict::Expired,
        KeyState::Disabled => Verdict::Disabled,
        KeyState::Active => {
            if !allowlist.is_empty() && !client.is_some_and(|client| allowlist.allows(client)) {
                return Verdict::IpNotAllowed;
            }
            match scopes.first_missing(required) {
                Some(missing) => Verdict::InsufficientScope(missing),
                None => Verdict::Valid,
            }
        }
    }
}

impl Verdict {
    /// Every verdict's name, in the order of [`Verdict::index`].
    pub const NAMES: [&'static str; 9] = [
        "valid",
        "invalid_api_key",
        "expired_api_key",
        "insufficient_scope",
        "rate_limited",
        "too_many_failures",
        "disabled_api_key",
        "ip_not_allowed",
        "usage_exceeded",
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
            Verdict::Disabled => 6,
            Verdict::IpNotAllowed => 7,
            Verdict::UsageExceeded => 8,
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
            Verdict::Disabled => Some(Error::DisabledApiKey),
            Verdict::IpNotAllowed => Some(Error::IpNotAllowed),
            Verdict::UsageExceeded => Some(Error::UsageExceeded),
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
            disabled_at: None,
            metadata: None,
            ip_allowlist: IpAllowlist::EMPTY,
            credits: None,
            oauth: None,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 12, 31, 12, 0, 0).unwrap()
    }

    #[test]
    fn unknown_and_revoked_keys_are_invalid() {
        assert_eq!(verify(None, &[], None, now()), Verdict::Invalid);
        let mut revoked = record(&["chat"]);
        revoked.revoked_at = Some(now());
        revoked.expires_at = Some(now() - TimeDelta::days(1));
        assert_eq!(verify(Some(&revoked), &[], None, now()), Verdict::Invalid);
    }

    #[test]
    fn expiry_boundary_is_exclusive() {
        let mut key = record(&["chat"]);
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        key.expires_at = Some(at);
        let just_before = at - TimeDelta::nanoseconds(1);
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], None, just_before),
            Verdict::Valid
        );
        let verdict = verify(Some(&key), &[Scope::Chat], None, at);
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
            None,
            now(),
        );
        assert_eq!(verdict, Verdict::InsufficientScope(Scope::AgentsWrite));
        assert_eq!(
            verdict.into_error(key.expires_at).unwrap().to_string(),
            "API key lacks required scope: agents:write"
        );
        assert_eq!(
            verify(Some(&record(&["admin"])), &[Scope::DataWrite], None, now()),
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
                None,
                now()
            ),
            Verdict::InsufficientScope(Scope::DataWrite)
        );
        let demoted = effective_scopes(&key, Some(viewer));
        assert_eq!(
            verify_effective(
                Some(&KeyView::from(&key)),
                demoted,
                &[Scope::Chat],
                None,
                now()
            ),
            Verdict::InsufficientScope(Scope::Chat)
        );
        assert_eq!(
            verify_effective(
                Some(&KeyView::from(&key)),
                effective_scopes(&key, None),
                &[],
                None,
                now()
            ),
            Verdict::Invalid
        );
        let org = record(&["chat"]);
        assert_eq!(effective_scopes(&org, None), Some(org.scopes));
    }

    #[test]
    fn the_order_is_state_then_address_then_scope() {
        let client = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let mut key = record(&["chat"]);
        key.ip_allowlist = IpAllowlist::parse_list("ip", &["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], client("10.1.2.3"), now()),
            Verdict::Valid
        );
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], client("2001:db8::7"), now()),
            Verdict::Valid
        );
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], client("192.0.2.1"), now()),
            Verdict::IpNotAllowed
        );
        // Fails closed: no address to judge is a refusal.
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], None, now()),
            Verdict::IpNotAllowed
        );
        // The address before the scopes.
        assert_eq!(
            verify(Some(&key), &[Scope::Admin], client("192.0.2.1"), now()),
            Verdict::IpNotAllowed
        );
        // The state before the address.
        key.disabled_at = Some(now());
        assert_eq!(
            verify(Some(&key), &[Scope::Chat], client("192.0.2.1"), now()),
            Verdict::Disabled
        );
        assert_eq!(
            Verdict::Disabled.into_error(None).unwrap().to_string(),
            "API key is disabled"
        );
        key.expires_at = Some(now());
        assert_eq!(verify(Some(&key), &[], None, now()), Verdict::Expired);
        key.revoked_at = Some(now());
        assert_eq!(verify(Some(&key), &[], None, now()), Verdict::Invalid);
        let view = KeyView::from(&record(&["chat"]));
        assert!(view.controls.is_none());
    }
}
