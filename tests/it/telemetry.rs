//! Traces and access logs of the real `keyrack serve`: spans exported over OTLP/gRPC to a real
//! receiver (the collector's `TraceService`, from `opentelemetry-proto`) started here, and the
//! JSON access log, for a VerifyKey, a CreateKey over REST and a refused admin call; and the
//! metrics endpoint's request, verification, pool and build metrics.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use key_proto::v1::{self, key_service_client::KeyServiceClient};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value::Value as AnyValue},
    trace::v1::{Span, span::SpanKind},
};
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status, metadata::MetadataValue};

use crate::{
    helpers::authed,
    process::{LoggedChild, TIMEOUT, bootstrap_key, keyrack},
    redis_limiter::{scrape_metrics, serve_with_metrics},
};

/// The caller's trace context on each request: trace id, then parent span id.
const GRPC_TRACE: (&str, &str) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
const REST_TRACE: (&str, &str) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");

fn traceparent((trace, parent): (&str, &str)) -> String {
    format!("00-{trace}-{parent}-01")
}

/// A span as received, with its resource's attributes.
type Received = (Vec<KeyValue>, Span);

/// The spans a real OTLP/gRPC endpoint received.
#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| resource.attributes)
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push((resource.clone(), span));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Starts the receiver on a free port; returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{address}")
    }

    /// Waits until a span named `name` has arrived and returns it.
    async fn span(&self, name: &str) -> Span {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some((_, span)) = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|(_, span)| span.name == name)
            {
                return span.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no span {name:?} within {TIMEOUT:?}; received: {:?}",
                self.names()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn names(&self) -> Vec<String> {
        let spans = self.spans.lock().unwrap();
        spans.iter().map(|(_, span)| span.name.clone()).collect()
    }
}

/// A span's (or a resource's) attributes as strings.
fn attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|attribute| {
            let value = match attribute
                .value
                .as_ref()
                .and_then(|value| value.value.as_ref())
            {
                Some(AnyValue::StringValue(value)) => value.clone(),
                Some(AnyValue::IntValue(value)) => value.to_string(),
                Some(AnyValue::BoolValue(value)) => value.to_string(),
                Some(AnyValue::DoubleValue(value)) => value.to_string(),
                other => format!("{other:?}"),
            };
            (attribute.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Asserts that `span`'s attribute `key` is the integer `expected` (the conventions' type for
/// status codes), not its text.
fn assert_int_attribute(span: &Span, key: &str, expected: i64) {
    let found = span
        .attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.clone());
    assert_eq!(
        found,
        Some(AnyValue::IntValue(expected)),
        "{key} of span {:?}",
        span.name
    );
}

fn assert_attribute(span: &Span, key: &str, expected: &str) {
    let found = attributes(&span.attributes);
    assert_eq!(
        found.get(key).map(String::as_str),
        Some(expected),
        "{key} of span {:?}: {found:#?}",
        span.name
    );
}

/// The address a JSON log line of `message` names.
fn json_address(line: &str, message: &str) -> Option<String> {
    let line: Value = serde_json::from_str(line).ok()?;
    (line.pointer("/fields/message")?.as_str()? == message)
        .then(|| line.pointer("/fields/address")?.as_str().map(str::to_owned))?
}

/// A `keyrack serve` (gRPC and REST on free ports, JSON logs) on `data_dir` exporting spans over
/// OTLP/gRPC to `endpoint` every 100 ms, with `env` added: the process, once both servers
/// listen, and their addresses.
fn serve_traced(
    data_dir: &std::path::Path,
    endpoint: &str,
    env: &[(&str, &str)],
) -> (LoggedChild, String, String) {
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .args(["--log-format", "json"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .envs(env.iter().copied());
    let mut serving = LoggedChild::spawn(command, "serve");
    // The two servers start side by side: their lines come in either order.
    let (mut grpc, mut http) = (None, None);
    serving.wait_for_line("both servers listening", TIMEOUT, |line| {
        grpc = grpc
            .take()
            .or_else(|| json_address(line, "gRPC server listening"));
        http = http
            .take()
            .or_else(|| json_address(line, "HTTP gateway listening"));
        (grpc.is_some() && http.is_some()).then_some(())
    });
    (serving, grpc.unwrap(), http.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_continuing_the_callers_trace_and_hold_no_secret() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let (mut serving, grpc, http) = serve_traced(
        data_dir.path(),
        &endpoint,
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test",
        )],
    );
    let admin = bootstrap_key(data_dir.path());
    let pepper = std::fs::read_to_string(data_dir.path().join("pepper")).unwrap();
    let mut client = KeyServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();

    // A VerifyKey continuing the caller's trace.
    let mut verify = Request::new(v1::VerifyKeyRequest {
        key: admin.clone(),
        required_scopes: vec!["admin".into()],
        ..Default::default()
    });
    verify.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent(GRPC_TRACE)).unwrap(),
    );
    let verified = client.verify_key(verify).await.unwrap().into_inner();
    assert!(verified.valid, "{verified:?}");

    // A CreateKey over REST, continuing another trace.
    let created: Value = reqwest::Client::new()
        .post(format!("http://{http}/api/api-keys"))
        .bearer_auth(&admin)
        .header("traceparent", traceparent(REST_TRACE))
        .json(&serde_json::json!({"name": "Traced", "scopes": ["chat"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = created["key"].as_str().unwrap().to_owned();

    // An admin call refused for its key.
    let refused = client
        .list_keys(authed("sk_live_not_a_key", v1::ListKeysRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let span = receiver.span("keyrack.v1.KeyService/VerifyKey").await;
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&span.trace_id),
        GRPC_TRACE.0,
        "the caller's trace is continued"
    );
    assert_eq!(
        hex(&span.parent_span_id),
        GRPC_TRACE.1,
        "the caller's span is the parent"
    );
    assert_int_attribute(&span, "rpc.grpc.status_code", 0);
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "keyrack.v1.KeyService"),
        ("rpc.method", "VerifyKey"),
        ("keyrack.verdict", "valid"),
        ("keyrack.key_id", verified.key_id.as_str()),
        ("keyrack.organization_id", verified.organization_id.as_str()),
    ] {
        assert_attribute(&span, key, value);
    }

    let rest = receiver.span("POST /api/api-keys").await;
    assert_eq!(rest.kind, SpanKind::Server as i32);
    assert_eq!(hex(&rest.trace_id), REST_TRACE.0);
    assert_eq!(hex(&rest.parent_span_id), REST_TRACE.1);
    assert_attribute(&rest, "http.request.method", "POST");
    assert_attribute(&rest, "http.route", "/api/api-keys");
    assert_int_attribute(&rest, "http.response.status_code", 201);
    // The gateway's call to the service is the same trace, one level down.
    let create = receiver.span("keyrack.v1.KeyService/CreateKey").await;
    assert_eq!(hex(&create.trace_id), REST_TRACE.0);
    assert_eq!(
        create.parent_span_id, rest.span_id,
        "the gateway's span is the parent"
    );
    assert_int_attribute(&create, "rpc.grpc.status_code", 0);
    assert_attribute(&create, "keyrack.key_id", verified.key_id.as_str());

    let list = receiver.span("keyrack.v1.KeyService/ListKeys").await;
    assert_int_attribute(&list, "rpc.grpc.status_code", 16);
    assert!(
        !attributes(&list.attributes).contains_key("keyrack.key_id"),
        "a refused caller names no key"
    );

    // The resource names the service and keeps the operator's attributes.
    let resource = {
        let spans = receiver.spans.lock().unwrap();
        attributes(&spans[0].0)
    };
    assert_eq!(
        resource.get("service.name").map(String::as_str),
        Some("keyrack")
    );
    assert_eq!(
        resource
            .get("deployment.environment.name")
            .map(String::as_str),
        Some("test")
    );

    // No exported attribute or event holds a key, a key's secret part or the pepper.
    let secrets = [
        admin.as_str(),
        &admin["sk_live_".len()..],
        new_key.as_str(),
        &new_key["sk_live_".len()..],
        pepper.trim(),
    ];
    let exported = format!("{:?}", receiver.spans.lock().unwrap());
    for secret in secrets {
        assert!(
            !exported.contains(secret),
            "an exported span holds a secret"
        );
    }

    // The access log: one JSON line per call, naming the trace and the key, never the key.
    let status = serving.terminate(TIMEOUT);
    assert!(status.success(), "{status}");
    let log = serving.stderr();
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds a secret");
    }
    let access: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "keyrack::access")
        .collect();
    let verify_line = access
        .iter()
        .find(|line| line.pointer("/fields/method") == Some(&Value::from("VerifyKey")))
        .unwrap_or_else(|| panic!("no access line for VerifyKey in:\n{log}"));
    assert_eq!(verify_line["level"], "INFO");
    assert_eq!(verify_line.pointer("/fields/status"), Some(&Value::from(0)));
    assert!(
        verify_line
            .pointer("/fields/duration_us")
            .is_some_and(Value::is_u64)
    );
    assert_eq!(
        verify_line.pointer("/fields/trace_id"),
        Some(&Value::from(GRPC_TRACE.0))
    );
    assert_eq!(
        verify_line.pointer("/fields/key_id"),
        Some(&Value::from(verified.key_id.as_str()))
    );
    assert_eq!(
        verify_line.pointer("/fields/verdict"),
        Some(&Value::from("valid"))
    );
    let rest_line = access
        .iter()
        .find(|line| line.pointer("/fields/route") == Some(&Value::from("/api/api-keys")))
        .unwrap_or_else(|| panic!("no access line for the REST call in:\n{log}"));
    assert_eq!(rest_line.pointer("/fields/status"), Some(&Value::from(201)));
    assert_eq!(
        rest_line.pointer("/fields/trace_id"),
        Some(&Value::from(REST_TRACE.0))
    );
    assert!(
        rest_line.pointer("/fields/request_id").is_some(),
        "{rest_line}"
    );
}

/// The value of the sample `series` (name and labels, as rendered) in a metrics scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The metrics endpoint shows each call's latency by method and status (invented methods
/// under one label), verifications by verdict, the usage flush, the database pool, the
/// webhook backlog and the build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_show_latency_by_method_verdicts_the_pool_and_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let (mut serving, grpc, metrics, _) = serve_with_metrics(dir.path(), &[]).await;
    let admin = bootstrap_key(dir.path());
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = KeyServiceClient::new(channel.clone());
    for key in [
        admin.as_str(),
        "sk_live_0000000000000000000000000000000000000000",
    ] {
        client
            .verify_key(v1::VerifyKeyRequest {
                key: key.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // A hundred invented methods: one label between them, not a hundred.
    let mut grpc_client = tonic::client::Grpc::new(channel);
    for n in 0..100 {
        grpc_client.ready().await.unwrap();
        let path = http::uri::PathAndQuery::try_from(format!("/keyrack.v1.KeyService/Invented{n}"))
            .unwrap();
        let answer: Result<tonic::Response<()>, Status> = grpc_client
            .unary(
                Request::new(()),
                path,
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await;
        // Refused for its missing key before it could be found missing.
        assert_eq!(answer.unwrap_err().code(), Code::Unauthenticated);
    }
    // The flush and the probe run every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let scrape = scrape_metrics(&metrics).await;
    let value = |series: &str| {
        sample(&scrape, series).unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
    };
    assert_eq!(
        value(
            r#"keyrack_rpc_server_duration_seconds_count{rpc_service="keyrack.v1.KeyService",rpc_method="VerifyKey",rpc_grpc_status_code="0"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            r#"keyrack_rpc_server_duration_seconds_count{rpc_service="_OTHER",rpc_method="_OTHER",rpc_grpc_status_code="16"}"#
        ),
        100.0
    );
    assert!(
        !scrape.contains("Invented"),
        "an invented method became a label"
    );
    assert_eq!(
        value(r#"keyrack_verifications_total{verdict="valid"}"#),
        1.0
    );
    assert_eq!(
        value(r#"keyrack_verifications_total{verdict="invalid_api_key"}"#),
        1.0
    );
    assert!(value("keyrack_usage_flush_last_success_timestamp_seconds") > 1.7e9);
    assert!(value("keyrack_usage_flush_duration_seconds_count") >= 1.0);
    let open = value(r#"keyrack_database_connections{state="idle"}"#)
        + value(r#"keyrack_database_connections{state="in_use"}"#);
    assert!(open >= 1.0, "{open} connections open");
    assert_eq!(value("keyrack_webhook_deliveries_due"), 0.0);
    let build = scrape
        .lines()
        .find(|line| line.starts_with("keyrack_build_info{"))
        .unwrap_or_else(|| panic!("no build info in:\n{scrape}"));
    assert!(
        build.contains(r#"version="0.0.0""#) && build.ends_with(" 1"),
        "{build}"
    );
    assert!(!build.contains(r#"commit="""#), "{build}");
    let status = serving.terminate(TIMEOUT);
    assert!(status.success(), "{status}");
}

/// The specification's default protocol, OTLP/HTTP with protobuf, to a real HTTP endpoint
/// that decodes what it receives: the same spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_http_endpoint_by_default() {
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let sink = receiver.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = <ExportTraceServiceRequest as prost::Message>::decode(body).unwrap();
                sink.export(Request::new(request)).await.unwrap();
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let data_dir = tempfile::tempdir().unwrap();
    let mut command = keyrack();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .args(["--metrics-listen", "off"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{address}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let mut serving = LoggedChild::spawn(command, "serve");
    let grpc = serving.wait_for_line("gRPC server listening", TIMEOUT, |line| {
        crate::redis_limiter::logged_address(line, "gRPC server listening")
    });
    let mut client = KeyServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let answer = client
        .verify_key(v1::VerifyKeyRequest {
            key: bootstrap_key(data_dir.path()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let span = receiver.span("keyrack.v1.KeyService/VerifyKey").await;
    assert_attribute(&span, "keyrack.key_id", &answer.key_id);
    let status = serving.terminate(TIMEOUT);
    assert!(status.success(), "{status}");
}

/// Sampling is decided before a span exists, and a request through the gateway is kept or
/// dropped as a whole: with a sampler that starts no trace of its own
/// (`parentbased_traceidratio` at 0), a call whose caller sampled its trace is exported, and
/// neither a call without one nor any part of a REST request without one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_traces_the_sampler_keeps_are_exported() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let (mut serving, grpc, http) = serve_traced(
        data_dir.path(),
        &endpoint,
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
    let admin = bootstrap_key(data_dir.path());
    let mut client = KeyServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let verify = |traceparent: Option<String>| {
        let mut request = Request::new(v1::VerifyKeyRequest {
            key: admin.clone(),
            ..Default::default()
        });
        if let Some(traceparent) = traceparent {
            request
                .metadata_mut()
                .insert("traceparent", MetadataValue::try_from(traceparent).unwrap());
        }
        request
    };
    // No trace context: a root the sampler drops.
    client.verify_key(verify(None)).await.unwrap();
    // A REST request without one: dropped, its call to the service too.
    let listed = reqwest::Client::new()
        .get(format!("http://{http}/api/api-keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    // The caller sampled its trace: kept.
    client
        .verify_key(verify(Some(traceparent(GRPC_TRACE))))
        .await
        .unwrap();
    let kept = receiver.span("keyrack.v1.KeyService/VerifyKey").await;
    assert_eq!(hex(&kept.trace_id), GRPC_TRACE.0);
    // Whatever else was exported has had time to arrive with it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names = receiver.names();
    assert_eq!(
        names
            .iter()
            .filter(|name| name.starts_with("keyrack.v1.") || name.starts_with("GET"))
            .collect::<Vec<_>>(),
        ["keyrack.v1.KeyService/VerifyKey"],
        "only the caller's sampled call: {names:?}"
    );
    let status = serving.terminate(TIMEOUT);
    assert!(status.success(), "{status}");
    // The REST request and the call it made share one trace id in the access log, though
    // neither was exported.
    let log = serving.stderr();
    let trace_of = |field: &str, value: &str| -> Option<String> {
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line.pointer(field) == Some(&Value::from(value)))
            .and_then(|line| {
                line.pointer("/fields/trace_id")?
                    .as_str()
                    .map(str::to_owned)
            })
    };
    let rest = trace_of("/fields/route", "/api/api-keys");
    assert!(rest.is_some(), "the REST request names a trace: {log}");
    assert_eq!(rest, trace_of("/fields/method", "ListKeys"));
}
