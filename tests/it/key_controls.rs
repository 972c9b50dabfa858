//! A key's own controls, through every front door: the disabled state (refused at once, on
//! every replica, until enabled again, and audited), metadata (returned by VerifyKey and by
//! forward-auth as `X-Keyrack-Metadata`), and IP allowlists (judged by VerifyKey's `client_ip`
//! and by the gateway's trusted-proxy walk, failing closed).

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, assert_status, authed, backends, spawn_app, spawn_app_with_trusted_proxies,
    spawn_second_server,
};
use key_proto::v1;

const DISABLED_MESSAGE: &str = "API key is disabled";
const IP_MESSAGE: &str = "API key is not allowed from this IP address";

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

fn admin(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    client()
        .request(method, format!("{}{path}", app.http))
        .header("authorization", format!("Bearer {}", app.admin_key))
}

/// Forward-auth with `key`, the request having come through a proxy for `forwarded_for`.
async fn forward_auth(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .get(format!("{}/api/auth/verify", app.http))
        .header("authorization", format!("Bearer {key}"));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

async fn create(app: &TestApp, request: v1::CreateKeyRequest) -> v1::CreateKeyResponse {
    let created = app
        .client
        .clone()
        .create_key(authed(&app.admin_key, request))
        .await
        .unwrap()
        .into_inner();
    app.caught_up().await;
    created
}

async fn verify_from(
    client: &mut key_proto::v1::key_service_client::KeyServiceClient<tonic::transport::Channel>,
    key: &str,
    client_ip: &str,
) -> v1::VerifyKeyResponse {
    client
        .verify_key(v1::VerifyKeyRequest {
            key: key.to_owned(),
            client_ip: client_ip.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn update(app: &TestApp, request: v1::UpdateKeyRequest) -> Result<v1::ApiKey, tonic::Status> {
    app.client
        .clone()
        .update_key(authed(&app.admin_key, request))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

/// base64url without padding, decoded (the tests' own decoder: no crate needed).
fn base64url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

async fn audited(app: &TestApp, action: &str, target: &str) -> usize {
    app.client
        .clone()
        .list_audit_events(authed(
            &app.admin_key,
            v1::ListAuditEventsRequest {
                action: action.to_owned(),
                target: target.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_events
        .len()
}

#[tokio::test]
async fn a_disabled_key_is_refused_at_once_everywhere_until_it_is_enabled() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let second = spawn_second_server(&app).await;
        let created = app.create_key("pausable", &["chat"], "").await;
        let key = created.key.clone();
        let id = created.api_key.unwrap().id;
        let mut on_second = second.client.clone();
        // Both replicas cache the key as valid.
        assert!(app.verify(&key, &["chat"]).await.valid);
        assert!(verify_from(&mut on_second, &key, "").await.valid);

        let disabled = app
            .client
            .clone()
            .disable_key(authed(
                &app.admin_key,
                v1::DisableKeyRequest { id: id.clone() },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(disabled.state(), v1::KeyState::Disabled);
        assert!(disabled.disable_time.is_some());

        // Refused at once where it was disabled, with its own code, revealing nothing more.
        let verdict = app.verify(&key, &["chat"]).await;
        assert!(!verdict.valid);
        assert_eq!(verdict.code(), v1::VerifyCode::DisabledApiKey);
        assert_eq!(verdict.reason, "disabled_api_key");
        assert_eq!(verdict.message, DISABLED_MESSAGE);
        assert!(verdict.key_id.is_empty() && verdict.scopes.is_empty());
        if matches!(backend, Backend::Postgres(_)) {
            // The clock stands still: only the change's notice can end the second's entry.
            second.caught_up().await;
            let verdict = verify_from(&mut on_second, &key, "").await;
            assert_eq!(verdict.code(), v1::VerifyCode::DisabledApiKey);
        }
        // Forward-auth: 401, the product's error shape.
        let response = forward_auth(&app, &key, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "disabled_api_key", "message": DISABLED_MESSAGE}, "status": 401})
        );
        // Nor does it authenticate an admin call.
        let status = app
            .client
            .clone()
            .get_key(authed(&key, v1::GetKeyRequest { id: id.clone() }))
            .await
            .unwrap_err();
        assert_status(
            &status,
            Code::Unauthenticated,
            "disabled_api_key",
            Some(DISABLED_MESSAGE),
        );
        // Listed in its state; not among the active keys; not rotated while disabled.
        let listed = |state: v1::KeyState| {
            let mut client = app.client.clone();
            let admin_key = app.admin_key.clone();
            async move {
                client
                    .list_keys(authed(
                        &admin_key,
                        v1::ListKeysRequest {
                            state: state.into(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .api_keys
                    .into_iter()
                    .map(|key| key.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(v1::KeyState::Disabled).await, vec![id.clone()]);
        assert!(!listed(v1::KeyState::Active).await.contains(&id));
        let status = app
            .client
            .clone()
            .rotate_key(authed(
                &app.admin_key,
                v1::RotateKeyRequest {
                    id: id.clone(),
                    grace_period: None,
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::FailedPrecondition, "conflict", None);
        // Disabling twice is not an error.
        app.client
            .clone()
            .disable_key(authed(
                &app.admin_key,
                v1::DisableKeyRequest { id: id.clone() },
            ))
            .await
            .unwrap();

        // Enabled again (through REST): valid at once, on both replicas.
        let response = admin(&app, Method::POST, &format!("/api/api-keys/{id}/enable"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["state"], "active");
        assert_eq!(body["disabledAt"], Value::Null);
        assert!(app.verify(&key, &["chat"]).await.valid);
        if matches!(backend, Backend::Postgres(_)) {
            second.caught_up().await;
            assert!(verify_from(&mut on_second, &key, "").await.valid);
        }
        assert_eq!(
            forward_auth(&app, &key, None).await.status(),
            StatusCode::OK
        );
        // And disabled through REST once more.
        let response = admin(&app, Method::POST, &format!("/api/api-keys/{id}/disable"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["state"], "disabled");
        assert!(body["disabledAt"].is_string());
        assert_eq!(
            app.verify(&key, &[]).await.code(),
            v1::VerifyCode::DisabledApiKey
        );

        // Every change audited, each time.
        assert_eq!(audited(&app, "key.disable", &id).await, 3);
        assert_eq!(audited(&app, "key.enable", &id).await, 1);
        second.stop().await;
    }
}

#[tokio::test]
async fn disabling_is_a_managers_and_a_revoked_key_stays_revoked() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let target = app.create_key("target", &["chat"], "").await;
        let id = target.api_key.unwrap().id;
        let scoped = app.create_key("scoped", &["chat"], "").await.key;
        // A key without `admin` manages no other key.
        let status = app
            .client
            .clone()
            .disable_key(authed(&scoped, v1::DisableKeyRequest { id: id.clone() }))
            .await
            .unwrap_err();
        assert_status(&status, Code::PermissionDenied, "insufficient_scope", None);
        assert!(app.verify(&target.key, &[]).await.valid);
        assert_eq!(audited(&app, "key.disable", &id).await, 0);
        // A revoked key is neither disabled nor enabled.
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: id.clone(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        for disable in [true, false] {
            let status = if disable {
                app.client
                    .clone()
                    .disable_key(authed(
                        &app.admin_key,
                        v1::DisableKeyRequest { id: id.clone() },
                    ))
                    .await
                    .map(|_| ())
                    .unwrap_err()
            } else {
                app.client
                    .clone()
                    .enable_key(authed(
                        &app.admin_key,
                        v1::EnableKeyRequest { id: id.clone() },
                    ))
                    .await
                    .map(|_| ())
                    .unwrap_err()
            };
            assert_status(&status, Code::FailedPrecondition, "conflict", None);
        }
        let unknown = "01a220dd-bc34-727a-8649-71d3c896d257";
        let response = admin(
            &app,
            Method::POST,
            &format!("/api/api-keys/{unknown}/disable"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn metadata_is_set_and_changed_and_reaches_the_service_by_grpc_and_forward_auth() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let metadata =
            json!({"plan": "pro", "seats": 5, "tags": ["a", "b"], "owner": "Zoë, \"ops\""});
        let created = create(
            &app,
            v1::CreateKeyRequest {
                name: "with metadata".into(),
                scopes: vec!["chat".into()],
                metadata_json: metadata.to_string(),
                ..Default::default()
            },
        )
        .await;
        let record = created.api_key.unwrap();
        let stored: Value = serde_json::from_str(&record.metadata_json).unwrap();
        assert_eq!(stored, metadata);
        // VerifyKey returns it.
        let verdict = app.verify(&created.key, &["chat"]).await;
        assert!(verdict.valid);
        let returned: Value = serde_json::from_str(&verdict.metadata_json).unwrap();
        assert_eq!(returned, metadata);
        // Also with a missing scope (the principal is shown), never for a refused key.
        let verdict = app.verify(&created.key, &["admin"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InsufficientScope);
        assert!(!verdict.metadata_json.is_empty());
        // Forward-auth: the header, base64url of the JSON, and the body's `metadata`.
        let response = forward_auth(&app, &created.key, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let header = response.headers()["x-keyrack-metadata"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!header.contains('=') && !header.contains('+') && !header.contains('/'));
        let decoded: Value = serde_json::from_slice(&base64url_decode(&header)).unwrap();
        assert_eq!(decoded, metadata);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["metadata"], metadata);

        // Changed by UpdateKey: in force at the next verification (the cache drops the key).
        let changed = json!({"plan": "enterprise"});
        let updated = update(
            &app,
            v1::UpdateKeyRequest {
                id: record.id.clone(),
                metadata_json: Some(changed.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(updated.metadata_json, r#"{"plan":"enterprise"}"#);
        let verdict = app.verify(&created.key, &[]).await;
        assert_eq!(verdict.metadata_json, r#"{"plan":"enterprise"}"#);
        // Removed by PATCH with null: no header, a null in the body.
        let response = admin(&app, Method::PATCH, &format!("/api/api-keys/{}", record.id))
            .json(&json!({"metadata": null}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["metadata"], Value::Null);
        assert!(app.verify(&created.key, &[]).await.metadata_json.is_empty());
        let response = forward_auth(&app, &created.key, None).await;
        assert!(response.headers().get("x-keyrack-metadata").is_none());

        // REST: set at creation as an object, shown as one.
        let response = admin(&app, Method::POST, "/api/api-keys")
            .json(&json!({"name": "rest", "scopes": ["chat"], "metadata": {"customer": "acme", "tier": 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["metadata"], json!({"customer": "acme", "tier": 2}));
        let rest_key = body["key"].as_str().unwrap().to_owned();
        let get: Value = admin(
            &app,
            Method::GET,
            &format!("/api/api-keys/{}", body["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(get["metadata"], json!({"customer": "acme", "tier": 2}));
        let verdict = app.verify(&rest_key, &[]).await;
        let returned: Value = serde_json::from_str(&verdict.metadata_json).unwrap();
        assert_eq!(returned, json!({"customer": "acme", "tier": 2}));

        // Too large, or not an object: refused with a clear error, on both front doors.
        let big = json!({"blob": "x".repeat(1100)});
        let status = app
            .client
            .clone()
            .create_key(authed(
                &app.admin_key,
                v1::CreateKeyRequest {
                    name: "too big".into(),
                    scopes: vec!["chat".into()],
                    metadata_json: big.to_string(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        assert!(
            status
                .message()
                .starts_with("invalid metadata: at most 1024 bytes of JSON are allowed"),
            "{}",
            status.message()
        );
        let status = update(
            &app,
            v1::UpdateKeyRequest {
                id: record.id.clone(),
                metadata_json: Some("[1, 2]".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_status(
            &status,
            Code::InvalidArgument,
            "invalid_request",
            Some("invalid metadata: must be a JSON object"),
        );
        let response = admin(&app, Method::POST, "/api/api-keys")
            .json(&json!({"name": "too big", "scopes": ["chat"], "metadata": big}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 1024 bytes"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_ip_allowlist_admits_its_clients_only_and_fails_closed() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = create(
            &app,
            v1::CreateKeyRequest {
                name: "office only".into(),
                scopes: vec!["chat".into()],
                ip_allowlist: vec![
                    "10.0.0.0/8".into(),
                    "2001:db8::/32".into(),
                    "203.0.113.7".into(),
                ],
                ..Default::default()
            },
        )
        .await;
        let record = created.api_key.unwrap();
        assert_eq!(
            record.ip_allowlist,
            ["10.0.0.0/8", "2001:db8::/32", "203.0.113.7/32"]
        );
        let key = created.key;
        let mut grpc = app.client.clone();
        for inside in ["10.1.2.3", "10.255.255.254", "2001:db8:1::5", "203.0.113.7"] {
            let verdict = verify_from(&mut grpc, &key, inside).await;
            assert!(verdict.valid, "{inside}: {verdict:?}");
        }
        for outside in [
            "11.0.0.1",
            "203.0.113.8",
            "2001:db9::1",
            "::1",
            "",
            "not an address",
        ] {
            let verdict = verify_from(&mut grpc, &key, outside).await;
            assert_eq!(verdict.code(), v1::VerifyCode::IpNotAllowed, "{outside:?}");
            assert_eq!(verdict.reason, "ip_not_allowed");
            assert_eq!(verdict.message, IP_MESSAGE);
            assert!(verdict.key_id.is_empty() && verdict.metadata_json.is_empty());
        }
        // Counted per verdict.
        let scrape = app.keyrack.metrics.render();
        assert!(
            scrape
                .lines()
                .any(|line| line == r#"keyrack_verifications_total{verdict="ip_not_allowed"} 6"#),
            "{scrape}"
        );
        // Shown in lists and by REST.
        let body: Value = admin(&app, Method::GET, &format!("/api/api-keys/{}", record.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["ipAllowlist"],
            json!(["10.0.0.0/8", "2001:db8::/32", "203.0.113.7/32"])
        );
        // Replaced by UpdateKey, in force at once; then cleared.
        update(
            &app,
            v1::UpdateKeyRequest {
                id: record.id.clone(),
                ip_allowlist: vec!["192.0.2.0/24".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(verify_from(&mut grpc, &key, "192.0.2.44").await.valid);
        assert_eq!(
            verify_from(&mut grpc, &key, "10.1.2.3").await.code(),
            v1::VerifyCode::IpNotAllowed
        );
        let cleared = update(
            &app,
            v1::UpdateKeyRequest {
                id: record.id.clone(),
                clear_ip_allowlist: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(cleared.ip_allowlist.is_empty());
        assert!(verify_from(&mut grpc, &key, "").await.valid);
        // Malformed or too long lists are refused, naming the field.
        for list in [
            vec!["10.0.0.0/33".to_owned()],
            vec!["example.com".to_owned()],
            (0..101).map(|i| format!("10.0.0.{i}")).collect(),
        ] {
            let status = update(
                &app,
                v1::UpdateKeyRequest {
                    id: record.id.clone(),
                    ip_allowlist: list,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert!(
                status.message().starts_with("invalid ip_allowlist: "),
                "{status:?}"
            );
        }
    }
}

#[tokio::test]
async fn forward_auth_judges_the_client_found_behind_a_trusted_proxy() {
    for backend in backends() {
        let app = spawn_app_with_trusted_proxies(&backend, "127.0.0.1".parse().unwrap()).await;
        let response = admin(&app, Method::POST, "/api/api-keys")
            .json(&json!({
                "name": "partner",
                "scopes": ["chat"],
                "ipAllowlist": ["198.51.100.0/24", "2001:db8::/32"],
                "metadata": {"partner": "acme"},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["ipAllowlist"],
            json!(["198.51.100.0/24", "2001:db8::/32"])
        );
        let key = body["key"].as_str().unwrap().to_owned();
        app.caught_up().await;
        for inside in ["198.51.100.20", "2001:db8::5", "192.0.2.1, 198.51.100.9"] {
            let response = forward_auth(&app, &key, Some(inside)).await;
            assert_eq!(response.status(), StatusCode::OK, "{inside}");
            assert!(response.headers().contains_key("x-keyrack-metadata"));
        }
        // Outside, a client's own claim behind the trusted proxy's entry, or no proxy at all
        // (the client is then the proxy's loopback address).
        for outside in [Some("192.0.2.1"), Some("198.51.100.9, 192.0.2.1"), None] {
            let response = forward_auth(&app, &key, outside).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{outside:?}");
            assert!(response.headers().get("x-keyrack-metadata").is_none());
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body,
                json!({"error": {"code": "ip_not_allowed", "message": IP_MESSAGE}, "status": 403})
            );
        }
        // PATCH with [] removes the allowlist.
        let id = body["id"].as_str().unwrap();
        let response = admin(&app, Method::PATCH, &format!("/api/api-keys/{id}"))
            .json(&json!({"ipAllowlist": []}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ipAllowlist"], json!([]));
        assert_eq!(
            forward_auth(&app, &key, Some("192.0.2.1")).await.status(),
            StatusCode::OK
        );
    }
}
