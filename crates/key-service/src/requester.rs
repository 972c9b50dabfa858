//! Who is asking and from where: the [`Requester`] of an operation (its authenticated
//! [`Caller`] and its [`RequestContext`]), the [`Actor`] an audit event names, and the building
//! of audit events. The store appends them, in the same transaction as the change they
//! describe.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use key_core::{ActorType, AuditAction, AuditEvent, AuditOutcome, Caller};
use uuid::Uuid;

/// Who acted.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A caller authenticated by an API key.
    Key(Caller),
    /// An operator command run against the database (bootstrap, `keyrack admin-key create`).
    Operator,
    /// A caller whose credential was missing or matched no key.
    Anonymous,
    /// An OAuth client at the token or revocation endpoint, authenticated by its secret (or,
    /// for a public client, by the code's PKCE verifier).
    OauthClient(Uuid),
}

impl Actor {
    /// The key that acted, if a key did.
    pub(crate) fn key_id(&self) -> Option<Uuid> {
        match self {
            Actor::Key(caller) if !caller.keyless => Some(caller.key_id),
            Actor::Key(_) => None,
            Actor::Operator | Actor::Anonymous | Actor::OauthClient(_) => None,
        }
    }
}

/// Where a request came from, as far as the front door can tell. Each transport fills it in
/// (the gRPC layer from the TCP peer and the forwarding headers); every field is bounded there.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The peer address, followed by any `X-Forwarded-For` claim (which the peer asserts, so it
    /// is recorded beside the address, not instead of it).
    pub client_address: Option<String>,
    /// The client's IP address alone: the TCP peer's, or for a call that crossed no socket (the
    /// gateway of this process), the address the gateway appended to `X-Forwarded-For`. What
    /// refusals are counted and sampled by.
    pub client_ip: Option<IpAddr>,
    /// The caller's `x-request-id`.
    pub request_id: Option<String>,
    /// The called method's path, e.g. `/keyrack.v1.KeyService/CreateKey`: the target of an
    /// `auth.denied` event.
    pub method: Option<String>,
}

/// The authenticated caller of an operation and where its request came from. Every operation
/// acts inside `caller.organization_id`.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The verified key, with its effective scopes.
    pub caller: Caller,
    /// Where the request came from, for the audit log.
    pub context: RequestContext,
}

impl Requester {
    /// The caller as an audit event's actor.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Key(self.caller.clone())
    }

    /// A successful change by this requester to `target`, in its own organization, at `now`.
    pub(crate) fn event(
        &self,
        action: AuditAction,
        target: impl ToString,
        now: DateTime<Utc>,
    ) -> AuditEvent {
        audit_event(
            &self.actor(),
            Some(self.caller.organization_id),
            action,
            target.to_string(),
            AuditOutcome::Success,
            None,
            &self.context,
            now,
        )
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
    let (actor_type, actor_key_id, actor_member_id) = match actor {
        Actor::Key(caller) if caller.keyless => (ActorType::Member, None, caller.member_id),
        Actor::Key(caller) => (ActorType::Key, Some(caller.key_id), None),
        Actor::Operator => (ActorType::Operator, None, None),
        Actor::Anonymous => (ActorType::Anonymous, None, None),
        Actor::OauthClient(id) => (ActorType::OauthClient, Some(*id), None),
    };
    AuditEvent {
        id: Uuid::now_v7(),
        time: now,
        organization_id,
        actor_key_id,
        actor_member_id,
        actor_type,
        action,
        target,
        outcome,
        reason: reason.map(str::to_owned),
        client_address: context.client_address.clone(),
        request_id: context.request_id.clone(),
    }
}
