//! Load shedding: a bound on the calls in flight, above which a call is refused at once with
//! RESOURCE_EXHAUSTED (reason `overloaded`, and a `RetryInfo` of one second) instead of
//! waiting in a queue that only grows. Callers retry against a replica with room, and the
//! calls admitted keep their latency. Health checks are never shed: an orchestrator that
//! saw a busy replica as dead would restart it and move its load onto the others.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use key_proto::{ERROR_DOMAIN, ErrorCode};
use key_telemetry::RequestMetrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Status, body::Body};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use crate::BoxFuture;

/// How many calls may be in flight at once by default, per server. Far above what two cores
/// finish in a millisecond (BENCHMARKS.md, "Shedding"), so it only binds when calls queue.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// What a shed call is told to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The health service's path prefix: never shed.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// Puts [`Shed`] around a service.
#[derive(Clone)]
pub(crate) struct ShedLayer {
    permits: Arc<Semaphore>,
    requests: RequestMetrics,
    /// The refusal's headers (status, message, encoded details), made once: a refusal only
    /// copies them.
    refusal: Arc<http::HeaderMap>,
}

impl std::fmt::Debug for ShedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShedLayer")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl ShedLayer {
    /// At most `max_in_flight` calls at once (at least one); `requests` counts each refusal.
    pub(crate) fn new(max_in_flight: usize, requests: RequestMetrics) -> ShedLayer {
        ShedLayer {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            requests,
            refusal: Arc::new(overloaded().into_http::<Body>().into_parts().0.headers),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ShedLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct Shed<S> {
    inner: S,
    layer: ShedLayer,
}

/// The refusal of a shed call.
fn overloaded() -> Status {
    let code = ErrorCode::Overloaded;
    let mut details = ErrorDetails::with_error_info(code.reason(), ERROR_DOMAIN, []);
    details.set_retry_info(Some(RETRY_AFTER));
    Status::with_error_details(
        code.grpc_code(),
        "Keyrack is at capacity; retry in a second",
        details,
    )
}

impl<S> Service<http::Request<Body>> for Shed<S>
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

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let permit: Option<OwnedSemaphorePermit> = if request.uri().path().starts_with(HEALTH) {
            None
        } else {
            match Arc::clone(&self.layer.permits).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.layer.requests.shed("grpc");
                    let mut refusal = http::Response::new(Body::empty());
                    *refusal.headers_mut() = http::HeaderMap::clone(&self.layer.refusal);
                    return Box::pin(async { Ok(refusal) });
                }
            }
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            // Held until the handler has answered (a unary call's work is done by then).
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;

    #[test]
    fn a_shed_call_says_overloaded_and_when_to_retry() {
        let status = overloaded();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "overloaded");
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(RETRY_AFTER));
    }

    #[tokio::test]
    async fn calls_above_the_bound_are_refused_at_once_and_health_never() {
        let mut registry = Registry::default();
        let layer = ShedLayer::new(1, RequestMetrics::register(&mut registry));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let mut service = layer.layer(tower::service_fn(move |_: http::Request<Body>| {
            let released = Arc::clone(&released);
            async move {
                // Only the first call waits; the guard is gone before it does.
                let first = released.lock().await.take();
                if let Some(released) = first {
                    let _ = released.await;
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            }
        }));
        let request = |path: &str| {
            http::Request::builder()
                .uri(path)
                .body(Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(service.call(request("/keyrack.v1.KeyService/VerifyKey")));
        tokio::task::yield_now().await;
        let refused = service
            .call(request("/keyrack.v1.KeyService/VerifyKey"))
            .await
            .unwrap();
        assert_eq!(
            refused.headers().get("grpc-status").unwrap(),
            &(tonic::Code::ResourceExhausted as i32).to_string()
        );
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("requests_shed_total{transport=\"grpc\"} 1"),
            "{text}"
        );
        let health = service
            .call(request("/grpc.health.v1.Health/Check"))
            .await
            .unwrap();
        assert!(health.headers().get("grpc-status").is_none());
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        // The permit came back with the first call's answer.
        let admitted = service
            .call(request("/keyrack.v1.KeyService/VerifyKey"))
            .await
            .unwrap();
        assert!(admitted.headers().get("grpc-status").is_none());
    }
}
