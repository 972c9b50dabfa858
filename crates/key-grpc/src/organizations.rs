//! The organization and member RPCs: CreateOrganization, GetOrganization,
//! UpdateOrganizationPolicy, AddMember, UpdateMember, RemoveMember and ListMembers, with their
//! conversions.

use key_core::{Error, LeakedKeyPolicy, Role};
use key_proto::v1;
use key_service::{Application, Member, Organization, PageRequest, PolicyUpdate, parse_uuid};
use tonic::Request;

use crate::{
    auth::requester,
    convert::{api_key, rate_limits_from_proto, rate_limits_to_proto, timestamp},
};

pub(crate) async fn create_organization(
    app: &Application,
    request: Request<v1::CreateOrganizationRequest>,
) -> Result<v1::CreateOrganizationResponse, Error> {
    let by = requester(&request)?;
    let created = app
        .organizations
        .create(&by, &request.get_ref().name)
        .await?;
    Ok(v1::CreateOrganizationResponse {
        organization: Some(organization_to_proto(&created.organization)),
        admin_key: Some(api_key(&created.admin_key)),
        key: created.plaintext.expose().to_owned(),
    })
}

pub(crate) async fn get_organization(
    app: &Application,
    request: Request<v1::GetOrganizationRequest>,
) -> Result<v1::GetOrganizationResponse, Error> {
    let by = requester(&request)?;
    let organization = app.organizations.get(&by).await?;
    Ok(v1::GetOrganizationResponse {
        organization: Some(organization_to_proto(&organization)),
    })
}

pub(crate) async fn update_organization_policy(
    app: &Application,
    request: Request<v1::UpdateOrganizationPolicyRequest>,
) -> Result<v1::UpdateOrganizationPolicyResponse, Error> {
    let by = requester(&request)?;
    let update = request
        .into_inner()
        .policy
        .map(|policy| policy_from_proto(&policy))
        .transpose()?;
    let organization = app.organizations.update_policy(&by, update).await?;
    Ok(v1::UpdateOrganizationPolicyResponse {
        organization: Some(organization_to_proto(&organization)),
    })
}

pub(crate) async fn add_member(
    app: &Application,
    request: Request<v1::AddMemberRequest>,
) -> Result<v1::AddMemberResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let role = role_from_proto("role", request.role)?;
    let member = app
        .organizations
        .add_member(&by, &request.user_id, role)
        .await?;
    Ok(v1::AddMemberResponse {
        member: Some(member_to_proto(&member)),
    })
}

pub(crate) async fn update_member(
    app: &Application,
    request: Request<v1::UpdateMemberRequest>,
) -> Result<v1::UpdateMemberResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let id = parse_uuid("id", &request.id, "a member id")?;
    let role = role_from_proto("role", request.role)?;
    let member = app.organizations.update_member(&by, id, role).await?;
    Ok(v1::UpdateMemberResponse {
        member: Some(member_to_proto(&member)),
    })
}

pub(crate) async fn remove_member(
    app: &Application,
    request: Request<v1::RemoveMemberRequest>,
) -> Result<v1::RemoveMemberResponse, Error> {
    let by = requester(&request)?;
    let id = parse_uuid("id", &request.get_ref().id, "a member id")?;
    let member = app.organizations.remove_member(&by, id).await?;
    Ok(v1::RemoveMemberResponse {
        member: Some(member_to_proto(&member)),
    })
}

pub(crate) async fn list_members(
    app: &Application,
    request: Request<v1::ListMembersRequest>,
) -> Result<v1::ListMembersResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let page = PageRequest {
        page_size: request.page_size,
        page_token: request.page_token,
    };
    let listed = app.organizations.list_members(&by, &page).await?;
    Ok(v1::ListMembersResponse {
        members: listed.items.iter().map(member_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

/// A requested policy with its roles and rate limits decoded; the rest is validated by the
/// operation.
fn policy_from_proto(policy: &v1::OrganizationPolicy) -> Result<PolicyUpdate, Error> {
    let role_scopes = policy
        .role_scopes
        .iter()
        .map(|entry| {
            Ok((
                role_from_proto("role_scopes", entry.role)?,
                entry.scopes.clone(),
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let leaked_keys = match v1::LeakedKeyPolicy::try_from(policy.leaked_keys) {
        Ok(v1::LeakedKeyPolicy::Unspecified | v1::LeakedKeyPolicy::Revoke) => {
            LeakedKeyPolicy::Revoke
        }
        Ok(v1::LeakedKeyPolicy::Flag) => LeakedKeyPolicy::Flag,
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "leaked_keys",
                message: format!("unknown leaked-key policy {}", policy.leaked_keys),
            });
        }
    };
    Ok(PolicyUpdate {
        leaked_keys,
        max_key_age_days: policy.max_key_age_days,
        max_key_lifetime_days: policy.max_key_lifetime_days,
        role_scopes,
        default_rate_limits: rate_limits_from_proto(
            "default_rate_limits",
            &policy.default_rate_limits,
        )?,
    })
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
            default_rate_limits: rate_limits_to_proto(&policy.default_rate_limits),
            leaked_keys: match policy.leaked_keys {
                LeakedKeyPolicy::Revoke => v1::LeakedKeyPolicy::Revoke,
                LeakedKeyPolicy::Flag => v1::LeakedKeyPolicy::Flag,
            }
            .into(),
        }),
    }
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
fn role_from_proto(field: &'static str, value: i32) -> Result<Role, Error> {
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

fn member_to_proto(member: &Member) -> v1::Member {
    v1::Member {
        id: member.id.to_string(),
        organization_id: member.organization_id.to_string(),
        user_id: member.user_id.clone(),
        role: role_to_proto(member.role).into(),
        create_time: Some(timestamp(member.created_at)),
    }
}
