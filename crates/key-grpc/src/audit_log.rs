//! ListAuditEvents and its conversions.

use key_core::{AuditEvent, AuditOutcome, Error};
use key_proto::v1;
use key_service::{Application, AuditQuery, PageRequest};
use tonic::Request;
use uuid::Uuid;

use crate::{
    auth::requester,
    convert::{optional_time, timestamp},
};

pub(crate) async fn list_audit_events(
    app: &Application,
    request: Request<v1::ListAuditEventsRequest>,
) -> Result<v1::ListAuditEventsResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let query = AuditQuery {
        start: optional_time("start_time", request.start_time.as_ref())?,
        end: optional_time("end_time", request.end_time.as_ref())?,
        page: PageRequest {
            page_size: request.page_size,
            page_token: request.page_token,
        },
        target: request.target,
        actor_key_id: request.actor_key_id,
        action: request.action,
    };
    let listed = app.audit.list(&by, query).await?;
    Ok(v1::ListAuditEventsResponse {
        audit_events: listed.items.iter().map(audit_event_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

fn audit_event_to_proto(event: &AuditEvent) -> v1::AuditEvent {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let id = |value: Option<Uuid>| value.map(|id| id.to_string()).unwrap_or_default();
    v1::AuditEvent {
        id: event.id.to_string(),
        time: Some(timestamp(event.time)),
        organization_id: id(event.organization_id),
        actor_key_id: id(event.actor_key_id),
        actor_member_id: id(event.actor_member_id),
        actor_type: event.actor_type.as_str().to_owned(),
        action: event.action.as_str().to_owned(),
        target: event.target.clone(),
        outcome: match event.outcome {
            AuditOutcome::Success => v1::AuditOutcome::Success,
            AuditOutcome::Denied => v1::AuditOutcome::Denied,
        }
        .into(),
        reason: text(&event.reason),
        client_address: text(&event.client_address),
        request_id: text(&event.request_id),
    }
}
