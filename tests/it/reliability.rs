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
