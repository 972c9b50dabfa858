//! One span, one access-log line and one latency sample per REST request: the outer
//! [`observe`] middleware opens the span (OpenTelemetry's HTTP server conventions, continuing
//! the caller's W3C trace context) and the inner [`name_route`] one, which runs only once a
//! route matched, names the route. The gRPC calls a handler makes carry the span's trace
//! context (`upstream::forward`), so a request through the gateway is one trace.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use key_telemetry::{RequestMetrics, http_method_label};
use tracing::{Instrument, field::Empty};

/// How much of a caller's `x-request-id` the logs keep.
const MAX_REQUEST_ID_CHARS: usize = 200;

/// The outer middleware: see the module documentation.
pub(crate) async fn observe(
    State(requests): State<Option<RequestMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let method_label = http_method_label(&method);
    let request_id: Option<String> = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.chars().take(MAX_REQUEST_ID_CHARS).collect());
    let span = tracing::info_span!(
        "http",
        otel.name = method_label,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method_label,
        http.route = Empty,
        http.response.status_code = Empty,
        request_id = request_id.as_deref().map(tracing::field::debug),
        trace_id = Empty,
    );
    if let Some(trace_id) = key_telemetry::continue_trace(&span, request.headers()) {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    // Named as the conventions say, `{method} {route}`, or the method alone when no route
    // matched (a path is the client's, not a name).
    key_telemetry::rename(
        &span,
        match route {
            Some(route) => format!("{method_label} {route}"),
            None => method_label.to_owned(),
        },
    );
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Some(requests) = requests {
        requests.http(&method, route, status.as_u16(), elapsed);
    }
    span.in_scope(|| {
        tracing::info!(
            target: "keyrack::access",
            status = status.as_u16(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "http request"
        );
    });
    response
}

/// The inner middleware: names the matched route on the span and hands it to [`observe`].
pub(crate) async fn name_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    if let Some(route) = &route {
        tracing::Span::current().record("http.route", route.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}
