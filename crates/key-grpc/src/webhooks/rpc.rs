//! The webhook RPCs: CreateWebhookEndpoint, ListWebhookEndpoints, DeleteWebhookEndpoint,
//! RotateWebhookSecret and ListWebhookDeliveries. Each first asks the permission table for
//! `Action::ManageWebhooks` (admin).
//!
//! A signing secret's plaintext exists once, in the create or rotate response: it is drawn here,
//! sealed for the store, and dropped. Another organization's endpoint is `NOT_FOUND`, exactly
//! like one that does not exist.
//!
//! Create, delete and rotate write their audit event in the change's own transaction. The event
//! names the endpoint by id only, so the log never holds a secret.

use chrono::{DateTime, Utc};
use key_core::{
    Action, AuditAction, AuditEvent, AuditOutcome, DeliveryState, Error, SigningSecret,
    WebhookSecretCipher, WebhookUrl, parse_webhook_description,
};
use key_proto::v1;
use key_store::{DeliveryFilter, NewWebhookEndpoint, WebhookDelivery, WebhookEndpoint};
use tonic::{Response, Status};
use uuid::Uuid;

use crate::{
    Actor, KeyManager, Principal, RequestContext,
    audit::audit_event,
    auth::authorize,
    convert::{duration, timestamp},
    paging::Page,
    status_from_error,
};

type Reply<T> = Result<Response<T>, Status>;

/// CreateWebhookEndpoint: see the proto.
pub(crate) async fn create_webhook_endpoint(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::CreateWebhookEndpointRequest,
) -> Reply<v1::CreateWebhookEndpointResponse> {
    authorize(manager, caller, context, Action::ManageWebhooks, None).await?;
    let url = WebhookUrl::parse(&request.url, manager.webhook_settings().allow_http)
        .map_err(status_from_error)?;
    let description = parse_webhook_description(&request.description).map_err(status_from_error)?;
    let id = Uuid::now_v7();
    let (secret, sealed_secret) = draw_secret(manager, id).map_err(status_from_error)?;
    let now = manager.now();
    let audit = endpoint_event(caller, context, AuditAction::WebhookEndpointCreate, id, now);
    let endpoint = manager
        .store()
        .insert_webhook_endpoint(
            NewWebhookEndpoint {
                id,
                organization_id: caller.organization_id,
                url: url.as_str().to_owned(),
                description,
                sealed_secret,
                created_at: now,
            },
            &audit,
        )
        .await
        .map_err(|e| status_from_error(e.into()))?;
    tracing::info!(webhook_endpoint_id = %id, organization_id = %caller.organization_id, "webhook endpoint created");
    Ok(Response::new(v1::CreateWebhookEndpointResponse {
        webhook_endpoint: Some(endpoint_to_proto(&endpoint)),
        signing_secret: secret.expose().to_owned(),
    }))
}

/// ListWebhookEndpoints: see the proto. Live endpoints, oldest first.
pub(crate) async fn list_webhook_endpoints(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::ListWebhookEndpointsRequest,
) -> Reply<v1::ListWebhookEndpointsResponse> {
    authorize(manager, caller, context, Action::ManageWebhooks, None).await?;
    let page = Page::parse(request.page_size, &request.page_token).map_err(status_from_error)?;
    let mut endpoints = manager
        .store()
        .list_webhook_endpoints(caller.organization_id, page.after, page.fetch_limit())
        .await
        .map_err(|e| status_from_error(e.into()))?;
    let next_page_token = page.finish(&mut endpoints, |endpoint| endpoint.id);
    Ok(Response::new(v1::ListWebhookEndpointsResponse {
        webhook_endpoints: endpoints.iter().map(endpoint_to_proto).collect(),
        next_page_token,
    }))
}

/// DeleteWebhookEndpoint: see the proto. Its pending deliveries become failed, in the same
/// transaction, so no worker POSTs to it afterwards.
pub(crate) async fn delete_webhook_endpoint(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::DeleteWebhookEndpointRequest,
) -> Reply<v1::DeleteWebhookEndpointResponse> {
    authorize(manager, caller, context, Action::ManageWebhooks, None).await?;
    let id = endpoint_id("id", &request.id).map_err(status_from_error)?;
    let now = manager.now();
    let audit = endpoint_event(caller, context, AuditAction::WebhookEndpointDelete, id, now);
    let deleted = manager
        .store()
        .delete_webhook_endpoint(caller.organization_id, id, now, &audit)
        .await
        .map_err(|e| status_from_error(e.into()))?;
    if !deleted {
        return Err(status_from_error(Error::NotFound("webhook endpoint")));
    }
    tracing::info!(webhook_endpoint_id = %id, organization_id = %caller.organization_id, "webhook endpoint deleted");
    Ok(Response::new(v1::DeleteWebhookEndpointResponse {}))
}

/// RotateWebhookSecret: see the proto. The old secret stops signing at once: attempts made
/// after the rotation carry one signature, under the new secret.
pub(crate) async fn rotate_webhook_secret(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::RotateWebhookSecretRequest,
) -> Reply<v1::RotateWebhookSecretResponse> {
    authorize(manager, caller, context, Action::ManageWebhooks, None).await?;
    let id = endpoint_id("id", &request.id).map_err(status_from_error)?;
    let (secret, sealed_secret) = draw_secret(manager, id).map_err(status_from_error)?;
    let now = manager.now();
    let audit = endpoint_event(caller, context, AuditAction::WebhookSecretRotate, id, now);
    let endpoint = manager
        .store()
        .rotate_webhook_secret(caller.organization_id, id, sealed_secret, now, &audit)
        .await
        .map_err(|e| status_from_error(e.into()))?
        .ok_or_else(|| status_from_error(Error::NotFound("webhook endpoint")))?;
    tracing::info!(webhook_endpoint_id = %id, organization_id = %caller.organization_id, "webhook signing secret rotated");
    Ok(Response::new(v1::RotateWebhookSecretResponse {
        webhook_endpoint: Some(endpoint_to_proto(&endpoint)),
        signing_secret: secret.expose().to_owned(),
    }))
}

/// ListWebhookDeliveries: see the proto. Newest first, each with its attempts.
pub(crate) async fn list_webhook_deliveries(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    request: v1::ListWebhookDeliveriesRequest,
) -> Reply<v1::ListWebhookDeliveriesResponse> {
    authorize(manager, caller, context, Action::ManageWebhooks, None).await?;
    let (page, filter) = parse_delivery_query(&request).map_err(status_from_error)?;
    let mut deliveries = manager
        .store()
        .list_webhook_deliveries(
            caller.organization_id,
            &filter,
            page.after,
            page.fetch_limit(),
        )
        .await
        .map_err(|e| status_from_error(e.into()))?;
    let next_page_token = page.finish(&mut deliveries, |delivery| delivery.id);
    Ok(Response::new(v1::ListWebhookDeliveriesResponse {
        webhook_deliveries: deliveries.iter().map(delivery_to_proto).collect(),
        next_page_token,
    }))
}

fn parse_delivery_query(
    request: &v1::ListWebhookDeliveriesRequest,
) -> Result<(Page, DeliveryFilter), Error> {
    let page = Page::parse(request.page_size, &request.page_token)?;
    let endpoint_id = match request.webhook_endpoint_id.as_str() {
        "" => None,
        id => Some(endpoint_id("webhook_endpoint_id", id)?),
    };
    let event_id = match request.event_id.as_str() {
        "" => None,
        id => Some(Uuid::parse_str(id).map_err(|_| Error::InvalidArgument {
            field: "event_id",
            message: format!("{id:?} is not an event id"),
        })?),
    };
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
    Ok((
        page,
        DeliveryFilter {
            endpoint_id,
            event_id,
            state,
        },
    ))
}

/// The audit event of a change by `caller` to the endpoint `id`. It names the endpoint and
/// nothing else about it: never its secret (plaintext or sealed), nor its URL.
fn endpoint_event(
    caller: &Principal,
    context: &RequestContext,
    action: AuditAction,
    id: Uuid,
    now: DateTime<Utc>,
) -> AuditEvent {
    audit_event(
        &Actor::Key(caller.clone()),
        Some(caller.organization_id),
        action,
        id.to_string(),
        AuditOutcome::Success,
        None,
        context,
        now,
    )
}

/// A new signing secret for the endpoint `id`, and its sealed form for the store.
fn draw_secret(manager: &KeyManager, id: Uuid) -> Result<(SigningSecret, Vec<u8>), Error> {
    let secret = SigningSecret::generate(manager.random())?;
    let sealed = WebhookSecretCipher::new(manager.pepper())?.seal(&secret, id, manager.random())?;
    Ok((secret, sealed))
}

fn endpoint_id(field: &'static str, value: &str) -> Result<Uuid, Error> {
    if value.is_empty() {
        return Err(Error::InvalidArgument {
            field,
            message: "required".to_owned(),
        });
    }
    Uuid::parse_str(value).map_err(|_| Error::InvalidArgument {
        field,
        message: format!("{value:?} is not a webhook endpoint id"),
    })
}

fn endpoint_to_proto(endpoint: &WebhookEndpoint) -> v1::WebhookEndpoint {
    v1::WebhookEndpoint {
        id: endpoint.id.to_string(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        create_time: Some(timestamp(endpoint.created_at)),
        secret_rotate_time: Some(timestamp(endpoint.secret_rotated_at)),
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
