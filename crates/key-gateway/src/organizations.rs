//! `/api/organizations`, `/api/organization` and `/api/members`: create an organization (operator
//! keys only), read the caller's organization and replace its policy, and manage its members;
//! with their JSON shapes.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use key_proto::v1;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError,
    body::{IdPath, JsonBody, QueryParams},
    error::ErrorBody,
    json::{RateLimitJson, ScopeName, non_empty, time},
    keys::ApiKeyJson,
    upstream::{Upstream, forward, required},
};

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Creates an organization with the default policy and its first admin key. Needs an operator
/// key (such as the deployment's bootstrap key). The plaintext `key` is in this response only.
#[utoipa::path(
    post, path = "/api/organizations", tag = "organizations",
    request_body = CreateOrganizationBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedOrganizationJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key is not an operator key", body = ErrorBody),
        (status = 409, description = "An organization of that name exists", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_organization(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateOrganizationBody>,
) -> Result<(StatusCode, Json<CreatedOrganizationJson>), ApiError> {
    let response = upstream
        .keys
        .clone()
        .create_organization(forward(&headers, body.into_proto()))
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrganizationJson {
            organization: organization(response.organization)?,
            admin_key: ApiKeyJson::from(required(response.admin_key)?),
            key: response.key,
        }),
    ))
}

/// The caller's organization and its policy.
#[utoipa::path(
    get, path = "/api/organization", tag = "organizations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The organization", body = OrganizationJson),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get_organization(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
) -> Result<Json<OrganizationJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .get_organization(forward(&headers, v1::GetOrganizationRequest {}))
        .await?
        .into_inner();
    Ok(Json(organization(response.organization)?))
}

/// Replaces the caller's organization's policy. Absent fields take their defaults; roles not
/// listed in `roleScopes` get their default scopes back.
#[utoipa::path(
    put, path = "/api/organization/policy", tag = "organizations",
    request_body = PolicyBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The organization with its new policy", body = OrganizationJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`, or a scope it grants; or it changes a ceiling (maximum key lifetime, default rate limits, role scopes) and is no owner", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn update_policy(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PolicyBody>,
) -> Result<Json<OrganizationJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .update_organization_policy(forward(&headers, body.into_proto()))
        .await?
        .into_inner();
    Ok(Json(organization(response.organization)?))
}

/// Lists the organization's members, newest first.
#[utoipa::path(
    get, path = "/api/members", tag = "members",
    params(ListMembersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of members", body = MemberPageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_members(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListMembersQuery>,
) -> Result<Json<MemberPageJson>, ApiError> {
    let request = v1::ListMembersRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
    };
    let page = upstream
        .keys
        .clone()
        .list_members(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(MemberPageJson {
        data: page.members.into_iter().map(MemberJson::from).collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// Adds a member with a role; the role's scopes must be within the caller's own.
#[utoipa::path(
    post, path = "/api/members", tag = "members",
    request_body = AddMemberBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new member", body = MemberJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`, or a scope of the role; or the role is `owner` and the caller is no owner", body = ErrorBody),
        (status = 409, description = "The user is already a member", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn add_member(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AddMemberBody>,
) -> Result<(StatusCode, Json<MemberJson>), ApiError> {
    let response = upstream
        .keys
        .clone()
        .add_member(forward(&headers, body.into_proto()))
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(MemberJson::from(required(response.member)?)),
    ))
}

/// Changes a member's role; their personal keys follow at their next verification.
#[utoipa::path(
    patch, path = "/api/members/{id}", tag = "members",
    params(("id" = String, Path, description = "The member's id")),
    request_body = UpdateMemberBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated member", body = MemberJson),
        (status = 400, description = "Malformed id or body; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`, or a scope of either role; or either role is `owner` and the caller is no owner", body = ErrorBody),
        (status = 404, description = "No such member in the organization", body = ErrorBody),
        (status = 409, description = "The member is the organization's last owner", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn update_member(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<UpdateMemberBody>,
) -> Result<Json<MemberJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .update_member(forward(&headers, body.into_proto(id)))
        .await?
        .into_inner();
    Ok(Json(MemberJson::from(required(response.member)?)))
}

/// Removes a member; their personal keys stop working at once. Returns the member as it was.
#[utoipa::path(
    delete, path = "/api/members/{id}", tag = "members",
    params(("id" = String, Path, description = "The member's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The removed member", body = MemberJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`, or a scope of the member's role; or the member is an owner and the caller is none", body = ErrorBody),
        (status = 404, description = "No such member in the organization", body = ErrorBody),
        (status = 409, description = "The member is the organization's last owner", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn remove_member(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<MemberJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .remove_member(forward(&headers, v1::RemoveMemberRequest { id }))
        .await?
        .into_inner();
    Ok(Json(MemberJson::from(required(response.member)?)))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

/// A member's role.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleParam {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl From<RoleParam> for v1::Role {
    fn from(role: RoleParam) -> Self {
        match role {
            RoleParam::Owner => v1::Role::Owner,
            RoleParam::Admin => v1::Role::Admin,
            RoleParam::Member => v1::Role::Member,
            RoleParam::Viewer => v1::Role::Viewer,
        }
    }
}

fn role_name(value: i32) -> &'static str {
    match v1::Role::try_from(value) {
        Ok(v1::Role::Owner) => "owner",
        Ok(v1::Role::Admin) => "admin",
        Ok(v1::Role::Member) => "member",
        Ok(v1::Role::Viewer) => "viewer",
        _ => "unspecified",
    }
}

/// The body of `POST /api/organizations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateOrganizationBody {
    /// 1 to 100 characters, unique.
    #[schema(example = "Acme Corp")]
    name: String,
}

impl CreateOrganizationBody {
    pub(crate) fn into_proto(self) -> v1::CreateOrganizationRequest {
        v1::CreateOrganizationRequest { name: self.name }
    }
}

/// A new organization, its first admin key's record and, this once, the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedOrganizationJson {
    organization: OrganizationJson,
    /// The first admin key's record: an organization key with `admin`.
    admin_key: ApiKeyJson,
    /// The admin key's plaintext. Shown only here: store it now.
    #[schema(example = "sk_live_…")]
    key: String,
}

/// An organization and its rules for keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrganizationJson {
    id: String,
    #[schema(example = "Acme Corp")]
    name: String,
    /// RFC 3339.
    created_at: String,
    policy: PolicyJson,
}

/// An organization's policy, every role listed with its effective scopes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyJson {
    /// Keys at least this many days old are reported `rotationDue`.
    #[schema(example = 90)]
    max_key_age_days: i32,
    /// When set, every new key must expire within this many days; null: no limit.
    max_key_lifetime_days: Option<i32>,
    role_scopes: Vec<RoleScopesJson>,
    /// Rate limits of the keys that have none of their own.
    default_rate_limits: Vec<RateLimitJson>,
    /// What a leaked-key report (GitHub secret scanning) does to a live key.
    leaked_keys: LeakedKeysName,
}

/// What a leaked-key report does: `revoke` (the default) or `flag` (the key keeps working;
/// the report is audited and alerted).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LeakedKeysName {
    Revoke,
    Flag,
}

/// The scopes one role may hold.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoleScopesJson {
    /// `owner`, `admin`, `member` or `viewer`.
    #[schema(example = "member")]
    role: String,
    #[schema(example = json!(["chat", "agents:read"]))]
    scopes: Vec<String>,
}

fn organization(organization: Option<v1::Organization>) -> Result<OrganizationJson, ApiError> {
    let organization = required(organization)?;
    let policy = organization.policy.unwrap_or_default();
    let leaked_keys = match policy.leaked_keys() {
        v1::LeakedKeyPolicy::Flag => LeakedKeysName::Flag,
        v1::LeakedKeyPolicy::Revoke | v1::LeakedKeyPolicy::Unspecified => LeakedKeysName::Revoke,
    };
    Ok(OrganizationJson {
        created_at: time(organization.create_time.as_ref()).unwrap_or_default(),
        id: organization.id,
        name: organization.name,
        policy: PolicyJson {
            max_key_age_days: policy.max_key_age_days,
            max_key_lifetime_days: (policy.max_key_lifetime_days > 0)
                .then_some(policy.max_key_lifetime_days),
            role_scopes: policy
                .role_scopes
                .into_iter()
                .map(|entry| RoleScopesJson {
                    role: role_name(entry.role).to_owned(),
                    scopes: entry.scopes,
                })
                .collect(),
            leaked_keys,
            default_rate_limits: RateLimitJson::from_proto(policy.default_rate_limits),
        },
    })
}

/// The body of `PUT /api/organization/policy`: the whole policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PolicyBody {
    /// 1 to 3650; absent, null or 0: 90.
    #[schema(example = 90)]
    max_key_age_days: Option<i32>,
    /// 1 to 3650: every new key must expire within this many days; absent, null or 0: no
    /// limit.
    #[schema(example = 365)]
    max_key_lifetime_days: Option<i32>,
    /// Scopes per role, overriding the defaults of the roles listed (each at most once).
    role_scopes: Option<Vec<RoleScopesBody>>,
    /// Rate limits of the keys that have none of their own; absent or empty: none.
    default_rate_limits: Option<Vec<RateLimitJson>>,
    /// What a leaked-key report does: `revoke` (absent or null) or `flag`. An owner's to
    /// change, like the ceilings.
    leaked_keys: Option<LeakedKeysName>,
}

/// The scopes one role may hold, as set in a policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RoleScopesBody {
    role: RoleParam,
    /// At least one scope.
    #[schema(value_type = Vec<ScopeName>, example = json!(["chat", "agents:read"]))]
    scopes: Vec<String>,
}

impl PolicyBody {
    pub(crate) fn into_proto(self) -> v1::UpdateOrganizationPolicyRequest {
        let leaked_keys = match self.leaked_keys {
            None => v1::LeakedKeyPolicy::Unspecified,
            Some(LeakedKeysName::Revoke) => v1::LeakedKeyPolicy::Revoke,
            Some(LeakedKeysName::Flag) => v1::LeakedKeyPolicy::Flag,
        };
        let policy = v1::OrganizationPolicy {
            leaked_keys: leaked_keys.into(),
            default_rate_limits: RateLimitJson::into_proto(
                self.default_rate_limits.unwrap_or_default(),
            ),
            max_key_age_days: self.max_key_age_days.unwrap_or_default(),
            max_key_lifetime_days: self.max_key_lifetime_days.unwrap_or_default(),
            role_scopes: self
                .role_scopes
                .unwrap_or_default()
                .into_iter()
                .map(|entry| v1::RoleScopes {
                    role: v1::Role::from(entry.role).into(),
                    scopes: entry.scopes,
                })
                .collect(),
        };
        v1::UpdateOrganizationPolicyRequest {
            policy: Some(policy),
        }
    }
}

/// A user's membership of the organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberJson {
    id: String,
    organization_id: String,
    /// The user's id in the platform, unique in the organization.
    #[schema(example = "ada@example.com")]
    user_id: String,
    /// `owner`, `admin`, `member` or `viewer`.
    #[schema(example = "member")]
    role: String,
    /// RFC 3339.
    created_at: String,
}

impl From<v1::Member> for MemberJson {
    fn from(member: v1::Member) -> Self {
        MemberJson {
            created_at: time(member.create_time.as_ref()).unwrap_or_default(),
            role: role_name(member.role).to_owned(),
            id: member.id,
            organization_id: member.organization_id,
            user_id: member.user_id,
        }
    }
}

/// One page of members, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberPageJson {
    data: Vec<MemberJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}

/// Query of `GET /api/members`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListMembersQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
}

/// The body of `POST /api/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AddMemberBody {
    /// The user's id in the platform (an email, an account id), 1 to 200 characters.
    #[schema(example = "ada@example.com")]
    user_id: String,
    role: RoleParam,
}

impl AddMemberBody {
    pub(crate) fn into_proto(self) -> v1::AddMemberRequest {
        v1::AddMemberRequest {
            user_id: self.user_id,
            role: v1::Role::from(self.role).into(),
        }
    }
}

/// The body of `PATCH /api/members/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateMemberBody {
    /// The new role.
    role: RoleParam,
}

impl UpdateMemberBody {
    pub(crate) fn into_proto(self, id: String) -> v1::UpdateMemberRequest {
        v1::UpdateMemberRequest {
            id,
            role: v1::Role::from(self.role).into(),
        }
    }
}
