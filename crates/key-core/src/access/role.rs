//! Organizations' members, their roles, and the scopes each role may hold.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use crate::{DEFAULT_MAX_KEY_AGE, Error, Scope, ScopeSet};

/// A member's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `owner`
    Owner,
    /// `admin`
    Admin,
    /// `member`
    Member,
    /// `viewer`
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The role's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Result<Role, Error> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| Error::InvalidArgument {
                field: "role",
                message: format!("unknown role {name:?}, expected owner, admin, member or viewer"),
            })
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// An organization that has an owner keeps one: a change of the member whose role is `before`
/// to `after` (`None`: removed) is refused (`Conflict`) when it would take away the last of the
/// organization's `owners`, counted in the change's own transaction.
pub fn keeps_an_owner(before: Role, after: Option<Role>, owners: u64) -> Result<(), Error> {
    if before != Role::Owner || after == Some(Role::Owner) || owners > 1 {
        return Ok(());
    }
    let change = if after.is_some() {
        "demoted"
    } else {
        "removed"
    };
    Err(Error::Conflict(format!(
        "the last owner of an organization cannot be {change}: make another member an owner first"
    )))
}

/// The scopes each role may hold, as data. Organizations start from [`DEFAULT_ROLE_SCOPES`]
/// and may override any role.
pub const DEFAULT_ROLE_SCOPES: [(Role, &[Scope]); 4] = [
    (Role::Owner, &Scope::ALL),
    (Role::Admin, &Scope::ALL),
    (
        Role::Member,
        &[
            Scope::Chat,
            Scope::AgentsRead,
            Scope::AgentsWrite,
            Scope::DataRead,
            Scope::AnalyticsRead,
        ],
    ),
    (
        Role::Viewer,
        &[Scope::AgentsRead, Scope::DataRead, Scope::AnalyticsRead],
    ),
];

/// An organization's role → scopes mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleScopes([ScopeSet; 4]);

impl Default for RoleScopes {
    fn default() -> Self {
        let mut scopes = [ScopeSet::EMPTY; 4];
        for (role, granted) in DEFAULT_ROLE_SCOPES {
            scopes[role.index()] = granted.iter().copied().collect();
        }
        RoleScopes(scopes)
    }
}

impl RoleScopes {
    /// The scopes a member with `role` may hold.
    pub fn scopes(&self, role: Role) -> ScopeSet {
        self.0[role.index()]
    }

    /// Replaces one role's scopes.
    pub fn set(&mut self, role: Role, scopes: ScopeSet) {
        self.0[role.index()] = scopes;
    }

    /// Whether `role` differs from its default, so that only overrides need storing.
    pub fn is_default(&self, role: Role) -> bool {
        self.scopes(role) == RoleScopes::default().scopes(role)
    }
}

/// An organization's rules for its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrganizationPolicy {
    /// Keys older than this are reported due for rotation (default 90 days).
    pub max_key_age: TimeDelta,
    /// When set, every new key must expire within this long.
    pub max_key_lifetime: Option<TimeDelta>,
    /// The scopes each role may hold.
    pub role_scopes: RoleScopes,
    /// The rate limits of the organization's keys that have none of their own.
    pub default_rate_limits: crate::RateLimits,
    /// What a report of one of its keys found leaked (GitHub secret scanning) does.
    pub leaked_keys: LeakedKeyPolicy,
}

/// What a leaked-key report (GitHub secret scanning) does to a live key of the organization.
/// Revoking is the default, as GitHub's and Stripe's own programmes do: a key in a public
/// repository is in attackers' hands within minutes, and nobody may be watching the alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LeakedKeyPolicy {
    /// `revoke`: the key is revoked at once; its owner issues a new one.
    #[default]
    Revoke,
    /// `flag`: the key keeps working; the report is audited and alerted only.
    Flag,
}

impl LeakedKeyPolicy {
    /// Every policy.
    pub const ALL: [LeakedKeyPolicy; 2] = [LeakedKeyPolicy::Revoke, LeakedKeyPolicy::Flag];

    /// The stored (and REST) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeakedKeyPolicy::Revoke => "revoke",
            LeakedKeyPolicy::Flag => "flag",
        }
    }

    /// The policy named `name`, if any.
    pub fn parse(name: &str) -> Option<LeakedKeyPolicy> {
        LeakedKeyPolicy::ALL
            .into_iter()
            .find(|policy| policy.as_str() == name)
    }
}

impl Default for OrganizationPolicy {
    fn default() -> Self {
        OrganizationPolicy {
            max_key_age: DEFAULT_MAX_KEY_AGE,
            max_key_lifetime: None,
            role_scopes: RoleScopes::default(),
            default_rate_limits: crate::RateLimits::NONE,
            leaked_keys: LeakedKeyPolicy::Revoke,
        }
    }
}

impl OrganizationPolicy {
    /// Whether `other` has the same ceilings: the maximum key lifetime, the default rate limits
    /// and the scopes of each role, which bound what every key and member may get, and the
    /// leaked-key policy (keeping leaked keys working is an owner's decision). Only the maximum
    /// key age (when keys are reported due for rotation) is no ceiling.
    pub fn same_ceilings(&self, other: &OrganizationPolicy) -> bool {
        OrganizationPolicy {
            max_key_age: other.max_key_age,
            ..*self
        } == *other
    }

    /// The latest expiry a key created or changed at `now` may have, when the organization
    /// sets a maximum lifetime.
    pub fn latest_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.max_key_lifetime.map(|lifetime| now + lifetime)
    }

    /// Checks the expiry a client gives a new key, or a key's new expiry, at `now` (`None`:
    /// never expires). With a maximum lifetime, the key must expire, at `now + lifetime` at
    /// the latest; refused on field `expires_at` otherwise.
    pub fn check_expiry(
        &self,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (Some(lifetime), Some(latest)) = (self.max_key_lifetime, self.latest_expiry(now))
        else {
            return Ok(());
        };
        let rule = format!(
            "this organization requires keys to expire within {} days",
            lifetime.num_days()
        );
        let message = match expires_at {
            None => format!("{rule}: set an expiry"),
            Some(at) if at > latest => format!(
                "{rule}: {} is after the latest allowed expiry {}",
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                latest.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
            Some(_) => return Ok(()),
        };
        Err(Error::InvalidArgument {
            field: "expires_at",
            message,
        })
    }

    /// The expiry a key issued at `now` without a client's say (a rotation's successor) gets:
    /// `expires_at`, brought forward to `now + lifetime` when the organization sets a maximum
    /// lifetime (and set to it when `expires_at` is `None`).
    pub fn cap_expiry(
        &self,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.latest_expiry(now) {
            Some(latest) => Some(expires_at.map_or(latest, |at| at.min(latest))),
            None => expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn with_lifetime(days: i64) -> OrganizationPolicy {
        OrganizationPolicy {
            max_key_lifetime: Some(TimeDelta::days(days)),
            ..OrganizationPolicy::default()
        }
    }

    #[test]
    fn without_a_lifetime_any_expiry_is_allowed_and_kept() {
        let policy = OrganizationPolicy::default();
        assert_eq!(policy.latest_expiry(now()), None);
        assert!(policy.check_expiry(None, now()).is_ok());
        let far = Some(now() + TimeDelta::days(10_000));
        assert!(policy.check_expiry(far, now()).is_ok());
        assert_eq!(policy.cap_expiry(None, now()), None);
        assert_eq!(policy.cap_expiry(far, now()), far);
    }

    #[test]
    fn a_lifetime_requires_an_expiry_within_it() {
        let policy = with_lifetime(7);
        let latest = now() + TimeDelta::days(7);
        assert_eq!(policy.latest_expiry(now()), Some(latest));
        assert!(policy.check_expiry(Some(latest), now()).is_ok());
        assert!(
            policy
                .check_expiry(Some(now() + TimeDelta::hours(1)), now())
                .is_ok()
        );
        let late = Some(latest + TimeDelta::seconds(1));
        for bad in [None, late] {
            let err = policy.check_expiry(bad, now()).unwrap_err();
            let Error::InvalidArgument { field, message } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(*field, "expires_at");
            assert!(
                message.starts_with("this organization requires keys to expire within 7 days"),
                "{message}"
            );
        }
        assert_eq!(
            policy.check_expiry(late, now()).unwrap_err().to_string(),
            "invalid expires_at: this organization requires keys to expire within 7 days: \
             2026-03-08T12:00:01Z is after the latest allowed expiry 2026-03-08T12:00:00Z"
        );
        assert_eq!(
            policy.check_expiry(None, now()).unwrap_err().to_string(),
            "invalid expires_at: this organization requires keys to expire within 7 days: \
             set an expiry"
        );
    }

    #[test]
    fn a_lifetime_caps_a_successors_expiry() {
        let policy = with_lifetime(7);
        let latest = now() + TimeDelta::days(7);
        assert_eq!(policy.cap_expiry(None, now()), Some(latest));
        let later = Some(now() + TimeDelta::days(30));
        assert_eq!(policy.cap_expiry(later, now()), Some(latest));
        let sooner = Some(now() + TimeDelta::days(3));
        assert_eq!(policy.cap_expiry(sooner, now()), sooner);
    }

    #[test]
    fn the_last_owner_stays() {
        assert!(keeps_an_owner(Role::Owner, Some(Role::Admin), 2).is_ok());
        assert!(keeps_an_owner(Role::Owner, None, 2).is_ok());
        assert!(keeps_an_owner(Role::Owner, Some(Role::Owner), 1).is_ok());
        // Organizations without an owner (a new one) change their members freely.
        assert!(keeps_an_owner(Role::Admin, None, 0).is_ok());
        assert!(keeps_an_owner(Role::Member, Some(Role::Viewer), 0).is_ok());
        for (after, change) in [(Some(Role::Viewer), "demoted"), (None, "removed")] {
            let error = keeps_an_owner(Role::Owner, after, 1).unwrap_err();
            assert!(matches!(error, Error::Conflict(_)), "{error:?}");
            assert_eq!(
                error.to_string(),
                format!(
                    "the last owner of an organization cannot be {change}: make another member \
                     an owner first"
                )
            );
        }
    }

    #[test]
    fn every_field_but_the_key_age_is_a_ceiling() {
        let policy = OrganizationPolicy::default();
        let older = OrganizationPolicy {
            max_key_age: TimeDelta::days(30),
            ..policy
        };
        assert!(policy.same_ceilings(&older));
        assert!(!policy.same_ceilings(&with_lifetime(7)));
        let mut limited = policy;
        limited.default_rate_limits = crate::RateLimits::parse("x", "10/minute").unwrap();
        assert!(!policy.same_ceilings(&limited));
        let mut narrowed = policy;
        narrowed.role_scopes.set(Role::Viewer, ScopeSet::EMPTY);
        assert!(!policy.same_ceilings(&narrowed));
    }

    #[test]
    fn the_defaults_match_the_issue() {
        let roles = RoleScopes::default();
        assert!(roles.scopes(Role::Owner).grants(Scope::Admin));
        assert!(roles.scopes(Role::Admin).grants(Scope::Admin));
        assert_eq!(
            roles.scopes(Role::Member).names(),
            vec![
                "chat",
                "agents:read",
                "agents:write",
                "data:read",
                "analytics:read"
            ]
        );
        assert_eq!(
            roles.scopes(Role::Viewer).names(),
            vec!["agents:read", "data:read", "analytics:read"]
        );
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
            assert!(roles.is_default(role));
        }
    }
}
