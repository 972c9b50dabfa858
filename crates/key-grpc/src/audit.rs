//! Building audit events: who (the [`Actor`]), from where (the [`RequestContext`]), what, to
//! what, and with which outcome. The store appends them, in the same transaction as the change
//! they describe.

use chrono::{DateTime, Utc};
use key_core::{ActorType, AuditAction, AuditEvent, AuditOutcome};
use tonic::transport::server::TcpConnectInfo;
use uuid::Uuid;

use crate::Principal;

/// Who acted.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A caller authenticated by an API key.
    Key(Principal),
    /// An operator command run against the database (bootstrap, `keyrack admin-key create`).
    Operator,
    /// A caller whose credential was missing or matched no key.
    Anonymous,
}

/// Where a request came from, as far as the server can tell.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The peer address, followed by any `X-Forwarded-For` claim (which the peer asserts, so it
    /// is recorded beside the address, not instead of it).
    pub client_address: Option<String>,
    /// The caller's `x-request-id`.
    pub request_id: Option<String>,
}

impl RequestContext {
    /// Reads the peer address and the forwarding headers of an incoming request.
    pub(crate) fn from_http<B>(request: &http::Request<B>) -> RequestContext {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.chars().take(200).collect::<String>())
                .filter(|value| !value.is_empty())
        };
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|address| address.to_string());
        let client_address = match (peer, header("x-forwarded-for")) {
            (Some(peer), Some(forwarded)) => Some(format!("{peer} (x-forwarded-for: {forwarded})")),
            (peer, forwarded) => peer.or(forwarded),
        };
        RequestContext {
            client_address,
            request_id: header("x-request-id"),
        }
    }
}

/// One event. `organization_id` is the organization it belongs to (the actor's, or the
/// target's when the actor is an operator).
#[allow(clippy::too_many_arguments)]
pub(crate) fn audit_event(
    actor: &Actor,
    organization_id: Option<Uuid>,
    action: AuditAction,
    target: String,
    outcome: AuditOutcome,
    reason: Option<&str>,
    context: &RequestContext,
    now: DateTime<Utc>,
) -> AuditEvent {
    let (actor_type, actor_key_id) = match actor {
        Actor::Key(principal) => (ActorType::Key, Some(principal.key_id)),
        Actor::Operator => (ActorType::Operator, None),
        Actor::Anonymous => (ActorType::Anonymous, None),
    };
    AuditEvent {
        id: Uuid::now_v7(),
        time: now,
        organization_id,
        actor_key_id,
        actor_type,
        action,
        target,
        outcome,
        reason: reason.map(str::to_owned),
        client_address: context.client_address.clone(),
        request_id: context.request_id.clone(),
    }
}
