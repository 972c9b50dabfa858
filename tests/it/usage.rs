//! ListUsage: what each key did, per hour or per day, and for the whole organization.

use chrono::{TimeDelta, TimeZone, Utc};
use key_proto::v1;
use prost_types::Timestamp;
use tonic::Code;

use crate::{
    helpers::{TestApp, assert_status, authed, backends, spawn_app},
    metering::{settled, spawn_quiet_app},
};

fn ts(at: chrono::DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

async fn usage(app: &TestApp, request: v1::ListUsageRequest) -> v1::ListUsageResponse {
    app.client
        .clone()
        .list_usage(authed(&app.admin_key, request))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn usage_counts_every_verification_of_a_key_by_outcome_and_hour() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("metered", &["chat"], "2026-01-16").await;
        let key_id = created.api_key.unwrap().id;
        let key = created.key;

        // 10:30 – 3 successes and 2 scope failures; 12:xx – 1 success; the next day – 4 expired.
        for _ in 0..3 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        for _ in 0..2 {
            assert!(!app.verify(&key, &["data:write"]).await.valid);
        }
        app.clock.advance(TimeDelta::minutes(100));
        let last_valid_use = app.clock_now();
        assert!(app.verify(&key, &[]).await.valid);
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 17, 9, 0, 0).unwrap());
        for _ in 0..4 {
            assert_eq!(app.verify(&key, &[]).await.reason, "expired_api_key");
        }

        let hourly = usage(
            &app,
            v1::ListUsageRequest {
                key_id: key_id.clone(),
                start_time: ts(Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap()),
                end_time: ts(Utc.with_ymd_and_hms(2026, 1, 18, 0, 0, 0).unwrap()),
                granularity: v1::Granularity::Hour.into(),
                ..Default::default()
            },
        )
        .await;
        let buckets: Vec<(i64, i64, i64)> = hourly
            .buckets
            .iter()
            .map(|b| (b.start_time.unwrap().seconds, b.succeeded, b.failed))
            .collect();
        assert_eq!(
            buckets,
            vec![
                (
                    Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
                        .unwrap()
                        .timestamp(),
                    3,
                    2
                ),
                (
                    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
                        .unwrap()
                        .timestamp(),
                    1,
                    0
                ),
                (
                    Utc.with_ymd_and_hms(2026, 1, 17, 9, 0, 0)
                        .unwrap()
                        .timestamp(),
                    0,
                    4
                ),
            ]
        );
        assert_eq!(
            hourly.buckets[0].failed_by_code.get("insufficient_scope"),
            Some(&2)
        );
        assert_eq!(
            hourly.buckets[2].failed_by_code.get("expired_api_key"),
            Some(&4)
        );
        assert_eq!((hourly.total_succeeded, hourly.total_failed), (4, 6));
        // Presenting an expired key is still a use: clients that never switched show up here.
        let last_used = hourly.last_used_time.unwrap();
        assert_eq!(
            last_used.seconds,
            Utc.with_ymd_and_hms(2026, 1, 17, 9, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert!(last_used.seconds > last_valid_use.timestamp());

        let daily = usage(
            &app,
            v1::ListUsageRequest {
                key_id,
                start_time: ts(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
                end_time: ts(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()),
                granularity: v1::Granularity::Day.into(),
                ..Default::default()
            },
        )
        .await;
        let days: Vec<(i64, i64, i64)> = daily
            .buckets
            .iter()
            .map(|b| (b.start_time.unwrap().seconds, b.succeeded, b.failed))
            .collect();
        assert_eq!(
            days,
            vec![
                (
                    Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0)
                        .unwrap()
                        .timestamp(),
                    4,
                    2
                ),
                (
                    Utc.with_ymd_and_hms(2026, 1, 17, 0, 0, 0)
                        .unwrap()
                        .timestamp(),
                    0,
                    4
                ),
            ]
        );
    }
}

#[tokio::test]
async fn organization_usage_sums_its_keys_and_only_its_keys() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let a = app.create_key("a", &["chat"], "").await.key;
        let b = app.create_key("b", &["chat"], "").await.key;
        let theirs = app.other_organization_admin("acme").await;
        for _ in 0..2 {
            app.verify(&a, &["chat"]).await;
        }
        app.verify(&b, &["admin"]).await;
        // Another organization's traffic must not show up.
        for _ in 0..5 {
            app.verify(&theirs, &[]).await;
        }
        // Unknown keys are not anybody's usage.
        app.verify("sk_live_abc123...", &[]).await;

        let total = usage(&app, v1::ListUsageRequest::default()).await;
        // The admin key's own authentications for these ListUsage/CreateKey calls count too:
        // two CreateKey calls before, and this ListUsage call itself is authenticated first.
        assert_eq!(total.total_succeeded, 2 + 2 + 1);
        assert_eq!(total.total_failed, 1);
        assert_eq!(total.buckets.len(), 1);
        assert_eq!(
            total.buckets[0].failed_by_code.get("insufficient_scope"),
            Some(&1)
        );
        assert!(total.last_used_time.is_some());
    }
}

#[tokio::test]
async fn usage_ranges_are_validated() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let now = app.clock_now();
        let cases = [
            (
                v1::ListUsageRequest {
                    start_time: ts(now),
                    end_time: ts(now - TimeDelta::hours(1)),
                    ..Default::default()
                },
                "start_time",
            ),
            (
                v1::ListUsageRequest {
                    start_time: ts(now - TimeDelta::days(40)),
                    end_time: ts(now),
                    ..Default::default()
                },
                "start_time",
            ),
            (
                v1::ListUsageRequest {
                    granularity: 7,
                    ..Default::default()
                },
                "granularity",
            ),
            (
                v1::ListUsageRequest {
                    key_id: "nope".into(),
                    ..Default::default()
                },
                "key_id",
            ),
            (
                v1::ListUsageRequest {
                    start_time: Some(Timestamp {
                        seconds: 0,
                        nanos: -1,
                    }),
                    ..Default::default()
                },
                "start_time",
            ),
        ];
        for (request, field) in cases {
            let status = app
                .client
                .clone()
                .list_usage(authed(&app.admin_key, request))
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert!(
                status.message().contains(field),
                "{field}: {}",
                status.message()
            );
        }
        // 40 days is fine by the day.
        let daily = v1::ListUsageRequest {
            start_time: ts(now - TimeDelta::days(40)),
            end_time: ts(now),
            granularity: v1::Granularity::Day.into(),
            ..Default::default()
        };
        app.client
            .clone()
            .list_usage(authed(&app.admin_key, daily))
            .await
            .unwrap();
    }
}

async fn usage_status(app: &TestApp, request: v1::ListUsageRequest) -> tonic::Status {
    app.client
        .clone()
        .list_usage(authed(&app.admin_key, request))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_set_of_keys_is_summed_in_one_request() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for name in ["a", "b", "c"] {
            let created = app.create_key(name, &["chat"], "").await;
            ids.push(created.api_key.unwrap().id);
            keys.push(created.key);
        }
        // a: 2 more valid; b: 1 valid, 1 refused; c: 5 valid (not asked for).
        for _ in 0..2 {
            assert!(app.verify(&keys[0], &["chat"]).await.valid);
        }
        assert!(app.verify(&keys[1], &["chat"]).await.valid);
        assert!(!app.verify(&keys[1], &["admin"]).await.valid);
        for _ in 0..5 {
            assert!(app.verify(&keys[2], &["chat"]).await.valid);
        }
        let set = usage(
            &app,
            v1::ListUsageRequest {
                // A repeated id counts once.
                key_ids: vec![ids[0].clone(), ids[1].clone(), ids[0].clone()],
                ..Default::default()
            },
        )
        .await;
        let summary = set.summary.unwrap();
        assert_eq!(summary.request_count, 2 + 2);
        assert_eq!(summary.success_count, 3);
        assert_eq!(summary.failure_count, 1);
        assert_eq!((set.total_succeeded, set.total_failed), (3, 1));
        assert!((summary.success_rate - 3.0 / 4.0).abs() < 1e-9);
        assert_eq!(summary.failed_by_code.get("insufficient_scope"), Some(&1));
        assert!(summary.last_used_time.is_some());
        assert_eq!(set.last_used_time, summary.last_used_time);

        // Another organization's key is unknown here, even among ours.
        let theirs = app.other_organization_admin("acme").await;
        let their_id = app
            .client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                key: theirs,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .key_id;
        let status = usage_status(
            &app,
            v1::ListUsageRequest {
                key_ids: vec![ids[0].clone(), their_id],
                ..Default::default()
            },
        )
        .await;
        assert_status(&status, Code::NotFound, "not_found", None);

        let both = usage_status(
            &app,
            v1::ListUsageRequest {
                key_id: ids[0].clone(),
                key_ids: vec![ids[1].clone()],
                ..Default::default()
            },
        )
        .await;
        assert_status(&both, Code::InvalidArgument, "invalid_request", None);
        assert!(both.message().contains("key_ids"), "{}", both.message());
        let too_many = usage_status(
            &app,
            v1::ListUsageRequest {
                key_ids: vec![ids[0].clone(); 101],
                ..Default::default()
            },
        )
        .await;
        assert_status(&too_many, Code::InvalidArgument, "invalid_request", None);
        let malformed = usage_status(
            &app,
            v1::ListUsageRequest {
                key_ids: vec![ids[0].clone(), "nope".to_owned()],
                ..Default::default()
            },
        )
        .await;
        assert_status(&malformed, Code::InvalidArgument, "invalid_request", None);
        assert!(
            malformed.message().contains("key_ids"),
            "{}",
            malformed.message()
        );
    }
}

#[tokio::test]
async fn minute_granularity_shows_each_minute_within_its_retention() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("busy", &["chat"], "").await;
        let key_id = created.api_key.unwrap().id;
        let key = created.key;
        // 10:30 ×1, 10:31 ×3, 10:45 ×1 refused.
        assert!(app.verify(&key, &["chat"]).await.valid);
        app.clock.advance(TimeDelta::seconds(75));
        for _ in 0..3 {
            assert!(app.verify(&key, &["chat"]).await.valid);
        }
        app.clock.advance(TimeDelta::minutes(14));
        assert!(!app.verify(&key, &["admin"]).await.valid);

        let minutes = usage(
            &app,
            v1::ListUsageRequest {
                key_id: key_id.clone(),
                granularity: v1::Granularity::Minute.into(),
                ..Default::default()
            },
        )
        .await;
        let series: Vec<(i64, i64, i64)> = minutes
            .buckets
            .iter()
            .map(|b| (b.start_time.unwrap().seconds, b.succeeded, b.failed))
            .collect();
        let at = |minute| {
            Utc.with_ymd_and_hms(2026, 1, 15, 10, minute, 0)
                .unwrap()
                .timestamp()
        };
        assert_eq!(series, vec![(at(30), 1, 0), (at(31), 3, 0), (at(45), 0, 1)]);

        // Minute rows are kept 48 hours by default: a longer minute range is refused.
        let now = app.clock_now();
        let status = usage_status(
            &app,
            v1::ListUsageRequest {
                key_id,
                granularity: v1::Granularity::Minute.into(),
                start_time: ts(now - TimeDelta::hours(49)),
                end_time: ts(now),
                ..Default::default()
            },
        )
        .await;
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        assert!(
            status.message().contains("48 hours"),
            "{}",
            status.message()
        );
    }
}

#[tokio::test]
async fn list_usage_reads_the_same_for_one_key_or_fifty() {
    for backend in backends() {
        let app = spawn_quiet_app(&backend).await;
        let mut ids = Vec::new();
        for i in 0..50 {
            let created = app.create_key(&format!("k{i}"), &["chat"], "").await;
            let verdict = app
                .client
                .clone()
                .verify_key(v1::VerifyKeyRequest {
                    key: created.key,
                    country: "se".into(),
                    tag: format!("route {}", i % 7),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(verdict.valid);
            ids.push(created.api_key.unwrap().id);
        }
        app.keyrack.jobs.usage.flush().await.unwrap();
        settled(&app).await;
        let store = &app.keyrack.store;
        let mut statements = Vec::new();
        for request in [
            v1::ListUsageRequest {
                key_ids: ids[..1].to_vec(),
                ..Default::default()
            },
            v1::ListUsageRequest {
                key_ids: ids.clone(),
                ..Default::default()
            },
        ] {
            let before = store.query_count();
            let response = usage(&app, request).await;
            // The alert rules judge what the request's flush wrote (its own authentication).
            app.keyrack.jobs.alerts.idle().await;
            statements.push(store.query_count() - before);
            assert!(response.summary.unwrap().by_country["SE"] >= 1);
        }
        // Same statements for one key and for fifty: the caller's authentication, its flush,
        // one lookup of the keys, one usage query and one last-use query.
        assert_eq!(statements[0], statements[1], "{statements:?}");
        let whole = usage(&app, v1::ListUsageRequest::default()).await;
        assert_eq!(whole.summary.unwrap().by_country["SE"], 50);
    }
}
