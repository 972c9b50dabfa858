//! ListAuditEvents: the caller's organization's audit log, newest first, filtered and paged.

use key_core::{AuditAction, AuditEvent, AuditOutcome, Error};
use key_proto::v1;
use key_store::AuditFilter;
use tonic::{Response, Status};
use uuid::Uuid;

use crate::{
    KeyManager, Principal,
    convert::{from_timestamp, timestamp},
    paging::Page,
    status_from_error,
};

type Reply<T> = Result<Response<T>, Status>;

/// A target is a key id or an RPC method; anything longer matches nothing anyway.
const MAX_TARGET_CHARS: usize = 500;

/// ListAuditEvents: see the proto. Any admin key of the organization may read its log; the
/// handler has already authorized `Action::ReadAuditLog`.
pub(crate) async fn list_audit_events(
    manager: &KeyManager,
    caller: &Principal,
    request: v1::ListAuditEventsRequest,
) -> Reply<v1::ListAuditEventsResponse> {
    let query = Query::parse(request).map_err(status_from_error)?;
    let mut events = manager
        .store()
        .list_audit_events(
            caller.organization_id,
            &query.filter,
            query.page.after,
            query.page.fetch_limit(),
        )
        .await
        .map_err(|e| status_from_error(e.into()))?;
    let next_page_token = query.page.finish(&mut events, |event| event.id);
    Ok(Response::new(v1::ListAuditEventsResponse {
        audit_events: events.iter().map(audit_event_to_proto).collect(),
        next_page_token,
    }))
}

/// A validated ListAuditEvents request.
#[derive(Debug)]
struct Query {
    page: Page,
    filter: AuditFilter,
}

impl Query {
    fn parse(request: v1::ListAuditEventsRequest) -> Result<Query, Error> {
        let invalid =
            |field: &'static str, message: String| Error::InvalidArgument { field, message };
        let page = Page::parse(request.page_size, &request.page_token)?;
        let target = match request.target.as_str() {
            "" => None,
            target if target.chars().count() > MAX_TARGET_CHARS => {
                return Err(invalid(
                    "target",
                    format!("at most {MAX_TARGET_CHARS} characters"),
                ));
            }
            target => Some(target.to_owned()),
        };
        let actor_key_id = match request.actor_key_id.as_str() {
            "" => None,
            id => Some(
                Uuid::parse_str(id)
                    .map_err(|_| invalid("actor_key_id", format!("{id:?} is not a key id")))?,
            ),
        };
        let action = match request.action.as_str() {
            "" => None,
            name => Some(AuditAction::parse(name).ok_or_else(|| {
                let known: Vec<_> = AuditAction::ALL.map(AuditAction::as_str).into();
                invalid(
                    "action",
                    format!("unknown action {name:?}; one of {}", known.join(", ")),
                )
            })?),
        };
        let from = request
            .start_time
            .as_ref()
            .map(|ts| from_timestamp("start_time", ts))
            .transpose()?;
        let to = request
            .end_time
            .as_ref()
            .map(|ts| from_timestamp("end_time", ts))
            .transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(invalid("start_time", "must be before end_time".to_owned()));
        }
        Ok(Query {
            page,
            filter: AuditFilter {
                target,
                actor_key_id,
                action,
                from,
                to,
            },
        })
    }
}

fn audit_event_to_proto(event: &AuditEvent) -> v1::AuditEvent {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let id = |value: Option<Uuid>| value.map(|id| id.to_string()).unwrap_or_default();
    v1::AuditEvent {
        id: event.id.to_string(),
        time: Some(timestamp(event.time)),
        organization_id: id(event.organization_id),
        actor_key_id: id(event.actor_key_id),
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
