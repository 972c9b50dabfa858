//! The key lifecycle through the gRPC API: create, verify, expire, revoke, list.

use chrono::{TimeDelta, TimeZone, Utc};
use key_core::{ApiKey, Environment};
use key_proto::v1::{self, VerifyCode};
use ring::rand::SystemRandom;
use tonic::Code;

use crate::helpers::{assert_status, authed, backends, spawn_app};

#[tokio::test]
async fn a_created_key_verifies_and_reports_its_principal() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app
            .create_key("Production API", &["chat", "agents:read"], "")
            .await;
        let record = created.api_key.unwrap();
        assert!(created.key.starts_with("sk_live_"), "{}", created.key);
        assert_eq!(created.key.len(), 57);
        assert_eq!(
            record.redacted_key,
            format!("sk_live_…{}", &created.key[53..])
        );
        assert_eq!(record.scopes, vec!["chat", "agents:read"]);
        assert_eq!(record.state(), v1::KeyState::Active);
        assert!(record.scoped);
        assert!(record.expire_time.is_none());

        let verdict = app.verify(&created.key, &["chat", "agents:read"]).await;
        assert!(verdict.valid);
        assert_eq!(verdict.code(), VerifyCode::Valid);
        assert_eq!(verdict.message, "");
        assert_eq!(verdict.key_id, record.id);
        assert_eq!(verdict.organization_id, record.organization_id);
        assert_eq!(verdict.name, "Production API");
        assert_eq!(verdict.scopes, vec!["chat", "agents:read"]);
        assert_eq!(verdict.environment(), v1::Environment::Live);

        // A header value carries surrounding whitespace; it is not part of the key.
        assert!(app.verify(&format!("  {}\n", created.key), &[]).await.valid);
    }
}

#[tokio::test]
async fn test_keys_are_told_apart_from_live_keys() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut request = v1::CreateKeyRequest {
            name: "Development".into(),
            scopes: vec!["chat".into()],
            ..Default::default()
        };
        request.set_environment(v1::Environment::Test);
        let created = app
            .client
            .clone()
            .create_key(authed(&app.admin_key, request))
            .await
            .unwrap()
            .into_inner();
        assert!(created.key.starts_with("sk_test_"), "{}", created.key);
        let verdict = app.verify(&created.key, &["chat"]).await;
        assert_eq!(verdict.environment(), v1::Environment::Test);
    }
}

#[tokio::test]
async fn every_verdict_carries_the_product_message() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app
            .create_key("Chat only", &["chat", "agents:read"], "")
            .await
            .key;

        let garbage = app.verify("sk_live_abc123...", &[]).await;
        assert!(!garbage.valid);
        assert_eq!(garbage.code(), VerifyCode::InvalidApiKey);
        assert_eq!(garbage.reason, "invalid_api_key");
        assert_eq!(garbage.message, "The API key provided is invalid");
        assert_eq!(garbage.key_id, "");

        // Well formed, correct checksum, but never issued by this server.
        let stranger = ApiKey::generate(Environment::Live, &SystemRandom::new()).unwrap();
        let unknown = app.verify(stranger.expose(), &[]).await;
        assert_eq!(unknown.code(), VerifyCode::InvalidApiKey);
        assert_eq!(unknown.message, "The API key provided is invalid");

        // The first missing scope in the order the caller asked for.
        let lacking = app
            .verify(&key, &["chat", "data:write", "agents:write"])
            .await;
        assert!(!lacking.valid);
        assert_eq!(lacking.code(), VerifyCode::InsufficientScope);
        assert_eq!(lacking.reason, "insufficient_scope");
        assert_eq!(lacking.message, "API key lacks required scope: data:write");
        let lacking = app.verify(&key, &["agents:write"]).await;
        assert_eq!(
            lacking.message,
            "API key lacks required scope: agents:write"
        );

        // An admin key holds every scope.
        assert!(
            app.verify(&app.admin_key, &["agents:delete", "data:write"])
                .await
                .valid
        );
    }
}

#[tokio::test]
async fn a_key_expires_at_the_end_of_its_expiry_date() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app
            .create_key("Until the 20th", &["chat"], "2026-01-20")
            .await;
        let expire_time = created.api_key.unwrap().expire_time.unwrap();
        assert_eq!(
            expire_time.seconds,
            Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0)
                .unwrap()
                .timestamp()
        );

        app.clock.set(
            Utc.with_ymd_and_hms(2026, 1, 20, 23, 59, 59).unwrap() + TimeDelta::milliseconds(999),
        );
        assert!(
            app.verify(&created.key, &["chat"]).await.valid,
            "valid through the last millisecond"
        );

        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0).unwrap());
        let expired = app.verify(&created.key, &["chat"]).await;
        assert!(!expired.valid);
        assert_eq!(expired.code(), VerifyCode::ExpiredApiKey);
        assert_eq!(expired.reason, "expired_api_key");
        assert_eq!(expired.message, "API key expired on 2026-01-20");
        // An expired key tells nothing about itself.
        assert_eq!(expired.key_id, "");

        let key = app
            .client
            .clone()
            .get_key(authed(
                &app.admin_key,
                v1::GetKeyRequest {
                    id: expired_id(&app, &created.key).await,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(key.state(), v1::KeyState::Expired);
    }
}

/// The id of a key, found by listing (an expired key's verdict does not carry it).
async fn expired_id(app: &crate::helpers::TestApp, key: &str) -> String {
    let last4 = &key[key.len() - 4..];
    let listed = app
        .client
        .clone()
        .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner();
    listed
        .api_keys
        .into_iter()
        .find(|k| k.redacted_key.ends_with(last4))
        .unwrap()
        .id
}

#[tokio::test]
async fn an_rfc3339_expiry_is_exact_and_a_past_one_is_refused() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app
            .create_key("Two hours", &["chat"], "2026-01-15T14:30:00+02:00")
            .await;
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 15, 12, 29, 59).unwrap());
        assert!(app.verify(&created.key, &[]).await.valid);
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 15, 12, 30, 0).unwrap());
        assert_eq!(
            app.verify(&created.key, &[]).await.message,
            "API key expired on 2026-01-15"
        );

        for past in ["2026-01-14", "2026-01-15T12:00:00Z", "2020-01-01"] {
            let status = app
                .client
                .clone()
                .create_key(authed(
                    &app.admin_key,
                    v1::CreateKeyRequest {
                        name: "late".into(),
                        scopes: vec!["chat".into()],
                        expires_at: past.into(),
                        environment: 0,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert!(
                status.message().contains("expires_at"),
                "{}",
                status.message()
            );
        }
    }
}

#[tokio::test]
async fn a_revoked_key_fails_its_very_next_verification() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Compromised", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        assert!(app.verify(&created.key, &["chat"]).await.valid);

        let revoked = app
            .client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: id.clone(),
                    reason: "leaked in a log".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(revoked.state(), v1::KeyState::Revoked);
        assert_eq!(revoked.revoke_reason, "leaked in a log");
        let revoke_time = revoked.revoke_time.unwrap();

        let verdict = app.verify(&created.key, &["chat"]).await;
        assert_eq!(verdict.code(), VerifyCode::InvalidApiKey);
        assert_eq!(verdict.message, "The API key provided is invalid");

        // Revoking again is not an error and keeps the first revocation.
        app.clock.advance(TimeDelta::hours(1));
        let again = app
            .client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: id.clone(),
                    reason: "again".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(again.revoke_time.unwrap(), revoke_time);
        assert_eq!(again.revoke_reason, "leaked in a log");

        // Revoked keys stay listed.
        let mut request = v1::ListKeysRequest::default();
        request.set_state(v1::KeyState::Revoked);
        let listed = app
            .client
            .clone()
            .list_keys(authed(&app.admin_key, request))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.api_keys.len(), 1);
        assert_eq!(listed.api_keys[0].id, id);
    }
}

#[tokio::test]
async fn listing_pages_newest_first_and_filters_by_state() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut created = Vec::new();
        for i in 0..7 {
            created.push(
                app.create_key(&format!("key {i}"), &["chat"], "")
                    .await
                    .api_key
                    .unwrap()
                    .id,
            );
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = app
                .client
                .clone()
                .list_keys(authed(
                    &app.admin_key,
                    v1::ListKeysRequest {
                        page_size: 3,
                        page_token: token,
                        state: 0,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            assert!(page.api_keys.len() <= 3);
            seen.extend(page.api_keys.into_iter().map(|k| k.name));
            pages += 1;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        // Seven keys plus the bootstrap admin key, newest first, each exactly once.
        assert_eq!(pages, 3);
        let mut expected: Vec<String> = (0..7).rev().map(|i| format!("key {i}")).collect();
        expected.push("Bootstrap admin key".into());
        assert_eq!(seen, expected);

        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: created[0].clone(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        let mut active = v1::ListKeysRequest::default();
        active.set_state(v1::KeyState::Active);
        let active = app
            .client
            .clone()
            .list_keys(authed(&app.admin_key, active))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(active.api_keys.len(), 7);
        assert!(active.api_keys.iter().all(|k| k.id != created[0]));

        for (request, field) in [
            (
                v1::ListKeysRequest {
                    page_size: -1,
                    ..Default::default()
                },
                "page_size",
            ),
            (
                v1::ListKeysRequest {
                    page_token: "not-a-token".into(),
                    ..Default::default()
                },
                "page_token",
            ),
            (
                v1::ListKeysRequest {
                    state: 42,
                    ..Default::default()
                },
                "state",
            ),
        ] {
            let status = app
                .client
                .clone()
                .list_keys(authed(&app.admin_key, request))
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert!(status.message().contains(field), "{}", status.message());
        }
    }
}

#[tokio::test]
async fn bad_create_requests_name_the_offending_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let valid = v1::CreateKeyRequest {
            name: "ok".into(),
            scopes: vec!["chat".into()],
            expires_at: String::new(),
            environment: 0,
            ..Default::default()
        };
        let cases = [
            (
                v1::CreateKeyRequest {
                    name: String::new(),
                    ..valid.clone()
                },
                "name",
                "invalid name: a name is required",
            ),
            (
                v1::CreateKeyRequest {
                    name: "x".repeat(101),
                    ..valid.clone()
                },
                "name",
                "invalid name: at most 100 characters are allowed",
            ),
            (
                v1::CreateKeyRequest {
                    name: "bell\u{7}".into(),
                    ..valid.clone()
                },
                "name",
                "invalid name: control characters are not allowed",
            ),
            (
                v1::CreateKeyRequest {
                    scopes: vec![],
                    ..valid.clone()
                },
                "scopes",
                "invalid scopes: at least one scope is required",
            ),
            (
                v1::CreateKeyRequest {
                    scopes: vec!["chat".into(), "agents:fly".into()],
                    ..valid.clone()
                },
                "scopes",
                "invalid scopes: unknown scope \"agents:fly\"",
            ),
            (
                v1::CreateKeyRequest {
                    expires_at: "next week".into(),
                    ..valid.clone()
                },
                "expires_at",
                "invalid expires_at: \"next week\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp",
            ),
            (
                v1::CreateKeyRequest {
                    environment: 9,
                    ..valid.clone()
                },
                "environment",
                "invalid environment: unknown environment 9",
            ),
        ];
        for (request, field, message) in cases {
            let status = app
                .client
                .clone()
                .create_key(authed(&app.admin_key, request))
                .await
                .unwrap_err();
            assert_status(
                &status,
                Code::InvalidArgument,
                "invalid_request",
                Some(message),
            );
            let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
            assert_eq!(info.metadata.get("field").map(String::as_str), Some(field));
        }

        let status = app
            .client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                client_ip: String::new(),
                key: app.admin_key.clone(),
                required_scopes: vec!["Chat".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_status(
            &status,
            Code::InvalidArgument,
            "invalid_request",
            Some("invalid required_scopes: unknown scope \"Chat\""),
        );

        for id in ["", "123", "sk_live_x"] {
            let status = app
                .client
                .clone()
                .get_key(authed(&app.admin_key, v1::GetKeyRequest { id: id.into() }))
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        }
        let status = app
            .client
            .clone()
            .get_key(authed(
                &app.admin_key,
                v1::GetKeyRequest {
                    id: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", Some("key not found"));
    }
}
