//! The gRPC service the gateway translates to.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::Response,
};
use key_proto::v1::key_service_client::KeyServiceClient;
use tonic::{metadata::MetadataValue, transport::Channel};
use tonic_health::pb::health_client::HealthClient;

/// Clients of the upstream KeyService and its health service, over one HTTP/2 channel.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) keys: KeyServiceClient<Channel>,
    pub(crate) health: HealthClient<Channel>,
}

impl Upstream {
    pub(crate) fn new(channel: Channel) -> Upstream {
        Upstream {
            keys: KeyServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        }
    }
}

/// The headers that travel on to the service: the caller's credential, untouched (the service
/// judges it), the request id, so both sides log the same one, and `x-forwarded-for`, which
/// [`append_forwarded_for`] has ended with the caller's address, for the audit log.
const FORWARDED: [&str; 3] = ["authorization", "x-request-id", "x-forwarded-for"];

/// Appends the TCP peer address of the gateway's caller to `X-Forwarded-For` (creating it),
/// as a proxy does: what the client sent stays in front, as its claim, and the address the
/// gateway saw ends the list. Without `ConnectInfo` (a router served without it, as in unit
/// tests) the header is left as it is.
pub(crate) async fn append_forwarded_for(mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let headers = request.headers_mut();
        let mut values: Vec<String> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect();
        values.push(peer.ip().to_string());
        if let Ok(value) = HeaderValue::from_str(&values.join(", ")) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    next.run(request).await
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Wraps `message` in a gRPC request carrying the forwarded headers of `headers`.
pub(crate) fn forward<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for name in FORWARDED {
        if let Some(value) = headers.get(name)
            && let Ok(value) = MetadataValue::try_from(value.as_bytes())
        {
            request.metadata_mut().insert(name, value);
        }
    }
    request
}
