//! One span, one access-log line and one latency sample per gRPC call, as a tower layer
//! outside the authentication layer (so a refused caller is seen too), on both paths: the
//! network server and the in-memory stack the gateway of the same process calls.
//!
//! The span, created only when it will be exported, follows the OpenTelemetry conventions for
//! RPC servers (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`) and
//! continues the caller's W3C trace context. The authentication layer and the VerifyKey
//! handler name the key id, its organization and the verdict in the call's `CallSlot`; the
//! access-log line and the span report them. Nothing records the key itself. Over mutual TLS
//! the access log also names the caller's certificate (`client_cert`: its URI or DNS name).

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use key_telemetry::{CallSlot, RequestMetrics};
use prost::Message as _;
use tonic::{
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};
use tracing::{
    Instrument,
    field::{Empty, display},
};

use crate::BoxFuture;

/// The layer; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct TelemetryLayer {
    requests: RequestMetrics,
    known: Arc<Methods>,
}

/// The served methods by path (`/package.Service/Method`), with their service and method
/// names. The names are leaked once, at start: a fixed handful of strings, so that labelling a
/// call allocates nothing.
type Methods = HashMap<String, (&'static str, &'static str)>;

impl TelemetryLayer {
    /// The layer for a server of the methods `descriptors` (encoded file descriptor sets)
    /// define. Any other path a client sends is named `_OTHER` in spans, logs and metrics, as
    /// the OpenTelemetry conventions say: a client cannot mint span names or metric labels.
    pub(crate) fn new(requests: RequestMetrics, descriptors: &[&[u8]]) -> TelemetryLayer {
        let mut known = Methods::new();
        for descriptor in descriptors {
            // Compiled in; one that does not decode names no method, and its calls count as
            // `_OTHER`.
            let Ok(set) = prost_types::FileDescriptorSet::decode(*descriptor) else {
                continue;
            };
            for file in set.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        let service_name: &'static str =
                            String::leak(format!("{package}.{}", service.name()));
                        let method_name: &'static str = String::leak(method.name().to_owned());
                        known.insert(
                            format!("/{service_name}/{method_name}"),
                            (service_name, method_name),
                        );
                    }
                }
            }
        }
        TelemetryLayer {
            requests,
            known: Arc::new(known),
        }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TelemetryService {
            inner,
            requests: self.requests.clone(),
            known: Arc::clone(&self.known),
        }
    }
}

/// The service the layer wraps around the authentication layer.
#[derive(Debug, Clone)]
pub(crate) struct TelemetryService<S> {
    inner: S,
    requests: RequestMetrics,
    known: Arc<Methods>,
}

/// What an unknown service or method is called.
const OTHER: &str = "_OTHER";

/// The gRPC status codes that mean the server failed (the OpenTelemetry conventions' list):
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. The others are
/// the caller's doing, and leave the span's status unset.
const SERVER_FAULTS: [i32; 6] = [2, 4, 12, 13, 14, 15];

impl<S> Service<http::Request<Body>> for TelemetryService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path();
        let (service, method) = self.known.get(path).copied().unwrap_or((OTHER, OTHER));
        let request_id = key_telemetry::request_id(request.headers());
        let client_cert = client_certificate(request.extensions());
        // A span only when it will be exported (see key_telemetry's sampling).
        let incoming = key_telemetry::Incoming::read(request.headers());
        let span = if incoming.sampled(path) {
            tracing::info_span!(
                "grpc",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                rpc.grpc.status_code = Empty,
                keyrack.key_id = Empty,
                keyrack.organization_id = Empty,
                keyrack.verdict = Empty,
            )
        } else {
            tracing::Span::none()
        };
        let trace_id = incoming.continue_in(&span);
        let slot = CallSlot::default();
        request.extensions_mut().insert(slot.clone());
        let response = span.in_scope(|| self.inner.call(request));
        let requests = self.requests.clone();
        Box::pin(
            async move {
                let response = response.await?;
                let status = grpc_status(&response);
                let elapsed = started.elapsed();
                let facts = slot.facts();
                let span = tracing::Span::current();
                if !span.is_disabled() {
                    span.record("rpc.grpc.status_code", status);
                    if SERVER_FAULTS.contains(&status) {
                        span.record("otel.status_code", "ERROR");
                    }
                    if let Some(key_id) = facts.key_id {
                        span.record("keyrack.key_id", display(key_id));
                    }
                    if let Some(organization_id) = facts.organization_id {
                        span.record("keyrack.organization_id", display(organization_id));
                    }
                    if let Some(verdict) = facts.verdict {
                        span.record("keyrack.verdict", verdict);
                    }
                }
                requests.rpc(service, method, status, elapsed);
                tracing::info!(
                    target: "keyrack::access",
                    service,
                    method,
                    status,
                    duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                    request_id = request_id.as_deref().map(debug),
                    client_cert = client_cert.as_deref().map(debug),
                    trace_id = trace_id.map(display),
                    key_id = facts.key_id.map(display),
                    organization_id = facts.organization_id.map(display),
                    verdict = facts.verdict,
                    "grpc call"
                );
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The name in the client certificate of the call's connection, over mutual TLS.
fn client_certificate(extensions: &http::Extensions) -> Option<String> {
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    key_tls::certificate_name(certs.first()?)
}

/// The call's gRPC status code. A failed unary call is answered with its status in the
/// headers (trailers-only); one without it there succeeded, its OK coming in the trailers.
fn grpc_status(response: &http::Response<Body>) -> i32 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}
