//! `KeyrackLayer` and its service: the bearer credential in, the principal or a refusal out.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::extract::{ConnectInfo, MatchedPath};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body_util::{Either, Full};
use tonic::{server::NamedService, transport::server::TcpConnectInfo};
use tower::{Layer, Service};

use crate::{client::KeyrackClient, refusal::Refusal};

/// The end client's address, for Keyrack's brute-force guard, as an outer layer determined it
/// (e.g. from `X-Forwarded-For` written by your trusted proxies). Without it the layer sends the
/// TCP peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The layer: wraps a service in [`RequireKey`], which lets only requests with a key holding
/// the layer's scopes through. Made by [`KeyrackClient::require`].
#[derive(Debug, Clone)]
pub struct KeyrackLayer {
    client: KeyrackClient,
    scopes: Arc<[String]>,
}

impl KeyrackClient {
    /// A layer letting through only requests whose key holds every scope in `scopes` (none: any
    /// valid key). Every layer made from one client shares its channel and cache.
    pub fn require<I, S>(&self, scopes: I) -> KeyrackLayer
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KeyrackLayer {
            client: self.clone(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl KeyrackLayer {
    /// Wraps `inner` ([`Layer::layer`], callable without importing the trait): e.g. a tonic
    /// service, which keeps its name for `Server::add_service`.
    pub fn layer<S>(&self, inner: S) -> RequireKey<S> {
        RequireKey {
            inner,
            client: self.client.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

impl<S> Layer<S> for KeyrackLayer {
    type Service = RequireKey<S>;

    fn layer(&self, inner: S) -> RequireKey<S> {
        KeyrackLayer::layer(self, inner)
    }
}

/// A service that verifies each request's key with Keyrack before calling `S`.
#[derive(Debug, Clone)]
pub struct RequireKey<S> {
    inner: S,
    client: KeyrackClient,
    scopes: Arc<[String]>,
}

/// A wrapped service's body, or the layer's own answer to a refused request.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// A tonic service keeps its name, so `Server::add_service` takes it wrapped.
impl<S: NamedService> NamedService for RequireKey<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireKey<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The instance that was polled ready serves this request; the clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let client = self.client.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let grpc = is_grpc(request.headers());
            let verdict = match bearer_token(request.headers()) {
                None => Err(Refusal::missing_key()),
                Some(key) => {
                    client
                        .verify_for(key, &scopes, client_ip(&request), tag(&request, grpc))
                        .await
                }
            };
            match verdict {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    let response = inner.call(request).await?;
                    Ok(response.map(Either::Left))
                }
                Err(refusal) if grpc => {
                    let response: Response<Full<Bytes>> = refusal.grpc_status().into_http();
                    Ok(response.map(Either::Right))
                }
                Err(refusal) => Ok(refusal.http_response().map(Either::Right)),
            }
        })
    }
}

/// A gRPC call is answered with a status, anything else with JSON.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// The token after `Bearer ` in the first `Authorization` header, exactly as Keyrack reads it
/// (the scheme in any case, the token untrimmed); `None` when there is no bearer credential or
/// the header is not visible ASCII.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The end client: an outer layer's [`ClientIp`], else the TCP peer as axum or tonic recorded
/// it.
fn client_ip<B>(request: &Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    if let Some(ClientIp(ip)) = extensions.get::<ClientIp>() {
        return Some(*ip);
    }
    if let Some(ConnectInfo(address)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(address.ip());
    }
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|address| address.ip())
}

/// The route, for Keyrack's usage by tag: a gRPC method's path, or the method and axum's route
/// template (never the raw path, which a client chooses); none past Keyrack's 64 characters.
fn tag<B>(request: &Request<B>, grpc: bool) -> Option<String> {
    let tag = if grpc {
        request.uri().path().to_owned()
    } else {
        let route = request.extensions().get::<MatchedPath>()?;
        format!("{} {}", request.method(), route.as_str())
    };
    (tag.len() <= 64 && tag.bytes().all(|b| (b' '..=b'~').contains(&b))).then_some(tag)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn token(value: &'static str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn the_bearer_token_is_read_as_keyrack_reads_it() {
        assert_eq!(token("Bearer sk_live_abc").as_deref(), Some("sk_live_abc"));
        assert_eq!(token("bearer sk_live_abc").as_deref(), Some("sk_live_abc"));
        assert_eq!(token("Bearer ").as_deref(), Some(""));
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(!is_grpc(&headers));
    }
}
