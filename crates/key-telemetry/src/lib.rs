//! Telemetry shared by every front door and job: W3C trace context read from and written to
//! HTTP and gRPC headers ([`Incoming`], [`inject_current`]), head sampling ([`Incoming::sampled`]:
//! a request's span exists only when it will be exported), what a call's handlers tell its
//! access log ([`CallSlot`]), and the request metrics ([`RequestMetrics`]) the gRPC server and
//! the REST gateway record.
//!
//! Nothing here exports anything: the binary decides whether spans leave the process (an OTLP
//! exporter when the `OTEL_*` variables ask for one). Without it, the functions here still
//! read the caller's trace id, so access logs name it.
//!
//! **Invariant:** nothing here reads a credential. Only `traceparent`/`tracestate` are read
//! from headers, and span fields are set by the callers, which never put a key, a digest or the
//! pepper in one.

mod call;
mod propagation;
mod requests;
mod sampling;

pub use call::{CallFacts, CallSlot};
pub(crate) use propagation::{inject, trace_id};
pub use propagation::{inject_current, rename};
pub use requests::{RequestMetrics, http_method_label};
pub use sampling::{Incoming, child_span, record_spans, root_sampled};

/// How much of a caller's `x-request-id` the logs keep.
const MAX_REQUEST_ID_CHARS: usize = 200;

/// The request id a caller sent (`x-request-id`), cut to 200 characters, for the access log.
pub fn request_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.chars().take(MAX_REQUEST_ID_CHARS).collect())
}
