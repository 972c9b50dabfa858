use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Credits, Environment, IpAllowlist, KeyMetadata, KeyType, RedactedKey, ScopeSet};

/// A key as the store knows it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's id.
    pub id: Uuid,
    /// The organization that owns the key.
    pub organization_id: Uuid,
    /// Its name.
    pub name: String,
    /// The scopes it was granted.
    pub scopes: ScopeSet,
    /// live or test.
    pub environment: Environment,
    /// What may be shown of it.
    pub redacted: RedactedKey,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The first instant at which it no longer works, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// When it was last presented for verification.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<Uuid>,
    /// The key that replaced this one by rotation.
    pub rotated_to: Option<Uuid>,
    /// The organization's key, or a member's.
    pub key_type: KeyType,
    /// For a personal key, its member.
    pub member_id: Option<Uuid>,
    /// Whether this is an operator key (an admin of the whole deployment, e.g. the bootstrap
    /// key): only operator keys create organizations.
    pub operator: bool,
    /// The key's own rate limits; none means its organization's default applies.
    pub rate_limits: crate::RateLimits,
    /// When it was disabled, if it is: refused until enabled again (unlike a revocation).
    pub disabled_at: Option<DateTime<Utc>>,
    /// What services learn of it when they verify it.
    pub metadata: Option<KeyMetadata>,
    /// Where it may be used from; empty means anywhere.
    pub ip_allowlist: IpAllowlist,
    /// Its credits, as last written; `None`: unlimited.
    pub credits: Option<Credits>,
    /// For an OAuth grant (a personal key that only its access tokens present): its client and
    /// person. Grants are managed by the OAuth operations, never as keys.
    pub oauth: Option<crate::OauthContext>,
}

/// A key's lifecycle state at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Neither revoked, expired nor disabled.
    Active,
    /// Past its expiry, not revoked.
    Expired,
    /// Revoked.
    Revoked,
    /// Disabled, neither revoked nor expired: refused until enabled again.
    Disabled,
}

impl KeyState {
    /// The state at `now` of a key revoked or not, disabled or not, expiring at `expires_at`.
    /// Revocation wins over expiry, and expiry over disabling (both are for good, a disabled
    /// key may come back); the expiry instant itself is already expired.
    pub fn at(
        revoked: bool,
        disabled: bool,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> KeyState {
        if revoked {
            KeyState::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else if disabled {
            KeyState::Disabled
        } else {
            KeyState::Active
        }
    }
}

impl KeyRecord {
    /// The state at `now`. Revocation wins over expiry, expiry over disabling.
    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        KeyState::at(
            self.revoked_at.is_some(),
            self.disabled_at.is_some(),
            self.expires_at,
            now,
        )
    }

    /// A scoped key is any key without `admin`: limited to specific operations.
    pub fn is_scoped(&self) -> bool {
        !self.scopes.contains_exactly(crate::Scope::Admin)
    }
}
