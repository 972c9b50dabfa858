//! Authentication of admin RPCs as a tower layer: the caller's key is verified once, before the
//! handler runs, and the resulting [`Principal`] travels in the request's extensions.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use key_core::{Action, AuditAction, AuditOutcome, Caller, Error, KeyRecord, KeyType, ScopeSet};
use tonic::{Status, body::Body};
use tower::{Layer, Service};
use uuid::Uuid;

use crate::{Actor, KeyManager, RequestContext, audit::audit_event, status_from_error};

/// The verified caller of an admin RPC: any valid key, as key-core's `Caller` (its effective
/// scopes included). What it may do is decided per handler by the permission table
/// (`key_core::PERMISSIONS`) through `Caller::authorize`.
pub type Principal = Caller;

/// Checks `action` on something of `owner` (a member; `None` for the organization's) against
/// the permission table; a refusal is audited like the layer's, and returned as the status.
pub(crate) async fn authorize(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    action: Action,
    owner: Option<Uuid>,
) -> Result<(), Status> {
    let decision = caller.authorize(action, owner);
    check(manager, caller, context, decision).await
}

/// Turns a permission decision (`authorize`, `may_grant`, `within_role`) into the handler's
/// answer: a refusal (`insufficient_scope`) appends an `auth.denied` event naming the method.
/// Any other error passes through unaudited.
pub(crate) async fn check(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    decision: Result<(), Error>,
) -> Result<(), Status> {
    match decision {
        Ok(()) => Ok(()),
        Err(error @ (Error::InsufficientScope(_) | Error::Forbidden(_))) => {
            deny(
                manager,
                context.method.as_deref().unwrap_or_default(),
                context,
                &Actor::Key(caller.clone()),
                Some(caller.organization_id),
                &error,
            )
            .await;
            Err(status_from_error(error))
        }
        Err(error) => Err(status_from_error(error)),
    }
}

/// The key `id` of the caller's organization, if the caller may perform `action` on it (its
/// owner is its member, for a personal key). Another organization's key is `NOT_FOUND`, like a
/// key that does not exist; a key of the caller's organization that it may not touch is
/// refused (and audited) as any refusal.
pub(crate) async fn authorized_key(
    manager: &KeyManager,
    caller: &Principal,
    context: &RequestContext,
    id: Uuid,
    action: Action,
) -> Result<KeyRecord, Status> {
    let record = manager
        .store()
        .get_key(caller.organization_id, id)
        .await
        .map_err(|e| status_from_error(e.into()))?
        .ok_or_else(|| status_from_error(Error::NotFound("key")))?;
    authorize(manager, caller, context, action, owner(&record)).await?;
    Ok(record)
}

/// Whose a key is, for the permission table: its member's, for a personal key; the
/// organization's (`None`) otherwise.
pub(crate) fn owner(record: &KeyRecord) -> Option<Uuid> {
    match record.key_type {
        KeyType::Personal => record.member_id,
        KeyType::Organization => None,
    }
}

/// The gRPC methods that need no caller key: VerifyKey relies on network-level trust, and
/// health and reflection are public by nature.
fn is_public(path: &str) -> bool {
    path == "/keyrack.v1.KeyService/VerifyKey" || !path.starts_with("/keyrack.v1.")
}

/// Reads `authorization: Bearer <key>`. The scheme is case-insensitive (RFC 7235).
fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Error> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(Error::MissingApiKey)?
        .to_str()
        .map_err(|_| Error::InvalidApiKey)?;
    let (scheme, token) = value.split_once(' ').ok_or(Error::MissingApiKey)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingApiKey);
    }
    Ok(token)
}

/// The layer; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct AuthLayer {
    /// Behind one `Arc`: every request takes a copy, and a `KeyManager` is a dozen shared
    /// handles, each an atomic count to move.
    manager: Arc<KeyManager>,
}

impl AuthLayer {
    pub(crate) fn new(manager: KeyManager) -> AuthLayer {
        AuthLayer {
            manager: Arc::new(manager),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            manager: Arc::clone(&self.manager),
        }
    }
}

/// The service the layer wraps around the routes (also in memory: `GrpcServer::local_service`).
#[derive(Debug, Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    manager: Arc<KeyManager>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for AuthService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was not polled ready stays behind; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_public(request.uri().path()) {
            // VerifyKey, health and reflection need no caller, and their handlers read no
            // request context (VerifyKey carries its client's context in its message).
            return Box::pin(inner.call(request));
        }
        let manager = Arc::clone(&self.manager);
        Box::pin(async move {
            let context = RequestContext::from_http(&request);
            let path = request.uri().path().to_owned();
            match authenticate(&manager, request.headers(), &path, &context).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                }
                Err(error) => return Ok(status_from_error(error).into_http()),
            }
            request.extensions_mut().insert(context);
            inner.call(request).await
        })
    }
}

/// Verifies the caller's key for an admin RPC: any valid key passes (what it may do is the
/// handler's decision, by the permission table). A refusal is appended to the audit log, with
/// the key's id and organization when the key is known; if even that write fails, the caller
/// is refused all the same.
async fn authenticate(
    manager: &KeyManager,
    headers: &http::HeaderMap,
    path: &str,
    context: &RequestContext,
) -> Result<Principal, Error> {
    let verification = match bearer_token(headers) {
        Ok(token) => manager.verify(token, &[]).await?,
        Err(error) => {
            deny(manager, path, context, &Actor::Anonymous, None, &error).await;
            return Err(error);
        }
    };
    match (verification.error(), &verification.record) {
        (None, Some(record)) => Ok(Principal::new(record, verification.scopes)),
        (error, record) => {
            let error = error.unwrap_or(Error::InvalidApiKey);
            // An unknown or revoked key is anonymous: its id must not be confirmed to anyone.
            let known = record
                .as_ref()
                .filter(|_| !matches!(error, Error::InvalidApiKey));
            let actor = known.map_or(Actor::Anonymous, |record| {
                Actor::Key(Principal::new(record, ScopeSet::EMPTY))
            });
            let organization_id = known.map(|record| record.organization_id);
            deny(manager, path, context, &actor, organization_id, &error).await;
            Err(error)
        }
    }
}

/// How much of a refused call's method path the audit event keeps.
const MAX_TARGET_CHARS: usize = 200;

/// Appends the `auth.denied` event of a refused call to `path`; if even that write fails, the
/// caller is refused all the same.
async fn deny(
    manager: &KeyManager,
    path: &str,
    context: &RequestContext,
    actor: &Actor,
    organization_id: Option<Uuid>,
    error: &Error,
) {
    let event = audit_event(
        actor,
        organization_id,
        AuditAction::AuthDenied,
        // The path is the caller's to choose (any `/keyrack.v1.…` method is refused here), so
        // the log keeps a bounded prefix of it.
        path.chars().take(MAX_TARGET_CHARS).collect(),
        AuditOutcome::Denied,
        Some(error.code().reason()),
        context,
        manager.now(),
    );
    if let Err(error) = manager.store().append_audit_event(&event).await {
        tracing::error!(%error, "audit event of a refused call not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verify_health_and_reflection_are_public() {
        assert!(is_public("/keyrack.v1.KeyService/VerifyKey"));
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_public("/keyrack.v1.KeyService/CreateKey"));
        assert!(!is_public("/keyrack.v1.KeyService/Unknown"));
        assert!(!is_public("/keyrack.v1.Future/Anything"));
    }

    #[test]
    fn bearer_scheme_is_required() {
        let mut headers = http::HeaderMap::new();
        assert!(matches!(bearer_token(&headers), Err(Error::MissingApiKey)));
        headers.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(matches!(bearer_token(&headers), Err(Error::MissingApiKey)));
        headers.insert(
            http::header::AUTHORIZATION,
            "bearer sk_live_x".parse().unwrap(),
        );
        assert_eq!(bearer_token(&headers).unwrap(), "sk_live_x");
    }
}
