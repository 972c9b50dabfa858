//! `/api/api-keys`: create, list, get, revoke, disable, enable, rotate and update keys; with
//! their JSON shapes.

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
    body::{IdPath, JsonBody, OptionalJsonBody, QueryParams},
    error::ErrorBody,
    json::{RateLimitJson, ScopeName, non_empty, time},
    upstream::{Upstream, forward, required},
};

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Creates a key. The plaintext `key` is in this response only.
#[utoipa::path(
    post, path = "/api/api-keys", tag = "keys",
    request_body = CreateKeyBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedKeyJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Not allowed: an organization key, or another member's personal key, needs `admin`; a personal key stays within the member's role and the caller's own scopes; a key that acts as an owner (an organization key with `admin`, an owner's personal key with `admin`) needs an owner", body = ErrorBody),
        (status = 404, description = "No such member in the caller's organization", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<(StatusCode, Json<CreatedKeyJson>), ApiError> {
    let request = body.into_proto()?;
    let response = upstream
        .keys
        .clone()
        .create_key(forward(&headers, request))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyJson::new(response.into_inner())?),
    ))
}

/// Lists the organization's keys, newest first (with a non-admin personal key: its member's
/// personal keys).
#[utoipa::path(
    get, path = "/api/api-keys", tag = "keys",
    params(ListKeysQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of keys", body = KeyPageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "An organization key without `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_keys(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListKeysQuery>,
) -> Result<Json<KeyPageJson>, ApiError> {
    let request = v1::ListKeysRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
        state: query
            .state
            .map_or(v1::KeyState::Unspecified, v1::KeyState::from)
            .into(),
        rotation_due: query.rotation_due.unwrap_or_default(),
    };
    let page = upstream
        .keys
        .clone()
        .list_keys(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(KeyPageJson {
        data: page.api_keys.into_iter().map(ApiKeyJson::from).collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// One key of the organization.
#[utoipa::path(
    get, path = "/api/api-keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key", body = ApiKeyJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<ApiKeyJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .get_key(forward(&headers, v1::GetKeyRequest { id }))
        .await?;
    let key = required(response.into_inner().api_key)?;
    Ok(Json(ApiKeyJson::from(key)))
}

/// Revokes a key at once; returns the revoked record. Revoking twice is not an error.
#[utoipa::path(
    delete, path = "/api/api-keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    request_body(content = RevokeBody, description = "Optional: the body may be left out"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyJson),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`; or an operator key and the caller is none; or a key that acts as an owner, before or after the change, and the caller is no owner", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
    OptionalJsonBody(body): OptionalJsonBody<RevokeBody>,
) -> Result<Json<ApiKeyJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .revoke_key(forward(&headers, body.into_proto(id)))
        .await?;
    let key = required(response.into_inner().api_key)?;
    Ok(Json(ApiKeyJson::from(key)))
}

/// Disables a key at once: every verification refuses it (`disabled_api_key`) until it is
/// enabled again. Unlike a revocation, it can be undone. Disabling twice is not an error.
#[utoipa::path(
    post, path = "/api/api-keys/{id}/disable", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The disabled key (`state` `disabled`, `disabledAt` set)", body = ApiKeyJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "As for revoking: not the caller's own personal key, and the caller lacks `admin`; or an operator key and the caller is none; or a key that acts as an owner and the caller is no owner", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 409, description = "The key is revoked", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn disable_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<ApiKeyJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .disable_key(forward(&headers, v1::DisableKeyRequest { id }))
        .await?;
    let key = required(response.into_inner().api_key)?;
    Ok(Json(ApiKeyJson::from(key)))
}

/// Enables a disabled key again, at once. Enabling an enabled key is not an error.
#[utoipa::path(
    post, path = "/api/api-keys/{id}/enable", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The enabled key", body = ApiKeyJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "As for revoking: not the caller's own personal key, and the caller lacks `admin`; or an operator key and the caller is none; or a key that acts as an owner and the caller is no owner", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 409, description = "The key is revoked", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn enable_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<ApiKeyJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .enable_key(forward(&headers, v1::EnableKeyRequest { id }))
        .await?;
    let key = required(response.into_inner().api_key)?;
    Ok(Json(ApiKeyJson::from(key)))
}

/// Rotates a key: issues a successor with the same name, scopes and environment (the plaintext
/// `key` is in this response only), and lets the old key work for the grace period.
#[utoipa::path(
    post, path = "/api/api-keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    request_body(content = RotateBody, description = "Optional: the body may be left out"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The successor, and the old key as `rotatedKey`", body = RotatedKeyJson),
        (status = 400, description = "Malformed id or body, or a grace period out of range", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`; or an operator key and the caller is none; or a key that acts as an owner, before or after the change, and the caller is no owner", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 409, description = "The key is revoked, expired or already rotated", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn rotate_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
    OptionalJsonBody(body): OptionalJsonBody<RotateBody>,
) -> Result<(StatusCode, Json<RotatedKeyJson>), ApiError> {
    let response = upstream
        .keys
        .clone()
        .rotate_key(forward(&headers, body.into_proto(id)))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedKeyJson::new(response.into_inner())?),
    ))
}

/// Renames a key, replaces its scopes or changes its expiry; effective at its next
/// verification.
#[utoipa::path(
    patch, path = "/api/api-keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    request_body = UpdateKeyBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated key", body = ApiKeyJson),
        (status = 400, description = "Malformed id or body; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`; or an operator key and the caller is none; or a key that acts as an owner, before or after the change, and the caller is no owner", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 409, description = "The key is revoked or was rotated", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn update_key(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<UpdateKeyBody>,
) -> Result<Json<ApiKeyJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .update_key(forward(&headers, body.into_proto(id)))
        .await?;
    let key = required(response.into_inner().api_key)?;
    Ok(Json(ApiKeyJson::from(key)))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

/// A key's environment as the JSON names it.
pub(crate) fn environment_name(value: i32) -> &'static str {
    match v1::Environment::try_from(value) {
        Ok(v1::Environment::Test) => "test",
        _ => "live",
    }
}

/// A key's type as the JSON names it.
pub(crate) fn key_type_name(value: i32) -> &'static str {
    match v1::KeyType::try_from(value) {
        Ok(v1::KeyType::Personal) => "personal",
        _ => "organization",
    }
}

fn state_name(value: i32) -> &'static str {
    match v1::KeyState::try_from(value) {
        Ok(v1::KeyState::Expired) => "expired",
        Ok(v1::KeyState::Revoked) => "revoked",
        Ok(v1::KeyState::Disabled) => "disabled",
        _ => "active",
    }
}

/// An API key's record. Never carries the secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKeyJson {
    #[schema(example = "01a220dd-bc34-727a-8649-71d3c896d257")]
    id: String,
    organization_id: String,
    #[schema(example = "Production API")]
    name: String,
    #[schema(example = json!(["chat", "agents:read"]))]
    scopes: Vec<String>,
    /// `live` or `test`.
    #[schema(example = "live")]
    environment: String,
    /// The key with its secret hidden.
    #[schema(example = "sk_live_…abcd")]
    redacted_key: String,
    /// RFC 3339.
    created_at: String,
    /// The first instant the key no longer works (RFC 3339); null: never expires.
    expires_at: Option<String>,
    revoked_at: Option<String>,
    revoke_reason: Option<String>,
    last_used_at: Option<String>,
    /// `active`, `expired`, `revoked` or `disabled`.
    #[schema(example = "active")]
    state: String,
    /// When the key was disabled (RFC 3339); null: enabled.
    disabled_at: Option<String>,
    /// True for any key without `admin`.
    scoped: bool,
    /// The key this one replaced by rotation; null if none.
    rotated_from_id: Option<String>,
    /// The key that replaced this one by rotation; null if none.
    rotated_to_id: Option<String>,
    /// True when the key is active, not rotated yet, and 90 days old or older: time to rotate.
    rotation_due: bool,
    /// `organization` (the organization's key) or `personal` (one member's).
    #[schema(example = "organization")]
    key_type: String,
    /// For a personal key, its member; null otherwise.
    member_id: Option<String>,
    /// True for an operator key (an admin of the whole deployment, such as the bootstrap key).
    operator: bool,
    /// The key's own rate limits; empty: its organization's default applies.
    rate_limits: Vec<RateLimitJson>,
    /// The key's metadata, a JSON object returned to every service that verifies it; null:
    /// none.
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    metadata: Option<serde_json::Value>,
    /// The addresses and CIDR networks the key may be used from; empty: anywhere.
    #[schema(example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    ip_allowlist: Vec<String>,
    /// The key's credits: uses left, the refill and the last refill; null: unlimited.
    credits: Option<CreditsJson>,
}

/// A key's credits, as shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreditsJson {
    /// Uses left as of the last spend or refill (a refill due in the current period is applied
    /// at the next verification).
    #[schema(example = 1000)]
    remaining: i64,
    /// The refill; null: none.
    refill: Option<RefillJson>,
    /// When the credits were last refilled or set (RFC 3339).
    last_refill_at: Option<String>,
}

/// A refill: the remaining count is set to `amount` at the first verification of each UTC day
/// or calendar month.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RefillJson {
    /// 1 to 1,000,000,000.
    #[schema(example = 1000)]
    amount: i64,
    /// `day` or `month`.
    per: CreditPeriodParam,
}

/// How often credits are refilled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CreditPeriodParam {
    Day,
    Month,
}

/// Credits as a request sets them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreditsBody {
    /// Uses left, 0 to 1,000,000,000.
    #[schema(example = 1000)]
    remaining: i64,
    /// The refill; absent or null: none.
    refill: Option<RefillJson>,
}

impl CreditsBody {
    fn into_proto(self) -> v1::Credits {
        v1::Credits {
            remaining: self.remaining,
            refill: self.refill.map(|refill| v1::CreditRefill {
                amount: refill.amount,
                per: match refill.per {
                    CreditPeriodParam::Day => v1::CreditPeriod::Day,
                    CreditPeriodParam::Month => v1::CreditPeriod::Month,
                }
                .into(),
            }),
            last_refill_time: None,
        }
    }
}

impl CreditsJson {
    fn from_proto(credits: v1::Credits) -> CreditsJson {
        CreditsJson {
            remaining: credits.remaining,
            refill: credits.refill.and_then(|refill| {
                let per = match v1::CreditPeriod::try_from(refill.per) {
                    Ok(v1::CreditPeriod::Day) => CreditPeriodParam::Day,
                    Ok(v1::CreditPeriod::Month) => CreditPeriodParam::Month,
                    _ => return None,
                };
                Some(RefillJson {
                    amount: refill.amount,
                    per,
                })
            }),
            last_refill_at: time(credits.last_refill_time.as_ref()),
        }
    }
}

impl From<v1::ApiKey> for ApiKeyJson {
    fn from(key: v1::ApiKey) -> Self {
        ApiKeyJson {
            created_at: time(key.create_time.as_ref()).unwrap_or_default(),
            expires_at: time(key.expire_time.as_ref()),
            revoked_at: time(key.revoke_time.as_ref()),
            revoke_reason: non_empty(key.revoke_reason),
            last_used_at: time(key.last_used_time.as_ref()),
            state: state_name(key.state).to_owned(),
            disabled_at: time(key.disable_time.as_ref()),
            // The service stores only JSON objects; text that is not one is shown as none.
            metadata: serde_json::from_str(&key.metadata_json).ok(),
            ip_allowlist: key.ip_allowlist,
            credits: key.credits.map(CreditsJson::from_proto),
            environment: environment_name(key.environment).to_owned(),
            id: key.id,
            organization_id: key.organization_id,
            name: key.name,
            scopes: key.scopes,
            redacted_key: key.redacted_key,
            scoped: key.scoped,
            rotated_from_id: non_empty(key.rotated_from_id),
            rotated_to_id: non_empty(key.rotated_to_id),
            rotation_due: key.rotation_due,
            key_type: key_type_name(key.key_type).to_owned(),
            member_id: non_empty(key.member_id),
            operator: key.operator,
            rate_limits: RateLimitJson::from_proto(key.rate_limits),
        }
    }
}

/// The body of `POST /api/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateKeyBody {
    /// 1 to 100 characters.
    #[schema(example = "Production API")]
    pub(crate) name: String,
    /// At least one scope.
    #[schema(value_type = Vec<ScopeName>, example = json!(["chat", "agents:read"]))]
    pub(crate) scopes: Vec<String>,
    /// `YYYY-MM-DD` (valid through the end of that day, UTC) or an RFC 3339 timestamp.
    #[schema(example = "2027-12-31")]
    pub(crate) expires_at: Option<String>,
    /// Default `live`.
    pub(crate) environment: Option<EnvironmentParam>,
    /// `organization` (needs `admin`) or `personal`; default: the caller's own kind.
    pub(crate) key_type: Option<KeyTypeParam>,
    /// For a personal key, its member; default: the caller's own member.
    pub(crate) member_id: Option<String>,
    /// Rate limits, at most one per period; absent: the organization's default.
    pub(crate) rate_limits: Option<Vec<RateLimitJson>>,
    /// Metadata returned by verification (forward-auth: `X-Keyrack-Metadata`): a JSON object
    /// of at most 1024 bytes in compact form. Visible to every service that verifies the key:
    /// never a secret.
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    pub(crate) metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// At most 100 IP addresses and CIDR networks (IPv4 or IPv6) the key may be used from;
    /// absent or empty: anywhere. A verification from elsewhere, or without a client address,
    /// is refused (`ip_not_allowed`).
    #[schema(example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    pub(crate) ip_allowlist: Option<Vec<String>>,
    /// Credits: each valid verification spends its cost (default 1); none left is
    /// `usage_exceeded` (429). Absent: unlimited.
    pub(crate) credits: Option<CreditsBody>,
}

/// A key's type.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyTypeParam {
    Organization,
    Personal,
}

impl CreateKeyBody {
    pub(crate) fn into_proto(self) -> Result<v1::CreateKeyRequest, ApiError> {
        let environment = match self.environment {
            None | Some(EnvironmentParam::Live) => v1::Environment::Live,
            Some(EnvironmentParam::Test) => v1::Environment::Test,
        };
        Ok(v1::CreateKeyRequest {
            name: self.name,
            scopes: self.scopes,
            expires_at: self.expires_at.unwrap_or_default(),
            environment: environment.into(),
            key_type: match self.key_type {
                None => v1::KeyType::Unspecified,
                Some(KeyTypeParam::Organization) => v1::KeyType::Organization,
                Some(KeyTypeParam::Personal) => v1::KeyType::Personal,
            }
            .into(),
            member_id: self.member_id.unwrap_or_default(),
            rate_limits: RateLimitJson::into_proto(self.rate_limits.unwrap_or_default()),
            metadata_json: metadata_json(self.metadata),
            ip_allowlist: self.ip_allowlist.unwrap_or_default(),
            credits: self.credits.map(CreditsBody::into_proto),
        })
    }
}

/// A new key: its record and, this once, the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedKeyJson {
    /// The plaintext key. Shown only here: store it now.
    #[schema(example = "sk_live_…")]
    key: String,
    #[serde(flatten)]
    api_key: ApiKeyJson,
}

impl CreatedKeyJson {
    pub(crate) fn new(response: v1::CreateKeyResponse) -> Result<Self, ApiError> {
        Ok(CreatedKeyJson {
            key: response.key,
            api_key: ApiKeyJson::from(required(response.api_key)?),
        })
    }
}

/// One page of keys, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyPageJson {
    pub(crate) data: Vec<ApiKeyJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    pub(crate) next_page_token: Option<String>,
}

/// Query of `GET /api/api-keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListKeysQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    pub(crate) page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    pub(crate) page_token: Option<String>,
    /// Only keys in this state; default all.
    pub(crate) state: Option<KeyStateParam>,
    /// `true`: only keys due for rotation (see `rotationDue`); combines with no state or
    /// `active` only.
    pub(crate) rotation_due: Option<bool>,
}

/// A key state, as a filter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyStateParam {
    Active,
    Expired,
    Revoked,
    Disabled,
}

impl From<KeyStateParam> for v1::KeyState {
    fn from(state: KeyStateParam) -> Self {
        match state {
            KeyStateParam::Active => v1::KeyState::Active,
            KeyStateParam::Expired => v1::KeyState::Expired,
            KeyStateParam::Revoked => v1::KeyState::Revoked,
            KeyStateParam::Disabled => v1::KeyState::Disabled,
        }
    }
}

/// A key's environment.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EnvironmentParam {
    Live,
    Test,
}

/// Body of `DELETE /api/api-keys/{id}` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// Why the key is revoked, for the record.
    pub(crate) reason: Option<String>,
}

impl RevokeBody {
    pub(crate) fn into_proto(self, id: String) -> v1::RevokeKeyRequest {
        v1::RevokeKeyRequest {
            id,
            reason: self.reason.unwrap_or_default(),
        }
    }
}

/// Body of `POST /api/api-keys/{id}/rotate` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateBody {
    /// How long the old key keeps working, in seconds: default 86400 (24 hours), 0 revokes it
    /// at once, at most 2592000 (30 days). An earlier expiry of the old key is kept.
    #[schema(example = 3600)]
    pub(crate) grace_period_seconds: Option<i64>,
}

impl RotateBody {
    pub(crate) fn into_proto(self, id: String) -> v1::RotateKeyRequest {
        v1::RotateKeyRequest {
            id,
            grace_period: self
                .grace_period_seconds
                .map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        }
    }
}

/// A rotation: the successor's record and, this once, its key; and the old key's record.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotatedKeyJson {
    /// The successor's plaintext key. Shown only here: store it now.
    #[schema(example = "sk_live_…")]
    key: String,
    /// The successor's record.
    #[serde(flatten)]
    api_key: ApiKeyJson,
    /// The old key, with its new expiry (or revocation) and `rotatedToId`.
    rotated_key: ApiKeyJson,
}

impl RotatedKeyJson {
    pub(crate) fn new(response: v1::RotateKeyResponse) -> Result<Self, ApiError> {
        Ok(RotatedKeyJson {
            key: response.key,
            api_key: ApiKeyJson::from(required(response.api_key)?),
            rotated_key: ApiKeyJson::from(required(response.rotated_key)?),
        })
    }
}

/// Body of `PATCH /api/api-keys/{id}`: what is present changes, what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateKeyBody {
    /// A new name, 1 to 100 characters.
    #[schema(example = "Production API (web)")]
    pub(crate) name: Option<String>,
    /// New scopes, replacing the old ones; absent or empty: unchanged.
    #[schema(value_type = Option<Vec<ScopeName>>, example = json!(["chat"]))]
    pub(crate) scopes: Option<Vec<String>>,
    /// A new expiry, as when creating a key; `null` removes the expiry, absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "2027-06-30")]
    pub(crate) expires_at: Option<Option<String>>,
    /// New rate limits, replacing the old ones; `[]` or `null` removes the key's own (the
    /// organization's default then applies); absent leaves them.
    #[serde(default, deserialize_with = "present")]
    pub(crate) rate_limits: Option<Option<Vec<RateLimitJson>>>,
    /// New metadata, replacing the old; `null` or `{}` removes it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, example = json!({"plan": "enterprise"}))]
    pub(crate) metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
    /// A new IP allowlist, replacing the old; `[]` or `null` removes it (anywhere); absent
    /// leaves it.
    #[serde(default, deserialize_with = "present")]
    pub(crate) ip_allowlist: Option<Option<Vec<String>>>,
    /// New credits (remaining and refill, replacing both); `null` removes them (unlimited);
    /// absent leaves them.
    #[serde(default, deserialize_with = "present")]
    pub(crate) credits: Option<Option<CreditsBody>>,
}

/// Metadata as the service takes it: the object's JSON text, empty for none.
fn metadata_json(metadata: Option<serde_json::Map<String, serde_json::Value>>) -> String {
    metadata.map_or_else(String::new, |object| {
        serde_json::Value::Object(object).to_string()
    })
}

/// Tells a field that is present (even as `null`: `Some(None)`) from an absent one (`None`,
/// through `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl UpdateKeyBody {
    pub(crate) fn into_proto(self, id: String) -> v1::UpdateKeyRequest {
        v1::UpdateKeyRequest {
            id,
            name: self.name,
            scopes: self.scopes.unwrap_or_default(),
            // The service reads the empty string as "no expiry".
            expires_at: self.expires_at.map(Option::unwrap_or_default),
            clear_rate_limits: matches!(&self.rate_limits, Some(None))
                || matches!(&self.rate_limits, Some(Some(limits)) if limits.is_empty()),
            rate_limits: RateLimitJson::into_proto(self.rate_limits.flatten().unwrap_or_default()),
            metadata_json: self.metadata.map(metadata_json),
            clear_ip_allowlist: matches!(&self.ip_allowlist, Some(None))
                || matches!(&self.ip_allowlist, Some(Some(list)) if list.is_empty()),
            ip_allowlist: self.ip_allowlist.flatten().unwrap_or_default(),
            clear_credits: matches!(&self.credits, Some(None)),
            credits: self.credits.flatten().map(CreditsBody::into_proto),
        }
    }
}
