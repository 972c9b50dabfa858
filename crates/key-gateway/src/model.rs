//! The JSON shapes of the REST API (camelCase, as in the product docs), and their translation
//! from the protobuf messages.

use key_proto::v1;
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;

fn time(ts: Option<&Timestamp>) -> Option<String> {
    ts.map(ToString::to_string)
}

fn environment_name(value: i32) -> &'static str {
    match v1::Environment::try_from(value) {
        Ok(v1::Environment::Test) => "test",
        _ => "live",
    }
}

fn key_type_name(value: i32) -> &'static str {
    match v1::KeyType::try_from(value) {
        Ok(v1::KeyType::Personal) => "personal",
        _ => "organization",
    }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn state_name(value: i32) -> &'static str {
    match v1::KeyState::try_from(value) {
        Ok(v1::KeyState::Expired) => "expired",
        Ok(v1::KeyState::Revoked) => "revoked",
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
    /// `active`, `expired` or `revoked`.
    #[schema(example = "active")]
    state: String,
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
}

/// A rate limit: `requests` per `per` (`second`, `minute` or `hour`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RateLimitJson {
    /// 1 to 1,000,000.
    #[schema(example = 100)]
    pub(crate) requests: u32,
    /// `second`, `minute` or `hour`.
    #[schema(example = "minute")]
    pub(crate) per: String,
}

impl RateLimitJson {
    pub(crate) fn from_proto(limits: Vec<v1::RateLimit>) -> Vec<RateLimitJson> {
        limits
            .into_iter()
            .map(|limit| RateLimitJson {
                requests: limit.requests,
                per: match v1::RatePeriod::try_from(limit.per) {
                    Ok(v1::RatePeriod::Second) => "second",
                    Ok(v1::RatePeriod::Minute) => "minute",
                    Ok(v1::RatePeriod::Hour) => "hour",
                    _ => "unspecified",
                }
                .to_owned(),
            })
            .collect()
    }

    /// The limits for a request; an unknown period travels as unspecified, which the service
    /// refuses with the field's name.
    pub(crate) fn into_proto(limits: Vec<RateLimitJson>) -> Vec<v1::RateLimit> {
        limits
            .into_iter()
            .map(|limit| v1::RateLimit {
                requests: limit.requests,
                per: match limit.per.as_str() {
                    "second" => v1::RatePeriod::Second,
                    "minute" => v1::RatePeriod::Minute,
                    "hour" => v1::RatePeriod::Hour,
                    _ => v1::RatePeriod::Unspecified,
                }
                .into(),
            })
            .collect()
    }
}

impl From<v1::ApiKey> for ApiKeyJson {
    fn from(key: v1::ApiKey) -> Self {
        ApiKeyJson {
            created_at: time(key.create_time.as_ref()).unwrap_or_default(),
            expires_at: time(key.expire_time.as_ref()),
            revoked_at: time(key.revoke_time.as_ref()),
            revoke_reason: (!key.revoke_reason.is_empty()).then_some(key.revoke_reason),
            last_used_at: time(key.last_used_time.as_ref()),
            state: state_name(key.state).to_owned(),
            environment: environment_name(key.environment).to_owned(),
            id: key.id,
            organization_id: key.organization_id,
            name: key.name,
            scopes: key.scopes,
            redacted_key: key.redacted_key,
            scoped: key.scoped,
            rotated_from_id: (!key.rotated_from_id.is_empty()).then_some(key.rotated_from_id),
            rotated_to_id: (!key.rotated_to_id.is_empty()).then_some(key.rotated_to_id),
            rotation_due: key.rotation_due,
            key_type: key_type_name(key.key_type).to_owned(),
            member_id: non_empty(key.member_id),
            operator: key.operator,
            rate_limits: RateLimitJson::from_proto(key.rate_limits),
        }
    }
}

/// Returns the record inside an upstream response, which the service always sets.
pub(crate) fn required(key: Option<v1::ApiKey>) -> Result<ApiKeyJson, ApiError> {
    key.map(ApiKeyJson::from)
        .ok_or_else(|| ApiError::new(key_core::ErrorCode::Internal, "internal error"))
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
            api_key: required(response.api_key)?,
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
}

impl From<KeyStateParam> for v1::KeyState {
    fn from(state: KeyStateParam) -> Self {
        match state {
            KeyStateParam::Active => v1::KeyState::Active,
            KeyStateParam::Expired => v1::KeyState::Expired,
            KeyStateParam::Revoked => v1::KeyState::Revoked,
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

/// A scope name, in the schema only: the list is key-core's, and the service, not the gateway,
/// judges the names a client sends.
#[derive(Debug)]
pub(crate) struct ScopeName;

impl utoipa::PartialSchema for ScopeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(key_core::Scope::ALL.map(key_core::Scope::as_str)))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// Body of `DELETE /api/api-keys/{id}` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// Why the key is revoked, for the record.
    pub(crate) reason: Option<String>,
}

/// The principal behind a key that passed forward-auth.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrincipalJson {
    pub(crate) key_id: String,
    pub(crate) organization_id: String,
    pub(crate) name: String,
    pub(crate) scopes: Vec<String>,
    /// `live` or `test`.
    pub(crate) environment: String,
    pub(crate) expires_at: Option<String>,
    /// `organization` or `personal`; a personal key's `scopes` are already limited by its
    /// member's current role.
    pub(crate) key_type: String,
    /// For a personal key, its member; null otherwise.
    pub(crate) member_id: Option<String>,
}

impl From<&v1::VerifyKeyResponse> for PrincipalJson {
    fn from(verdict: &v1::VerifyKeyResponse) -> Self {
        PrincipalJson {
            key_id: verdict.key_id.clone(),
            organization_id: verdict.organization_id.clone(),
            name: verdict.name.clone(),
            scopes: verdict.scopes.clone(),
            environment: environment_name(verdict.environment).to_owned(),
            expires_at: time(verdict.expire_time.as_ref()),
            key_type: key_type_name(verdict.key_type).to_owned(),
            member_id: non_empty(verdict.member_id.clone()),
        }
    }
}

/// Liveness and readiness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthJson {
    /// `ok` or `ready`.
    pub(crate) status: String,
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
            api_key: required(response.api_key)?,
            rotated_key: required(response.rotated_key)?,
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
        }
    }
}
