//! Alerts: every rule fires once, and only once, per period (with the injected clock); rules
//! of the organization and per-key overrides; the sweep's expiring and rotation-due keys;
//! replicas that store an alert once; and the REST shapes of the docs.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use key_proto::v1;
use key_service::WebhookSettings;
use key_store::{Dimension, KeyUse, UsageCount};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, assert_status, authed, backends, spawn_app_configured, spawn_second_server,
};

/// Long enough that no periodic flush, sweep or webhook poll runs during a test: the test
/// drives them.
const NEVER: Duration = Duration::from_secs(3600);

async fn spawn(backend: &Backend) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.flush_interval = NEVER;
        setup.settings.alert_sweep_interval = NEVER;
        setup.settings.webhooks = WebhookSettings {
            allow_http: true,
            // The receivers listen on loopback.
            allow_private: true,
            poll_interval: NEVER,
            ..WebhookSettings::default()
        };
    })
    .await
}

/// Writes what the server counted and waits for the alert evaluation of it.
async fn flush(app: &TestApp) {
    app.keyrack.jobs.usage.flush().await.unwrap();
    app.keyrack.jobs.alerts.idle().await;
}

fn threshold(count: i64, period: v1::AlertPeriod) -> Option<v1::AlertThreshold> {
    Some(v1::AlertThreshold {
        threshold: count,
        period: period.into(),
    })
}

fn rules(
    unusual_activity: bool,
    high_usage: Option<v1::AlertThreshold>,
    failures: Option<v1::AlertThreshold>,
) -> v1::AlertRules {
    v1::AlertRules {
        unusual_activity,
        high_usage,
        failures,
    }
}

async fn set_rules(
    app: &TestApp,
    key_id: &str,
    rules: Option<v1::AlertRules>,
) -> v1::SetAlertRulesResponse {
    let request = v1::SetAlertRulesRequest {
        key_id: key_id.into(),
        clear: rules.is_none(),
        rules,
    };
    app.client
        .clone()
        .set_alert_rules(authed(&app.admin_key, request))
        .await
        .unwrap()
        .into_inner()
}

async fn get_rules(app: &TestApp, key_id: &str) -> v1::GetAlertRulesResponse {
    app.client
        .clone()
        .get_alert_rules(authed(
            &app.admin_key,
            v1::GetAlertRulesRequest {
                key_id: key_id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The alert events of `key_id` of type `alert_type`, newest first.
async fn events(app: &TestApp, key_id: &str, alert_type: v1::AlertType) -> Vec<v1::AlertEvent> {
    let request = v1::ListAlertEventsRequest {
        key_id: key_id.into(),
        r#type: alert_type.into(),
        ..Default::default()
    };
    app.client
        .clone()
        .list_alert_events(authed(&app.admin_key, request))
        .await
        .unwrap()
        .into_inner()
        .alert_events
}

/// A new key with `chat`, its id and its plaintext.
async fn key(app: &TestApp, name: &str, expires_at: &str) -> (String, String) {
    let created = app.create_key(name, &["chat"], expires_at).await;
    (created.api_key.unwrap().id, created.key)
}

/// `n` verifications of `key` needing `scopes`, from `country` (empty: none).
async fn verify(app: &TestApp, key: &str, scopes: &[&str], country: &str, n: usize) {
    for _ in 0..n {
        app.client
            .clone()
            .verify_key(v1::VerifyKeyRequest {
                key: key.into(),
                required_scopes: scopes.iter().map(ToString::to_string).collect(),
                country: country.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

fn time(timestamp: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let timestamp = timestamp.as_ref().unwrap();
    DateTime::from_timestamp(timestamp.seconds, 0).unwrap()
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap()
}

#[tokio::test]
async fn high_usage_fires_on_reaching_the_threshold_once_per_day() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "ci", "").await;
        set_rules(
            &app,
            "",
            Some(rules(false, threshold(5, v1::AlertPeriod::Daily), None)),
        )
        .await;

        verify(&app, &secret, &["chat"], "", 4).await;
        flush(&app).await;
        assert!(events(&app, &id, v1::AlertType::HighUsage).await.is_empty());

        // The fifth request of the day reaches the threshold.
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::HighUsage).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "Key 'ci' made 5 requests today (threshold 5)"
        );
        assert_eq!((fired[0].observed, fired[0].threshold), (5, 5));
        assert_eq!(time(&fired[0].period_start), day(15));
        assert_eq!(fired[0].key_id, id);

        // More requests the same day fire nothing more.
        verify(&app, &secret, &["chat"], "", 3).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::HighUsage).await.len(), 1);

        // The next day counts from zero, and fires again at the threshold.
        app.clock.advance(TimeDelta::days(1));
        verify(&app, &secret, &["chat"], "", 4).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::HighUsage).await.len(), 1);
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::HighUsage).await;
        assert_eq!(fired.len(), 2, "{fired:?}");
        assert_eq!(time(&fired[0].period_start), day(16));
        // The metric counts every high usage alert of the deployment, the admin key's too.
        let all = events(&app, "", v1::AlertType::HighUsage).await.len();
        assert!(all >= 2);
        let text = app.keyrack.metrics.render();
        let line = format!(r#"keyrack_alert_events_total{{type="high_usage"}} {all}"#);
        assert!(text.contains(&line), "{text}");
    }
}

#[tokio::test]
async fn failures_fire_once_per_hour_and_count_only_failed_verifications() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "worker", "").await;
        set_rules(
            &app,
            "",
            Some(rules(false, None, threshold(3, v1::AlertPeriod::Hourly))),
        )
        .await;

        // Valid verifications are no failures; two refused ones are not three.
        verify(&app, &secret, &["chat"], "", 5).await;
        verify(&app, &secret, &["admin"], "", 2).await;
        flush(&app).await;
        assert!(events(&app, &id, v1::AlertType::Failures).await.is_empty());

        verify(&app, &secret, &["admin"], "", 1).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::Failures).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "Key 'worker' failed 3 verifications this hour (threshold 3)"
        );
        assert_eq!(
            time(&fired[0].period_start),
            Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
        );

        verify(&app, &secret, &["admin"], "", 2).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::Failures).await.len(), 1);

        app.clock.advance(TimeDelta::hours(1));
        verify(&app, &secret, &["admin"], "", 3).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::Failures).await.len(), 2);
    }
}

#[tokio::test]
async fn a_new_country_fires_once_per_country() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "edge", "").await;
        verify(&app, &secret, &["chat"], "DE", 2).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::NewCountry).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].country, "DE");
        assert_eq!(
            fired[0].message,
            "Key 'edge' was used from a new country: DE"
        );

        verify(&app, &secret, &["chat"], "DE", 1).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::NewCountry).await.len(), 1);

        verify(&app, &secret, &["chat"], "FR", 1).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::NewCountry).await;
        assert_eq!(fired.len(), 2, "{fired:?}");
        assert_eq!(fired[0].country, "FR");

        // With unusual activity off (here by the key's own rules), a new country is quiet.
        set_rules(&app, &id, Some(rules(false, None, None))).await;
        verify(&app, &secret, &["chat"], "JP", 1).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::NewCountry).await.len(), 2);
    }
}

/// Writes `per_hour` valid verifications of `key_id` into each of the `hours` hours before
/// the current one, straight into the store, as a week of past traffic.
async fn history(app: &TestApp, key_id: &str, hours: i64, per_hour: i64) {
    let key_id: Uuid = key_id.parse().unwrap();
    let organization_id = app
        .keyrack
        .store
        .find_organization_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let current_hour = app.clock_now().timestamp().div_euclid(3600) * 3600;
    let counts: Vec<UsageCount> = (1..=hours)
        .map(|back| UsageCount {
            key_id,
            organization_id,
            minute_start: current_hour - back * 3600,
            dimension: Dimension::Code,
            value: "valid".into(),
            count: per_hour,
        })
        .collect();
    let first = DateTime::from_timestamp(current_hour - hours * 3600, 0).unwrap();
    let uses = [KeyUse {
        key_id,
        organization_id,
        first_used_at: first,
        last_used_at: app.clock_now() - TimeDelta::hours(1),
        countries: Vec::new(),
    }];
    app.keyrack
        .store
        .record_usage_batch(&counts, &uses)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_spike_is_an_hour_above_ten_times_the_weekly_average() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "batch", "").await;
        app.clock.advance(TimeDelta::days(8));
        // A week of 10 requests an hour: the average is 10, a spike is more than 100.
        history(&app, &id, 168, 10).await;

        verify(&app, &secret, &["chat"], "", 100).await;
        flush(&app).await;
        assert!(
            events(&app, &id, v1::AlertType::UsageSpike)
                .await
                .is_empty()
        );

        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::UsageSpike).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!((fired[0].observed, fired[0].threshold), (101, 101));

        verify(&app, &secret, &["chat"], "", 20).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::UsageSpike).await.len(), 1);
    }
}

#[tokio::test]
async fn a_key_used_after_thirty_days_of_silence_fires_once() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "cron", "").await;
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;

        // 29 days of silence are not dormancy.
        app.clock.advance(TimeDelta::days(29));
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        assert!(
            events(&app, &id, v1::AlertType::DormantKeyUsed)
                .await
                .is_empty()
        );

        app.clock.advance(TimeDelta::days(30));
        verify(&app, &secret, &["chat"], "", 2).await;
        flush(&app).await;
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        let fired = events(&app, &id, v1::AlertType::DormantKeyUsed).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "Key 'cron' was used after 30 days of silence"
        );
    }
}

#[tokio::test]
async fn a_revoked_key_raises_no_alerts() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "gone", "").await;
        set_rules(
            &app,
            "",
            Some(rules(
                true,
                threshold(1, v1::AlertPeriod::Hourly),
                threshold(1, v1::AlertPeriod::Hourly),
            )),
        )
        .await;
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
        verify(&app, &secret, &["chat"], "DE", 3).await;
        flush(&app).await;
        assert!(
            events(&app, &id, v1::AlertType::Unspecified)
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn keys_expiring_within_seven_days_are_announced_once() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (soon, _) = key(&app, "soon", "2026-01-20").await;
        let (later, _) = key(&app, "later", "2026-01-30").await;
        assert_eq!(app.keyrack.jobs.alert_sweep.sweep().await.unwrap(), 1);
        assert_eq!(app.keyrack.jobs.alert_sweep.sweep().await.unwrap(), 0);
        let fired = events(&app, &soon, v1::AlertType::KeyExpiring).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "Key 'soon' expires within 7 days: it works until 2026-01-20"
        );
        assert_eq!(time(&fired[0].period_start), day(21));
        assert!(
            events(&app, &later, v1::AlertType::KeyExpiring)
                .await
                .is_empty()
        );

        app.clock.advance(TimeDelta::days(9));
        app.keyrack.jobs.alert_sweep.sweep().await.unwrap();
        assert_eq!(
            events(&app, &later, v1::AlertType::KeyExpiring).await.len(),
            1
        );
        assert_eq!(
            events(&app, &soon, v1::AlertType::KeyExpiring).await.len(),
            1
        );
    }
}

#[tokio::test]
async fn a_key_due_for_rotation_is_announced_once() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (old, _) = key(&app, "old", "").await;
        app.clock.advance(TimeDelta::days(89));
        let (young, _) = key(&app, "young", "").await;
        app.keyrack.jobs.alert_sweep.sweep().await.unwrap();
        assert!(
            events(&app, &old, v1::AlertType::RotationDue)
                .await
                .is_empty()
        );

        app.clock.advance(TimeDelta::days(1));
        app.keyrack.jobs.alert_sweep.sweep().await.unwrap();
        app.keyrack.jobs.alert_sweep.sweep().await.unwrap();
        let fired = events(&app, &old, v1::AlertType::RotationDue).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].message,
            "Key 'old' is due for rotation: it is older than the organization's maximum key age of 90 days"
        );
        assert!(
            events(&app, &young, v1::AlertType::RotationDue)
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_key_override_replaces_the_organization_rules_and_clear_restores_them() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "quiet", "").await;

        let defaults = get_rules(&app, &id).await;
        assert_eq!(defaults.source(), v1::AlertRulesSource::Default);
        assert_eq!(defaults.rules, Some(rules(true, None, None)));

        let organization = rules(false, threshold(2, v1::AlertPeriod::Hourly), None);
        let set = set_rules(&app, "", Some(organization)).await;
        assert_eq!(set.source(), v1::AlertRulesSource::Organization);
        assert_eq!(get_rules(&app, &id).await.rules, Some(organization));

        // The override has no thresholds at all: the organization's does not apply.
        let own = rules(true, None, None);
        let set = set_rules(&app, &id, Some(own)).await;
        assert_eq!(set.source(), v1::AlertRulesSource::Key);
        verify(&app, &secret, &["chat"], "", 3).await;
        flush(&app).await;
        assert!(events(&app, &id, v1::AlertType::HighUsage).await.is_empty());

        let cleared = set_rules(&app, &id, None).await;
        assert_eq!(cleared.source(), v1::AlertRulesSource::Organization);
        assert_eq!(cleared.rules, Some(organization));
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::HighUsage).await.len(), 1);

        // Resetting the organization brings back the defaults.
        let reset = set_rules(&app, "", None).await;
        assert_eq!(reset.source(), v1::AlertRulesSource::Default);
    }
}

#[tokio::test]
async fn invalid_rules_and_other_organizations_keys_are_refused() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let mut client = app.client.clone();
        let cases = [
            (
                rules(true, threshold(0, v1::AlertPeriod::Daily), None),
                "rules.high_usage.threshold",
            ),
            (
                rules(true, None, threshold(5, v1::AlertPeriod::Unspecified)),
                "rules.failures.period",
            ),
        ];
        for (bad, field) in cases {
            let status = client
                .set_alert_rules(authed(
                    &app.admin_key,
                    v1::SetAlertRulesRequest {
                        rules: Some(bad),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert_eq!(
                status.get_details_error_info().unwrap().metadata["field"],
                field
            );
        }
        let status = client
            .set_alert_rules(authed(&app.admin_key, v1::SetAlertRulesRequest::default()))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        let status = client
            .test_alert_rules(authed(&app.admin_key, v1::TestAlertRulesRequest::default()))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        let status = client
            .list_alert_events(authed(
                &app.admin_key,
                v1::ListAlertEventsRequest {
                    r#type: 99,
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);

        let other = app.other_organization_admin("other").await;
        let (id, _) = key(&app, "mine", "").await;
        let status = client
            .get_alert_rules(authed(
                &other,
                v1::GetAlertRulesRequest { key_id: id.clone() },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = client
            .list_alert_events(authed(
                &other,
                v1::ListAlertEventsRequest {
                    key_id: id,
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
}

#[tokio::test]
async fn test_alert_rules_evaluates_and_queues_a_test_event_for_every_endpoint() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "probe", "").await;
        let endpoint = app
            .client
            .clone()
            .create_webhook_endpoint(authed(
                &app.admin_key,
                v1::CreateWebhookEndpointRequest {
                    url: "http://127.0.0.1:9/hook".into(),
                    description: "ops".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .webhook_endpoint
            .unwrap();
        set_rules(
            &app,
            "",
            Some(rules(
                true,
                threshold(3, v1::AlertPeriod::Daily),
                threshold(10, v1::AlertPeriod::Hourly),
            )),
        )
        .await;
        verify(&app, &secret, &["chat"], "", 3).await;
        verify(&app, &secret, &["admin"], "", 1).await;

        let test = |rules: Option<v1::AlertRules>| {
            let mut client = app.client.clone();
            let request = v1::TestAlertRulesRequest {
                key_id: id.clone(),
                rules,
            };
            let admin = app.admin_key.clone();
            async move {
                client
                    .test_alert_rules(authed(&admin, request))
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        // High usage fired at the flush; failures did not reach their threshold.
        flush(&app).await;
        let response = test(None).await;
        let evaluations = &response.evaluations;
        assert_eq!(evaluations.len(), 2, "{evaluations:?}");
        assert_eq!(evaluations[0].r#type(), v1::AlertType::HighUsage);
        assert_eq!((evaluations[0].observed, evaluations[0].threshold), (4, 3));
        assert_eq!(time(&evaluations[0].period_start), day(15));
        assert!(evaluations[0].already_fired);
        assert!(!evaluations[0].would_fire);
        assert_eq!(evaluations[1].r#type(), v1::AlertType::Failures);
        assert_eq!((evaluations[1].observed, evaluations[1].threshold), (1, 10));
        assert!(!evaluations[1].would_fire && !evaluations[1].already_fired);
        let event = response.test_event.unwrap();
        assert_eq!(event.r#type(), v1::AlertType::Test);
        assert_eq!(event.key_id, "");
        assert_eq!(
            event.message,
            "Test alert for key 'probe': this endpoint receives Keyrack alerts"
        );

        // The test event is stored and queued for the endpoint like any alert.
        let deliveries = app
            .client
            .clone()
            .list_webhook_deliveries(authed(
                &app.admin_key,
                v1::ListWebhookDeliveriesRequest {
                    event_id: event.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .webhook_deliveries;
        assert_eq!(deliveries.len(), 1, "{deliveries:?}");
        assert_eq!(deliveries[0].webhook_endpoint_id, endpoint.id);
        let tests = events(&app, "", v1::AlertType::Test).await;
        assert_eq!(tests.len(), 1);

        // Given rules are evaluated instead of those in force, and nothing is saved.
        let response = test(Some(rules(
            false,
            None,
            threshold(1, v1::AlertPeriod::Hourly),
        )))
        .await;
        assert_eq!(response.evaluations.len(), 1);
        assert!(response.evaluations[0].would_fire);
        assert_eq!(events(&app, "", v1::AlertType::Test).await.len(), 2);
        assert_eq!(
            get_rules(&app, &id).await.source(),
            v1::AlertRulesSource::Organization
        );
    }
}

#[tokio::test]
async fn alert_events_are_paged_newest_first() {
    for backend in backends() {
        let app = spawn(&backend).await;
        for name in ["a", "b", "c"] {
            key(&app, name, "2026-01-18").await;
        }
        assert_eq!(app.keyrack.jobs.alert_sweep.sweep().await.unwrap(), 3);
        let mut client = app.client.clone();
        let page = |token: String| v1::ListAlertEventsRequest {
            page_size: 2,
            page_token: token,
            ..Default::default()
        };
        let first = client
            .list_alert_events(authed(&app.admin_key, page(String::new())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.alert_events.len(), 2);
        assert!(first.alert_events[0].id > first.alert_events[1].id);
        let second = client
            .list_alert_events(authed(&app.admin_key, page(first.next_page_token)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.alert_events.len(), 1);
        assert!(second.next_page_token.is_empty());
        assert!(second.alert_events[0].id < first.alert_events[1].id);
    }
}

#[tokio::test]
async fn two_servers_on_one_database_store_an_alert_once() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let second = spawn_second_server(&app).await;
        let (id, secret) = key(&app, "shared", "2026-01-19").await;
        set_rules(
            &app,
            "",
            Some(rules(false, threshold(5, v1::AlertPeriod::Daily), None)),
        )
        .await;

        // Each replica counts part of the traffic; the one whose flush reaches 5 fires.
        verify(&app, &secret, &["chat"], "", 3).await;
        flush(&app).await;
        for _ in 0..2 {
            second
                .client
                .clone()
                .verify_key(v1::VerifyKeyRequest {
                    key: secret.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        second.keyrack.jobs.usage.flush().await.unwrap();
        second.keyrack.jobs.alerts.idle().await;
        verify(&app, &secret, &["chat"], "", 1).await;
        flush(&app).await;
        assert_eq!(events(&app, &id, v1::AlertType::HighUsage).await.len(), 1);

        // Two sweeps at once, one per replica: one expiring alert.
        let (a, b) = tokio::join!(
            app.keyrack.jobs.alert_sweep.sweep(),
            second.keyrack.jobs.alert_sweep.sweep()
        );
        assert_eq!(a.unwrap() + b.unwrap(), 1);
        assert_eq!(events(&app, &id, v1::AlertType::KeyExpiring).await.len(), 1);
        second.stop().await;
    }
}

/// The REST gateway's JSON, as the product docs show it.
async fn rest(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", app.http))
        .bearer_auth(&app.admin_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_gateway_speaks_the_docs_alerts_shape() {
    use reqwest::Method;
    for backend in backends() {
        let app = spawn(&backend).await;
        let (id, secret) = key(&app, "rest", "").await;

        let (status, body) = rest(&app, Method::GET, "/api/alerts", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"alerts": {"unusualActivity": true, "highUsage": null, "failures": null}, "source": "default"})
        );

        let docs = json!({"alerts": {
            "unusualActivity": true,
            "highUsage": {"threshold": 10000, "period": "daily"},
            "failures": {"threshold": 100, "period": "hourly"}
        }});
        let (status, body) = rest(&app, Method::PUT, "/api/alerts", Some(docs.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["alerts"], docs["alerts"]);
        assert_eq!(body["source"], "organization");
        let (_, body) = rest(&app, Method::GET, "/api/alerts", None).await;
        assert_eq!(body["alerts"], docs["alerts"]);

        let weekly = json!({"alerts": {"unusualActivity": true, "highUsage": {"threshold": 5, "period": "weekly"}}});
        let (status, body) = rest(&app, Method::PUT, "/api/alerts", Some(weekly)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["status"], 400);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("alerts.highUsage.period"), "{message}");
        // `alerts` is required (null resets); a misspelt rule is not silently ignored.
        for bad in [json!({}), json!({"alerts": {"highUsag": null}})] {
            let (status, body) = rest(&app, Method::PUT, "/api/alerts", Some(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        }
        let zero = json!({"alerts": {"highUsage": {"threshold": 0, "period": "daily"}}});
        let (status, body) = rest(&app, Method::PUT, "/api/alerts", Some(zero)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("threshold")
        );

        // A key's override, and its removal.
        let path = format!("/api/api-keys/{id}/alerts");
        let (_, body) = rest(&app, Method::GET, &path, None).await;
        assert_eq!(body["source"], "organization");
        let own = json!({"alerts": {"unusualActivity": false, "highUsage": {"threshold": 1, "period": "hourly"}, "failures": null}});
        let (status, body) = rest(&app, Method::PUT, &path, Some(own.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"alerts": own["alerts"], "source": "key"}));
        let (status, body) = rest(&app, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["source"], "organization");
        let (status, body) = rest(&app, Method::PUT, &path, Some(json!({"alerts": null}))).await;
        assert_eq!(
            (status, body["source"].clone()),
            (StatusCode::OK, json!("organization"))
        );
        let (status, _) = rest(&app, Method::GET, "/api/api-keys/nope/alerts", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Test, then list the events.
        verify(&app, &secret, &["chat"], "", 2).await;
        let (status, body) = rest(
            &app,
            Method::POST,
            "/api/alerts/test",
            Some(json!({"keyId": id, "alerts": {"unusualActivity": true, "highUsage": {"threshold": 2, "period": "hourly"}}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["evaluations"],
            json!([{"type": "high_usage", "wouldFire": true, "observed": 2, "threshold": 2,
                    "periodStart": "2026-01-15T10:00:00Z", "alreadyFired": false}])
        );
        assert_eq!(body["testEvent"]["type"], "test");
        let event_id = body["testEvent"]["id"].clone();

        let (status, body) = rest(
            &app,
            Method::GET,
            "/api/alert-events?type=test&pageSize=1",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"][0]["id"], event_id);
        assert_eq!(body["data"][0]["keyId"], Value::Null);
        assert_eq!(body["data"][0]["createdAt"], "2026-01-15T10:30:00Z");
        assert_eq!(body["nextPageToken"], Value::Null);
        let (status, _) = rest(&app, Method::GET, "/api/alert-events?type=weekly", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Resetting the organization: DELETE, or PUT with null.
        let (status, body) = rest(&app, Method::DELETE, "/api/alerts", None).await;
        assert_eq!(
            (status, body["source"].clone()),
            (StatusCode::OK, json!("default"))
        );
        rest(&app, Method::PUT, "/api/alerts", Some(docs)).await;
        let (_, body) = rest(
            &app,
            Method::PUT,
            "/api/alerts",
            Some(json!({"alerts": null})),
        )
        .await;
        assert_eq!(body["source"], "default");
    }
}
