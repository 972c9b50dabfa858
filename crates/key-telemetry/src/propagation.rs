//! W3C trace context (`traceparent`, `tracestate`) in HTTP and gRPC headers (gRPC metadata is
//! HTTP/2 headers).

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads the headers for the propagator.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes the propagator's fields into headers.
struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only `traceparent` and `tracestate`, whose values it
        // formatted from a valid context; anything unrepresentable is left out.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Names `span` in its trace, after it started: a REST request's span is named by its route,
/// which is known only once the router matched it.
pub fn rename(span: &Span, name: String) {
    let context = span.context();
    let exported = context.span();
    if exported.span_context().is_valid() {
        exported.update_name(name);
    }
}

/// The trace id of `span`, when spans are recorded.
pub(crate) fn trace_id(span: &Span) -> Option<TraceId> {
    let context = span.context();
    let id = context.span().span_context().trace_id();
    (id != TraceId::INVALID).then_some(id)
}

/// Writes `context`'s trace context into `headers` (nothing when it has no valid span).
pub(crate) fn inject(context: &Context, headers: &mut HeaderMap) {
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(context, &mut HeadersMut(headers));
    }
}

/// Writes the current span's trace context into `headers`, so the service called continues
/// this trace.
pub fn inject_current(headers: &mut HeaderMap) {
    inject(&Span::current().context(), headers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Incoming;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_recorded_spans_the_callers_trace_id_still_reaches_the_logs() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
        let incoming = Incoming::read(&headers);
        assert!(
            !incoming.sampled("request"),
            "nothing is sampled without an exporter"
        );
        let id = incoming.continue_in(&Span::none()).unwrap();
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_invalid_or_missing_traceparent_names_no_trace() {
        assert_eq!(Incoming::read(&HeaderMap::new()).caller_trace(), None);
        for invalid in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", HeaderValue::from_static(invalid));
            assert_eq!(Incoming::read(&headers).caller_trace(), None, "{invalid}");
        }
    }

    #[test]
    fn a_context_without_a_span_writes_nothing() {
        let mut headers = HeaderMap::new();
        inject(&Context::new(), &mut headers);
        assert!(headers.is_empty());
    }
}
