//! ListUsage: what each key did, per hour or per day, and for the whole organization.

use chrono::{TimeDelta, TimeZone, Utc};
use key_proto::v1;
use prost_types::Timestamp;
use tonic::Code;

use crate::helpers::{TestApp, assert_status, authed, backends, spawn_app};

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
