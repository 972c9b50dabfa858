//! The service the console calls: KeyService, in memory in `keyrack serve` (or over a channel),
//! always as the signed-in person (their session token as the bearer credential).

use axum::http::HeaderMap;
use key_proto::v1::key_service_client::KeyServiceClient;
use tonic::{
    Status,
    body::Body,
    metadata::{MetadataKey, MetadataValue},
};
use tower::{BoxError, Service, ServiceExt, util::BoxCloneSyncService};

/// Any gRPC service, type-erased (as the gateway's upstream).
type UpstreamService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Status>;

/// The KeyService client the console's handlers call.
pub(crate) type Client = KeyServiceClient<UpstreamService>;

/// Makes the client of `service`; a service error becomes the status a client would make of it.
pub(crate) fn client<S>(service: S) -> Client
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    KeyServiceClient::new(BoxCloneSyncService::new(
        service.map_err(|error| Status::from_error(error.into())),
    ))
}

/// The headers of the person's request that travel on: the request id, the forwarding chain
/// (which the gateway's middleware has ended with the client's address, for the audit log), and
/// the trace context.
const FORWARDED: [&str; 4] = [
    "x-request-id",
    "x-forwarded-for",
    "traceparent",
    "tracestate",
];

/// `message` as a call made with `credential` (a session token, or for sign-in the key being
/// signed in with), carrying the forwarded headers of `headers`.
pub(crate) fn call<T>(
    headers: &HeaderMap,
    credential: Option<&str>,
    message: T,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for name in FORWARDED {
        if let Some(value) = headers.get(name)
            && let Ok(value) = MetadataValue::try_from(value.as_bytes())
        {
            request.metadata_mut().insert(name, value);
        }
    }
    let mut trace_context = HeaderMap::new();
    key_telemetry::inject_current(&mut trace_context);
    for (name, value) in &trace_context {
        if let (Ok(name), Ok(value)) = (
            MetadataKey::from_bytes(name.as_str().as_bytes()),
            MetadataValue::try_from(value.as_bytes()),
        ) {
            request.metadata_mut().insert(name, value);
        }
    }
    if let Some(credential) = credential
        && let Ok(value) = MetadataValue::try_from(format!("Bearer {credential}"))
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
