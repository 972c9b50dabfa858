//! Organizations' members, their roles, and the scopes each role may hold.

use chrono::TimeDelta;

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
}

impl Default for OrganizationPolicy {
    fn default() -> Self {
        OrganizationPolicy {
            max_key_age: DEFAULT_MAX_KEY_AGE,
            max_key_lifetime: None,
            role_scopes: RoleScopes::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
