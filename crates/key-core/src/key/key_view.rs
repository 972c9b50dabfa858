//! [`KeyView`]: the part of a key record that verification reads.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Environment, KeyControls, KeyRecord, KeyState, KeyType, ScopeSet};

/// What a verification needs to know about a stored key, and no more: the form in which the
/// key cache keeps a key in memory. A full [`KeyRecord`] carries its history (creation,
/// revocation reason, rotation links, last use, redacted form) in about 240 bytes plus two
/// heap strings; a view is under 100 bytes, so a million cached keys fit in a few hundred MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    /// The key's id.
    pub id: Uuid,
    /// The organization that owns the key.
    pub organization_id: Uuid,
    /// For a personal key, its member.
    pub member_id: Option<Uuid>,
    /// Its name. Shared, so that copying a view out of the cache allocates nothing.
    pub name: Arc<str>,
    /// The scopes it was granted (a personal key's effective scopes are worked out apart).
    pub scopes: ScopeSet,
    /// live or test.
    pub environment: Environment,
    /// The organization's key, or a member's.
    pub key_type: KeyType,
    /// Whether this is an operator key.
    pub operator: bool,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Whether it is disabled.
    pub disabled: bool,
    /// The first instant at which it no longer works, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its metadata and IP allowlist; `None` (no allocation) for a key with neither.
    pub controls: Option<Arc<KeyControls>>,
    /// Whether it has credits, so a valid verification spends them in the store. The count
    /// itself is never kept here: only the store's atomic spend reads and changes it.
    pub has_credits: bool,
}

impl KeyView {
    /// For an OAuth grant (an access token's), its client and person.
    pub fn oauth(&self) -> Option<&crate::OauthContext> {
        self.controls.as_ref()?.oauth.as_ref()
    }
}

impl KeyView {
    /// The state at `now`, by the same rule as [`KeyRecord::state`].
    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        KeyState::at(self.revoked, self.disabled, self.expires_at, now)
    }
}

impl From<&KeyRecord> for KeyView {
    fn from(record: &KeyRecord) -> Self {
        KeyView {
            id: record.id,
            organization_id: record.organization_id,
            member_id: record.member_id,
            name: Arc::from(record.name.as_str()),
            scopes: record.scopes,
            environment: record.environment,
            key_type: record.key_type,
            operator: record.operator,
            revoked: record.revoked_at.is_some(),
            disabled: record.disabled_at.is_some(),
            expires_at: record.expires_at,
            controls: KeyControls::of(&record.metadata, &record.ip_allowlist, &record.oauth),
            has_credits: record.credits.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_far_smaller_than_a_record() {
        // The key cache's memory budget (a million keys in ≤ 300 MiB) rests on this.
        assert!(size_of::<KeyView>() <= 96, "{}", size_of::<KeyView>());
        assert!(size_of::<KeyView>() * 2 < size_of::<KeyRecord>());
    }
}
