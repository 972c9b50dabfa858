//! `/api/api-keys/{id}/usage` and `/api/usage`.

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use key_proto::v1;
use prost_types::Timestamp;

use crate::{
    ApiError,
    body::QueryParams,
    error::ErrorBody,
    model::{UsageJson, UsageQuery},
    upstream::{Upstream, forward},
};

/// Usage of one key.
#[utoipa::path(
    get, path = "/api/api-keys/{id}/usage", tag = "usage",
    params(("id" = String, Path, description = "The key's id"), UsageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key's usage", body = UsageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `analytics:read` (and the key is not its own personal key)", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn key_usage(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageJson>, ApiError> {
    usage(upstream, headers, id, query).await
}

/// Usage of the whole organization.
#[utoipa::path(
    get, path = "/api/usage", tag = "usage",
    params(UsageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The organization's usage", body = UsageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `analytics:read`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn organization_usage(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageJson>, ApiError> {
    usage(upstream, headers, String::new(), query).await
}

async fn usage(
    upstream: Upstream,
    headers: HeaderMap,
    key_id: String,
    query: UsageQuery,
) -> Result<Json<UsageJson>, ApiError> {
    let request = v1::ListUsageRequest {
        key_id,
        start_time: timestamp("from", query.from.as_deref())?,
        end_time: timestamp("to", query.to.as_deref())?,
        granularity: query
            .granularity
            .map_or(v1::Granularity::Hour, v1::Granularity::from)
            .into(),
        ..Default::default()
    };
    let response = upstream
        .keys
        .clone()
        .list_usage(forward(&headers, request))
        .await?;
    Ok(Json(UsageJson::from(response.into_inner())))
}

pub(crate) fn timestamp(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|text| {
            text.parse::<Timestamp>().map_err(|_| {
                ApiError::invalid_request(format!(
                    "invalid {field}: {text:?} is not an RFC 3339 timestamp"
                ))
            })
        })
        .transpose()
}
