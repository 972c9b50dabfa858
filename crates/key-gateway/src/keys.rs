//! `/api/api-keys`: create, list, get, revoke, rotate and update keys.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use key_proto::v1;

use crate::{
    ApiError,
    body::{IdPath, JsonBody, OptionalJsonBody, QueryParams},
    error::ErrorBody,
    model::{
        ApiKeyJson, CreateKeyBody, CreatedKeyJson, KeyPageJson, ListKeysQuery, RevokeBody,
        RotateBody, RotatedKeyJson, UpdateKeyBody, required,
    },
    upstream::{Upstream, forward},
};

/// Creates a key. The plaintext `key` is in this response only.
#[utoipa::path(
    post, path = "/api/api-keys", tag = "keys",
    request_body = CreateKeyBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedKeyJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "Not allowed: an organization key, or another member's personal key, needs `admin`; a personal key stays within the member's role and the caller's own scopes", body = ErrorBody),
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
        next_page_token: (!page.next_page_token.is_empty()).then_some(page.next_page_token),
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
    Ok(Json(required(response.into_inner().api_key)?))
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
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`", body = ErrorBody),
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
    let request = v1::RevokeKeyRequest {
        id,
        reason: body.reason.unwrap_or_default(),
    };
    let response = upstream
        .keys
        .clone()
        .revoke_key(forward(&headers, request))
        .await?;
    Ok(Json(required(response.into_inner().api_key)?))
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
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`", body = ErrorBody),
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
        (status = 403, description = "Not the caller's own personal key, and the caller lacks `admin`", body = ErrorBody),
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
    Ok(Json(required(response.into_inner().api_key)?))
}
