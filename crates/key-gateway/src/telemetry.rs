//! One access-log line and one latency sample per REST request, and a span when it will be
//! exported: the outer [`observe`] middleware opens the span (OpenTelemetry's HTTP server
//! conventions, continuing the caller's W3C trace context) and logs; the inner [`name_route`]
//! one, which runs only once a route matched, tells it the route. The gRPC calls a handler makes carry the span's trace
//! context (`upstream::forward`), so a request through the gateway is one trace.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use key_telemetry::{RequestMetrics, http_method_label};
use tracing::{Instrument, field::Empty};

/// The outer middleware: see the module documentation.
pub(crate) async fn observe(
    State(requests): State<Option<RequestMetrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let method_label = http_method_label(&method);
    let request_id = key_telemetry::request_id(request.headers());
    // A span only when it will be exported (see key_telemetry's sampling).
    let incoming = key_telemetry::Incoming::read(request.headers());
    let mut unsampled_trace = None;
    let span = if incoming.sampled(method_label) {
        tracing::info_span!(
            "http",
            otel.name = method_label,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method_label,
            http.route = Empty,
            http.response.status_code = Empty,
        )
    } else {
        // Not kept: the service this request calls must not keep its part either.
        if let Some((traceparent, trace_id)) = incoming.not_sampled_traceparent() {
            request.headers_mut().insert("traceparent", traceparent);
            unsampled_trace = Some(trace_id);
        }
        tracing::Span::none()
    };
    let trace_id = incoming.continue_in(&span).or(unsampled_trace);
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if !span.is_disabled() {
        // Named as the conventions say, `{method} {route}`, or the method alone when no
        // route matched (a path is the client's, not a name).
        if let Some(route) = route {
            key_telemetry::rename(&span, format!("{method_label} {route}"));
            span.record("http.route", route);
        }
        // An i64: the OpenTelemetry layer records unsigned integers as text.
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    if let Some(requests) = requests {
        requests.http(&method, route, status.as_u16(), elapsed);
    }
    span.in_scope(|| {
        tracing::info!(
            target: "keyrack::access",
            method = method_label,
            route = route.unwrap_or("unmatched"),
            status = status.as_u16(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            request_id = request_id.as_deref().map(debug),
            trace_id = trace_id.map(display),
            "http request"
        );
    });
    response
}

/// The inner middleware: hands the matched route to [`observe`].
pub(crate) async fn name_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}
