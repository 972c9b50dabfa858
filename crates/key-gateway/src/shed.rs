//! Load shedding of the REST gateway: a bound on the requests in flight, above which a request
//! is answered at once with 503 `overloaded` and `Retry-After: 1` instead of waiting in a queue
//! that only grows. `/healthz` and `/readyz` are never shed: a probe that timed out on a busy
//! gateway would get it restarted and its load moved onto the others.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use key_telemetry::RequestMetrics;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How many requests the gateway serves at once by default; see key-grpc's
/// `DEFAULT_MAX_IN_FLIGHT`, which it matches.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// The bound, shared by every clone of the router.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    permits: Arc<Semaphore>,
    requests: Option<RequestMetrics>,
}

impl InFlight {
    /// At most `max` requests at once (at least one); shed ones are counted into `requests`.
    pub(crate) fn new(max: usize, requests: Option<RequestMetrics>) -> InFlight {
        InFlight {
            permits: Arc::new(Semaphore::new(max.max(1))),
            requests,
        }
    }
}

/// The middleware: admits the request if there is room, or answers
/// [`ApiError::overloaded`].
pub(crate) async fn shed(
    State(in_flight): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let Ok(_permit) = Arc::clone(&in_flight.permits).try_acquire_owned() else {
        if let Some(requests) = &in_flight.requests {
            requests.shed("http");
        }
        return ApiError::overloaded().into_response();
    };
    next.run(request).await
}
