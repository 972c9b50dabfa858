//! Metering: verifications are counted in memory and flushed in additive batches, never
//! written one by one.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use key_proto::v1;
use uuid::Uuid;

use crate::helpers::{
    TestApp, authed, backends, spawn_app, spawn_app_with_flush_interval, spawn_second_server,
    start_time,
};

/// Long enough that the periodic flusher never runs during a test.
const NEVER: Duration = Duration::from_secs(3600);

async fn key_usage(app: &TestApp, key_id: &str) -> v1::ListUsageResponse {
    app.client
        .clone()
        .list_usage(authed(
            &app.admin_key,
            v1::ListUsageRequest {
                key_id: key_id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// What the store holds for `key_id`, read directly: (valid, failed) over the test day.
async fn stored(app: &TestApp, organization_id: Uuid, key_id: Uuid) -> (i64, i64) {
    let from = start_time() - TimeDelta::hours(12);
    let rows = app
        .manager
        .store()
        .usage(
            organization_id,
            Some(key_id),
            from,
            from + TimeDelta::days(1),
        )
        .await
        .unwrap();
    let valid = rows
        .iter()
        .filter(|r| r.code == "valid")
        .map(|r| r.count)
        .sum();
    let failed = rows
        .iter()
        .filter(|r| r.code != "valid")
        .map(|r| r.count)
        .sum();
    (valid, failed)
}

async fn stored_last_used(
    app: &TestApp,
    organization_id: Uuid,
    key_id: Uuid,
) -> Option<DateTime<Utc>> {
    app.manager
        .store()
        .last_used(organization_id, Some(key_id))
        .await
        .unwrap()
}

/// A created key's id, its organization's id and its plaintext.
async fn create(app: &TestApp, name: &str) -> (Uuid, Uuid, String) {
    let created = app.create_key(name, &["chat"], "").await;
    let record = created.api_key.unwrap();
    let verdict = app.verify(&created.key, &["chat"]).await;
    assert!(verdict.valid);
    (
        record.id.parse().unwrap(),
        verdict.organization_id.parse().unwrap(),
        created.key,
    )
}

#[tokio::test]
async fn counts_add_up_exactly_across_concurrent_verifications() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let keys = [
            app.create_key("a", &["chat"], "").await,
            app.create_key("b", &["chat"], "").await,
        ];
        let mut tasks = Vec::new();
        for task in 0..8usize {
            let client = app.client.clone();
            let plaintexts = [keys[0].key.clone(), keys[1].key.clone()];
            tasks.push(tokio::spawn(async move {
                for i in 0..50usize {
                    let which = (task + i) % 2;
                    let scope = if i % 5 == 0 { "data:write" } else { "chat" };
                    let verdict = client
                        .clone()
                        .verify_key(v1::VerifyKeyRequest {
                            client_ip: String::new(),
                            key: plaintexts[which].clone(),
                            required_scopes: vec![scope.to_owned()],
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(verdict.valid, scope == "chat");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }

        // What each key should show, computed the same way.
        let mut expected = [(0i64, 0i64); 2];
        for task in 0..8usize {
            for i in 0..50usize {
                let counts = &mut expected[(task + i) % 2];
                if i % 5 == 0 {
                    counts.1 += 1;
                } else {
                    counts.0 += 1;
                }
            }
        }
        assert_eq!(
            expected[0].0 + expected[0].1 + expected[1].0 + expected[1].1,
            400
        );
        for (key, (succeeded, failed)) in keys.iter().zip(expected) {
            let usage = key_usage(&app, &key.api_key.as_ref().unwrap().id).await;
            assert_eq!(usage.total_succeeded, succeeded);
            assert_eq!(usage.total_failed, failed);
            assert_eq!(usage.buckets.len(), 1);
            assert_eq!(usage.buckets[0].failed_by_code.len(), 1);
            assert_eq!(
                usage.buckets[0].failed_by_code.get("insufficient_scope"),
                Some(&failed)
            );
            assert!(usage.last_used_time.is_some());
        }
    }
}

#[tokio::test]
async fn a_verification_writes_nothing_until_the_flush() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, NEVER).await;
        let (key_id, organization_id, key) = create(&app, "quiet").await;
        app.manager.flush_usage().await.unwrap();
        assert_eq!(stored(&app, organization_id, key_id).await, (1, 0));

        let before = app.manager.store().query_count();
        for _ in 0..20 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        assert_eq!(
            app.manager.store().query_count() - before,
            20,
            "one query (the key lookup) per verification, no write"
        );
        assert_eq!(stored(&app, organization_id, key_id).await, (1, 0));

        app.clock.advance(TimeDelta::minutes(5));
        assert!(!app.verify(&key, &["admin"]).await.valid);
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(start_time())
        );
        assert!(app.manager.flush_usage().await.unwrap() > 0);
        assert_eq!(stored(&app, organization_id, key_id).await, (21, 1));
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(start_time() + TimeDelta::minutes(5))
        );
        // Nothing left: a second flush writes nothing and sends no statement.
        let before = app.manager.store().query_count();
        assert_eq!(app.manager.flush_usage().await.unwrap(), 0);
        assert_eq!(app.manager.store().query_count(), before);
        assert_eq!(stored(&app, organization_id, key_id).await, (21, 1));
    }
}

#[tokio::test]
async fn the_flusher_writes_counts_on_its_own() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, Duration::from_millis(50)).await;
        let (key_id, organization_id, key) = create(&app, "ticking").await;
        for _ in 0..4 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        let mut seen = (0, 0);
        for _ in 0..100 {
            seen = stored(&app, organization_id, key_id).await;
            if seen == (5, 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, (5, 0));
    }
}

#[tokio::test]
async fn a_graceful_shutdown_flushes_every_count() {
    for backend in backends() {
        let mut app = spawn_app_with_flush_interval(&backend, NEVER).await;
        let (key_id, organization_id, key) = create(&app, "last words").await;
        for _ in 0..9 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        for _ in 0..3 {
            assert!(!app.verify(&key, &["admin"]).await.valid);
        }
        assert_eq!(stored(&app, organization_id, key_id).await, (0, 0));
        app.stop().await;
        assert_eq!(stored(&app, organization_id, key_id).await, (10, 3));
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(start_time())
        );
    }
}

#[tokio::test]
async fn two_servers_on_one_database_sum_their_counts() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, NEVER).await;
        let second = spawn_second_server(&app).await;
        let (key_id, organization_id, key) = create(&app, "shared").await;
        for round in 0..3 {
            for _ in 0..4 {
                assert!(app.verify(&key, &["chat"]).await.valid);
            }
            for _ in 0..6 {
                let verdict = second
                    .client
                    .clone()
                    .verify_key(v1::VerifyKeyRequest {
                        client_ip: String::new(),
                        key: key.clone(),
                        required_scopes: vec!["chat".to_owned()],
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(verdict.valid);
            }
            // Both replicas flush the same rows, several times over: counts are added, never
            // overwritten.
            if round < 2 {
                second.manager.flush_usage().await.unwrap();
                app.manager.flush_usage().await.unwrap();
            }
        }
        app.clock.advance(TimeDelta::minutes(1));
        let second_use = app.clock_now();
        let verdict = second
            .client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                client_ip: String::new(),
                key: key.clone(),
                required_scopes: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(verdict.valid);

        app.manager.flush_usage().await.unwrap();
        second.manager.flush_usage().await.unwrap();
        // 1 (creation check) + 3 × 4 on the first + 3 × 6 + 1 on the second.
        assert_eq!(
            stored(&app, organization_id, key_id).await,
            (1 + 12 + 19, 0)
        );
        // The later use, made on the second server, wins, whichever flushed last.
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(second_use)
        );
        let usage = key_usage(&app, &key_id.to_string()).await;
        assert_eq!((usage.total_succeeded, usage.total_failed), (32, 0));
        second.stop().await;
    }
}
