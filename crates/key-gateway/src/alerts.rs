//! `/api/alerts`, `/api/api-keys/{id}/alerts`, `/api/alerts/test` and `/api/alert-events`: alert
//! rules in the product docs' shape (`{"alerts": {"unusualActivity": true, "highUsage":
//! {"threshold": 10000, "period": "daily"}, "failures": {...}}}`), their test, and the alert
//! events.

use axum::{Json, extract::State, http::HeaderMap};
use key_proto::v1;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError,
    body::{IdPath, JsonBody, QueryParams},
    error::ErrorBody,
    json::{non_empty, time},
    upstream::{Upstream, forward, required},
};

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// The organization's alert rules (Keyrack's defaults until set: unusual activity on, no
/// thresholds).
#[utoipa::path(
    get, path = "/api/alerts", tag = "alerts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The organization's rules and where they come from", body = AlertsJson),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `analytics:read`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get_organization_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
) -> Result<Json<AlertsJson>, ApiError> {
    get(upstream, headers, String::new()).await
}

/// Replaces the organization's alert rules; `{"alerts": null}` resets them to the defaults.
#[utoipa::path(
    put, path = "/api/alerts", tag = "alerts",
    request_body = AlertsBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rules now in force", body = AlertsJson),
        (status = 400, description = "Malformed rules; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn put_organization_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AlertsBody>,
) -> Result<Json<AlertsJson>, ApiError> {
    set(upstream, headers, String::new(), body.alerts).await
}

/// Resets the organization's alert rules to Keyrack's defaults.
#[utoipa::path(
    delete, path = "/api/alerts", tag = "alerts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The defaults, now in force", body = AlertsJson),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn reset_organization_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
) -> Result<Json<AlertsJson>, ApiError> {
    set(upstream, headers, String::new(), None).await
}

/// The alert rules in force for one key: its own override, else its organization's.
#[utoipa::path(
    get, path = "/api/api-keys/{id}/alerts", tag = "alerts",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key's rules and where they come from", body = AlertsJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `analytics:read` (and the key is not its own personal key)", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get_key_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<AlertsJson>, ApiError> {
    get(upstream, headers, id).await
}

/// Sets a key's own alert rules, replacing its organization's whole; `{"alerts": null}` removes
/// them.
#[utoipa::path(
    put, path = "/api/api-keys/{id}/alerts", tag = "alerts",
    params(("id" = String, Path, description = "The key's id")),
    request_body = AlertsBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rules now in force for the key", body = AlertsJson),
        (status = 400, description = "Malformed id or rules; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin` (and the key is not its own personal key)", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn put_key_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<AlertsBody>,
) -> Result<Json<AlertsJson>, ApiError> {
    set(upstream, headers, id, body.alerts).await
}

/// Removes a key's own alert rules: it follows its organization's again.
#[utoipa::path(
    delete, path = "/api/api-keys/{id}/alerts", tag = "alerts",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rules now in force for the key", body = AlertsJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin` (and the key is not its own personal key)", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn reset_key_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<AlertsJson>, ApiError> {
    set(upstream, headers, id, None).await
}

/// Evaluates the rules in force for a key (or the `alerts` given, which are not saved) against
/// its usage in the current period, and sends a `test` event to every webhook endpoint.
#[utoipa::path(
    post, path = "/api/alerts/test", tag = "alerts",
    request_body = TestBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One evaluation per threshold rule, and the test event sent", body = TestJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin` (and the key is not its own personal key)", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "The organization tested its alerts 10 times this minute", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn test_alerts(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<TestBody>,
) -> Result<Json<TestJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .test_alert_rules(forward(&headers, body.into_proto()))
        .await?
        .into_inner();
    let test_event = AlertEventJson::from(required(response.test_event)?);
    Ok(Json(TestJson {
        evaluations: response
            .evaluations
            .into_iter()
            .map(EvaluationJson::from)
            .collect(),
        test_event,
    }))
}

/// Lists the organization's alert events, newest first.
#[utoipa::path(
    get, path = "/api/alert-events", tag = "alerts",
    params(AlertEventsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of alert events", body = AlertEventPageJson),
        (status = 400, description = "Malformed query; the message names the parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `analytics:read` (and the key is not its own personal key)", body = ErrorBody),
        (status = 404, description = "No such key in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_alert_events(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<AlertEventsQuery>,
) -> Result<Json<AlertEventPageJson>, ApiError> {
    let request = v1::ListAlertEventsRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
        key_id: query.key_id.unwrap_or_default(),
        r#type: query
            .r#type
            .map_or(v1::AlertType::Unspecified, AlertTypeName::into_proto)
            .into(),
    };
    let page = upstream
        .keys
        .clone()
        .list_alert_events(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(AlertEventPageJson {
        data: page
            .alert_events
            .into_iter()
            .map(AlertEventJson::from)
            .collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

async fn get(
    upstream: Upstream,
    headers: HeaderMap,
    key_id: String,
) -> Result<Json<AlertsJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .get_alert_rules(forward(&headers, v1::GetAlertRulesRequest { key_id }))
        .await?
        .into_inner();
    Ok(Json(AlertsJson::new(response.rules, response.source)))
}

/// Sets `rules`, or with `None` clears them.
async fn set(
    upstream: Upstream,
    headers: HeaderMap,
    key_id: String,
    rules: Option<AlertRulesJson>,
) -> Result<Json<AlertsJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .set_alert_rules(forward(&headers, set_request(key_id, rules)))
        .await?
        .into_inner();
    Ok(Json(AlertsJson::new(response.rules, response.source)))
}

/// Sets the rules of the organization (`key_id` empty) or of one key; `None` clears them.
pub(crate) fn set_request(
    key_id: String,
    rules: Option<AlertRulesJson>,
) -> v1::SetAlertRulesRequest {
    v1::SetAlertRulesRequest {
        key_id,
        clear: rules.is_none(),
        rules: rules.map(AlertRulesJson::into_proto),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

/// A threshold's period: a UTC clock hour or a UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PeriodName {
    Hourly,
    Daily,
}

/// Fires when a count reaches `threshold` within one `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ThresholdJson {
    /// At least 1.
    #[schema(example = 10000, minimum = 1)]
    threshold: i64,
    period: PeriodName,
}

fn unusual_activity_default() -> bool {
    true
}

/// The docs' `alerts` object. `unusualActivity` defaults to true; an absent or null threshold
/// means no such rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AlertRulesJson {
    /// Alert on a new country, an hour above 10× the trailing 7-day hourly average (and at
    /// least 100 requests), and use after 30 days of silence.
    #[serde(default = "unusual_activity_default")]
    unusual_activity: bool,
    /// Verifications of a key in a period.
    #[serde(default)]
    high_usage: Option<ThresholdJson>,
    /// Failed verifications of a key in a period.
    #[serde(default)]
    failures: Option<ThresholdJson>,
}

impl AlertRulesJson {
    fn into_proto(self) -> v1::AlertRules {
        let threshold = |rule: Option<ThresholdJson>| {
            rule.map(|rule| v1::AlertThreshold {
                threshold: rule.threshold,
                period: match rule.period {
                    PeriodName::Hourly => v1::AlertPeriod::Hourly,
                    PeriodName::Daily => v1::AlertPeriod::Daily,
                }
                .into(),
            })
        };
        v1::AlertRules {
            unusual_activity: self.unusual_activity,
            high_usage: threshold(self.high_usage),
            failures: threshold(self.failures),
        }
    }

    fn from_proto(rules: v1::AlertRules) -> AlertRulesJson {
        let threshold = |rule: Option<v1::AlertThreshold>| {
            rule.map(|rule| ThresholdJson {
                threshold: rule.threshold,
                period: match v1::AlertPeriod::try_from(rule.period) {
                    Ok(v1::AlertPeriod::Hourly) => PeriodName::Hourly,
                    _ => PeriodName::Daily,
                },
            })
        };
        AlertRulesJson {
            unusual_activity: rules.unusual_activity,
            high_usage: threshold(rules.high_usage),
            failures: threshold(rules.failures),
        }
    }
}

/// The body of `PUT /api/alerts` and `PUT /api/api-keys/{id}/alerts`, as in the docs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"alerts": {"unusualActivity": true, "highUsage": {"threshold": 10000, "period": "daily"}, "failures": {"threshold": 100, "period": "hourly"}}}))]
pub(crate) struct AlertsBody {
    /// The new rules; null resets them (to the defaults for the organization, to the
    /// organization's for a key). Required.
    // `Option::deserialize` makes the field required while still accepting null.
    #[serde(deserialize_with = "Option::deserialize")]
    pub(crate) alerts: Option<AlertRulesJson>,
}

/// Rules in force, and where they come from.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertsJson {
    alerts: AlertRulesJson,
    /// `default`, `organization` or `key`.
    #[schema(example = "organization")]
    source: &'static str,
}

impl AlertsJson {
    fn new(rules: Option<v1::AlertRules>, source: i32) -> AlertsJson {
        let source = match v1::AlertRulesSource::try_from(source) {
            Ok(v1::AlertRulesSource::Key) => "key",
            Ok(v1::AlertRulesSource::Organization) => "organization",
            _ => "default",
        };
        AlertsJson {
            alerts: AlertRulesJson::from_proto(rules.unwrap_or_default()),
            source,
        }
    }
}

/// The body of `POST /api/alerts/test`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TestBody {
    /// The key whose current usage is evaluated.
    key_id: String,
    /// Rules to evaluate instead of those in force; nothing is saved.
    #[serde(default)]
    alerts: Option<AlertRulesJson>,
}

impl TestBody {
    pub(crate) fn into_proto(self) -> v1::TestAlertRulesRequest {
        v1::TestAlertRulesRequest {
            key_id: self.key_id,
            rules: self.alerts.map(AlertRulesJson::into_proto),
        }
    }
}

/// What one threshold rule says about the key's usage in the current period.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EvaluationJson {
    /// `high_usage` or `failures`.
    #[schema(example = "high_usage")]
    r#type: &'static str,
    /// Whether it would fire now (reached, and not fired yet this period).
    would_fire: bool,
    /// The count so far in the current period.
    observed: i64,
    threshold: i64,
    /// The current period's start, RFC 3339.
    period_start: String,
    /// Whether it already fired in this period.
    already_fired: bool,
}

impl From<v1::AlertEvaluation> for EvaluationJson {
    fn from(evaluation: v1::AlertEvaluation) -> Self {
        EvaluationJson {
            r#type: type_name(evaluation.r#type),
            would_fire: evaluation.would_fire,
            observed: evaluation.observed,
            threshold: evaluation.threshold,
            period_start: time(evaluation.period_start.as_ref()).unwrap_or_default(),
            already_fired: evaluation.already_fired,
        }
    }
}

/// The answer of `POST /api/alerts/test`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestJson {
    evaluations: Vec<EvaluationJson>,
    /// The `test` event queued for every webhook endpoint.
    test_event: AlertEventJson,
}

/// One alert, as stored and delivered to the webhook endpoints.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertEventJson {
    /// Also the idempotency id of its webhook deliveries.
    id: String,
    organization_id: String,
    /// Null for a test event.
    key_id: Option<String>,
    /// `high_usage`, `failures`, `new_country`, `usage_spike`, `dormant_key_used`,
    /// `key_expiring`, `rotation_due` or `test`.
    #[schema(example = "high_usage")]
    r#type: &'static str,
    #[schema(example = "Key 'ci' made 10000 requests today (threshold 10000)")]
    message: String,
    /// When it fired, RFC 3339.
    created_at: String,
    /// The start of the hour or day it is about (the expiry for `key_expiring`), RFC 3339.
    period_start: String,
    /// The count observed, for thresholds and spikes.
    observed: i64,
    /// The threshold crossed, for thresholds and spikes.
    threshold: i64,
    /// The new country, for `new_country`.
    country: Option<String>,
}

impl From<v1::AlertEvent> for AlertEventJson {
    fn from(event: v1::AlertEvent) -> Self {
        AlertEventJson {
            r#type: type_name(event.r#type),
            created_at: time(event.create_time.as_ref()).unwrap_or_default(),
            period_start: time(event.period_start.as_ref()).unwrap_or_default(),
            id: event.id,
            organization_id: event.organization_id,
            key_id: non_empty(event.key_id),
            message: event.message,
            observed: event.observed,
            threshold: event.threshold,
            country: non_empty(event.country),
        }
    }
}

/// One page of alert events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertEventPageJson {
    data: Vec<AlertEventJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}

/// An alert type's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AlertTypeName {
    HighUsage,
    Failures,
    NewCountry,
    UsageSpike,
    DormantKeyUsed,
    KeyExpiring,
    RotationDue,
    Test,
    KeyLeaked,
}

impl AlertTypeName {
    fn into_proto(self) -> v1::AlertType {
        match self {
            AlertTypeName::HighUsage => v1::AlertType::HighUsage,
            AlertTypeName::Failures => v1::AlertType::Failures,
            AlertTypeName::NewCountry => v1::AlertType::NewCountry,
            AlertTypeName::UsageSpike => v1::AlertType::UsageSpike,
            AlertTypeName::DormantKeyUsed => v1::AlertType::DormantKeyUsed,
            AlertTypeName::KeyExpiring => v1::AlertType::KeyExpiring,
            AlertTypeName::RotationDue => v1::AlertType::RotationDue,
            AlertTypeName::Test => v1::AlertType::Test,
            AlertTypeName::KeyLeaked => v1::AlertType::KeyLeaked,
        }
    }
}

fn type_name(value: i32) -> &'static str {
    match v1::AlertType::try_from(value) {
        Ok(v1::AlertType::HighUsage) => "high_usage",
        Ok(v1::AlertType::Failures) => "failures",
        Ok(v1::AlertType::NewCountry) => "new_country",
        Ok(v1::AlertType::UsageSpike) => "usage_spike",
        Ok(v1::AlertType::DormantKeyUsed) => "dormant_key_used",
        Ok(v1::AlertType::KeyExpiring) => "key_expiring",
        Ok(v1::AlertType::RotationDue) => "rotation_due",
        Ok(v1::AlertType::Test) => "test",
        Ok(v1::AlertType::KeyLeaked) => "key_leaked",
        Ok(v1::AlertType::Unspecified) | Err(_) => "unspecified",
    }
}

/// Query of `GET /api/alert-events`; every filter narrows the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertEventsQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
    /// Only events about this key.
    key_id: Option<String>,
    /// Only events of this type.
    #[param(inline)]
    r#type: Option<AlertTypeName>,
}
