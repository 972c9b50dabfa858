//! keyrack-client's tower layer in front of real axum and tonic services, verifying against a
//! real Keyrack: the principal reaches the handler, refusals are the product's JSON (or a gRPC
//! status with ErrorInfo), a revocation takes effect within the cache's TTL, a refusal is never
//! cached, and an unreachable Keyrack fails closed.
//!
//! The layer is a client of the gRPC API, whatever the storage engine: these tests run on
//! SQLite only.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{Extension, Json, Router, routing::post};
use chrono::TimeDelta;
use key_proto::v1;
use keyrack_client::{KeyrackClient, MAX_CACHE_TTL, Principal};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

use crate::{
    helpers::{Backend, TestApp, authed, spawn_app},
    ratelimit::{create_limited, limit},
};

/// What the protected handler saw: the principal the layer put in the request's extensions.
async fn whoami(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "keyId": principal.key_id,
        "organizationId": principal.organization_id,
        "scopes": principal.scopes,
    }))
}

/// An axum service on 127.0.0.1:0 whose `/api/chat` requires `chat` and `/api/agents`
/// requires `agents:write`, both behind layers of `keyrack`; its base URL.
async fn serve_protected(keyrack: &KeyrackClient) -> String {
    let app = Router::new()
        .route(
            "/api/chat",
            post(whoami).route_layer(keyrack.require(["chat"])),
        )
        .route(
            "/api/agents",
            post(whoami).route_layer(keyrack.require(["agents:write"])),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    url
}

fn keyrack_of(app: &TestApp) -> KeyrackClient {
    KeyrackClient::connect_lazy(format!("http://{}", app.addr)).unwrap()
}

async fn post_with(url: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

/// Asserts a refusal's status and its JSON, exactly the product docs' shape.
async fn assert_refused(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
    message: &str,
) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": code, "message": message}, "status": status.as_u16()})
    );
}

#[tokio::test]
async fn the_layer_lets_a_valid_key_through_with_its_principal_and_refuses_as_the_docs_say() {
    let app = spawn_app(&Backend::Sqlite).await;
    let url = serve_protected(&keyrack_of(&app)).await;
    let created = app.create_key("service", &["chat"], "").await;
    let key = created.api_key.unwrap();

    let response = post_with(&format!("{url}/api/chat"), Some(&created.key)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(
        seen,
        json!({"keyId": key.id, "organizationId": key.organization_id, "scopes": ["chat"]})
    );

    assert_refused(
        post_with(&format!("{url}/api/chat"), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        keyrack_client::MISSING_API_KEY_MESSAGE,
    )
    .await;
    assert_refused(
        post_with(&format!("{url}/api/chat"), Some("sk_live_not_a_key")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "The API key provided is invalid",
    )
    .await;
    assert_refused(
        post_with(&format!("{url}/api/agents"), Some(&created.key)).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "API key lacks required scope: agents:write",
    )
    .await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_the_cache_ttl() {
    let app = spawn_app(&Backend::Sqlite).await;
    let url = format!("{}/api/chat", serve_protected(&keyrack_of(&app)).await);
    let created = app.create_key("soon revoked", &["chat"], "").await;

    // The first request caches the verdict for at most MAX_CACHE_TTL from here.
    let cached_at = Instant::now();
    assert_eq!(
        post_with(&url, Some(&created.key)).await.status(),
        StatusCode::OK
    );
    app.client
        .clone()
        .revoke_key(authed(
            &app.admin_key,
            v1::RevokeKeyRequest {
                id: created.api_key.unwrap().id,
                reason: "leaked".into(),
            },
        ))
        .await
        .unwrap();
    let refused = loop {
        let response = post_with(&url, Some(&created.key)).await;
        if response.status() != StatusCode::OK {
            break response;
        }
        assert!(
            cached_at.elapsed() < MAX_CACHE_TTL + Duration::from_millis(300),
            "the revoked key still passes after {:?}",
            cached_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_refused(
        refused,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "The API key provided is invalid",
    )
    .await;
    // Refused for good from then on: no valid verdict is left in the cache.
    assert_eq!(
        post_with(&url, Some(&created.key)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_rate_limited_refusal_is_not_cached() {
    let app = spawn_app(&Backend::Sqlite).await;
    let url = format!("{}/api/chat", serve_protected(&keyrack_of(&app)).await);
    let key = create_limited(&app, "one a minute", vec![limit(1, v1::RatePeriod::Minute)]).await;
    // The minute's one request, spent elsewhere.
    assert!(app.verify(&key, &[]).await.valid);

    let response = post_with(&url, Some(&key)).await;
    assert_eq!(response.headers()[header::RETRY_AFTER], "60");
    assert_eq!(response.headers()["x-ratelimit-limit"], "1");
    assert_refused(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Rate limit exceeded: 1 request per minute",
    )
    .await;

    // The next window: Keyrack is asked again at once, not answered from memory.
    app.clock.advance(TimeDelta::seconds(60));
    assert_eq!(post_with(&url, Some(&key)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_key_with_credits_pays_for_every_request_and_is_refused_when_they_are_spent() {
    let app = spawn_app(&Backend::Sqlite).await;
    let url = format!("{}/api/chat", serve_protected(&keyrack_of(&app)).await);
    let created = app
        .client
        .clone()
        .create_key(authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "two uses".into(),
                scopes: vec!["chat".into()],
                credits: Some(v1::Credits {
                    remaining: 2,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Within the cache's TTL: a cached verdict would let the third request through unpaid.
    for _ in 0..2 {
        assert_eq!(
            post_with(&url, Some(&created.key)).await.status(),
            StatusCode::OK
        );
    }
    assert_refused(
        post_with(&url, Some(&created.key)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "usage_exceeded",
        "API key usage limit exceeded",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_or_silent_keyrack_fails_closed_with_503() {
    let mut app = spawn_app(&Backend::Sqlite).await;
    let keyrack = keyrack_of(&app);
    let url = format!("{}/api/chat", serve_protected(&keyrack).await);
    let created = app.create_key("while down", &["chat"], "").await;
    let unavailable = "the service is unavailable, try again";

    // Keyrack stopped: connection refused.
    app.stop_grpc().await;
    assert_refused(
        post_with(&url, Some(&created.key)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        unavailable,
    )
    .await;

    // Something listening that never answers: refused at the deadline, not later.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let deadline = Duration::from_millis(200);
    let keyrack = KeyrackClient::connect_lazy(format!("http://{silent_addr}"))
        .unwrap()
        .with_deadline(deadline);
    let url = format!("{}/api/chat", serve_protected(&keyrack).await);
    let started = Instant::now();
    assert_refused(
        post_with(&url, Some(&created.key)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        unavailable,
    )
    .await;
    assert!(
        started.elapsed() < deadline + Duration::from_millis(500),
        "refused after {:?}",
        started.elapsed()
    );
    held.abort();
}

#[tokio::test]
async fn a_tonic_service_refuses_with_a_status_and_error_info() {
    let app = spawn_app(&Backend::Sqlite).await;
    let keyrack = keyrack_of(&app);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The wrapped service keeps its name, so add_service takes it.
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(keyrack.require(["admin"]).layer(health))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let check = |key: Option<&str>| {
        let mut client = HealthClient::new(channel.clone());
        let request = match key {
            Some(key) => authed(key, HealthCheckRequest::default()),
            None => tonic::Request::new(HealthCheckRequest::default()),
        };
        async move { client.check(request).await }
    };

    let missing = check(None).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(missing.message(), keyrack_client::MISSING_API_KEY_MESSAGE);
    let info = missing.get_details_error_info().unwrap();
    assert_eq!(
        (info.domain.as_str(), info.reason.as_str()),
        ("keyrack", "invalid_api_key")
    );

    let chat = app.create_key("chat only", &["chat"], "").await.key;
    let denied = check(Some(&chat)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(denied.message(), "API key lacks required scope: admin");
    let info = denied.get_details_error_info().unwrap();
    assert_eq!(info.reason, "insufficient_scope");
    assert_eq!(info.metadata["scope"], "admin");

    assert!(check(Some(&app.admin_key)).await.is_ok());
}

/// The client crate builds from its own copy of the proto (it is published alone): the copy
/// must be the repository's proto, byte for byte. On a change to the proto, copy it:
/// `cp proto/keyrack/v1/key_service.proto crates/keyrack-client/proto/keyrack/v1/`.
#[test]
fn the_client_crate_carries_the_proto_byte_for_byte() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let proto = std::fs::read(root.join("proto/keyrack/v1/key_service.proto")).unwrap();
    let copy = std::fs::read(root.join("crates/keyrack-client/proto/keyrack/v1/key_service.proto"))
        .unwrap();
    assert!(
        proto == copy,
        "crates/keyrack-client/proto/keyrack/v1/key_service.proto differs from \
         proto/keyrack/v1/key_service.proto: copy it over"
    );
}

/// The client answers each code with the status Keyrack's front doors use.
#[test]
fn the_client_crate_has_keyracks_table_of_codes() {
    let ours: Vec<_> = key_proto::ErrorCode::ALL
        .iter()
        .map(|code| (code.reason(), code.http_status(), code.grpc_code()))
        .collect();
    assert_eq!(ours, keyrack_client::ERROR_CODES);
    assert_eq!(keyrack_client::ERROR_DOMAIN, key_proto::ERROR_DOMAIN);
    assert_eq!(
        keyrack_client::MISSING_API_KEY_MESSAGE,
        key_proto::MISSING_API_KEY_MESSAGE
    );
}
