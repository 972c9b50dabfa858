//! Credits: a key's uses, spent by each valid verification (its cost), refused with
//! `usage_exceeded` at zero, refilled per UTC day or calendar month, set and cleared at create
//! and update, and exact across replicas: never more spends than credits.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chrono::TimeDelta;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, authed, backends, spawn_app, spawn_second_server};
use key_proto::v1;

const USAGE_MESSAGE: &str = "API key usage limit exceeded";

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

fn credits(remaining: i64, refill: Option<(i64, v1::CreditPeriod)>) -> v1::Credits {
    v1::Credits {
        remaining,
        refill: refill.map(|(amount, per)| v1::CreditRefill {
            amount,
            per: per.into(),
        }),
        last_refill_time: None,
    }
}

/// A key with `scopes` and `credits`, made over gRPC; its plaintext and id.
async fn create(app: &TestApp, scopes: &[&str], credits: v1::Credits) -> (String, String) {
    let created = app
        .client
        .clone()
        .create_key(authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "metered".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                credits: Some(credits),
                // Far above the test's traffic: credits, not a rate limit, are under test.
                rate_limits: vec![v1::RateLimit {
                    requests: 1_000_000,
                    per: v1::RatePeriod::Second.into(),
                }],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    app.caught_up().await;
    (created.key, created.api_key.unwrap().id)
}

async fn verify(
    client: &mut v1::key_service_client::KeyServiceClient<tonic::transport::Channel>,
    key: &str,
    scopes: &[&str],
    cost: u32,
) -> v1::VerifyKeyResponse {
    client
        .verify_key(v1::VerifyKeyRequest {
            key: key.to_owned(),
            required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            cost,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn get(app: &TestApp, id: &str) -> v1::ApiKey {
    app.client
        .clone()
        .get_key(authed(&app.admin_key, v1::GetKeyRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap()
}

async fn forward_auth(app: &TestApp, key: &str, cost: Option<u32>) -> reqwest::Response {
    let mut request = client()
        .get(format!("{}/api/auth/verify", app.http))
        .header("authorization", format!("Bearer {key}"));
    if let Some(cost) = cost {
        request = request.header("x-keyrack-cost", cost.to_string());
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn credits_are_spent_down_to_zero_then_usage_is_exceeded() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (key, id) = create(&app, &["chat"], credits(3, None)).await;
        let mut grpc = app.client.clone();
        for left in [2, 1, 0] {
            let answer = verify(&mut grpc, &key, &["chat"], 0).await;
            assert!(answer.valid, "{answer:?}");
            assert_eq!(answer.credits_remaining, Some(left));
        }
        let refused = verify(&mut grpc, &key, &["chat"], 0).await;
        assert!(!refused.valid);
        assert_eq!(refused.code(), v1::VerifyCode::UsageExceeded);
        assert_eq!(refused.reason, "usage_exceeded");
        assert_eq!(refused.message, USAGE_MESSAGE);
        assert_eq!(refused.credits_remaining, Some(0));
        assert_eq!(refused.key_id, id);

        // Forward-auth: 429 in the docs' error shape, the count in a header.
        let response = forward_auth(&app, &key, None).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers()["x-keyrack-credits-remaining"]
                .to_str()
                .unwrap(),
            "0"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "usage_exceeded", "message": USAGE_MESSAGE}, "status": 429})
        );

        let shown = get(&app, &id).await;
        assert_eq!(shown.credits.unwrap().remaining, 0);
        // A key without credits is unlimited and says nothing of them.
        let plain = app.create_key("plain", &["chat"], "").await;
        let answer = verify(&mut grpc, &plain.key, &["chat"], 0).await;
        assert!(answer.valid);
        assert_eq!(answer.credits_remaining, None);
        assert!(plain.api_key.unwrap().credits.is_none());
    }
}

#[tokio::test]
async fn a_cost_spends_several_and_a_refused_verification_spends_nothing() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (key, id) = create(&app, &["chat"], credits(10, None)).await;
        let mut grpc = app.client.clone();
        let answer = verify(&mut grpc, &key, &["chat"], 4).await;
        assert!(answer.valid);
        assert_eq!(answer.credits_remaining, Some(6));

        // Refused for its scope: nothing spent, no count revealed.
        let refused = verify(&mut grpc, &key, &["admin"], 1).await;
        assert_eq!(refused.code(), v1::VerifyCode::InsufficientScope);
        assert_eq!(refused.credits_remaining, None);
        assert_eq!(get(&app, &id).await.credits.unwrap().remaining, 6);

        // Forward-auth with a cost: 200 with the count left as a header and in the body.
        let response = forward_auth(&app, &key, Some(5)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["x-keyrack-credits-remaining"]
                .to_str()
                .unwrap(),
            "1"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["creditsRemaining"], 1);

        // More than is left: refused, and the one credit stays.
        let refused = verify(&mut grpc, &key, &["chat"], 2).await;
        assert_eq!(refused.code(), v1::VerifyCode::UsageExceeded);
        assert_eq!(refused.credits_remaining, Some(1));
        assert!(verify(&mut grpc, &key, &["chat"], 1).await.valid);

        // A cost out of bounds is a bad request.
        let status = grpc
            .verify_key(v1::VerifyKeyRequest {
                key: key.clone(),
                cost: 1_001,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}

#[tokio::test]
async fn credits_refill_at_the_first_verification_of_a_new_day_or_month() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        // The clock starts at 2026-01-15 10:30 UTC.
        let (daily, daily_id) = create(
            &app,
            &["chat"],
            credits(1, Some((5, v1::CreditPeriod::Day))),
        )
        .await;
        let (monthly, _) = create(
            &app,
            &["chat"],
            credits(1, Some((3, v1::CreditPeriod::Month))),
        )
        .await;
        let mut grpc = app.client.clone();
        for key in [&daily, &monthly] {
            assert!(verify(&mut grpc, key, &[], 0).await.valid);
            let refused = verify(&mut grpc, key, &[], 0).await;
            assert_eq!(refused.code(), v1::VerifyCode::UsageExceeded);
        }
        // Later the same day: still nothing.
        app.clock.advance(TimeDelta::hours(13));
        assert!(!verify(&mut grpc, &daily, &[], 0).await.valid);
        // 2026-01-16 00:30: the daily key has its 5 again, the monthly one not.
        app.clock.advance(TimeDelta::hours(1));
        let answer = verify(&mut grpc, &daily, &[], 0).await;
        assert!(answer.valid);
        assert_eq!(answer.credits_remaining, Some(4));
        assert!(!verify(&mut grpc, &monthly, &[], 0).await.valid);
        let shown = get(&app, &daily_id).await.credits.unwrap();
        assert_eq!(shown.remaining, 4);
        assert_eq!(
            shown.last_refill_time.unwrap().seconds,
            app.clock_now().timestamp()
        );
        assert_eq!(shown.refill.unwrap().per(), v1::CreditPeriod::Day);
        // 2026-02-01 00:30: a new month.
        app.clock.advance(TimeDelta::days(16));
        let answer = verify(&mut grpc, &monthly, &[], 0).await;
        assert!(answer.valid);
        assert_eq!(answer.credits_remaining, Some(2));
        // One refill per period, however many verifications.
        assert_eq!(
            verify(&mut grpc, &monthly, &[], 0).await.credits_remaining,
            Some(1)
        );
    }
}

#[tokio::test]
async fn credits_are_set_updated_and_cleared_over_rest() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = |request: reqwest::RequestBuilder| {
            request.header("authorization", format!("Bearer {}", app.admin_key))
        };
        let created: Value = admin(client().post(format!("{}/api/api-keys", app.http)))
            .json(&json!({
                "name": "metered",
                "scopes": ["chat"],
                "credits": {"remaining": 2, "refill": {"amount": 100, "per": "month"}},
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = created["key"].as_str().unwrap().to_owned();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["credits"]["remaining"], 2);
        assert_eq!(
            created["credits"]["refill"],
            json!({"amount": 100, "per": "month"})
        );
        assert!(created["credits"]["lastRefillAt"].is_string());
        app.caught_up().await;
        let mut grpc = app.client.clone();
        assert_eq!(
            verify(&mut grpc, &key, &[], 0).await.credits_remaining,
            Some(1)
        );

        // New credits replace the count and the refill.
        let patch = |body: Value| {
            admin(client().patch(format!("{}/api/api-keys/{id}", app.http))).json(&body)
        };
        let updated: Value = patch(json!({"credits": {"remaining": 7}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            updated["credits"],
            json!({"remaining": 7, "refill": null, "lastRefillAt": updated["credits"]["lastRefillAt"]})
        );
        app.caught_up().await;
        assert_eq!(
            verify(&mut grpc, &key, &[], 0).await.credits_remaining,
            Some(6)
        );
        // A bad count is refused in the docs' shape.
        let response = patch(json!({"credits": {"remaining": -1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        // Other changes leave the credits alone.
        let renamed: Value = patch(json!({"name": "renamed"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(renamed["credits"]["remaining"], 6);

        // Cleared: unlimited, at once.
        let cleared: Value = patch(json!({"credits": null}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(cleared["credits"].is_null());
        app.caught_up().await;
        let answer = verify(&mut grpc, &key, &[], 0).await;
        assert!(answer.valid);
        assert_eq!(answer.credits_remaining, None);

        // And set again over gRPC: the key has credits once more.
        app.client
            .clone()
            .update_key(authed(
                &app.admin_key,
                v1::UpdateKeyRequest {
                    id: id.clone(),
                    credits: Some(credits(0, None)),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        app.caught_up().await;
        let answer = verify(&mut grpc, &key, &[], 0).await;
        assert_eq!(answer.code(), v1::VerifyCode::UsageExceeded);
    }
}

#[tokio::test]
async fn concurrent_callers_on_two_replicas_never_spend_more_than_the_credits() {
    const CREDITS: i64 = 500;
    const TASKS: usize = 16;
    const PER_TASK: usize = 100;
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let second = spawn_second_server(&app).await;
        let (key, id) = create(&app, &["chat"], credits(CREDITS, None)).await;
        let valid = Arc::new(AtomicUsize::new(0));
        let exceeded = Arc::new(AtomicUsize::new(0));
        let started = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            // Half the callers on each replica.
            let mut grpc = if task % 2 == 0 {
                app.client.clone()
            } else {
                second.client.clone()
            };
            let (key, valid, exceeded) = (key.clone(), valid.clone(), exceeded.clone());
            tasks.spawn(async move {
                for _ in 0..PER_TASK {
                    let answer = verify(&mut grpc, &key, &["chat"], 0).await;
                    match answer.code() {
                        v1::VerifyCode::Valid => valid.fetch_add(1, Ordering::Relaxed),
                        v1::VerifyCode::UsageExceeded => exceeded.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected verdict {other:?}: {answer:?}"),
                    };
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        let remaining = get(&app, &id).await.credits.unwrap().remaining;
        let name = match backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        };
        let (valid, exceeded) = (
            valid.load(Ordering::Relaxed),
            exceeded.load(Ordering::Relaxed),
        );
        eprintln!(
            "credits ({name}): {} verifications by {TASKS} concurrent callers on 2 replicas \
             against {CREDITS} credits: {valid} spends (valid), {exceeded} usage_exceeded, \
             {remaining} remaining, in {:?}",
            TASKS * PER_TASK,
            started.elapsed()
        );
        assert_eq!(valid as i64, CREDITS);
        assert_eq!(exceeded, TASKS * PER_TASK - CREDITS as usize);
        assert_eq!(remaining, 0);
    }
}
