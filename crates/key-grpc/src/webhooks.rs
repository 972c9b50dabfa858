//! The webhook RPCs (CreateWebhookEndpoint, ListWebhookEndpoints, DeleteWebhookEndpoint,
//! RotateWebhookSecret, ListWebhookDeliveries) and their conversions.

use key_core::{DeliveryState, Error, WebhookSigning};
use key_proto::v1;
use key_service::{
    Application, DeliveryQuery, EndpointWithSecret, PageRequest, WebhookDelivery, WebhookEndpoint,
};
use tonic::Request;

use crate::{
    auth::requester,
    convert::{duration, timestamp},
};

pub(crate) async fn create_webhook_endpoint(
    app: &Application,
    request: Request<v1::CreateWebhookEndpointRequest>,
) -> Result<v1::CreateWebhookEndpointResponse, Error> {
    let by = requester(&request)?;
    let request = request.get_ref();
    let signing = match v1::WebhookSigning::try_from(request.signing) {
        Ok(v1::WebhookSigning::Unspecified | v1::WebhookSigning::Keyrack) => {
            WebhookSigning::Keyrack
        }
        Ok(v1::WebhookSigning::Standard) => WebhookSigning::Standard,
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "signing",
                message: format!("unknown signing mode {}", request.signing),
            });
        }
    };
    let created = app
        .webhooks
        .create(&by, &request.url, &request.description, signing)
        .await?;
    let (webhook_endpoint, signing_secret) = with_secret(created);
    Ok(v1::CreateWebhookEndpointResponse {
        webhook_endpoint,
        signing_secret,
    })
}

pub(crate) async fn list_webhook_endpoints(
    app: &Application,
    request: Request<v1::ListWebhookEndpointsRequest>,
) -> Result<v1::ListWebhookEndpointsResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let page = PageRequest {
        page_size: request.page_size,
        page_token: request.page_token,
    };
    let listed = app.webhooks.list(&by, &page).await?;
    Ok(v1::ListWebhookEndpointsResponse {
        webhook_endpoints: listed.items.iter().map(endpoint_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

pub(crate) async fn delete_webhook_endpoint(
    app: &Application,
    request: Request<v1::DeleteWebhookEndpointRequest>,
) -> Result<v1::DeleteWebhookEndpointResponse, Error> {
    let by = requester(&request)?;
    app.webhooks.delete(&by, &request.get_ref().id).await?;
    Ok(v1::DeleteWebhookEndpointResponse {})
}

pub(crate) async fn rotate_webhook_secret(
    app: &Application,
    request: Request<v1::RotateWebhookSecretRequest>,
) -> Result<v1::RotateWebhookSecretResponse, Error> {
    let by = requester(&request)?;
    let rotated = app
        .webhooks
        .rotate_secret(&by, &request.get_ref().id)
        .await?;
    let (webhook_endpoint, signing_secret) = with_secret(rotated);
    Ok(v1::RotateWebhookSecretResponse {
        webhook_endpoint,
        signing_secret,
    })
}

pub(crate) async fn list_webhook_deliveries(
    app: &Application,
    request: Request<v1::ListWebhookDeliveriesRequest>,
) -> Result<v1::ListWebhookDeliveriesResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let state = match v1::DeliveryState::try_from(request.state) {
        Ok(v1::DeliveryState::Unspecified) => None,
        Ok(v1::DeliveryState::Pending) => Some(DeliveryState::Pending),
        Ok(v1::DeliveryState::Succeeded) => Some(DeliveryState::Succeeded),
        Ok(v1::DeliveryState::Failed) => Some(DeliveryState::Failed),
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "state",
                message: format!("{} is not a delivery state", request.state),
            });
        }
    };
    let query = DeliveryQuery {
        page: PageRequest {
            page_size: request.page_size,
            page_token: request.page_token,
        },
        endpoint_id: request.webhook_endpoint_id,
        event_id: request.event_id,
        state,
    };
    let listed = app.webhooks.list_deliveries(&by, query).await?;
    Ok(v1::ListWebhookDeliveriesResponse {
        webhook_deliveries: listed.items.iter().map(delivery_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

/// An endpoint and its secret's plaintext, the one place it is ever shown.
fn with_secret(created: EndpointWithSecret) -> (Option<v1::WebhookEndpoint>, String) {
    (
        Some(endpoint_to_proto(&created.endpoint)),
        created.secret.expose().to_owned(),
    )
}

fn endpoint_to_proto(endpoint: &WebhookEndpoint) -> v1::WebhookEndpoint {
    v1::WebhookEndpoint {
        id: endpoint.id.to_string(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        create_time: Some(timestamp(endpoint.created_at)),
        secret_rotate_time: Some(timestamp(endpoint.secret_rotated_at)),
        signing: match endpoint.signing {
            WebhookSigning::Keyrack => v1::WebhookSigning::Keyrack,
            WebhookSigning::Standard => v1::WebhookSigning::Standard,
        }
        .into(),
    }
}

fn delivery_to_proto(delivery: &WebhookDelivery) -> v1::WebhookDelivery {
    let state = match delivery.state {
        DeliveryState::Pending => v1::DeliveryState::Pending,
        DeliveryState::Succeeded => v1::DeliveryState::Succeeded,
        DeliveryState::Failed => v1::DeliveryState::Failed,
    };
    v1::WebhookDelivery {
        id: delivery.id.to_string(),
        event_id: delivery.event_id.to_string(),
        webhook_endpoint_id: delivery.endpoint_id.to_string(),
        state: state.into(),
        next_attempt_time: delivery.next_attempt_at.map(timestamp),
        attempts: delivery
            .attempts
            .iter()
            .map(|attempt| v1::DeliveryAttempt {
                attempt_time: Some(timestamp(attempt.attempted_at)),
                status_code: attempt.status_code,
                error: attempt.error.clone().unwrap_or_default(),
                duration: Some(duration(chrono::TimeDelta::milliseconds(
                    attempt.duration_ms,
                ))),
            })
            .collect(),
        create_time: Some(timestamp(delivery.created_at)),
    }
}
