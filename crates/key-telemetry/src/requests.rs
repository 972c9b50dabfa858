//! Request latency histograms, by gRPC method and by REST route, with the answer's status: the
//! count of each histogram is the number of requests with those labels, so "requests by method
//! and status" needs no second metric.
//!
//! Label values come from a bounded set whatever clients send: a gRPC method the server does
//! not have is counted as `_OTHER` (the gRPC layer knows the server's methods), an HTTP method outside the standard ones as `_OTHER` (as
//! the OpenTelemetry conventions say), a path that matched no route as `unmatched`.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The buckets' upper bounds: 50 µs doubling to 1.6 s, so a cached VerifyKey (tens of
/// microseconds) and a slow database write (hundreds of milliseconds) both resolve.
fn buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_05, 2.0, 16)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc_service: &'static str,
    rpc_method: &'static str,
    rpc_grpc_status_code: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    http_request_method: &'static str,
    http_route: String,
    http_response_status_code: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(buckets())
}

/// The request histograms of one process. Cheap to clone; clones share them.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rpc: Histograms<RpcLabels>,
    http: Histograms<HttpLabels>,
    shed: Family<TransportLabel, Counter>,
}

impl RequestMetrics {
    /// Creates the histograms and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> RequestMetrics {
        let rpc: Histograms<RpcLabels> = Family::new_with_constructor(histogram);
        registry.register(
            "rpc_server_duration_seconds",
            "gRPC calls answered, by service, method and gRPC status code, and how long each took in seconds",
            rpc.clone(),
        );
        let http: Histograms<HttpLabels> = Family::new_with_constructor(histogram);
        registry.register(
            "http_server_duration_seconds",
            "REST requests answered, by method, route and status code, and how long each took in seconds",
            http.clone(),
        );
        let shed = Family::<TransportLabel, Counter>::default();
        registry.register(
            "requests_shed",
            "Requests refused at once because the front door was at its in-flight bound (gRPC RESOURCE_EXHAUSTED, REST 503), by transport",
            shed.clone(),
        );
        RequestMetrics {
            inner: Arc::new(Inner { rpc, http, shed }),
        }
    }

    /// Counts a request refused by the load shedding of `transport` (`grpc` or `http`).
    pub fn shed(&self, transport: &'static str) {
        self.inner
            .shed
            .get_or_create(&TransportLabel { transport })
            .inc();
    }

    /// Records a call of `service`'s `method` (known ones only: the caller names any other
    /// `_OTHER`) answered with `status` (the gRPC status code) after `elapsed`.
    pub fn rpc(&self, service: &'static str, method: &'static str, status: i32, elapsed: Duration) {
        self.inner
            .rpc
            .get_or_create(&RpcLabels {
                rpc_service: service,
                rpc_method: method,
                rpc_grpc_status_code: status,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a REST request matched to `route` (`None`: no route matched) answered with
    /// `status` after `elapsed`.
    pub fn http(&self, method: &http::Method, route: Option<&str>, status: u16, elapsed: Duration) {
        self.inner
            .http
            .get_or_create(&HttpLabels {
                http_request_method: http_method_label(method),
                http_route: route.unwrap_or("unmatched").to_owned(),
                http_response_status_code: status,
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// An HTTP method as a bounded label: a standard method's name, or `_OTHER`.
pub fn http_method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn rendered(metrics: impl FnOnce(&RequestMetrics)) -> String {
        let mut registry = Registry::with_prefix("keyrack");
        let requests = RequestMetrics::register(&mut registry);
        metrics(&requests);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn invented_http_methods_and_paths_share_one_label() {
        let text = rendered(|requests| {
            for n in 0..100 {
                let method = http::Method::from_bytes(format!("M{n}").as_bytes()).unwrap();
                requests.http(&method, None, 404, Duration::from_micros(10));
            }
        });
        assert!(text.contains(
            r#"keyrack_http_server_duration_seconds_count{http_request_method="_OTHER",http_route="unmatched",http_response_status_code="404"} 100"#
        ), "{text}");
    }

    #[test]
    fn a_call_is_counted_by_method_and_status_and_its_bucket_resolves_50_microseconds() {
        let text = rendered(|requests| {
            requests.rpc(
                "keyrack.v1.KeyService",
                "VerifyKey",
                0,
                Duration::from_micros(40),
            );
        });
        assert!(text.contains(r#"keyrack_rpc_server_duration_seconds_bucket{le="0.00005",rpc_service="keyrack.v1.KeyService",rpc_method="VerifyKey",rpc_grpc_status_code="0"} 1"#), "{text}");
    }
}
