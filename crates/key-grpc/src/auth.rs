//! Authentication of admin RPCs as a tower layer: the caller's key is verified once, before the
//! handler runs (by the application's `Access::authenticate`), and the resulting `Requester`
//! travels in the request's extensions. The layer also reads where a request came from.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    task::{Context, Poll},
};

use key_core::Error;
use key_proto::BearerError;
use key_service::{Access, RequestContext, Requester};
use key_telemetry::CallSlot;
use tonic::{
    Request,
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

use crate::{BoxFuture, status_from_error};

/// The gRPC methods that need no caller key: VerifyKey relies on network-level trust, a
/// sign-in link or the identity provider's code is its own credential, a leaked-key report is
/// authenticated by its signature (in the operation), and health and reflection are public by
/// nature.
fn is_public(path: &str) -> bool {
    path == "/keyrack.v1.KeyService/VerifyKey"
        || path == REDEEM_SIGN_IN_LINK
        || path == REPORT_LEAKED_KEYS
        || path == BEGIN_SSO_SIGN_IN
        || path == COMPLETE_SSO_SIGN_IN
        || path == EXCHANGE_OAUTH_TOKEN
        || path == REVOKE_OAUTH_TOKEN
        || path == INTROSPECT_OAUTH_TOKEN
        || !path.starts_with("/keyrack.v1.")
}

/// A public method that reads its request's context (for the audit event of the session it
/// begins).
const REDEEM_SIGN_IN_LINK: &str = "/keyrack.v1.KeyService/RedeemSignInLink";
/// A public method that reads its request's context (for the audit events of the keys it
/// revokes or flags).
const REPORT_LEAKED_KEYS: &str = "/keyrack.v1.KeyService/ReportLeakedKeys";
/// Public: signing in with the identity provider begins with no credential at all.
const BEGIN_SSO_SIGN_IN: &str = "/keyrack.v1.KeyService/BeginSsoSignIn";
/// A public method that reads its request's context (for the audit event of the session it
/// begins); the provider's code is its credential.
const COMPLETE_SSO_SIGN_IN: &str = "/keyrack.v1.KeyService/CompleteSsoSignIn";

/// Public: the OAuth token endpoint, whose client authenticates in the message (or, for a
/// public client, the PKCE verifier and the code are the credential).
const EXCHANGE_OAUTH_TOKEN: &str = "/keyrack.v1.KeyService/ExchangeOauthToken";
/// Public: RFC 7009 revocation, the client authenticating in the message.
const REVOKE_OAUTH_TOKEN: &str = "/keyrack.v1.KeyService/RevokeOauthToken";
/// Public: RFC 7662 introspection, the resource server authenticating in the message.
const INTROSPECT_OAUTH_TOKEN: &str = "/keyrack.v1.KeyService/IntrospectOauthToken";

/// The caller's bearer credential, as the domain sees a missing or unreadable one.
fn credential(headers: &http::HeaderMap) -> Result<&str, Error> {
    key_proto::bearer_token(headers).map_err(|error| match error {
        BearerError::Missing => Error::MissingApiKey,
        BearerError::Unreadable => Error::InvalidApiKey,
    })
}

/// The caller the authentication layer verified. Its absence means the layer is not installed,
/// which is a bug, not the caller's fault; still, refuse rather than act without a caller.
pub(crate) fn requester<T>(request: &Request<T>) -> Result<Requester, Error> {
    request
        .extensions()
        .get::<Requester>()
        .cloned()
        .ok_or(Error::MissingApiKey)
}

/// Where a public method's request came from, which the authentication layer put in its
/// extensions (for the audit events of what it does); empty if the layer is not installed.
pub(crate) fn context_of<T>(request: &Request<T>) -> RequestContext {
    request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default()
}

/// The layer; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct AuthLayer {
    /// Behind one `Arc`: every request takes a copy (the in-process gateway clones the stack
    /// per call), and an `Access` is a dozen shared handles, each an atomic count to move.
    access: Arc<Access>,
}

impl AuthLayer {
    pub(crate) fn new(access: Access) -> AuthLayer {
        AuthLayer {
            access: Arc::new(access),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            access: Arc::clone(&self.access),
        }
    }
}

/// The service the layer wraps around the routes (also in memory: `GrpcServer::local_service`).
#[derive(Debug, Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    access: Arc<Access>,
}

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
        if matches!(
            request.uri().path(),
            REDEEM_SIGN_IN_LINK
                | REPORT_LEAKED_KEYS
                | COMPLETE_SSO_SIGN_IN
                | EXCHANGE_OAUTH_TOKEN
                | REVOKE_OAUTH_TOKEN
                | INTROSPECT_OAUTH_TOKEN
        ) {
            let context = request_context(&request);
            request.extensions_mut().insert(context);
        }
        if is_public(request.uri().path()) {
            // VerifyKey, health and reflection need no caller, and their handlers read no
            // request context (VerifyKey carries its client's context in its message).
            return Box::pin(inner.call(request));
        }
        let access = Arc::clone(&self.access);
        Box::pin(async move {
            let context = request_context(&request);
            let authenticated = access
                .authenticate(credential(request.headers()), context)
                .await;
            match authenticated {
                Ok(requester) => {
                    // The caller's key names the call in its trace and access log.
                    if let Some(slot) = request.extensions().get::<CallSlot>() {
                        slot.set_key(requester.caller.key_id, requester.caller.organization_id);
                    }
                    request.extensions_mut().insert(requester);
                }
                Err(error) => return Ok(status_from_error(error).into_http()),
            }
            inner.call(request).await
        })
    }
}

/// The TCP peer of a call that came over the network, in plaintext or TLS (what
/// `tonic::Request::remote_addr` reads, for an `http::Request`); `None` in memory.
pub(crate) fn peer_address(extensions: &http::Extensions) -> Option<SocketAddr> {
    let tcp = extensions.get::<TcpConnectInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .map(TlsConnectInfo::get_ref)
    });
    tcp.and_then(TcpConnectInfo::remote_addr)
}

/// How much of a caller-supplied header an event keeps.
const MAX_HEADER_CHARS: usize = 200;

/// Where `request` came from: its TCP peer and forwarding headers, each bounded, and the
/// method called.
pub(crate) fn request_context<B>(request: &http::Request<B>) -> RequestContext {
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
    let peer = peer_address(request.extensions());
    // Without a TCP peer the call came in memory from this process's gateway, which appended
    // the address it saw (its client, through any trusted proxies) to X-Forwarded-For.
    let client_ip = peer.map(|address| address.ip()).or_else(|| {
        header("x-forwarded-for")?
            .rsplit(',')
            .next()?
            .trim()
            .parse::<IpAddr>()
            .ok()
    });
    let peer = peer.map(|address| address.to_string());
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
        client_ip,
        request_id: header("x-request-id").map(|value| keep_head(&value)),
        method: Some(request.uri().path().to_owned()),
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
        assert!(is_public("/keyrack.v1.KeyService/BeginSsoSignIn"));
        assert!(is_public("/keyrack.v1.KeyService/CompleteSsoSignIn"));
        assert!(!is_public("/keyrack.v1.KeyService/CreateKey"));
        assert!(!is_public("/keyrack.v1.KeyService/Unknown"));
        assert!(!is_public("/keyrack.v1.Future/Anything"));
    }

    fn context(headers: &[(&str, &str)]) -> RequestContext {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request_context(&request.body(()).unwrap())
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
        // In memory (no TCP peer) the gateway's appended address is the client's.
        assert_eq!(context.client_ip, "198.51.100.7".parse().ok());
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
