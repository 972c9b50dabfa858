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
    /// The called gRPC method's path, e.g. `/keyrack.v1.KeyService/CreateKey`: the target of
    /// an `auth.denied` event.
    pub method: Option<String>,
}

/// How much of a caller-supplied header an event keeps.
const MAX_HEADER_CHARS: usize = 200;

impl RequestContext {
    /// Reads the peer address and the forwarding headers of an incoming request.
    pub(crate) fn from_http<B>(request: &http::Request<B>) -> RequestContext {
        let header = |name: &str| {
            let values: Vec<&str> = request
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|address| address.to_string());
        // Each proxy appends the address it saw, so the end of X-Forwarded-For is the part a
        // trusted proxy (the gateway) wrote; the beginning is whatever the client claimed. A
        // long claim is cut at its start, so padding cannot push the real address out.
        let forwarded = header("x-forwarded-for").map(|value| keep_tail(&value));
        let client_address = match (peer, forwarded) {
            (Some(peer), Some(forwarded)) => Some(format!("{peer} (x-forwarded-for: {forwarded})")),
            (peer, forwarded) => peer.or(forwarded),
        };
        RequestContext {
            client_address,
            request_id: header("x-request-id").map(|value| keep_head(&value)),
            method: Some(request.uri().path().to_owned()),
        }
    }
}

/// The first [`MAX_HEADER_CHARS`] characters of `value`.
fn keep_head(value: &str) -> String {
    value.chars().take(MAX_HEADER_CHARS).collect()
}

/// The last [`MAX_HEADER_CHARS`] characters of `value`, marked with `…` when cut.
fn keep_tail(value: &str) -> String {
    let count = value.chars().count();
    if count <= MAX_HEADER_CHARS {
        return value.to_owned();
    }
    let tail: String = value.chars().skip(count - MAX_HEADER_CHARS).collect();
    format!("…{tail}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context(headers: &[(&str, &str)]) -> RequestContext {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        RequestContext::from_http(&request.body(()).unwrap())
    }

    #[test]
    fn forwarded_for_keeps_its_trusted_end_and_request_id_its_start() {
        let padding = "10.0.0.1, ".repeat(100);
        let context = context(&[
            ("x-forwarded-for", &format!("{padding}198.51.100.7")),
            ("x-request-id", &"r".repeat(500)),
        ]);
        let address = context.client_address.unwrap();
        assert!(address.starts_with('…'), "{address}");
        assert!(address.ends_with("198.51.100.7"), "{address}");
        assert_eq!(address.chars().count(), MAX_HEADER_CHARS + 1);
        assert_eq!(context.request_id.unwrap(), "r".repeat(MAX_HEADER_CHARS));
    }

    #[test]
    fn repeated_forwarded_for_headers_are_joined_and_empty_ones_ignored() {
        let context = context(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "127.0.0.1"),
            ("x-request-id", " "),
        ]);
        assert_eq!(
            context.client_address.as_deref(),
            Some("203.0.113.9, 127.0.0.1")
        );
        assert_eq!(context.request_id, None);
    }
}
