//! Organizations and members: CreateOrganization, GetOrganization, UpdateOrganizationPolicy,
//! AddMember, UpdateMember, RemoveMember, ListMembers.
//!
//! Every handler first asks the permission table (`key_core::PERMISSIONS`) through
//! [`authorize`]; a refusal is audited there. Every change appends its audit event in the
//! change's own transaction. Nobody grants more than it holds: role scopes in a policy, and the
//! role of a member added, changed or removed, must be within the caller's own scopes.

use chrono::{DateTime, Utc};
use key_core::{
    Action, AuditAction, AuditOutcome, Environment, Error, KeyName, KeyType, OrganizationName,
    OrganizationPolicy, Role, RoleScopes, Scope, ScopeSet, UserId, max_key_age_from_days,
    max_key_lifetime_from_days,
};
use key_proto::v1;
use key_store::{Member, Organization};
use tonic::{Response, Status};
use uuid::Uuid;

use crate::{
    Actor, KeyManager, NewKeyRequest, Principal, RequestContext,
    audit::audit_event,
    auth::{authorize, check},
    convert::{api_key, timestamp},
    paging::Page,
    status_from_error,
};

type Reply<T> = Result<Response<T>, Status>;

/// The name of a new organization's first admin key.
const FIRST_ADMIN_KEY_NAME: &str = "Organization admin key";

// ---------------------------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------------------------

/// CreateOrganization: see the proto. The new organization gets the default policy and one
/// organization key with `admin` (not an operator key), whose plaintext is in the response only.
pub(crate) async fn create_organization(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::CreateOrganizationRequest,
) -> Reply<v1::CreateOrganizationResponse> {
    authorize(manager, caller, context, Action::CreateOrganization, None).await?;
    let name = OrganizationName::parse(&request.name).map_err(status_from_error)?;
    let now = manager.now();
    let actor = Actor::Key(caller.clone());
    let success = |organization_id: Uuid, action: AuditAction, target: String| {
        audit_event(
            &actor,
            Some(organization_id),
            action,
            target,
            AuditOutcome::Success,
            None,
            context,
            now,
        )
    };
    let mut issued = None;
    let mut issued_digest = None;
    let created = manager
        .store()
        .create_organization(name.as_str(), now, |organization_id| {
            let first_key = NewKeyRequest {
                name: KeyName::parse(FIRST_ADMIN_KEY_NAME)?,
                scopes: [Scope::Admin].into_iter().collect(),
                expires_at: None,
                environment: Environment::Live,
                key_type: KeyType::Organization,
                member_id: None,
                operator: false,
                rate_limits: key_core::RateLimits::NONE,
            };
            let (new_key, key) =
                manager.draw_key(organization_id, first_key, Some(caller.key_id))?;
            let events = vec![
                // The new organization's log starts with its creation and its first key…
                success(
                    organization_id,
                    AuditAction::OrganizationCreate,
                    organization_id.to_string(),
                ),
                success(
                    organization_id,
                    AuditAction::KeyCreate,
                    new_key.id.to_string(),
                ),
                // …and the operator's own organization keeps what its key did.
                success(
                    caller.organization_id,
                    AuditAction::OrganizationCreate,
                    organization_id.to_string(),
                ),
            ];
            issued = Some(key);
            issued_digest = Some(new_key.digest);
            Ok::<_, Error>((new_key, events))
        })
        .await
        .map_err(status_from_error)?;
    let Some((organization, record)) = created else {
        return Err(status_from_error(Error::Conflict(format!(
            "an organization named {:?} already exists",
            name.as_str()
        ))));
    };
    if let Some(digest) = &issued_digest {
        manager.key_created(digest);
    }
    let key = issued.ok_or_else(|| {
        status_from_error(Error::Internal(
            "an organization was created without its first key".to_owned(),
        ))
    })?;
    tracing::info!(
        organization_id = %organization.id,
        key_id = %record.id,
        created_by = %caller.key_id,
        "organization created"
    );
    Ok(Response::new(v1::CreateOrganizationResponse {
        organization: Some(organization_to_proto(&organization)),
        // The key belongs to the new organization, so its (default) policy applies.
        admin_key: Some(api_key(&record, now, &organization.policy)),
        key: key.expose().to_owned(),
    }))
}

/// GetOrganization: the caller's organization and its policy.
pub(crate) async fn get_organization(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    _request: v1::GetOrganizationRequest,
) -> Reply<v1::GetOrganizationResponse> {
    authorize(manager, caller, context, Action::ReadOrganization, None).await?;
    let organization = own_organization(manager, caller).await?;
    Ok(Response::new(v1::GetOrganizationResponse {
        organization: Some(organization_to_proto(&organization)),
    }))
}

/// UpdateOrganizationPolicy: replaces the caller's organization's policy. Roles the request
/// does not list get their default scopes back.
pub(crate) async fn update_organization_policy(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::UpdateOrganizationPolicyRequest,
) -> Reply<v1::UpdateOrganizationPolicyResponse> {
    authorize(
        manager,
        caller,
        context,
        Action::UpdateOrganizationPolicy,
        None,
    )
    .await?;
    let requested = request.policy.ok_or_else(|| {
        status_from_error(Error::InvalidArgument {
            field: "policy",
            message: "a policy is required".to_owned(),
        })
    })?;
    let (policy, overridden) = policy_from_proto(&requested).map_err(status_from_error)?;
    // Never escalate: a role may be given only scopes the caller holds itself.
    for scopes in overridden {
        check(manager, caller, context, caller.may_grant(scopes)).await?;
    }
    let now = manager.now();
    let audit = audit_event(
        &Actor::Key(caller.clone()),
        Some(caller.organization_id),
        AuditAction::OrganizationPolicyUpdate,
        caller.organization_id.to_string(),
        AuditOutcome::Success,
        None,
        context,
        now,
    );
    let organization = manager
        .store()
        .update_organization_policy(caller.organization_id, &policy, &audit)
        .await
        .map_err(|e| status_from_error(e.into()))?
        .ok_or_else(|| status_from_error(Error::NotFound("organization")))?;
    // Role scopes and default rate limits feed the verdicts of the organization's keys.
    manager.forget_all_keys();
    tracing::info!(
        organization_id = %organization.id,
        updated_by = %caller.key_id,
        "organization policy updated"
    );
    Ok(Response::new(v1::UpdateOrganizationPolicyResponse {
        organization: Some(organization_to_proto(&organization)),
    }))
}

async fn own_organization(
    manager: &KeyManager,
    caller: &Principal,
) -> Result<Organization, Status> {
    manager
        .store()
        .get_organization(caller.organization_id)
        .await
        .map_err(|e| status_from_error(e.into()))?
        .ok_or_else(|| status_from_error(Error::NotFound("organization")))
}

/// A requested policy, validated, and the scope sets it sets for the roles it lists.
fn policy_from_proto(
    policy: &v1::OrganizationPolicy,
) -> Result<(OrganizationPolicy, Vec<ScopeSet>), Error> {
    let mut role_scopes = RoleScopes::default();
    let mut listed: Vec<Role> = Vec::new();
    let mut overridden = Vec::new();
    for entry in &policy.role_scopes {
        let role = role_from_proto("role_scopes", entry.role)?;
        if listed.contains(&role) {
            return Err(Error::InvalidArgument {
                field: "role_scopes",
                message: format!("role {} is listed more than once", role.as_str()),
            });
        }
        listed.push(role);
        let scopes = ScopeSet::parse_list("role_scopes", &entry.scopes)?;
        role_scopes.set(role, scopes);
        overridden.push(scopes);
    }
    let policy = OrganizationPolicy {
        max_key_age: max_key_age_from_days(policy.max_key_age_days)?,
        max_key_lifetime: max_key_lifetime_from_days(policy.max_key_lifetime_days)?,
        role_scopes,
        default_rate_limits: crate::convert::rate_limits_from_proto(
            "default_rate_limits",
            &policy.default_rate_limits,
        )?,
    };
    Ok((policy, overridden))
}

fn organization_to_proto(organization: &Organization) -> v1::Organization {
    let days = |delta: chrono::TimeDelta| i32::try_from(delta.num_days()).unwrap_or(i32::MAX);
    let policy = &organization.policy;
    v1::Organization {
        id: organization.id.to_string(),
        name: organization.name.clone(),
        create_time: Some(timestamp(organization.created_at)),
        policy: Some(v1::OrganizationPolicy {
            max_key_age_days: days(policy.max_key_age),
            max_key_lifetime_days: policy.max_key_lifetime.map_or(0, days),
            // Every role, with its effective scopes, defaults included.
            role_scopes: Role::ALL
                .into_iter()
                .map(|role| v1::RoleScopes {
                    role: role_to_proto(role).into(),
                    scopes: policy.role_scopes.scopes(role).names(),
                })
                .collect(),
            default_rate_limits: crate::convert::rate_limits_to_proto(&policy.default_rate_limits),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------------------------

/// AddMember: see the proto. The role's scopes must be within the caller's own.
pub(crate) async fn add_member(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::AddMemberRequest,
) -> Reply<v1::AddMemberResponse> {
    authorize(manager, caller, context, Action::ManageMembers, None).await?;
    let user_id = UserId::parse(&request.user_id).map_err(status_from_error)?;
    let role = role_from_proto("role", request.role).map_err(status_from_error)?;
    let policy = own_organization(manager, caller).await?.policy;
    check(
        manager,
        caller,
        context,
        caller.may_grant(policy.role_scopes.scopes(role)),
    )
    .await?;
    let now = manager.now();
    let member = Member {
        id: Uuid::now_v7(),
        organization_id: caller.organization_id,
        user_id: user_id.as_str().to_owned(),
        role,
        created_at: now,
    };
    let audit = member_event(caller, context, AuditAction::MemberAdd, member.id, now);
    let member = manager
        .store()
        .add_member(&member, &audit)
        .await
        .map_err(|e| status_from_error(e.into()))?
        .ok_or_else(|| {
            status_from_error(Error::Conflict(format!(
                "user {:?} is already a member",
                user_id.as_str()
            )))
        })?;
    tracing::info!(member_id = %member.id, role = member.role.as_str(), added_by = %caller.key_id, "member added");
    Ok(Response::new(v1::AddMemberResponse {
        member: Some(member_to_proto(&member)),
    }))
}

/// UpdateMember: changes a member's role. Both the member's current role and the new one must
/// be within the caller's scopes: nobody promotes beyond, or demotes from above, itself.
pub(crate) async fn update_member(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::UpdateMemberRequest,
) -> Reply<v1::UpdateMemberResponse> {
    authorize(manager, caller, context, Action::ManageMembers, None).await?;
    let id = member_id("id", &request.id).map_err(status_from_error)?;
    let role = role_from_proto("role", request.role).map_err(status_from_error)?;
    let policy = own_organization(manager, caller).await?.policy;
    let now = manager.now();
    let updated = manager
        .store()
        .update_member(caller.organization_id, id, role, |current| {
            caller.may_grant(policy.role_scopes.scopes(current.role))?;
            caller.may_grant(policy.role_scopes.scopes(role))?;
            Ok::<_, Error>(member_event(
                caller,
                context,
                AuditAction::MemberUpdate,
                current.id,
                now,
            ))
        })
        .await;
    let member = judged(manager, caller, context, updated)
        .await?
        .ok_or_else(|| status_from_error(Error::NotFound("member")))?;
    // The member's personal keys are limited by the new role from their next verification.
    manager.forget_all_keys();
    tracing::info!(member_id = %member.id, role = member.role.as_str(), updated_by = %caller.key_id, "member updated");
    Ok(Response::new(v1::UpdateMemberResponse {
        member: Some(member_to_proto(&member)),
    }))
}

/// RemoveMember: removes a member whose role is within the caller's scopes. Their personal
/// keys stay stored, and fail verification from now on.
pub(crate) async fn remove_member(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::RemoveMemberRequest,
) -> Reply<v1::RemoveMemberResponse> {
    authorize(manager, caller, context, Action::ManageMembers, None).await?;
    let id = member_id("id", &request.id).map_err(status_from_error)?;
    let policy = own_organization(manager, caller).await?.policy;
    let now = manager.now();
    let removed = manager
        .store()
        .remove_member(caller.organization_id, id, |current| {
            caller.may_grant(policy.role_scopes.scopes(current.role))?;
            Ok::<_, Error>(member_event(
                caller,
                context,
                AuditAction::MemberRemove,
                current.id,
                now,
            ))
        })
        .await;
    let member = judged(manager, caller, context, removed)
        .await?
        .ok_or_else(|| status_from_error(Error::NotFound("member")))?;
    // The member's personal keys fail from their next verification.
    manager.forget_all_keys();
    tracing::info!(member_id = %member.id, removed_by = %caller.key_id, "member removed");
    Ok(Response::new(v1::RemoveMemberResponse {
        member: Some(member_to_proto(&member)),
    }))
}

/// ListMembers: the caller's organization's members, newest first (AIP-158 paging).
pub(crate) async fn list_members(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::ListMembersRequest,
) -> Reply<v1::ListMembersResponse> {
    authorize(manager, caller, context, Action::ReadMembers, None).await?;
    let page = Page::parse(request.page_size, &request.page_token).map_err(status_from_error)?;
    let mut members = manager
        .store()
        .list_members(caller.organization_id, page.after, page.fetch_limit())
        .await
        .map_err(|e| status_from_error(e.into()))?;
    let next_page_token = page.finish(&mut members, |member| member.id);
    Ok(Response::new(v1::ListMembersResponse {
        members: members.iter().map(member_to_proto).collect(),
        next_page_token,
    }))
}

fn member_event(
    caller: &Principal,
    context: &RequestContext,
    action: AuditAction,
    member_id: Uuid,
    now: DateTime<Utc>,
) -> key_core::AuditEvent {
    audit_event(
        &Actor::Key(caller.clone()),
        Some(caller.organization_id),
        action,
        member_id.to_string(),
        AuditOutcome::Success,
        None,
        context,
        now,
    )
}

/// The answer of a store call whose plan may refuse: a refusal for scope is audited (like the
/// permission checks), any other error passes through.
async fn judged<T>(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    result: Result<T, Error>,
) -> Result<T, Status> {
    match result {
        Ok(value) => Ok(value),
        Err(error) => {
            check(manager, caller, context, Err(error)).await?;
            // `check` never accepts an error; this is only for the type.
            Err(status_from_error(Error::Internal(
                "a refusal was accepted".to_owned(),
            )))
        }
    }
}

fn member_id(field: &'static str, value: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(value).map_err(|_| Error::InvalidArgument {
        field,
        message: format!("{value:?} is not a member id"),
    })
}

pub(crate) fn role_to_proto(role: Role) -> v1::Role {
    match role {
        Role::Owner => v1::Role::Owner,
        Role::Admin => v1::Role::Admin,
        Role::Member => v1::Role::Member,
        Role::Viewer => v1::Role::Viewer,
    }
}

/// A role from a request; unspecified or unknown values are refused, naming `field`.
pub(crate) fn role_from_proto(field: &'static str, value: i32) -> Result<Role, Error> {
    match v1::Role::try_from(value) {
        Ok(v1::Role::Owner) => Ok(Role::Owner),
        Ok(v1::Role::Admin) => Ok(Role::Admin),
        Ok(v1::Role::Member) => Ok(Role::Member),
        Ok(v1::Role::Viewer) => Ok(Role::Viewer),
        Ok(v1::Role::Unspecified) => Err(Error::InvalidArgument {
            field,
            message: "a role is required: owner, admin, member or viewer".to_owned(),
        }),
        Err(_) => Err(Error::InvalidArgument {
            field,
            message: format!("unknown role {value}, expected owner, admin, member or viewer"),
        }),
    }
}

pub(crate) fn member_to_proto(member: &Member) -> v1::Member {
    v1::Member {
        id: member.id.to_string(),
        organization_id: member.organization_id.to_string(),
        user_id: member.user_id.clone(),
        role: role_to_proto(member.role).into(),
        create_time: Some(timestamp(member.created_at)),
    }
}
