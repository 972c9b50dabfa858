//! `/api/webhook-endpoints` and `/api/webhook-deliveries`: create, list and delete webhook
//! endpoints, rotate their signing secret, and list the deliveries of alert events with their
//! attempts; with their JSON shapes.

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
    json::{non_empty, time},
    upstream::{Upstream, forward, required},
};

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Registers an HTTPS endpoint for alert events. Its signing secret is in this response only.
#[utoipa::path(
    post, path = "/api/webhook-endpoints", tag = "webhooks",
    request_body = CreateWebhookEndpointBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedWebhookEndpointJson),
        (status = 400, description = "Malformed request; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 409, description = "The organization has its 20 webhook endpoints already", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn create_webhook_endpoint(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateWebhookEndpointBody>,
) -> Result<(StatusCode, Json<CreatedWebhookEndpointJson>), ApiError> {
    let response = upstream
        .keys
        .clone()
        .create_webhook_endpoint(forward(&headers, body.into_proto()))
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhookEndpointJson {
            webhook_endpoint: WebhookEndpointJson::from(required(response.webhook_endpoint)?),
            signing_secret: response.signing_secret,
        }),
    ))
}

/// Lists the organization's webhook endpoints, oldest first.
#[utoipa::path(
    get, path = "/api/webhook-endpoints", tag = "webhooks",
    params(ListWebhookEndpointsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of endpoints", body = WebhookEndpointPageJson),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_webhook_endpoints(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListWebhookEndpointsQuery>,
) -> Result<Json<WebhookEndpointPageJson>, ApiError> {
    let request = v1::ListWebhookEndpointsRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
    };
    let page = upstream
        .keys
        .clone()
        .list_webhook_endpoints(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(WebhookEndpointPageJson {
        data: page
            .webhook_endpoints
            .into_iter()
            .map(WebhookEndpointJson::from)
            .collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// Deletes an endpoint; its pending deliveries are abandoned (failed).
#[utoipa::path(
    delete, path = "/api/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such endpoint in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn delete_webhook_endpoint(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    upstream
        .keys
        .clone()
        .delete_webhook_endpoint(forward(&headers, v1::DeleteWebhookEndpointRequest { id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces an endpoint's signing secret. The new secret is in this response only; the old one
/// stops signing at once.
#[utoipa::path(
    post, path = "/api/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint and its new secret", body = CreatedWebhookEndpointJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such endpoint in the organization", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn rotate_webhook_secret(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    IdPath(id): IdPath,
) -> Result<Json<CreatedWebhookEndpointJson>, ApiError> {
    let response = upstream
        .keys
        .clone()
        .rotate_webhook_secret(forward(&headers, v1::RotateWebhookSecretRequest { id }))
        .await?
        .into_inner();
    Ok(Json(CreatedWebhookEndpointJson {
        webhook_endpoint: WebhookEndpointJson::from(required(response.webhook_endpoint)?),
        signing_secret: response.signing_secret,
    }))
}

/// Lists deliveries of alert events to the organization's endpoints, newest first, each with
/// its attempts.
#[utoipa::path(
    get, path = "/api/webhook-deliveries", tag = "webhooks",
    params(ListWebhookDeliveriesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries", body = WebhookDeliveryPageJson),
        (status = 400, description = "Malformed query; the message names the field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired caller key", body = ErrorBody),
        (status = 403, description = "The caller key lacks `admin`", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn list_webhook_deliveries(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListWebhookDeliveriesQuery>,
) -> Result<Json<WebhookDeliveryPageJson>, ApiError> {
    let request = v1::ListWebhookDeliveriesRequest {
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
        webhook_endpoint_id: query.endpoint_id.unwrap_or_default(),
        event_id: query.event_id.unwrap_or_default(),
        state: query
            .state
            .map_or(v1::DeliveryState::Unspecified, v1::DeliveryState::from)
            .into(),
    };
    let page = upstream
        .keys
        .clone()
        .list_webhook_deliveries(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(WebhookDeliveryPageJson {
        data: page
            .webhook_deliveries
            .into_iter()
            .map(WebhookDeliveryJson::from)
            .collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

/// The body of `POST /api/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateWebhookEndpointBody {
    /// An https URL (http only where the server allows it), at most 2048 characters, without
    /// credentials.
    #[schema(example = "https://ops.example.com/keyrack-events")]
    url: String,
    /// At most 200 characters.
    #[schema(example = "Alerts to the ops channel")]
    description: Option<String>,
    /// How deliveries are signed, for good: `keyrack` (`Keyrack-Signature`, the default) or
    /// `standard` (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`).
    signing: Option<SigningName>,
}

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SigningName {
    /// `Keyrack-Signature: t=…,v1=<hex>`.
    Keyrack,
    /// Standard Webhooks (standardwebhooks.com).
    Standard,
}

impl CreateWebhookEndpointBody {
    pub(crate) fn into_proto(self) -> v1::CreateWebhookEndpointRequest {
        let signing = match self.signing {
            None => v1::WebhookSigning::Unspecified,
            Some(SigningName::Keyrack) => v1::WebhookSigning::Keyrack,
            Some(SigningName::Standard) => v1::WebhookSigning::Standard,
        };
        v1::CreateWebhookEndpointRequest {
            url: self.url,
            description: self.description.unwrap_or_default(),
            signing: signing.into(),
        }
    }
}

/// A webhook endpoint. Its signing secret is never listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookEndpointJson {
    id: String,
    #[schema(example = "https://ops.example.com/keyrack-events")]
    url: String,
    description: String,
    /// RFC 3339.
    created_at: Option<String>,
    /// RFC 3339: when its signing secret was last set.
    secret_rotated_at: Option<String>,
    /// How its deliveries are signed.
    signing: SigningName,
}

impl From<v1::WebhookEndpoint> for WebhookEndpointJson {
    fn from(endpoint: v1::WebhookEndpoint) -> Self {
        WebhookEndpointJson {
            signing: match endpoint.signing() {
                v1::WebhookSigning::Standard => SigningName::Standard,
                v1::WebhookSigning::Keyrack | v1::WebhookSigning::Unspecified => {
                    SigningName::Keyrack
                }
            },
            created_at: time(endpoint.create_time.as_ref()),
            secret_rotated_at: time(endpoint.secret_rotate_time.as_ref()),
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description,
        }
    }
}

/// An endpoint and, this once, its signing secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedWebhookEndpointJson {
    webhook_endpoint: WebhookEndpointJson,
    /// Verifies the deliveries' signatures (`whsec_…`; for `standard` endpoints, base64 after
    /// the prefix). Shown only here: store it now.
    #[schema(example = "whsec_…")]
    signing_secret: String,
}

/// One page of endpoints, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookEndpointPageJson {
    data: Vec<WebhookEndpointJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}

/// Query of `GET /api/webhook-endpoints`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListWebhookEndpointsQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
}

/// A delivery state, as a filter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DeliveryStateParam {
    Pending,
    Succeeded,
    Failed,
}

impl From<DeliveryStateParam> for v1::DeliveryState {
    fn from(state: DeliveryStateParam) -> Self {
        match state {
            DeliveryStateParam::Pending => v1::DeliveryState::Pending,
            DeliveryStateParam::Succeeded => v1::DeliveryState::Succeeded,
            DeliveryStateParam::Failed => v1::DeliveryState::Failed,
        }
    }
}

/// Query of `GET /api/webhook-deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListWebhookDeliveriesQuery {
    /// Default 50; more than 1000 means 1000.
    #[param(minimum = 0)]
    page_size: Option<i32>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
    /// Only deliveries to this endpoint.
    endpoint_id: Option<String>,
    /// Only deliveries of this event.
    event_id: Option<String>,
    /// Only deliveries in this state.
    state: Option<DeliveryStateParam>,
}

/// One POST of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryAttemptJson {
    /// RFC 3339.
    attempted_at: Option<String>,
    /// The HTTP status answered; 0 when none (connection failed, timed out).
    #[schema(example = 500)]
    status_code: i32,
    /// Why it failed; null when it succeeded.
    error: Option<String>,
    /// How long it took, in milliseconds.
    duration_ms: i64,
}

/// One event's delivery to one endpoint, with its attempts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookDeliveryJson {
    id: String,
    /// The event delivered; also the idempotency id sent as `Keyrack-Event-Id`.
    event_id: String,
    webhook_endpoint_id: String,
    /// `pending`, `succeeded` or `failed`.
    #[schema(example = "pending")]
    state: String,
    /// RFC 3339: when the next attempt is due, while pending.
    next_attempt_at: Option<String>,
    attempts: Vec<DeliveryAttemptJson>,
    /// RFC 3339.
    created_at: Option<String>,
}

impl From<v1::WebhookDelivery> for WebhookDeliveryJson {
    fn from(delivery: v1::WebhookDelivery) -> Self {
        let state = match delivery.state() {
            v1::DeliveryState::Pending => "pending",
            v1::DeliveryState::Succeeded => "succeeded",
            v1::DeliveryState::Failed => "failed",
            v1::DeliveryState::Unspecified => "unspecified",
        };
        WebhookDeliveryJson {
            state: state.to_owned(),
            next_attempt_at: time(delivery.next_attempt_time.as_ref()),
            created_at: time(delivery.create_time.as_ref()),
            attempts: delivery
                .attempts
                .into_iter()
                .map(|attempt| DeliveryAttemptJson {
                    attempted_at: time(attempt.attempt_time.as_ref()),
                    status_code: attempt.status_code,
                    error: non_empty(attempt.error),
                    duration_ms: attempt.duration.map_or(0, |duration| {
                        duration.seconds * 1000 + i64::from(duration.nanos / 1_000_000)
                    }),
                })
                .collect(),
            id: delivery.id,
            event_id: delivery.event_id,
            webhook_endpoint_id: delivery.webhook_endpoint_id,
        }
    }
}

/// One page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookDeliveryPageJson {
    data: Vec<WebhookDeliveryJson>,
    /// Pass as `pageToken` for the next page; null on the last page.
    next_page_token: Option<String>,
}
