//! Rate limits on VerifyKey and the gateway, with the injected clock; the brute-force guard.

use chrono::TimeDelta;
use key_proto::v1;

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, authed, backends, spawn_app, spawn_app_with_flush_interval};

pub(crate) fn limit(requests: u32, per: v1::RatePeriod) -> v1::RateLimit {
    v1::RateLimit {
        requests,
        per: per.into(),
    }
}

pub(crate) async fn create_limited(
    app: &TestApp,
    name: &str,
    limits: Vec<v1::RateLimit>,
) -> String {
    app.client
        .clone()
        .create_key(authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: name.into(),
                scopes: vec!["chat".into()],
                rate_limits: limits,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key
}

pub(crate) async fn verify_from(app: &TestApp, key: &str, ip: &str) -> v1::VerifyKeyResponse {
    app.client
        .clone()
        .verify_key(v1::VerifyKeyRequest {
            key: key.into(),
            required_scopes: vec![],
            client_ip: ip.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_key_is_limited_then_works_again_in_the_next_window() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        // The clock starts at 10:30:00; 10 s into the minute.
        app.clock.advance(TimeDelta::seconds(10));
        let key = create_limited(&app, "three", vec![limit(3, v1::RatePeriod::Minute)]).await;
        for _ in 0..3 {
            assert!(app.verify(&key, &[]).await.valid);
        }
        let refused = app.verify(&key, &[]).await;
        assert!(!refused.valid);
        assert_eq!(refused.code, i32::from(v1::VerifyCode::RateLimited));
        assert_eq!(refused.reason, "rate_limited");
        assert_eq!(
            refused.message,
            "Rate limit exceeded: 3 requests per minute"
        );
        assert_eq!(refused.limit, 3);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after.unwrap().seconds, 50);
        let reset = app.clock_now() + TimeDelta::seconds(50);
        assert_eq!(refused.reset.unwrap().seconds, reset.timestamp());
        app.clock.advance(TimeDelta::seconds(50));
        assert!(app.verify(&key, &[]).await.valid);
    }
}

#[tokio::test]
async fn a_request_refused_by_one_limit_consumes_nothing_from_the_others() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = create_limited(
            &app,
            "two limits",
            vec![
                limit(2, v1::RatePeriod::Second),
                limit(5, v1::RatePeriod::Minute),
            ],
        )
        .await;
        // Second 0: 2 allowed, 10 refused by the per-second limit.
        let mut allowed = 0;
        for _ in 0..12 {
            let verdict = app.verify(&key, &[]).await;
            if verdict.valid {
                allowed += 1;
            } else {
                assert_eq!(
                    verdict.message,
                    "Rate limit exceeded: 2 requests per second"
                );
            }
        }
        assert_eq!(allowed, 2);
        // Had the refused ones counted, the minute would be spent; 3 more fit.
        for _ in 0..3 {
            app.clock.advance(TimeDelta::seconds(1));
            assert!(app.verify(&key, &[]).await.valid);
        }
        app.clock.advance(TimeDelta::seconds(1));
        let refused = app.verify(&key, &[]).await;
        assert_eq!(
            refused.message,
            "Rate limit exceeded: 5 requests per minute"
        );
    }
}

#[tokio::test]
async fn the_organization_default_applies_and_updates_take_effect_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("plain", &["chat"], "").await.key;
        app.client
            .clone()
            .update_organization_policy(authed(
                &app.admin_key,
                v1::UpdateOrganizationPolicyRequest {
                    policy: Some(v1::OrganizationPolicy {
                        default_rate_limits: vec![limit(1, v1::RatePeriod::Hour)],
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
        assert!(app.verify(&key, &[]).await.valid);
        let refused = app.verify(&key, &[]).await;
        assert_eq!(refused.message, "Rate limit exceeded: 1 request per hour");

        // The key's own limits replace the default at the next verification.
        let id = refused_key_id(&app, &key).await;
        app.client
            .clone()
            .update_key(authed(
                &app.admin_key,
                v1::UpdateKeyRequest {
                    id,
                    rate_limits: vec![limit(10, v1::RatePeriod::Hour)],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        assert!(app.verify(&key, &[]).await.valid);
    }
}

async fn refused_key_id(app: &TestApp, key: &str) -> String {
    let keys = app
        .client
        .clone()
        .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let last4 = &key[key.len() - 4..];
    keys.api_keys
        .into_iter()
        .find(|k| k.redacted_key.ends_with(last4))
        .unwrap()
        .id
}

#[tokio::test]
async fn the_brute_force_guard_refuses_without_a_lookup_and_cools_off() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ip = "203.0.113.9";
        let wrong = "sk_live_0000000000000000000000000000000000000000000000000000";
        for _ in 0..100 {
            let verdict = verify_from(&app, wrong, ip).await;
            assert_eq!(verdict.reason, "invalid_api_key");
        }
        assert_eq!(app.keyrack.verifier.brute_force_blocks(), 1);
        let scrape = app.keyrack.metrics.render();
        assert!(
            scrape
                .lines()
                .any(|line| line == "keyrack_brute_force_blocks_total 1"),
            "{scrape}"
        );
        let good = app.create_key("good", &["chat"], "").await.key;
        let before = app.keyrack.store.query_count();
        let refused = verify_from(&app, &good, ip).await;
        assert_eq!(refused.reason, "rate_limited");
        assert_eq!(refused.retry_after.unwrap().seconds, 60);
        assert_eq!(app.keyrack.store.query_count(), before, "no lookup");
        // Another address is unaffected; after cooling, the address works again.
        assert!(verify_from(&app, &good, "198.51.100.1").await.valid);
        app.clock.advance(TimeDelta::seconds(60));
        assert!(verify_from(&app, &good, ip).await.valid);
    }
}

#[tokio::test]
async fn the_gateway_answers_429_with_rate_limit_headers() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        app.clock.advance(TimeDelta::seconds(10));
        let key = create_limited(&app, "gw", vec![limit(1, v1::RatePeriod::Minute)]).await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let get = || {
            client
                .get(format!("{}/api/auth/verify", app.http))
                .header("authorization", format!("Bearer {key}"))
                .send()
        };
        assert_eq!(get().await.unwrap().status(), 200);
        let response = get().await.unwrap();
        assert_eq!(response.status(), 429);
        let headers = response.headers().clone();
        assert_eq!(headers["retry-after"], "50");
        assert_eq!(headers["x-ratelimit-limit"], "1");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        let reset = app.clock_now() + TimeDelta::seconds(50);
        assert_eq!(
            headers["x-ratelimit-reset"],
            reset.timestamp().to_string().as_str()
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "rate_limited",
                "message": "Rate limit exceeded: 1 request per minute"}, "status": 429})
        );
    }
}

/// Polls `done` every 20 ms for at most 30 s: the server's flusher prunes on its own schedule.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_server_forgets_ended_windows_and_idle_addresses() {
    for backend in backends() {
        let app = spawn_app_with_flush_interval(&backend, Duration::from_millis(20)).await;
        let key = create_limited(&app, "pruned", vec![limit(5, v1::RatePeriod::Minute)]).await;
        let wrong = "sk_live_0000000000000000000000000000000000000000000000000000";
        assert!(verify_from(&app, &key, "198.51.100.7").await.valid);
        for _ in 0..3 {
            verify_from(&app, wrong, "203.0.113.7").await;
        }
        assert_eq!(app.keyrack.verifier.limiter_entries(), 1);
        assert_eq!(app.keyrack.verifier.guard_entries(), 1);

        // Within the minute, and within the failures' window, both are kept.
        app.keyrack.verifier.prune_rate_limit_state();
        assert_eq!(app.keyrack.verifier.limiter_entries(), 1);
        assert_eq!(app.keyrack.verifier.guard_entries(), 1);

        // The minute ended: the key's counters go. The failures' window ends after 15 minutes.
        app.clock.advance(TimeDelta::minutes(1));
        eventually("the key's counters are pruned", || {
            app.keyrack.verifier.limiter_entries() == 0
        })
        .await;
        assert_eq!(app.keyrack.verifier.guard_entries(), 1);
        app.clock.advance(key_service::DEFAULT_FAILURE_WINDOW);
        eventually("the ended window is pruned", || {
            app.keyrack.verifier.guard_entries() == 0
        })
        .await;

        // Forgotten state decides like fresh state: the key has its full minute again.
        for _ in 0..5 {
            assert!(verify_from(&app, &key, "198.51.100.7").await.valid);
        }
        assert!(!verify_from(&app, &key, "198.51.100.7").await.valid);
    }
}
