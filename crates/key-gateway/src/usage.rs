//! `/api/api-keys/{id}/usage` and `/api/usage`: a usage series and its summary (totals,
//! success rate, failures by code, distributions by country and by tag, last use), and their
//! JSON shapes.

use std::collections::{BTreeMap, HashMap};

use axum::{
    Json,
    extract::{RawQuery, State},
    http::HeaderMap,
};
use key_proto::v1;
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    ApiError,
    body::IdPath,
    error::ErrorBody,
    json::time,
    upstream::{Upstream, forward},
};

/// Usage of one key.
#[utoipa::path(
    get, path = "/api/api-keys/{id}/usage", tag = "usage",
    params(
        ("id" = String, Path, description = "The key's id"),
        ("from" = Option<String>, Query, description = "Start, RFC 3339, inclusive; default one hour (minute), one day (hour) or 30 days (day) before `to`"),
        ("to" = Option<String>, Query, description = "End, RFC 3339, exclusive; default now"),
        ("granularity" = Option<GranularityParam>, Query, description = "Bucket width; default `hour`"),
    ),
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
    IdPath(id): IdPath,
    RawQuery(query): RawQuery,
) -> Result<Json<UsageJson>, ApiError> {
    let query = UsageParams::parse(query.as_deref(), false)?;
    usage(upstream, headers, id, query).await
}

/// Usage of the whole organization, or of the keys named by `key_id`, summed.
#[utoipa::path(
    get, path = "/api/usage", tag = "usage",
    params(
        ("key_id" = Option<Vec<String>>, Query, description = "A key's id; repeat for a set of keys (at most 100), summed. None: the whole organization"),
        ("from" = Option<String>, Query, description = "Start, RFC 3339, inclusive; default one hour (minute), one day (hour) or 30 days (day) before `to`"),
        ("to" = Option<String>, Query, description = "End, RFC 3339, exclusive; default now"),
        ("granularity" = Option<GranularityParam>, Query, description = "Bucket width; default `hour`"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The usage of the organization or of the keys", body = UsageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `analytics:read` (and the keys are not its own personal keys)", body = ErrorBody),
        (status = 404, description = "A key is not in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn organization_usage(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<UsageJson>, ApiError> {
    let query = UsageParams::parse(query.as_deref(), true)?;
    usage(upstream, headers, String::new(), query).await
}

async fn usage(
    upstream: Upstream,
    headers: HeaderMap,
    key_id: String,
    query: UsageParams,
) -> Result<Json<UsageJson>, ApiError> {
    let request = v1::ListUsageRequest {
        key_id,
        key_ids: query.key_ids,
        start_time: timestamp("from", query.from.as_deref())?,
        end_time: timestamp("to", query.to.as_deref())?,
        granularity: query
            .granularity
            .map_or(v1::Granularity::Hour, v1::Granularity::from)
            .into(),
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

/// The width of a usage bucket.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GranularityParam {
    Minute,
    Hour,
    Day,
}

impl GranularityParam {
    fn parse(value: &str) -> Option<GranularityParam> {
        match value {
            "minute" => Some(GranularityParam::Minute),
            "hour" => Some(GranularityParam::Hour),
            "day" => Some(GranularityParam::Day),
            _ => None,
        }
    }
}

impl From<GranularityParam> for v1::Granularity {
    fn from(granularity: GranularityParam) -> Self {
        match granularity {
            GranularityParam::Minute => v1::Granularity::Minute,
            GranularityParam::Hour => v1::Granularity::Hour,
            GranularityParam::Day => v1::Granularity::Day,
        }
    }
}

/// The query of the usage endpoints. Read by hand rather than through serde, because
/// `key_id` repeats (`?key_id=…&key_id=…`), which the URL-encoded deserializer cannot express.
#[derive(Debug, Default)]
struct UsageParams {
    key_ids: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    granularity: Option<GranularityParam>,
}

impl UsageParams {
    /// Parses `query`; `key_id` is accepted only where a set of keys makes sense (`/api/usage`).
    /// Unknown or repeated parameters are refused, naming the parameter.
    fn parse(query: Option<&str>, with_key_ids: bool) -> Result<UsageParams, ApiError> {
        let mut params = UsageParams::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let once = |given: bool| {
                if given {
                    Err(ApiError::invalid_request(format!(
                        "invalid query: {name} is given more than once"
                    )))
                } else {
                    Ok(())
                }
            };
            match name.as_ref() {
                "key_id" if with_key_ids => params.key_ids.push(value.into_owned()),
                "from" => {
                    once(params.from.is_some())?;
                    params.from = Some(value.into_owned());
                }
                "to" => {
                    once(params.to.is_some())?;
                    params.to = Some(value.into_owned());
                }
                "granularity" => {
                    once(params.granularity.is_some())?;
                    params.granularity =
                        Some(GranularityParam::parse(&value).ok_or_else(|| {
                            ApiError::invalid_request(format!(
                                "invalid query: granularity: unknown value {value:?}, expected `minute`, `hour` or `day`"
                            ))
                        })?);
                }
                other => {
                    return Err(ApiError::invalid_request(format!(
                        "invalid query: unknown parameter `{other}`"
                    )));
                }
            }
        }
        Ok(params)
    }
}

/// Sorted, so the JSON is stable.
fn sorted(counts: HashMap<String, i64>) -> BTreeMap<String, i64> {
    counts.into_iter().collect()
}

/// Verifications in one time bucket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageBucketJson {
    start_time: String,
    requests: i64,
    succeeded: i64,
    failed: i64,
    /// Failures by error code, e.g. `{"insufficient_scope": 3}`.
    failed_by_code: BTreeMap<String, i64>,
    /// Verifications by the client's country (ISO 3166-1 alpha-2), e.g. `{"DE": 12}`; left
    /// out when no verification of the bucket had a country.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    by_country: BTreeMap<String, i64>,
    /// Verifications by tag (route or operation), e.g. `{"POST /api/chat": 7}`; left out when
    /// no verification of the bucket had a tag.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    by_tag: BTreeMap<String, i64>,
}

/// Totals and distributions over the whole range.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageSummaryJson {
    request_count: i64,
    success_count: i64,
    failure_count: i64,
    /// successCount / requestCount; null without requests.
    success_rate: Option<f64>,
    failed_by_code: BTreeMap<String, i64>,
    /// The geographic distribution: verifications by the client's country.
    by_country: BTreeMap<String, i64>,
    by_tag: BTreeMap<String, i64>,
    last_used_at: Option<String>,
}

/// Usage of a key, a set of keys, or the organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageJson {
    buckets: Vec<UsageBucketJson>,
    requests: i64,
    succeeded: i64,
    failed: i64,
    /// Succeeded / requests; null without requests.
    success_rate: Option<f64>,
    last_used_at: Option<String>,
    summary: UsageSummaryJson,
}

impl From<v1::ListUsageResponse> for UsageJson {
    fn from(usage: v1::ListUsageResponse) -> Self {
        let summary = usage.summary.unwrap_or_default();
        let requests = usage.total_succeeded + usage.total_failed;
        // Counts far below 2^52 convert exactly.
        #[allow(clippy::cast_precision_loss)]
        let success_rate = (requests > 0).then(|| usage.total_succeeded as f64 / requests as f64);
        UsageJson {
            buckets: usage
                .buckets
                .into_iter()
                .map(|bucket| UsageBucketJson {
                    start_time: time(bucket.start_time.as_ref()).unwrap_or_default(),
                    requests: bucket.succeeded + bucket.failed,
                    succeeded: bucket.succeeded,
                    failed: bucket.failed,
                    failed_by_code: sorted(bucket.failed_by_code),
                    by_country: sorted(bucket.by_country),
                    by_tag: sorted(bucket.by_tag),
                })
                .collect(),
            requests,
            succeeded: usage.total_succeeded,
            failed: usage.total_failed,
            success_rate,
            last_used_at: time(usage.last_used_time.as_ref()),
            summary: UsageSummaryJson {
                request_count: summary.request_count,
                success_count: summary.success_count,
                failure_count: summary.failure_count,
                success_rate: (summary.request_count > 0).then_some(summary.success_rate),
                failed_by_code: sorted(summary.failed_by_code),
                by_country: sorted(summary.by_country),
                by_tag: sorted(summary.by_tag),
                last_used_at: time(summary.last_used_time.as_ref()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_repeat_and_other_parameters_do_not() {
        let params =
            UsageParams::parse(Some("key_id=a&key_id=b&granularity=minute&from=x"), true).unwrap();
        assert_eq!(params.key_ids, ["a", "b"]);
        assert!(matches!(params.granularity, Some(GranularityParam::Minute)));
        assert_eq!(params.from.as_deref(), Some("x"));
        assert!(UsageParams::parse(Some("from=x&from=y"), true).is_err());
        assert!(UsageParams::parse(Some("key_id=a"), false).is_err());
        assert!(UsageParams::parse(Some("granularity=week"), true).is_err());
    }
}
