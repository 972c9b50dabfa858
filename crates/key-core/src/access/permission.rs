//! Who may do what: one table, read by every admin RPC.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, KeyView, OrganizationPolicy, RateLimits, Role, Scope, ScopeSet};

/// The kind of a key: the organization's, or one member's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Belongs to the organization; shared across a team. Creating one needs `admin`; one with
    /// `admin` acts as an owner ([`acts_as_owner`]).
    Organization,
    /// Belongs to one member; its scopes are limited, at every verification, by the member's
    /// current role.
    Personal,
}

impl KeyType {
    /// The type's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyType::Organization => "organization",
            KeyType::Personal => "personal",
        }
    }

    /// Parses a stored type name.
    pub fn parse(name: &str) -> Option<KeyType> {
        [KeyType::Organization, KeyType::Personal]
            .into_iter()
            .find(|key_type| key_type.as_str() == name)
    }
}

/// The verified caller of an admin RPC, with its effective scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's key; for a person signed in to the console without one (`keyless`), the
    /// id of their session, which names them in logs.
    pub key_id: Uuid,
    /// The caller's organization.
    pub organization_id: Uuid,
    /// The caller's key type.
    pub key_type: KeyType,
    /// For a personal key, its member.
    pub member_id: Option<Uuid>,
    /// What the key may do now (a personal key's scopes limited by its member's role).
    pub scopes: ScopeSet,
    /// Whether the key is an operator key (an admin of the whole deployment).
    pub operator: bool,
    /// For a personal key, its member's role when the call was authenticated (`None` for an
    /// organization key, or a member since removed).
    pub role: Option<Role>,
    /// The console session the call came through (`None`: a key presented directly).
    pub session_id: Option<Uuid>,
    /// A person signed in to the console without a key (SSO, a sign-in link): their member
    /// acts, with the scopes of their role, like a personal key holding all of them.
    pub keyless: bool,
}

/// Everything an admin RPC can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create an organization.
    CreateOrganization,
    /// Read the caller's organization and its policy.
    ReadOrganization,
    /// Change the organization's policy (key age, key lifetime, role scopes, default rate
    /// limits); changing its ceilings also needs [`Action::ChangePolicyCeilings`].
    UpdateOrganizationPolicy,
    /// Add, change or remove members.
    ManageMembers,
    /// List members.
    ReadMembers,
    /// Create an organization key.
    CreateOrganizationKey,
    /// Create a personal key for a member.
    CreatePersonalKey,
    /// Get or list keys.
    ReadKeys,
    /// Rotate, update or revoke a key.
    ManageKeys,
    /// Read usage.
    ReadUsage,
    /// Read the audit log.
    ReadAuditLog,
    /// Read alert rules and alert events: of the caller's own personal keys, or with
    /// `analytics:read` of any key and of the organization.
    ReadAlerts,
    /// Set or test alert rules: a member's own personal key's override, or with `admin` any
    /// key's and the organization's.
    ManageAlerts,
    /// Create, list, delete webhook endpoints, rotate their secrets, read their deliveries.
    ManageWebhooks,
    /// Add a member as owner, promote a member to owner, demote or remove an owner.
    ManageOwners,
    /// Change the policy's ceilings: the maximum key lifetime, the default rate limits and the
    /// scopes of each role.
    ChangePolicyCeilings,
    /// Create, rotate, update or revoke a key that acts as an owner (see [`acts_as_owner`]).
    ManageOwnerKeys,
    /// Register, list and delete OAuth clients.
    ManageOauthClients,
    /// List or revoke authorized applications (OAuth grants): one's own, or with `admin` any
    /// member's.
    ManageOauthGrants,
}

/// What an action requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// An operator key.
    Operator,
    /// This scope (`admin` grants every scope).
    Scope(Scope),
    /// The caller's own member's keys, or this scope for anybody's.
    OwnMemberOr(Scope),
    /// A caller that acts as an owner (see [`Caller::is_owner`]).
    Owner,
}

/// The permission table. The README shows the same table; `tests/it/permissions.rs` tests
/// every row, allowed and denied.
pub const PERMISSIONS: [(Action, Requirement); 19] = [
    (Action::CreateOrganization, Requirement::Operator),
    (Action::ReadOrganization, Requirement::Scope(Scope::Admin)),
    (
        Action::UpdateOrganizationPolicy,
        Requirement::Scope(Scope::Admin),
    ),
    (Action::ManageMembers, Requirement::Scope(Scope::Admin)),
    (Action::ReadMembers, Requirement::Scope(Scope::Admin)),
    (
        Action::CreateOrganizationKey,
        Requirement::Scope(Scope::Admin),
    ),
    (
        Action::CreatePersonalKey,
        Requirement::OwnMemberOr(Scope::Admin),
    ),
    (Action::ReadKeys, Requirement::OwnMemberOr(Scope::Admin)),
    (Action::ManageKeys, Requirement::OwnMemberOr(Scope::Admin)),
    (
        Action::ReadUsage,
        Requirement::OwnMemberOr(Scope::AnalyticsRead),
    ),
    (Action::ReadAuditLog, Requirement::Scope(Scope::Admin)),
    (
        Action::ReadAlerts,
        Requirement::OwnMemberOr(Scope::AnalyticsRead),
    ),
    (Action::ManageAlerts, Requirement::OwnMemberOr(Scope::Admin)),
    (Action::ManageWebhooks, Requirement::Scope(Scope::Admin)),
    (Action::ManageOwners, Requirement::Owner),
    (Action::ChangePolicyCeilings, Requirement::Owner),
    (Action::ManageOwnerKeys, Requirement::Owner),
    (Action::ManageOauthClients, Requirement::Scope(Scope::Admin)),
    (
        Action::ManageOauthGrants,
        Requirement::OwnMemberOr(Scope::Admin),
    ),
];

impl Action {
    /// What this action requires, from [`PERMISSIONS`].
    pub fn requirement(self) -> Requirement {
        PERMISSIONS
            .into_iter()
            .find(|(action, _)| *action == self)
            .map_or(Requirement::Operator, |(_, requirement)| requirement)
    }

    /// Why a caller that holds `admin` but is no owner is refused this action.
    fn owners_only(self) -> &'static str {
        match self {
            Action::ManageOwners => "only an owner may add, promote, demote or remove an owner",
            Action::ChangePolicyCeilings => {
                "only an owner may change the maximum key lifetime, the default rate limits or \
                 the role scopes"
            }
            Action::ManageOwnerKeys => {
                "only an owner may create, rotate, update or revoke a key that acts as an owner"
            }
            _ => "only an owner may do this",
        }
    }
}

/// Whether a key acts as an owner of its organization: it holds `admin` and is either an
/// organization key (an operator key, an organization's first admin key: the organization's
/// own, answering to no member's role) or the personal key of a member whose role is `owner`.
/// `member_role` is the role of a personal key's member (`None` if there is none).
///
/// A member with role `admin` holds `admin` too, so whatever would hand them such a key (an
/// organization key with `admin`, a key of an owner's) is an owner's to do: otherwise an admin
/// would become an owner by creating or rotating a key.
pub fn acts_as_owner(key_type: KeyType, scopes: ScopeSet, member_role: Option<Role>) -> bool {
    scopes.grants(Scope::Admin)
        && match key_type {
            KeyType::Organization => true,
            KeyType::Personal => member_role == Some(Role::Owner),
        }
}

impl Caller {
    /// The caller holding key `record`, with `scopes` its effective scopes (a personal key's
    /// limited by its member's role).
    /// `role` is a personal key's member's current role.
    pub fn new(record: &KeyView, scopes: ScopeSet, role: Option<Role>) -> Caller {
        Caller {
            key_id: record.id,
            organization_id: record.organization_id,
            key_type: record.key_type,
            member_id: record.member_id,
            scopes,
            operator: record.operator,
            role,
            session_id: None,
            keyless: false,
        }
    }

    /// A person signed in without a key, through session `session_id`: member `member_id`
    /// with `role`, whose role may hold `scopes` under the organization's policy.
    pub fn member(
        session_id: Uuid,
        organization_id: Uuid,
        member_id: Uuid,
        role: Role,
        scopes: ScopeSet,
    ) -> Caller {
        Caller {
            key_id: session_id,
            organization_id,
            key_type: KeyType::Personal,
            member_id: Some(member_id),
            scopes,
            operator: false,
            role: Some(role),
            session_id: Some(session_id),
            keyless: true,
        }
    }

    /// Whether the caller acts as an owner of its organization ([`acts_as_owner`], on its
    /// effective scopes).
    pub fn is_owner(&self) -> bool {
        acts_as_owner(self.key_type, self.scopes, self.role)
    }

    /// Whether the caller may perform `action` on something belonging to `owner` (a member,
    /// for personal keys; `None` for the organization's things). Everything happens inside the
    /// caller's organization: handlers never look outside it.
    pub fn authorize(&self, action: Action, owner: Option<Uuid>) -> Result<(), Error> {
        match action.requirement() {
            // An operator key's scopes matter too: one narrowed to `chat` is no operator.
            Requirement::Operator if self.operator => self.require(Scope::Admin),
            Requirement::Operator => Err(Error::Forbidden(
                "this operation needs an operator key".to_owned(),
            )),
            Requirement::Scope(scope) => self.require(scope),
            Requirement::OwnMemberOr(scope) => {
                if owner.is_some() && owner == self.member_id {
                    Ok(())
                } else {
                    self.require(scope)
                }
            }
            Requirement::Owner => {
                self.require(Scope::Admin)?;
                if self.is_owner() {
                    Ok(())
                } else {
                    Err(Error::Forbidden(action.owners_only().to_owned()))
                }
            }
        }
    }

    /// Owners are an owner's business: adding a member as owner, promoting one to owner,
    /// demoting or removing one. `before` is the member's role before the change (`None`: a new
    /// member), `after` the role after it (`None`: removed).
    pub fn may_change_role(&self, before: Option<Role>, after: Option<Role>) -> Result<(), Error> {
        if before == Some(Role::Owner) || after == Some(Role::Owner) {
            self.authorize(Action::ManageOwners, None)
        } else {
            Ok(())
        }
    }

    /// The policy's ceilings are an owner's (`OrganizationPolicy::same_ceilings`): an admin may
    /// replace `current` with `new` only when they keep them as they are.
    pub fn may_set_policy(
        &self,
        current: &OrganizationPolicy,
        new: &OrganizationPolicy,
    ) -> Result<(), Error> {
        if current.same_ceilings(new) {
            Ok(())
        } else {
            self.authorize(Action::ChangePolicyCeilings, None)
        }
    }

    /// Only an owner may create, rotate, update or revoke a key that acts as an owner
    /// ([`acts_as_owner`]; for an update, before or after it).
    pub fn may_manage_owner_key(&self, acts_as_owner: bool) -> Result<(), Error> {
        if acts_as_owner {
            self.authorize(Action::ManageOwnerKeys, None)
        } else {
            Ok(())
        }
    }

    /// Whether the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Error> {
        if self.scopes.grants(scope) {
            Ok(())
        } else {
            Err(Error::InsufficientScope(scope))
        }
    }

    /// Only an operator key may rotate, update or revoke an operator key (`target_operator`):
    /// otherwise any admin of the bootstrap organization could rotate the operator key and
    /// receive a working one.
    pub fn may_manage(&self, target_operator: bool) -> Result<(), Error> {
        if target_operator && !self.operator {
            return Err(Error::Forbidden(
                "only an operator key may change an operator key".to_owned(),
            ));
        }
        Ok(())
    }

    /// Without `admin`, a caller may only shorten a key's life: a later expiry, none at all, or
    /// reviving an expired key (all "extending") needs `admin`. `current` and `new` are the
    /// key's expiry before and after.
    pub fn may_set_expiry(
        &self,
        current: Option<DateTime<Utc>>,
        new: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        let extends = match (current, new) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some(current), Some(new)) => new > current,
        };
        if extends && !self.scopes.grants(Scope::Admin) {
            return Err(Error::Forbidden(
                "extending a key's expiry needs admin".to_owned(),
            ));
        }
        Ok(())
    }

    /// Without `admin`, a caller may only tighten a key's rate limits: the new effective limits
    /// (its own, or the organization's default when it has none) must be within the current
    /// ones, so the organization's default is a ceiling for members.
    pub fn may_set_limits(&self, current: RateLimits, new: RateLimits) -> Result<(), Error> {
        if !new.within(&current) && !self.scopes.grants(Scope::Admin) {
            return Err(Error::Forbidden(
                "raising a key's rate limits needs admin".to_owned(),
            ));
        }
        Ok(())
    }

    /// Never escalate: the caller may grant only scopes it holds itself.
    pub fn may_grant(&self, scopes: ScopeSet) -> Result<(), Error> {
        match self.scopes.first_uncovered(scopes) {
            None => Ok(()),
            Some(scope) => Err(Error::InsufficientScope(scope)),
        }
    }
}

/// A personal key's scopes must be within what its member's role may hold (`allowed`, from the
/// organization's policy): at creation and at every change of its scopes.
pub fn within_role(role: Role, allowed: ScopeSet, scopes: ScopeSet) -> Result<(), Error> {
    match allowed.first_uncovered(scopes) {
        None => Ok(()),
        Some(scope) => Err(Error::Forbidden(format!(
            "scope {scope} is outside the member's role {}",
            role.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scopes: &[&str], member: Option<Uuid>) -> Caller {
        Caller {
            key_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            key_type: if member.is_some() {
                KeyType::Personal
            } else {
                KeyType::Organization
            },
            member_id: member,
            scopes: ScopeSet::parse_list("scopes", scopes).unwrap(),
            operator: false,
            role: member.map(|_| Role::Member),
            session_id: None,
            keyless: false,
        }
    }

    #[test]
    fn operator_keys_are_changed_by_operator_keys_only_and_need_admin_to_operate() {
        let admin = caller(&["admin"], None);
        assert!(admin.may_manage(false).is_ok());
        assert!(matches!(admin.may_manage(true), Err(Error::Forbidden(_))));
        let operator = Caller {
            operator: true,
            ..admin.clone()
        };
        assert!(operator.may_manage(true).is_ok());
        assert!(operator.authorize(Action::CreateOrganization, None).is_ok());
        let narrowed = Caller {
            operator: true,
            ..caller(&["chat"], None)
        };
        assert!(matches!(
            narrowed.authorize(Action::CreateOrganization, None),
            Err(Error::InsufficientScope(Scope::Admin))
        ));
    }

    #[test]
    fn without_admin_a_key_only_tightens() {
        use chrono::TimeZone;
        let at = |day| Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap();
        let member = caller(&["chat"], Some(Uuid::from_u128(1)));
        assert!(member.may_set_expiry(Some(at(10)), Some(at(5))).is_ok());
        assert!(member.may_set_expiry(None, Some(at(5))).is_ok());
        assert!(member.may_set_expiry(Some(at(10)), Some(at(11))).is_err());
        assert!(member.may_set_expiry(Some(at(10)), None).is_err());
        let limits = |text| RateLimits::parse("x", text).unwrap();
        assert!(
            member
                .may_set_limits(limits("10/minute"), limits("5/minute"))
                .is_ok()
        );
        assert!(
            member
                .may_set_limits(limits("10/minute"), limits("5/minute 100/hour"))
                .is_ok()
        );
        assert!(
            member
                .may_set_limits(limits("10/minute"), limits("11/minute"))
                .is_err()
        );
        assert!(
            member
                .may_set_limits(limits("10/minute"), RateLimits::NONE)
                .is_err()
        );
        assert!(
            member
                .may_set_limits(RateLimits::NONE, RateLimits::NONE)
                .is_ok()
        );
        let admin = caller(&["admin"], None);
        assert!(admin.may_set_expiry(Some(at(10)), None).is_ok());
        assert!(
            admin
                .may_set_limits(limits("10/minute"), RateLimits::NONE)
                .is_ok()
        );
    }

    #[test]
    fn every_action_has_exactly_one_row() {
        for (action, _) in PERMISSIONS {
            assert_eq!(PERMISSIONS.iter().filter(|(a, _)| *a == action).count(), 1);
        }
    }

    #[test]
    fn own_member_keys_need_no_admin() {
        let me = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let personal = caller(&["chat"], Some(me));
        assert!(personal.authorize(Action::ManageKeys, Some(me)).is_ok());
        assert!(matches!(
            personal.authorize(Action::ManageKeys, Some(other)),
            Err(Error::InsufficientScope(Scope::Admin))
        ));
        assert!(personal.authorize(Action::ManageKeys, None).is_err());
        assert!(
            caller(&["admin"], None)
                .authorize(Action::ManageKeys, Some(other))
                .is_ok()
        );
    }

    #[test]
    fn only_operators_create_organizations() {
        let mut admin = caller(&["admin"], None);
        assert!(matches!(
            admin.authorize(Action::CreateOrganization, None),
            Err(Error::Forbidden(_))
        ));
        admin.operator = true;
        assert!(admin.authorize(Action::CreateOrganization, None).is_ok());
    }

    #[test]
    fn owners_are_organization_keys_and_owners_keys_holding_admin() {
        let member = Some(Uuid::from_u128(1));
        let with_role = |scopes: &[&str], role| Caller {
            role: Some(role),
            ..caller(scopes, member)
        };
        let organization_admin = caller(&["admin"], None);
        let owner = with_role(&["admin"], Role::Owner);
        let admin = with_role(&["admin"], Role::Admin);
        let narrowed_owner = with_role(&["chat"], Role::Owner);
        assert!(organization_admin.is_owner());
        assert!(owner.is_owner());
        assert!(!admin.is_owner());
        assert!(!narrowed_owner.is_owner());
        assert!(!caller(&["chat"], None).is_owner());

        for owner in [&organization_admin, &owner] {
            assert!(owner.may_change_role(None, Some(Role::Owner)).is_ok());
            assert!(owner.may_change_role(Some(Role::Owner), None).is_ok());
            assert!(owner.may_manage_owner_key(true).is_ok());
        }
        let refused = |result: Result<(), Error>, message: &str| match result {
            Err(Error::Forbidden(said)) => assert_eq!(said, message),
            other => panic!("{other:?}"),
        };
        let owners = "only an owner may add, promote, demote or remove an owner";
        refused(admin.may_change_role(None, Some(Role::Owner)), owners);
        refused(
            admin.may_change_role(Some(Role::Member), Some(Role::Owner)),
            owners,
        );
        refused(
            admin.may_change_role(Some(Role::Owner), Some(Role::Admin)),
            owners,
        );
        refused(admin.may_change_role(Some(Role::Owner), None), owners);
        refused(
            admin.may_manage_owner_key(true),
            "only an owner may create, rotate, update or revoke a key that acts as an owner",
        );
        // Everything else about members and keys stays an admin's.
        assert!(admin.may_change_role(None, Some(Role::Admin)).is_ok());
        assert!(
            admin
                .may_change_role(Some(Role::Admin), Some(Role::Viewer))
                .is_ok()
        );
        assert!(admin.may_change_role(Some(Role::Member), None).is_ok());
        assert!(admin.may_manage_owner_key(false).is_ok());
        // Without `admin`, the missing scope is the answer, owner or not.
        assert!(matches!(
            narrowed_owner.may_change_role(None, Some(Role::Owner)),
            Err(Error::InsufficientScope(Scope::Admin))
        ));
    }

    #[test]
    fn an_admin_keeps_the_ceilings_of_the_policy() {
        let admin = Caller {
            role: Some(Role::Admin),
            ..caller(&["admin"], Some(Uuid::from_u128(1)))
        };
        let current = OrganizationPolicy::default();
        let older = OrganizationPolicy {
            max_key_age: chrono::TimeDelta::days(7),
            ..current
        };
        assert!(admin.may_set_policy(&current, &older).is_ok());
        let shorter = OrganizationPolicy {
            max_key_lifetime: Some(chrono::TimeDelta::days(7)),
            ..current
        };
        assert!(matches!(
            admin.may_set_policy(&current, &shorter),
            Err(Error::Forbidden(_))
        ));
        assert!(
            caller(&["admin"], None)
                .may_set_policy(&current, &shorter)
                .is_ok()
        );
    }

    #[test]
    fn a_key_acts_as_an_owner_by_its_type_scopes_and_members_role() {
        let admin: ScopeSet = [Scope::Admin].into_iter().collect();
        let chat: ScopeSet = [Scope::Chat].into_iter().collect();
        assert!(acts_as_owner(KeyType::Organization, admin, None));
        assert!(!acts_as_owner(KeyType::Organization, chat, None));
        assert!(acts_as_owner(KeyType::Personal, admin, Some(Role::Owner)));
        assert!(!acts_as_owner(KeyType::Personal, chat, Some(Role::Owner)));
        for role in [None, Some(Role::Admin), Some(Role::Member)] {
            assert!(!acts_as_owner(KeyType::Personal, admin, role));
        }
    }

    #[test]
    fn callers_grant_only_what_they_hold() {
        let member = caller(&["chat", "agents:read"], Some(Uuid::nil()));
        assert!(
            member
                .may_grant(ScopeSet::parse_list("s", &["chat"]).unwrap())
                .is_ok()
        );
        assert!(matches!(
            member.may_grant(ScopeSet::parse_list("s", &["chat", "data:write"]).unwrap()),
            Err(Error::InsufficientScope(Scope::DataWrite))
        ));
    }
}
