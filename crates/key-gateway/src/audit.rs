//! `/api/audit-events`: the organization's audit log, newest first, and its JSON shapes.

use axum::{Json, extract::State, http::HeaderMap};
use key_proto::v1;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    ApiError,
    body::QueryParams,
    error::ErrorBody,
    json::{non_empty, time},
    upstream::{Upstream, forward},
    usage::timestamp,
};

/// Lists the organization's audit events, newest first: key creations and revocations, and
/// refused admin calls. Events never hold key material.
#[utoipa::path(
    get, path = "/api/audit-events", tag = "audit",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit events", body = AuditPageJson),
        (status = 400, description = "Malformed query; the message names the parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_audit_events(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPageJson>, ApiError> {
    let request = v1::ListAuditEventsRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
        target: query.target.unwrap_or_default(),
        actor_key_id: query.actor_key_id.unwrap_or_default(),
        action: query.action.unwrap_or_default(),
        start_time: timestamp("from", query.from.as_deref())?,
        end_time: timestamp("to", query.to.as_deref())?,
    };
    let page = upstream
        .keys
        .clone()
        .list_audit_events(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(AuditPageJson {
        data: page
            .audit_events
            .into_iter()
            .map(AuditEventJson::from)
            .collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// Query of `GET /api/audit-events`; every filter narrows the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
    /// Only events about this target: a key, organization, member or webhook endpoint id, or a
    /// refused call's gRPC method.
    target: Option<String>,
    /// Only events by this key.
    actor_key_id: Option<String>,
    /// Only events of this action.
    #[param(value_type = Option<AuditActionName>)]
    action: Option<String>,
    /// Only events at or after this time, RFC 3339.
    from: Option<String>,
    /// Only events before this time, RFC 3339.
    to: Option<String>,
}

/// An action name, in the schema only: the list is key-proto's, and the service, not the
/// gateway, judges the name a client sends.
#[derive(Debug)]
pub(crate) struct AuditActionName;

impl utoipa::PartialSchema for AuditActionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(key_proto::AUDIT_ACTIONS))
            .into()
    }
}

impl ToSchema for AuditActionName {}

/// One page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditPageJson {
    data: Vec<AuditEventJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}

/// One entry of the append-only audit log. It never holds key material.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEventJson {
    id: String,
    /// When it happened, RFC 3339.
    time: String,
    /// Null when the caller's key was unknown.
    organization_id: Option<String>,
    /// The caller's key; null for an unknown key or an operator command.
    actor_key_id: Option<String>,
    /// For a person signed in to the console without a key, their member.
    actor_member_id: Option<String>,
    /// `key`, `member`, `operator` or `anonymous`.
    #[schema(example = "key")]
    actor_type: String,
    /// One of the actions the `action` filter accepts, e.g. `key.create`, `alert_rules.update`,
    /// `webhook_endpoint.rotate_secret` or `auth.denied`.
    #[schema(example = "key.create")]
    action: String,
    /// A key, organization, member or webhook endpoint id, or a refused call's gRPC method.
    target: String,
    /// `success` or `denied`.
    #[schema(example = "success")]
    outcome: String,
    /// For a denial, the platform error code, e.g. `insufficient_scope`.
    reason: Option<String>,
    /// The caller's address as the service saw it, with any X-Forwarded-For claim.
    client_address: Option<String>,
    /// The request's `X-Request-Id`.
    request_id: Option<String>,
}

impl From<v1::AuditEvent> for AuditEventJson {
    fn from(event: v1::AuditEvent) -> Self {
        let outcome = match v1::AuditOutcome::try_from(event.outcome) {
            Ok(v1::AuditOutcome::Success) => "success",
            Ok(v1::AuditOutcome::Denied) => "denied",
            _ => "unspecified",
        };
        AuditEventJson {
            time: time(event.time.as_ref()).unwrap_or_default(),
            outcome: outcome.to_owned(),
            id: event.id,
            organization_id: non_empty(event.organization_id),
            actor_key_id: non_empty(event.actor_key_id),
            actor_member_id: non_empty(event.actor_member_id),
            actor_type: event.actor_type,
            action: event.action,
            target: event.target,
            reason: non_empty(event.reason),
            client_address: non_empty(event.client_address),
            request_id: non_empty(event.request_id),
        }
    }
}
