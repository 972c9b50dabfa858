//! Organizations and members: create an organization (with its first admin key), read it,
//! replace its policy, and add, change, remove and list its members.
//!
//! Every operation first asks the permission table; a refusal is audited there. Every change
//! appends its audit event in the change's own transaction. Nobody grants more than it holds:
//! role scopes in a policy, and the role of a member added, changed or removed, must be within
//! the requester's own scopes. Owners, and the policy's ceilings, are an owner's business
//! (`Caller::may_change_role`, `Caller::may_set_policy`); an organization that has an owner
//! keeps one (`keeps_an_owner`, judged in the change's transaction on a count taken there).

use std::sync::Arc;

use key_core::{
    Action, ApiKey, AuditAction, Clock, Environment, Error, KeyName, KeyType, LeakedKeyPolicy,
    OrganizationName, OrganizationPolicy, RateLimits, Role, RoleScopes, Scope, ScopeSet, UserId,
    keeps_an_owner, max_key_age_from_days, max_key_lifetime_from_days,
};
use key_store::{Member, Organization, Store};
use uuid::Uuid;

use super::{
    issue::{KeyIssuer, NewKeyRequest},
    keys::KeyDetails,
    paging::{Listed, Page, PageRequest},
};
use crate::{Requester, access::Access, verify::KeyCache};

/// The name of a new organization's first admin key.
const FIRST_ADMIN_KEY_NAME: &str = "Organization admin key";

/// A new organization and its first admin key, whose plaintext is shown once.
#[derive(Debug)]
pub struct CreatedOrganization {
    /// The organization, with the default policy.
    pub organization: Organization,
    /// Its first admin key (an organization key with `admin`, not an operator key).
    pub admin_key: KeyDetails,
    /// That key's plaintext; kept nowhere.
    pub plaintext: ApiKey,
}

/// A policy as UpdateOrganizationPolicy gives it, with its proto enums decoded.
#[derive(Debug, Clone, Default)]
pub struct PolicyUpdate {
    /// Days after which keys are due for rotation; 0 means the default (90).
    pub max_key_age_days: i32,
    /// Days every new key must expire within; 0 means no maximum.
    pub max_key_lifetime_days: i32,
    /// Scope names per role; roles not listed get their defaults back.
    pub role_scopes: Vec<(Role, Vec<String>)>,
    /// The limits of keys without their own.
    pub default_rate_limits: RateLimits,
    /// What a leaked-key report does to the organization's keys.
    pub leaked_keys: LeakedKeyPolicy,
}

/// The organization and member operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Organizations {
    store: Store,
    clock: Arc<dyn Clock>,
    access: Access,
    issuer: KeyIssuer,
    key_cache: Arc<KeyCache>,
}

impl Organizations {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        access: Access,
        issuer: KeyIssuer,
        key_cache: Arc<KeyCache>,
    ) -> Organizations {
        Organizations {
            store,
            clock,
            access,
            issuer,
            key_cache,
        }
    }

    /// CreateOrganization (operator keys only): the new organization gets the default policy
    /// and one organization key with `admin`. Both organizations' logs record the creation.
    pub async fn create(&self, by: &Requester, name: &str) -> Result<CreatedOrganization, Error> {
        let caller = &by.caller;
        self.access
            .authorize(by, Action::CreateOrganization, None)
            .await?;
        let name = OrganizationName::parse(name)?;
        let now = self.clock.now();
        let mut issued = None;
        let created = self
            .store
            .create_organization(name.as_str(), now, |organization_id| {
                let first_key = NewKeyRequest {
                    name: KeyName::parse(FIRST_ADMIN_KEY_NAME)?,
                    scopes: [Scope::Admin].into_iter().collect(),
                    expires_at: None,
                    environment: Environment::Live,
                    key_type: KeyType::Organization,
                    member_id: None,
                    operator: false,
                    rate_limits: RateLimits::NONE,
                    metadata: None,
                    ip_allowlist: key_core::IpAllowlist::EMPTY,
                    credits: None,
                };
                let (new_key, key) =
                    self.issuer
                        .draw(organization_id, first_key, Some(caller.key_id))?;
                let in_new = |action, target: Uuid| {
                    let mut event = by.event(action, target, now);
                    event.organization_id = Some(organization_id);
                    event
                };
                let events = vec![
                    // The new organization's log starts with its creation and its first key…
                    in_new(AuditAction::OrganizationCreate, organization_id),
                    in_new(AuditAction::KeyCreate, new_key.id),
                    // …and the operator's own organization keeps what its key did.
                    by.event(AuditAction::OrganizationCreate, organization_id, now),
                ];
                issued = Some(key);
                Ok::<_, Error>((new_key, events))
            })
            .await?;
        let Some((organization, record)) = created else {
            return Err(Error::Conflict(format!(
                "an organization named {:?} already exists",
                name.as_str()
            )));
        };
        let plaintext = issued.ok_or_else(|| {
            Error::Internal("an organization was created without its first key".to_owned())
        })?;
        self.key_cache.key_created(&self.issuer.digest(&plaintext));
        tracing::info!(
            organization_id = %organization.id,
            key_id = %record.id,
            created_by = %caller.key_id,
            "organization created"
        );
        Ok(CreatedOrganization {
            // The key belongs to the new organization, so its (default) policy applies.
            admin_key: KeyDetails::at(record, now, &organization.policy),
            organization,
            plaintext,
        })
    }

    /// GetOrganization: the requester's organization and its policy.
    pub async fn get(&self, by: &Requester) -> Result<Organization, Error> {
        self.access
            .authorize(by, Action::ReadOrganization, None)
            .await?;
        self.own(by).await
    }

    /// UpdateOrganizationPolicy: replaces the requester's organization's policy (`None`: the
    /// request named none). Roles the update does not list get their default scopes back; a
    /// role may be given only scopes the requester holds itself. The ceilings (maximum key
    /// lifetime, default rate limits, role scopes) are an owner's to change: an admin's update
    /// must keep them as they are in force when it is written.
    pub async fn update_policy(
        &self,
        by: &Requester,
        update: Option<PolicyUpdate>,
    ) -> Result<Organization, Error> {
        let caller = &by.caller;
        self.access
            .authorize(by, Action::UpdateOrganizationPolicy, None)
            .await?;
        let update = update.ok_or_else(|| Error::InvalidArgument {
            field: "policy",
            message: "a policy is required".to_owned(),
        })?;
        let (policy, overridden) = policy_from_update(update)?;
        // Never escalate: a role may be given only scopes the caller holds itself.
        for scopes in overridden {
            self.access.check(by, caller.may_grant(scopes)).await?;
        }
        let now = self.clock.now();
        // A change that changes nothing is still recorded, but drops no cached key.
        let mut unchanged = false;
        let updated = self
            .store
            .update_organization_policy(caller.organization_id, &policy, |current| {
                caller.may_set_policy(current, &policy)?;
                unchanged = *current == policy;
                Ok::<_, Error>(by.event(
                    AuditAction::OrganizationPolicyUpdate,
                    caller.organization_id,
                    now,
                ))
            })
            .await;
        let organization = self
            .judged(by, updated)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        // Role scopes and default rate limits feed the verdicts of the organization's keys.
        if !unchanged {
            self.key_cache.forget_organization(organization.id);
        }
        tracing::info!(
            organization_id = %organization.id,
            updated_by = %caller.key_id,
            "organization policy updated"
        );
        Ok(organization)
    }

    /// AddMember: a platform user joins with a role whose scopes the requester holds.
    pub async fn add_member(
        &self,
        by: &Requester,
        user_id: &str,
        role: Role,
    ) -> Result<Member, Error> {
        let caller = &by.caller;
        self.access
            .authorize(by, Action::ManageMembers, None)
            .await?;
        let user_id = UserId::parse(user_id)?;
        self.access
            .check(by, caller.may_change_role(None, Some(role)))
            .await?;
        let policy = self.own(by).await?.policy;
        self.access
            .check(by, caller.may_grant(policy.role_scopes.scopes(role)))
            .await?;
        let now = self.clock.now();
        let member = Member {
            id: Uuid::now_v7(),
            organization_id: caller.organization_id,
            user_id: user_id.as_str().to_owned(),
            role,
            created_at: now,
        };
        let audit = by.event(AuditAction::MemberAdd, member.id, now);
        let member = self
            .store
            .add_member(&member, &audit)
            .await?
            .ok_or_else(|| {
                Error::Conflict(format!("user {:?} is already a member", user_id.as_str()))
            })?;
        tracing::info!(member_id = %member.id, role = member.role.as_str(), added_by = %caller.key_id, "member added");
        Ok(member)
    }

    /// UpdateMember: changes a member's role. Both the member's current role and the new one
    /// must be within the requester's scopes: nobody promotes beyond, or demotes from above,
    /// itself. Promoting to, or demoting from, `owner` is an owner's; the last owner is not
    /// demoted (`Conflict`).
    pub async fn update_member(
        &self,
        by: &Requester,
        id: Uuid,
        role: Role,
    ) -> Result<Member, Error> {
        let caller = &by.caller;
        self.access
            .authorize(by, Action::ManageMembers, None)
            .await?;
        let policy = self.own(by).await?.policy;
        let now = self.clock.now();
        let mut unchanged = false;
        let updated = self
            .store
            .update_member(caller.organization_id, id, role, |current, owners| {
                caller.may_change_role(Some(current.role), Some(role))?;
                caller.may_grant(policy.role_scopes.scopes(current.role))?;
                caller.may_grant(policy.role_scopes.scopes(role))?;
                keeps_an_owner(current.role, Some(role), owners)?;
                unchanged = current.role == role;
                Ok::<_, Error>(by.event(AuditAction::MemberUpdate, current.id, now))
            })
            .await;
        let member = self
            .judged(by, updated)
            .await?
            .ok_or(Error::NotFound("member"))?;
        // The member's personal keys are limited by the new role from their next verification.
        // The same role again is recorded, but drops no cached key.
        if !unchanged {
            self.key_cache.forget_member(member.id);
        }
        tracing::info!(member_id = %member.id, role = member.role.as_str(), updated_by = %caller.key_id, "member updated");
        Ok(member)
    }

    /// RemoveMember: removes a member whose role is within the requester's scopes (an owner:
    /// only by an owner, and never the last one). Their personal keys stay stored, and fail
    /// verification from now on.
    pub async fn remove_member(&self, by: &Requester, id: Uuid) -> Result<Member, Error> {
        let caller = &by.caller;
        self.access
            .authorize(by, Action::ManageMembers, None)
            .await?;
        let policy = self.own(by).await?.policy;
        let now = self.clock.now();
        let removed = self
            .store
            .remove_member(caller.organization_id, id, |current, owners| {
                caller.may_change_role(Some(current.role), None)?;
                caller.may_grant(policy.role_scopes.scopes(current.role))?;
                keeps_an_owner(current.role, None, owners)?;
                Ok::<_, Error>(by.event(AuditAction::MemberRemove, current.id, now))
            })
            .await;
        let member = self
            .judged(by, removed)
            .await?
            .ok_or(Error::NotFound("member"))?;
        // The member's personal keys fail from their next verification.
        self.key_cache.forget_member(member.id);
        tracing::info!(member_id = %member.id, removed_by = %caller.key_id, "member removed");
        Ok(member)
    }

    /// ListMembers: the requester's organization's members, newest first.
    pub async fn list_members(
        &self,
        by: &Requester,
        page: &PageRequest,
    ) -> Result<Listed<Member>, Error> {
        self.access.authorize(by, Action::ReadMembers, None).await?;
        let page = Page::parse(page)?;
        let members = self
            .store
            .list_members(by.caller.organization_id, page.after, page.fetch_limit())
            .await?;
        Ok(page.finish(members, |member| member.id))
    }

    async fn own(&self, by: &Requester) -> Result<Organization, Error> {
        self.store
            .get_organization(by.caller.organization_id)
            .await?
            .ok_or(Error::NotFound("organization"))
    }

    /// The answer of a store call whose plan may refuse: a refusal for scope is audited (like
    /// the permission checks), any other error passes through.
    async fn judged<T>(&self, by: &Requester, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                self.access.check(by, Err(error)).await?;
                // `check` never accepts an error; this is only for the type.
                Err(Error::Internal("a refusal was accepted".to_owned()))
            }
        }
    }
}

/// A requested policy, validated, and the scope sets it sets for the roles it lists.
fn policy_from_update(update: PolicyUpdate) -> Result<(OrganizationPolicy, Vec<ScopeSet>), Error> {
    let mut role_scopes = RoleScopes::default();
    let mut listed: Vec<Role> = Vec::new();
    let mut overridden = Vec::new();
    for (role, scopes) in &update.role_scopes {
        if listed.contains(role) {
            return Err(Error::InvalidArgument {
                field: "role_scopes",
                message: format!("role {} is listed more than once", role.as_str()),
            });
        }
        listed.push(*role);
        let scopes = ScopeSet::parse_list("role_scopes", scopes)?;
        role_scopes.set(*role, scopes);
        overridden.push(scopes);
    }
    let policy = OrganizationPolicy {
        max_key_age: max_key_age_from_days(update.max_key_age_days)?,
        max_key_lifetime: max_key_lifetime_from_days(update.max_key_lifetime_days)?,
        role_scopes,
        default_rate_limits: update.default_rate_limits,
        leaked_keys: update.leaked_keys,
    };
    Ok((policy, overridden))
}
