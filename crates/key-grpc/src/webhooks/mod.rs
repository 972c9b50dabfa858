//! Webhook endpoints, and the delivery of alert events to them: signed HTTPS POSTs, retried with
//! exponential backoff for at least 24 hours. (Being built: the handlers below answer
//! UNIMPLEMENTED until then.)

use key_proto::v1;
use tonic::{Response, Status};

use crate::{KeyManager, Principal, RequestContext};

type Reply<T> = Result<Response<T>, Status>;

pub(crate) async fn create_webhook_endpoint(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::CreateWebhookEndpointRequest,
) -> Reply<v1::CreateWebhookEndpointResponse> {
    Err(Status::unimplemented(
        "CreateWebhookEndpoint is not built yet",
    ))
}

pub(crate) async fn list_webhook_endpoints(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::ListWebhookEndpointsRequest,
) -> Reply<v1::ListWebhookEndpointsResponse> {
    Err(Status::unimplemented(
        "ListWebhookEndpoints is not built yet",
    ))
}

pub(crate) async fn delete_webhook_endpoint(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::DeleteWebhookEndpointRequest,
) -> Reply<v1::DeleteWebhookEndpointResponse> {
    Err(Status::unimplemented(
        "DeleteWebhookEndpoint is not built yet",
    ))
}

pub(crate) async fn rotate_webhook_secret(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::RotateWebhookSecretRequest,
) -> Reply<v1::RotateWebhookSecretResponse> {
    Err(Status::unimplemented(
        "RotateWebhookSecret is not built yet",
    ))
}

pub(crate) async fn list_webhook_deliveries(
    _manager: &KeyManager,
    _caller: &Principal,
    _context: &RequestContext,
    _request: v1::ListWebhookDeliveriesRequest,
) -> Reply<v1::ListWebhookDeliveriesResponse> {
    Err(Status::unimplemented(
        "ListWebhookDeliveries is not built yet",
    ))
}
