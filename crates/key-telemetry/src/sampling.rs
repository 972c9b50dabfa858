//! Head sampling before a span exists. The OpenTelemetry layer records every span it is given,
//! sampled or not (a sampled-out span still costs its attributes), so a request's span is
//! created only when the sampler keeps it: [`Incoming::sampled`]. The binary hands the sampler
//! the `OTEL_*` variables configure to [`record_spans`] and gives the SDK a parent-based,
//! always-on sampler, which keeps exactly the spans created here and their children.
//!
//! Without [`record_spans`] (no export), no request span is created at all.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use opentelemetry::{
    Context,
    propagation::TextMapPropagator,
    trace::{SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator, SamplingDecision, ShouldSample},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::Headers;

/// The sampler, once spans are exported.
static SAMPLER: OnceLock<Box<dyn ShouldSample>> = OnceLock::new();

/// Turns on span recording, with `sampler` deciding which traces are kept. Once per process.
pub fn record_spans(sampler: Box<dyn ShouldSample>) {
    let _ = SAMPLER.set(sampler);
}

/// Whether spans are recorded at all (an exporter is configured).
fn recording() -> bool {
    SAMPLER.get().is_some()
}

/// Whether a span that starts a trace of its own (a job's, not a request's) is kept.
pub fn root_sampled(name: &str) -> bool {
    Incoming::default().sampled(name)
}

/// Whether a child of the current span is worth creating: only inside a kept trace, so a
/// sampled-out request's store read does not become a trace of its own.
fn in_kept_trace() -> bool {
    recording() && !Span::current().is_disabled()
}

/// A child of the current span, made by `make`, only inside a kept trace: otherwise it would
/// start a trace of its own.
pub fn child_span(make: impl FnOnce() -> Span) -> Span {
    if in_kept_trace() {
        make()
    } else {
        Span::none()
    }
}

/// The trace context a request came with.
#[derive(Debug, Default)]
pub struct Incoming {
    parent: Option<Context>,
}

impl Incoming {
    /// Reads `traceparent`/`tracestate`; an absent or invalid one is no parent.
    pub fn read(headers: &HeaderMap) -> Incoming {
        if !headers.contains_key("traceparent") {
            return Incoming::default();
        }
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let valid = parent.span().span_context().is_valid();
        Incoming {
            parent: valid.then_some(parent),
        }
    }

    /// The caller's trace id, if it sent a valid trace context.
    pub fn caller_trace(&self) -> Option<TraceId> {
        self.parent
            .as_ref()
            .map(|parent| parent.span().span_context().trace_id())
    }

    /// Whether this request's span `name` is kept: never without an exporter; otherwise the
    /// configured sampler's decision (by default: the caller's sampled flag if it sent one,
    /// else yes).
    pub fn sampled(&self, name: &str) -> bool {
        let Some(sampler) = SAMPLER.get() else {
            return false;
        };
        let trace_id = self
            .caller_trace()
            .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id());
        let decision = sampler
            .should_sample(
                self.parent.as_ref(),
                trace_id,
                name,
                &SpanKind::Server,
                &[],
                &[],
            )
            .decision;
        decision == SamplingDecision::RecordAndSample
    }

    /// Makes `span` (if it exists) continue the caller's trace, and returns the trace id the
    /// request's logs carry: the span's own when it exists, else the caller's.
    pub fn continue_in(self, span: &Span) -> Option<TraceId> {
        let caller = self.caller_trace();
        if span.is_disabled() {
            return caller;
        }
        if let Some(parent) = self.parent {
            // Fails only when no OpenTelemetry layer records spans, and then there is none.
            let _ = span.set_parent(parent);
        }
        crate::trace_id(span).or(caller)
    }

    /// For a request whose span was not kept while spans are recorded: a `traceparent` that
    /// says so (the caller's trace, else a new one, not sampled), for the services it calls,
    /// which would otherwise start traces of their own; and its trace id, for the logs.
    pub fn not_sampled_traceparent(&self) -> Option<(HeaderValue, TraceId)> {
        if !recording() {
            return None;
        }
        let (trace_id, span_id) = match &self.parent {
            Some(parent) => {
                let context = parent.span().span_context().clone();
                (context.trace_id(), context.span_id())
            }
            None => {
                let ids = RandomIdGenerator::default();
                (ids.new_trace_id(), ids.new_span_id())
            }
        };
        let context = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        let mut headers = HeaderMap::new();
        crate::inject(
            &Context::new().with_remote_span_context(context),
            &mut headers,
        );
        Some((headers.remove("traceparent")?, trace_id))
    }
}
