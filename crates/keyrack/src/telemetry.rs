//! Logs and traces for the whole process: the log format (`--log-format`), and, when the
//! standard `OTEL_*` variables ask for it, spans exported over OTLP.
//!
//! Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set (and `OTEL_TRACES_EXPORTER` is not `none`). The protocol is
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`, or
//! `http/protobuf` (the specification's default). The SDK reads the rest of the standard
//! variables itself: the sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; by default
//! parent-based, always on at the root), the batch (`OTEL_BSP_*`), headers, timeout and the
//! resource (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, here `keyrack` by default).
//! Without export, no OpenTelemetry layer is installed and requests make no span; with it, a
//! request's span exists only when the sampler keeps it (see key-telemetry), so a 1 % sample
//! costs little more than none.

use std::{fmt, time::Duration};

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithHttpConfig as _};
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracerProvider},
};
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::Targets, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    Text,
    /// One JSON object per line, with the current span's fields: for log collectors.
    Json,
}

/// What must be flushed before the process exits.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs logging and, if asked for, trace export. Runs inside the Tokio runtime: the gRPC
/// exporter's connection lives there.
pub(crate) fn init(filter: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = tracer_provider()?;
    // Keyrack's own spans, whatever the log filter says: the log level must not switch off
    // traces. The libraries' spans (h2, hyper, sqlx) stay out.
    let traces = provider.as_ref().map(|provider| {
        // Only the conventions' attributes and Keyrack's: no source location, thread, target
        // or busy/idle timings on every span.
        tracing_opentelemetry::OpenTelemetryLayer::new(provider.tracer("keyrack"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(
                Targets::new()
                    .with_target("key_grpc", Level::INFO)
                    .with_target("key_gateway", Level::INFO)
                    .with_target("key_service", Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports the spans still waiting, for at most `deadline`.
    pub(crate) async fn shutdown(self, deadline: Duration) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks its thread until the batch is exported.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(deadline)).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "spans not exported at shutdown"),
            Err(error) => tracing::warn!(%error, "span export at shutdown failed"),
        }
    }
}

/// The OTLP protocols Keyrack speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// A tracer provider exporting over OTLP, if the environment asks for one.
fn tracer_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    if variable("OTEL_TRACES_EXPORTER").is_some_and(|value| value.trim() == "none") {
        return Ok(None);
    }
    if variable("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    let protocol = match variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| variable("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
        .map(str::trim)
    {
        None | Some("http/protobuf") => Protocol::HttpProtobuf,
        Some("grpc") => Protocol::Grpc,
        Some(other) => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported: use grpc or http/protobuf"
        ),
    };
    let exporter = match protocol {
        Protocol::Grpc => SpanExporter::builder().with_tonic().build(),
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_http_client(SpawnedHttpClient::new())
            .build(),
    }
    .context("cannot set up the OTLP trace exporter")?;
    // The sampler the variables configure decides before a request's span exists
    // (key_telemetry's head sampling); the SDK then keeps every span it is given and their
    // children.
    key_telemetry::record_spans(opentelemetry_sdk::trace::Config::default().sampler);
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(provider_resource())
            .build(),
    ))
}

/// The resource: the standard variables' attributes, `service.name` `keyrack` unless they
/// name one, and the version.
fn provider_resource() -> Resource {
    let named = variable("OTEL_SERVICE_NAME").is_some()
        || variable("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        });
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if named {
        builder.build()
    } else {
        builder.with_service_name("keyrack").build()
    }
}

/// The OTLP/HTTP exporter's client: reqwest 0.12 (already Keyrack's client for webhooks), run on
/// the Tokio runtime. The SDK exports from a thread of its own, outside the runtime, so each
/// request is spawned onto the runtime and only its result is awaited there.
#[derive(Clone)]
struct SpawnedHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for SpawnedHttpClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SpawnedHttpClient")
    }
}

impl SpawnedHttpClient {
    fn new() -> SpawnedHttpClient {
        SpawnedHttpClient {
            client: reqwest::Client::new(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for SpawnedHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<opentelemetry_http::Bytes>,
    ) -> Result<http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
            let response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(answer.body(body)?)
        });
        sent.await?
    }
}
