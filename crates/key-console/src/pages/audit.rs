//! The audit log, filtered by action and target, paged.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use key_proto::{AUDIT_ACTIONS, v1};
use serde::Deserialize;

use super::{Frame, frame, render, when};
use crate::{Console, error::PageError, session::SignedIn, upstream};

/// An audit event as shown.
#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) time: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) outcome: &'static str,
    pub(crate) reason: String,
    pub(crate) client_address: String,
}

pub(crate) fn event_row(event: &v1::AuditEvent) -> EventRow {
    let actor = match event.actor_type.as_str() {
        "key" => format!("key {}", event.actor_key_id),
        "member" => format!("member {}", event.actor_member_id),
        other => other.to_owned(),
    };
    EventRow {
        time: when(event.time.as_ref()),
        actor,
        action: event.action.clone(),
        target: event.target.clone(),
        outcome: match v1::AuditOutcome::try_from(event.outcome) {
            Ok(v1::AuditOutcome::Denied) => "denied",
            _ => "success",
        },
        reason: event.reason.clone(),
        client_address: event.client_address.clone(),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    events: Vec<EventRow>,
    actions: &'static [&'static str],
    action: String,
    target: String,
    /// The next page's query string, encoded; empty on the last page.
    next_page: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    page_token: String,
}

pub(crate) async fn list(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let (frame, _) = frame(&console, &signed, &headers, "Audit log", "audit-log").await?;
    let listed = console
        .client()
        .list_audit_events(upstream::call(
            &headers,
            Some(signed.token()),
            v1::ListAuditEventsRequest {
                page_size: 50,
                page_token: query.page_token,
                target: query.target.clone(),
                action: query.action.clone(),
                ..v1::ListAuditEventsRequest::default()
            },
        ))
        .await?
        .into_inner();
    Ok(render(&AuditPage {
        frame,
        events: listed.audit_events.iter().map(event_row).collect(),
        actions: &AUDIT_ACTIONS,
        next_page: if listed.next_page_token.is_empty() {
            String::new()
        } else {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("action", &query.action)
                .append_pair("target", &query.target)
                .append_pair("page_token", &listed.next_page_token)
                .finish()
        },
        action: query.action,
        target: query.target,
    }))
}
