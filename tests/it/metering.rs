//! Metering: verifications are counted in memory and flushed in additive batches, never
//! written one by one.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use key_proto::v1;
use key_service::{UsageRetention, WebhookSettings};
use key_store::{Dimension, KeyUse, Resolution, UsageCount, UsageKeys};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, authed, backends, spawn_app, spawn_app_configured,
    spawn_app_with_flush_interval, spawn_second_server, start_time,
};

/// Long enough that the periodic flusher never runs during a test.
pub(crate) const NEVER: Duration = Duration::from_secs(3600);

/// Waits until the background work of `app` (the alert sweep that runs once at start, alert
/// evaluations) has settled: no statement for 200 ms, for at most 10 s. The statements a test
/// counts afterwards are its requests' own.
pub(crate) async fn settled(app: &TestApp) {
    app.keyrack.jobs.alerts.idle().await;
    let store = &app.keyrack.store;
    for _ in 0..50 {
        let seen = store.query_count();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if store.query_count() == seen {
            return;
        }
    }
}

/// A server whose background tasks (usage flusher, webhook poller, alert sweep) never run, so
/// the statements a test counts are the requests' own.
pub(crate) async fn spawn_quiet_app(backend: &Backend) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.flush_interval = NEVER;
        setup.settings.alert_sweep_interval = NEVER;
        setup.settings.webhooks = WebhookSettings {
            poll_interval: NEVER,
            ..WebhookSettings::default()
        };
    })
    .await
}

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
        .keyrack
        .store
        .usage(
            organization_id,
            UsageKeys::Keys(&[key_id]),
            Resolution::Hour,
            from,
            from + TimeDelta::days(1),
        )
        .await
        .unwrap();
    let codes = rows.iter().filter(|r| r.dimension == Dimension::Code);
    let valid = codes
        .clone()
        .filter(|r| r.value == "valid")
        .map(|r| r.count)
        .sum();
    let failed = codes.filter(|r| r.value != "valid").map(|r| r.count).sum();
    (valid, failed)
}

async fn stored_last_used(
    app: &TestApp,
    organization_id: Uuid,
    key_id: Uuid,
) -> Option<DateTime<Utc>> {
    app.keyrack
        .store
        .last_used(organization_id, UsageKeys::Keys(&[key_id]))
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
        let app = spawn_quiet_app(&backend).await;
        let (key_id, organization_id, key) = create(&app, "quiet").await;
        app.keyrack.jobs.usage.flush().await.unwrap();
        // The alert rules judge that flush in a task of their own; let it finish first.
        settled(&app).await;
        assert_eq!(stored(&app, organization_id, key_id).await, (1, 0));

        let before = app.keyrack.store.query_count();
        for _ in 0..20 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        assert_eq!(
            app.keyrack.store.query_count() - before,
            0,
            "no write, and no read either: the key was cached by its first verification"
        );
        assert_eq!(stored(&app, organization_id, key_id).await, (1, 0));

        app.clock.advance(TimeDelta::minutes(5));
        assert!(!app.verify(&key, &["admin"]).await.valid);
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(start_time())
        );
        assert!(app.keyrack.jobs.usage.flush().await.unwrap() > 0);
        app.keyrack.jobs.alerts.idle().await;
        assert_eq!(stored(&app, organization_id, key_id).await, (21, 1));
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(start_time() + TimeDelta::minutes(5))
        );
        // Nothing left: a second flush writes nothing and sends no statement.
        let before = app.keyrack.store.query_count();
        assert_eq!(app.keyrack.jobs.usage.flush().await.unwrap(), 0);
        assert_eq!(app.keyrack.store.query_count(), before);
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
                second.keyrack.jobs.usage.flush().await.unwrap();
                app.keyrack.jobs.usage.flush().await.unwrap();
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

        app.keyrack.jobs.usage.flush().await.unwrap();
        second.keyrack.jobs.usage.flush().await.unwrap();
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

/// Rows stored at `resolution` for the whole organization, any time: (bucket, code rows' sum).
async fn stored_at(
    app: &TestApp,
    organization_id: Uuid,
    resolution: Resolution,
) -> Vec<(i64, i64)> {
    let from = start_time() - TimeDelta::days(3);
    let rows = app
        .keyrack
        .store
        .usage(
            organization_id,
            UsageKeys::Organization,
            resolution,
            from,
            from + TimeDelta::days(3 * 365),
        )
        .await
        .unwrap();
    let mut sums: std::collections::BTreeMap<i64, i64> = Default::default();
    for row in rows.iter().filter(|r| r.dimension == Dimension::Code) {
        *sums.entry(row.bucket_start).or_default() += row.count;
    }
    sums.into_iter().collect()
}

#[tokio::test]
async fn each_resolution_is_pruned_after_its_retention() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, NEVER).await;
        let (_, organization_id, key) = create(&app, "old news").await;
        assert!(app.verify(&key, &["chat"]).await.valid);
        app.keyrack.jobs.usage.flush().await.unwrap();
        // Two verifications of the key and the admin key's authentication of CreateKey; the
        // two keys have one `code` row each per resolution.
        let minute = start_time().timestamp();
        let hour = minute - 30 * 60;
        let day = minute - (10 * 3600 + 30 * 60);
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Minute).await,
            [(minute, 3)]
        );
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Hour).await,
            [(hour, 3)]
        );
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Day).await,
            [(day, 3)]
        );
        let retention = app.settings.usage_retention;
        assert_eq!(retention.minute, TimeDelta::hours(48));
        assert_eq!(retention.hour, TimeDelta::days(90));
        assert_eq!(retention.day, TimeDelta::days(400));

        // Nothing is due yet.
        app.clock.advance(TimeDelta::hours(47));
        assert_eq!(app.keyrack.jobs.retention.prune().await.unwrap(), 0);
        // Past 48 hours the minute rows go; hours and days stay.
        app.clock.advance(TimeDelta::hours(2));
        assert_eq!(app.keyrack.jobs.retention.prune().await.unwrap(), 2);
        assert!(
            stored_at(&app, organization_id, Resolution::Minute)
                .await
                .is_empty()
        );
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Hour).await,
            [(hour, 3)]
        );
        // Past 90 days the hourly rows go.
        app.clock.set(start_time() + TimeDelta::days(91));
        assert_eq!(app.keyrack.jobs.retention.prune().await.unwrap(), 2);
        assert!(
            stored_at(&app, organization_id, Resolution::Hour)
                .await
                .is_empty()
        );
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Day).await,
            [(day, 3)]
        );
        // And past 400 days the daily ones.
        app.clock.set(start_time() + TimeDelta::days(401));
        assert_eq!(app.keyrack.jobs.retention.prune().await.unwrap(), 2);
        assert!(
            stored_at(&app, organization_id, Resolution::Day)
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn retention_is_configurable_and_prunes_large_backlogs_completely() {
    for backend in backends() {
        let retention = UsageRetention {
            minute: TimeDelta::minutes(10),
            hour: TimeDelta::days(2),
            day: TimeDelta::days(30),
        };
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.flush_interval = NEVER;
            setup.settings.usage_retention = retention;
        })
        .await;
        let (_, organization_id, key) = create(&app, "chatty").await;
        // Three hours of one verification a minute, each with a tag of its own.
        for minute in 0..180 {
            let verdict = app
                .client
                .clone()
                .verify_key(v1::VerifyKeyRequest {
                    key: key.clone(),
                    tag: format!("route {minute}"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(verdict.valid);
            app.clock.advance(TimeDelta::minutes(1));
        }
        app.keyrack.jobs.usage.flush().await.unwrap();
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Minute)
                .await
                .len(),
            180
        );
        app.keyrack.jobs.retention.prune().await.unwrap();
        // Only the last 10 minutes of minute rows are left; hours are untouched.
        let minutes = stored_at(&app, organization_id, Resolution::Minute).await;
        assert_eq!(minutes.len(), 10, "{minutes:?}");
        assert_eq!(
            stored_at(&app, organization_id, Resolution::Hour)
                .await
                .iter()
                .map(|(_, count)| count)
                .sum::<i64>(),
            // With the admin key's authentication of CreateKey.
            180 + 1 + 1
        );
        // A minute series longer than the minute retention is refused.
        let status = app
            .client
            .clone()
            .list_usage(authed(
                &app.admin_key,
                v1::ListUsageRequest {
                    granularity: v1::Granularity::Minute.into(),
                    start_time: Some(prost_types::Timestamp {
                        seconds: (app.clock_now() - TimeDelta::minutes(11)).timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
}

#[tokio::test]
async fn a_flush_reports_previous_use_and_new_countries() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, NEVER).await;
        let (key_id, organization_id, _) = create(&app, "traveller").await;
        let store = &app.keyrack.store;
        // The creation check above is flushed first: the key was used at the start time.
        app.keyrack.jobs.usage.flush().await.unwrap();
        let at = start_time() + TimeDelta::minutes(5);
        let batch = |countries: &[&str], minutes: i64| {
            let counts: Vec<UsageCount> = countries
                .iter()
                .map(|country| UsageCount {
                    key_id,
                    organization_id,
                    minute_start: (at + TimeDelta::minutes(minutes)).timestamp() / 60 * 60,
                    dimension: Dimension::Country,
                    value: (*country).to_owned(),
                    count: 1,
                })
                .collect();
            let uses = vec![KeyUse {
                key_id,
                organization_id,
                first_used_at: at + TimeDelta::minutes(minutes),
                last_used_at: at + TimeDelta::minutes(minutes + 1),
                countries: countries.iter().map(|c| (*c).to_owned()).collect(),
            }];
            (counts, uses)
        };
        let (counts, uses) = batch(&["DE"], 0);
        let first = store.record_usage_batch(&counts, &uses).await.unwrap();
        assert_eq!(first.keys.len(), 1);
        let activity = &first.keys[0];
        assert_eq!(activity.key_id, key_id);
        assert_eq!(activity.previously_used_at, Some(start_time()));
        assert_eq!(activity.first_used_at, at);
        assert_eq!(activity.last_used_at, at + TimeDelta::minutes(1));
        assert_eq!(activity.new_countries, ["DE"]);

        let (counts, uses) = batch(&["FR", "DE"], 10);
        let second = store.record_usage_batch(&counts, &uses).await.unwrap();
        assert_eq!(
            second.keys[0].previously_used_at,
            Some(at + TimeDelta::minutes(1))
        );
        assert_eq!(second.keys[0].new_countries, ["FR"]);
        assert_eq!(
            stored_last_used(&app, organization_id, key_id).await,
            Some(at + TimeDelta::minutes(11))
        );
    }
}

#[tokio::test]
async fn countries_and_tags_add_up_exactly_across_concurrent_verifications_and_servers() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, Duration::from_millis(20)).await;
        let second = spawn_second_server(&app).await;
        let created = app.create_key("everywhere", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let mut tasks = Vec::new();
        for task in 0..8usize {
            let client = if task % 2 == 0 {
                app.client.clone()
            } else {
                second.client.clone()
            };
            let key = created.key.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25usize {
                    let verdict = client
                        .clone()
                        .verify_key(v1::VerifyKeyRequest {
                            key: key.clone(),
                            country: ["de", "us", "jp"][i % 3].to_owned(),
                            tag: format!("task {}", task % 4),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert!(verdict.valid);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        second.keyrack.jobs.usage.flush().await.unwrap();
        let summary = key_usage(&app, &id).await.summary.unwrap();
        assert_eq!(summary.request_count, 200);
        // Per task: i % 3 over 0..25 gives 9 × de, 8 × us, 8 × jp.
        assert_eq!(summary.by_country["DE"], 8 * 9);
        assert_eq!(summary.by_country["US"], 8 * 8);
        assert_eq!(summary.by_country["JP"], 8 * 8);
        for tag in 0..4 {
            assert_eq!(summary.by_tag[&format!("task {tag}")], 50);
        }
        second.stop().await;
    }
}

#[tokio::test]
async fn a_failed_flush_keeps_its_counts_and_is_counted() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        let (key_id, organization_id, key) = create(&app, "patient").await;
        for _ in 0..4 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        // Take the table away behind the store's back: the next flush cannot write.
        let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
        db.execute_unprepared("ALTER TABLE usage_buckets RENAME TO usage_buckets_away")
            .await
            .unwrap();
        assert!(app.keyrack.jobs.usage.flush().await.is_err());
        assert!(
            app.keyrack
                .metrics
                .render()
                .contains("keyrack_usage_flush_failures_total 1"),
            "{}",
            app.keyrack.metrics.render()
        );
        // Counted meanwhile, on top of what is waiting.
        assert!(!app.verify(&key, &["admin"]).await.valid);
        db.execute_unprepared("ALTER TABLE usage_buckets_away RENAME TO usage_buckets")
            .await
            .unwrap();
        assert!(app.keyrack.jobs.usage.flush().await.unwrap() > 0);
        assert_eq!(stored(&app, organization_id, key_id).await, (5, 1));
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn with_metering_off_verifications_leave_no_usage() {
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| setup.settings.metering = false).await;
        let (key_id, organization_id, key) = create(&app, "uncounted").await;
        for _ in 0..5 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        app.keyrack.jobs.usage.flush().await.unwrap();
        assert_eq!(stored(&app, organization_id, key_id).await, (0, 0));
        assert_eq!(stored_last_used(&app, organization_id, key_id).await, None);
    }
}
