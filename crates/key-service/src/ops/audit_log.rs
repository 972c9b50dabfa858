//! ListAuditEvents: the requester's organization's audit log, newest first, filtered and paged.

use chrono::{DateTime, Utc};
use key_core::{Action, AuditAction, AuditEvent, Error};
use key_store::{AuditFilter, Store};

use super::{
    paging::{Listed, Page, PageRequest},
    parse_uuid,
};
use crate::{Requester, access::Access};

/// A target is a key id or an RPC method; anything longer matches nothing anyway.
const MAX_TARGET_CHARS: usize = 500;

/// ListAuditEvents' request; empty fields filter nothing.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// AIP-158 paging.
    pub page: PageRequest,
    /// Only events about this key id or method.
    pub target: String,
    /// Only events by this key.
    pub actor_key_id: String,
    /// Only this action, by name (`key.create`).
    pub action: String,
    /// Only events at or after this instant.
    pub start: Option<DateTime<Utc>>,
    /// Only events before this instant.
    pub end: Option<DateTime<Utc>>,
}

/// The audit log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Store,
    access: Access,
}

impl AuditLog {
    pub(crate) fn new(store: Store, access: Access) -> AuditLog {
        AuditLog { store, access }
    }

    /// ListAuditEvents (`admin`).
    pub async fn list(
        &self,
        by: &Requester,
        query: AuditQuery,
    ) -> Result<Listed<AuditEvent>, Error> {
        self.access
            .authorize(by, Action::ReadAuditLog, None)
            .await?;
        let (page, filter) = parse_query(query)?;
        let events = self
            .store
            .list_audit_events(
                by.caller.organization_id,
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
        Ok(page.finish(events, |event| event.id))
    }
}

fn parse_query(query: AuditQuery) -> Result<(Page, AuditFilter), Error> {
    let invalid = |field: &'static str, message: String| Error::InvalidArgument { field, message };
    let page = Page::parse(&query.page)?;
    let target = match query.target.as_str() {
        "" => None,
        target if target.chars().count() > MAX_TARGET_CHARS => {
            return Err(invalid(
                "target",
                format!("at most {MAX_TARGET_CHARS} characters"),
            ));
        }
        target => Some(target.to_owned()),
    };
    let actor_key_id = match query.actor_key_id.as_str() {
        "" => None,
        id => Some(parse_uuid("actor_key_id", id, "a key id")?),
    };
    let action = match query.action.as_str() {
        "" => None,
        name => Some(AuditAction::parse(name).ok_or_else(|| {
            let known: Vec<_> = AuditAction::ALL.map(AuditAction::as_str).into();
            invalid(
                "action",
                format!("unknown action {name:?}; one of {}", known.join(", ")),
            )
        })?),
    };
    let (from, to) = (query.start, query.end);
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(invalid("start_time", "must be before end_time".to_owned()));
    }
    Ok((
        page,
        AuditFilter {
            target,
            actor_key_id,
            action,
            from,
            to,
        },
    ))
}
