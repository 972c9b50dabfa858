//! The gRPC service the gateway translates to.

use axum::http::HeaderMap;
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
/// judges it), and the request id, so both sides log the same one.
const FORWARDED: [&str; 2] = ["authorization", "x-request-id"];

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
