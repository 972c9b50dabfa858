//! The metrics endpoint: `GET /metrics` answers the deployment's counters (`Metrics::render`)
//! for Prometheus to scrape, on a listener of its own so it can stay off the public addresses.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use key_service::Metrics;
use tokio::net::TcpListener;

/// What `prometheus-client` writes: the OpenMetrics text format, which Prometheus negotiates.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics server, bound and ready to run.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    listener: TcpListener,
    metrics: Metrics,
}

impl MetricsEndpoint {
    /// Binds `address` (port 0 is fine) to serve `metrics`.
    pub(crate) async fn bind(address: SocketAddr, metrics: Metrics) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for metrics"))?;
        Ok(MetricsEndpoint { listener, metrics })
    }

    /// Serves until `shutdown` resolves.
    pub(crate) async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = self.listener.local_addr()?;
        let router = Router::new()
            .route("/metrics", get(render))
            .with_state(self.metrics);
        tracing::info!(%address, "metrics listening");
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the metrics endpoint failed")
    }
}

async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

/// Binds the metrics endpoint, if any. An address the operator named must be usable; the
/// default one is best effort, so a second process on the machine still starts.
pub(crate) async fn bind(
    listen: Option<MetricsListen>,
    default: SocketAddr,
    metrics: Metrics,
) -> anyhow::Result<Option<MetricsEndpoint>> {
    match listen {
        Some(MetricsListen::Off) => Ok(None),
        Some(MetricsListen::At(address)) => {
            Ok(Some(MetricsEndpoint::bind(address, metrics).await?))
        }
        None => match MetricsEndpoint::bind(default, metrics).await {
            Ok(endpoint) => Ok(Some(endpoint)),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "metrics endpoint not started; set --metrics-listen to another address"
                );
                Ok(None)
            }
        },
    }
}

/// Where the metrics endpoint listens, if anywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetricsListen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for MetricsListen {
    type Err = std::net::AddrParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("off") {
            Ok(MetricsListen::Off)
        } else {
            value.parse().map(MetricsListen::At)
        }
    }
}
