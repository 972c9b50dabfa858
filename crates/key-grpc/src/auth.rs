//! Authentication of admin RPCs as a tower layer: the caller's key is verified once, before the
//! handler runs, and the resulting [`Principal`] travels in the request's extensions.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use key_core::{AuditAction, AuditOutcome, Error, KeyRecord, Scope};
use tonic::body::Body;
use tower::{Layer, Service};
use uuid::Uuid;

use crate::{Actor, KeyManager, RequestContext, audit::audit_event, status_from_error};

/// The verified caller of an admin RPC.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's key.
    pub key_id: Uuid,
    /// The caller's organization; every admin RPC acts inside it only.
    pub organization_id: Uuid,
}

impl From<&KeyRecord> for Principal {
    fn from(record: &KeyRecord) -> Self {
        Principal {
            key_id: record.id,
            organization_id: record.organization_id,
        }
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
    manager: KeyManager,
}

impl AuthLayer {
    pub(crate) fn new(manager: KeyManager) -> AuthLayer {
        AuthLayer { manager }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            manager: self.manager.clone(),
        }
    }
}

/// The service the layer wraps around the routes.
#[derive(Debug, Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    manager: KeyManager,
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
        let manager = self.manager.clone();
        Box::pin(async move {
            let context = RequestContext::from_http(&request);
            if !is_public(request.uri().path()) {
                let path = request.uri().path().to_owned();
                match authenticate(&manager, request.headers(), &path, &context).await {
                    Ok(principal) => {
                        request.extensions_mut().insert(principal);
                    }
                    Err(error) => return Ok(status_from_error(error).into_http()),
                }
            }
            request.extensions_mut().insert(context);
            inner.call(request).await
        })
    }
}

/// Verifies the caller's key for an admin RPC. A refusal is appended to the audit log, with
/// the key's id and organization when the key is known; if even that write fails, the caller
/// is refused all the same.
async fn authenticate(
    manager: &KeyManager,
    headers: &http::HeaderMap,
    path: &str,
    context: &RequestContext,
) -> Result<Principal, Error> {
    let verification = match bearer_token(headers) {
        Ok(token) => manager.verify(token, &[Scope::Admin]).await?,
        Err(error) => {
            deny(manager, path, context, None, &error).await;
            return Err(error);
        }
    };
    match (verification.error(), &verification.record) {
        (None, Some(record)) => Ok(Principal::from(record)),
        (error, record) => {
            let error = error.unwrap_or(Error::InvalidApiKey);
            // An unknown or revoked key is anonymous: its id must not be confirmed to anyone.
            let known = record
                .as_ref()
                .filter(|_| !matches!(error, Error::InvalidApiKey));
            deny(manager, path, context, known, &error).await;
            Err(error)
        }
    }
}

/// How much of a refused call's method path the audit event keeps.
const MAX_TARGET_CHARS: usize = 200;

async fn deny(
    manager: &KeyManager,
    path: &str,
    context: &RequestContext,
    record: Option<&KeyRecord>,
    error: &Error,
) {
    let actor = record.map_or(Actor::Anonymous, |record| {
        Actor::Key(Principal::from(record))
    });
    let event = audit_event(
        &actor,
        record.map(|record| record.organization_id),
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
