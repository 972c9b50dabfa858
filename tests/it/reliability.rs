//! Guarantees that hold when something else fails or a caller misbehaves (RELIABILITY.md):
//! the emergency control never waits on metering, and what a client sends cannot grow storage
//! without bound.

use key_proto::v1;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tonic::Code;

use crate::{
    helpers::{Backend, TestApp, assert_status, authed, backends},
    metering::spawn_quiet_app,
};

/// Makes every insert into `usage_buckets` fail, as a full disk or a broken usage table would.
async fn break_usage_writes(app: &TestApp, backend: &Backend) {
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TRIGGER usage_writes_fail BEFORE INSERT ON usage_buckets \
             BEGIN SELECT RAISE(ABORT, 'usage writes fail'); END",
        ],
        Backend::Postgres(_) => &[
            "CREATE FUNCTION usage_writes_fail() RETURNS trigger AS \
             $$ BEGIN RAISE EXCEPTION 'usage writes fail'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER usage_writes_fail BEFORE INSERT ON usage_buckets \
             FOR EACH ROW EXECUTE FUNCTION usage_writes_fail()",
        ],
    };
    for statement in statements {
        db.execute_unprepared(statement).await.unwrap();
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_revocation_commits_while_usage_cannot_be_written() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        let created = app.create_key("leaked", &["chat"], "").await;
        let id = created.api_key.as_ref().unwrap().id.clone();
        break_usage_writes(&app, &backend).await;
        // Counted in memory; the flush of this count will fail.
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
            .expect("a revocation must not wait on metering");
        assert_eq!(
            revoked.into_inner().api_key.unwrap().state(),
            v1::KeyState::Revoked
        );
        let after = app.verify(&created.key, &["chat"]).await;
        assert_eq!(after.code(), v1::VerifyCode::InvalidApiKey);

        // Reads answer too, without this process's unwritten counts.
        let read = app
            .client
            .clone()
            .get_key(authed(&app.admin_key, v1::GetKeyRequest { id }))
            .await
            .expect("a read must not fail on metering");
        assert_eq!(
            read.into_inner().api_key.unwrap().state(),
            v1::KeyState::Revoked
        );
    }
}

#[tokio::test]
async fn an_expiry_no_client_could_read_is_refused_on_both_transports() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        for expires_at in ["9999-12-31", "9999-12-31T23:59:59.5Z"] {
            let status = app
                .client
                .clone()
                .create_key(authed(
                    &app.admin_key,
                    v1::CreateKeyRequest {
                        name: "forever".into(),
                        scopes: vec!["chat".into()],
                        expires_at: expires_at.into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert!(
                status.message().contains("too far in the future"),
                "{status:?}"
            );

            let response = reqwest::Client::new()
                .post(format!("{}/api/api-keys", app.http))
                .bearer_auth(&app.admin_key)
                .json(&json!({"name": "forever", "scopes": ["chat"], "expiresAt": expires_at}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        }
        // The latest readable expiry is accepted, and comes back as RFC 3339.
        let latest = app.create_key("long", &["chat"], "9999-12-30").await;
        let expire = latest.api_key.unwrap().expire_time.unwrap();
        assert_eq!(expire.seconds, 253_402_214_400);
    }
}

/// Tags are the caller's to choose: each distinct one would add usage rows and a line to every
/// usage answer. A key counts at most 50 distinct tags an hour; the rest count as `other`.
#[tokio::test]
async fn a_key_counts_a_bounded_number_of_distinct_tags() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        let created = app.create_key("tagged", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        for n in 0..60 {
            let verdict = app
                .client
                .clone()
                .verify_key(v1::VerifyKeyRequest {
                    key: created.key.clone(),
                    required_scopes: vec!["chat".into()],
                    tag: format!("GET /route/{n}"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(verdict.valid);
        }
        let usage = app
            .client
            .clone()
            .list_usage(authed(
                &app.admin_key,
                v1::ListUsageRequest {
                    key_id: id,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let by_tag = usage.summary.unwrap().by_tag;
        assert_eq!(by_tag.len(), 51, "{by_tag:?}");
        assert_eq!(by_tag.get("other"), Some(&10), "{by_tag:?}");
        let metrics = app.keyrack.metrics.render();
        assert!(
            metrics.contains("keyrack_usage_tag_overflow_total 10"),
            "{metrics}"
        );
    }
}

async fn test_alert(
    app: &TestApp,
    key_id: &str,
) -> Result<v1::TestAlertRulesResponse, tonic::Status> {
    app.client
        .clone()
        .test_alert_rules(authed(
            &app.admin_key,
            v1::TestAlertRulesRequest {
                key_id: key_id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn alert_events(app: &TestApp) -> Vec<v1::AlertEvent> {
    app.client
        .clone()
        .list_alert_events(authed(
            &app.admin_key,
            v1::ListAlertEventsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner()
        .alert_events
}

/// Each TestAlertRules call stores an alert event and queues a delivery per endpoint: they
/// are limited per organization, endpoints are capped, and old events are pruned (those with
/// a delivery still pending are kept until it settles).
#[tokio::test]
async fn alert_tests_endpoints_and_old_alert_events_are_bounded() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        let id = app
            .create_key("watched", &["chat"], "")
            .await
            .api_key
            .unwrap()
            .id;
        for _ in 0..10 {
            test_alert(&app, &id).await.unwrap();
        }
        let status = test_alert(&app, &id).await.unwrap_err();
        assert_status(
            &status,
            Code::ResourceExhausted,
            "rate_limited",
            Some("Rate limit exceeded: 10 requests per minute"),
        );
        app.clock.advance(chrono::TimeDelta::minutes(1));
        test_alert(&app, &id).await.unwrap();

        let mut client = app.client.clone();
        let mut endpoints = Vec::new();
        for n in 0..20 {
            let created = client
                .create_webhook_endpoint(authed(
                    &app.admin_key,
                    v1::CreateWebhookEndpointRequest {
                        url: format!("https://hooks.example.com/{n}"),
                        description: String::new(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            endpoints.push(created.webhook_endpoint.unwrap().id);
        }
        let refused = client
            .create_webhook_endpoint(authed(
                &app.admin_key,
                v1::CreateWebhookEndpointRequest {
                    url: "https://hooks.example.com/one-too-many".into(),
                    description: String::new(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(&refused, Code::FailedPrecondition, "conflict", None);

        // One more test alert, queued for the endpoints (nothing delivers them here).
        app.clock.advance(chrono::TimeDelta::minutes(1));
        let pending = test_alert(&app, &id).await.unwrap().test_event.unwrap().id;
        assert_eq!(alert_events(&app).await.len(), 12);
        app.clock.advance(chrono::TimeDelta::days(91));
        app.keyrack.jobs.retention.prune().await.unwrap();
        let left: Vec<String> = alert_events(&app).await.into_iter().map(|e| e.id).collect();
        assert_eq!(
            left,
            [pending],
            "only the event with pending deliveries stays"
        );
    }
}

#[tokio::test]
async fn audit_events_are_kept_unless_a_retention_is_set() {
    for backend in backends() {
        let keep = spawn_quiet_app(&backend).await;
        let limited = crate::helpers::spawn_app_configured(&backend, |setup| {
            setup.settings.audit_retention = Some(chrono::TimeDelta::days(30));
        })
        .await;
        for app in [&keep, &limited] {
            app.create_key("old", &["chat"], "").await;
            app.clock.advance(chrono::TimeDelta::days(31));
            app.create_key("new", &["chat"], "").await;
            app.keyrack.jobs.retention.prune().await.unwrap();
        }
        let events = |app: &TestApp| {
            let mut client = app.client.clone();
            let admin = app.admin_key.clone();
            async move {
                client
                    .list_audit_events(authed(&admin, v1::ListAuditEventsRequest::default()))
                    .await
                    .unwrap()
                    .into_inner()
                    .audit_events
                    .len()
            }
        };
        // Bootstrap and two keys by default; only the new key's once 30 days are kept.
        assert_eq!(events(&keep).await, 3);
        assert_eq!(events(&limited).await, 1);
    }
}

/// Calls without a valid key (none, a made-up one) are refused and counted, but written to the
/// audit log at most once a minute per client address: a flood of them grows nothing.
#[tokio::test]
async fn a_flood_of_anonymous_admin_calls_writes_one_audit_row_a_minute() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        let count_rows = || async {
            let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT COUNT(*) FROM audit_events WHERE action = 'auth.denied' AND actor_type = 'anonymous'",
                ))
                .await
                .unwrap()
                .unwrap();
            let count: i64 = row.try_get_by_index(0).unwrap();
            db.close().await.unwrap();
            count
        };
        let made_up = key_core::ApiKey::generate(
            key_core::Environment::Live,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        for n in 0..50 {
            let key = if n % 2 == 0 {
                made_up.expose().to_owned()
            } else {
                String::new()
            };
            let request = if key.is_empty() {
                tonic::Request::new(v1::ListKeysRequest::default())
            } else {
                authed(&key, v1::ListKeysRequest::default())
            };
            let status = app.client.clone().list_keys(request).await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
        }
        assert_eq!(count_rows().await, 1);
        let metrics = app.keyrack.metrics.render();
        assert!(
            metrics.contains(r#"keyrack_auth_refusals_total{reason="invalid_api_key"} 50"#),
            "{metrics}"
        );
        // The next minute, the same address is recorded once more.
        app.clock.advance(chrono::TimeDelta::minutes(1));
        let status = app
            .client
            .clone()
            .list_keys(tonic::Request::new(v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(count_rows().await, 2);
    }
}
