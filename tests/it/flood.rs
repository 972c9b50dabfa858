//! A flood of random well-formed keys: the misses go to the store together, in batches of one
//! query each, instead of one query per key; every key still gets its own, exact verdict, and
//! a key created a moment ago (on any replica) verifies.

use std::time::Duration;

use key_core::{ApiKey, Environment, KeyDigest, Pepper};
use key_proto::v1;
use ring::rand::SystemRandom;
use tokio::task::JoinSet;

use crate::{
    helpers::{
        Backend, TEST_PEPPER, TestApp, authed, backends, spawn_app_configured, spawn_second_server,
    },
    ratelimit::{create_limited, limit},
};

fn random_keys(count: usize) -> Vec<String> {
    let rng = SystemRandom::new();
    (0..count)
        .map(|_| {
            ApiKey::generate(Environment::Live, &rng)
                .unwrap()
                .expose()
                .to_owned()
        })
        .collect()
}

/// Sends VerifyKey for every key at once (each call in its own task, over the app's HTTP/2
/// connection) and returns the responses with their keys. They name no client, so each counts
/// against the test's own address.
fn verify_all(
    client: &v1::key_service_client::KeyServiceClient<tonic::transport::Channel>,
    keys: Vec<String>,
) -> JoinSet<(String, v1::VerifyKeyResponse)> {
    let mut calls = JoinSet::new();
    for key in keys {
        let mut client = client.clone();
        calls.spawn(async move {
            let response = client
                .verify_key(v1::VerifyKeyRequest {
                    key: key.clone(),
                    required_scopes: vec!["chat".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (key, response)
        });
    }
    calls
}

/// An app whose brute-force guard never blocks: these floods come from one address (the test)
/// and measure the lookups behind the guard (`brute_force.rs` tests the guard).
async fn spawn_unguarded(backend: &Backend) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.brute_force.threshold = u32::MAX;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_keys_are_looked_up_in_far_fewer_queries_than_calls() {
    for backend in backends() {
        let app = spawn_unguarded(&backend).await;
        let before = app.keyrack.store.query_count();
        let mut calls = verify_all(&app.client, random_keys(500));
        while let Some(call) = calls.join_next().await {
            let (_, verdict) = call.unwrap();
            assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
        }
        let sent = app.keyrack.store.query_count() - before;
        let (batches, digests, refused) = app.keyrack.metrics.key_lookup_counts();
        match backend {
            // One query per key without coalescing; a few dozen batches with it.
            Backend::Postgres(_) => {
                assert!(sent <= 150, "{sent} queries for 500 random keys");
                assert!(batches >= 1, "the misses were batched");
                assert!(digests >= 250, "{digests} digests in {batches} batches");
            }
            // A lone miss is read on the calling thread in microseconds (key-store's
            // `SqliteReads`), so few misses find one in flight to wait for: what matters
            // there is that no key costs more than its one cheap read.
            Backend::Sqlite => assert!(sent <= 500, "{sent} queries for 500 random keys"),
        }
        assert_eq!(refused, 0);
        let scrape = app.keyrack.metrics.render();
        assert!(
            scrape.contains("keyrack_key_lookup_batches_total "),
            "{scrape}"
        );

        // Quiet again: a single cold miss is one query, looked up on its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stranger = random_keys(1).remove(0);
        let before = app.keyrack.store.query_count();
        assert!(!app.verify(&stranger, &[]).await.valid);
        assert_eq!(app.keyrack.store.query_count() - before, 1);
        assert_eq!(app.keyrack.metrics.key_lookup_counts().0, batches);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_and_random_keys_in_one_flood_each_get_their_own_verdict() {
    for backend in backends() {
        let app = spawn_unguarded(&backend).await;
        let mut valid = Vec::new();
        for i in 0..20 {
            valid.push(app.create_key(&format!("key {i}"), &["chat"], "").await.key);
        }
        let revoked = app.create_key("revoked", &["chat"], "").await;
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: revoked.api_key.as_ref().unwrap().id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let under_scoped = app.create_key("reader", &["agents:read"], "").await.key;

        // Interleaved, so valid keys land in the same batches as random ones.
        let mut keys = Vec::new();
        for (i, random) in random_keys(300).into_iter().enumerate() {
            if let Some(key) = valid.get(i / 15).filter(|_| i % 15 == 0) {
                keys.push(key.clone());
            }
            keys.push(random);
        }
        keys.push(revoked.key.clone());
        keys.push(under_scoped.clone());
        let mut calls = verify_all(&app.client, keys);
        let mut valid_seen = 0;
        while let Some(call) = calls.join_next().await {
            let (key, verdict) = call.unwrap();
            if let Some(i) = valid.iter().position(|valid| *valid == key) {
                assert!(verdict.valid, "{verdict:?}");
                assert_eq!(verdict.name, format!("key {i}"));
                valid_seen += 1;
            } else if key == under_scoped {
                assert_eq!(verdict.code(), v1::VerifyCode::InsufficientScope);
            } else {
                assert!(!verdict.valid);
                assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
            }
        }
        assert_eq!(valid_seen, 20);
        assert!(app.keyrack.metrics.key_lookup_counts().0 >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_on_another_replica_during_a_flood_verifies_at_once() {
    for backend in backends() {
        let app = spawn_unguarded(&backend).await;
        let other = spawn_second_server(&app).await;
        for round in 0..5 {
            // Keep the first server's lookups busy with random keys...
            let mut flood = verify_all(&app.client, random_keys(200));
            tokio::time::sleep(Duration::from_millis(2)).await;
            // ...while the other replica creates a key, which the first verifies at once.
            let created = other
                .client
                .clone()
                .create_key(authed(
                    &app.admin_key,
                    v1::CreateKeyRequest {
                        name: format!("fresh {round}"),
                        scopes: vec!["chat".into()],
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            let verdict = app.verify(&created.key, &["chat"]).await;
            assert!(verdict.valid, "round {round}: {verdict:?}");
            assert_eq!(verdict.key_id, created.api_key.unwrap().id);
            while let Some(call) = flood.join_next().await {
                assert!(!call.unwrap().1.valid);
            }
        }
        assert!(app.keyrack.metrics.key_lookup_counts().0 >= 1);
        other.stop().await;
    }
}

/// The digest `app` stores for `key`.
fn digest(key: &str) -> KeyDigest {
    Pepper::new(TEST_PEPPER)
        .unwrap()
        .digest(&ApiKey::parse(key).unwrap())
}

async fn set_default_limits(app: &TestApp, limits: Vec<v1::RateLimit>) {
    app.client
        .clone()
        .update_organization_policy(authed(
            &app.admin_key,
            v1::UpdateOrganizationPolicyRequest {
                policy: Some(v1::OrganizationPolicy {
                    default_rate_limits: limits,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_store_reads_many_digests_in_one_query_like_one_digest_in_one() {
    for backend in backends() {
        let app = spawn_unguarded(&backend).await;
        let store = &app.keyrack.store;
        set_default_limits(&app, vec![limit(1, v1::RatePeriod::Hour)]).await;
        let plain = app.create_key("plain", &["chat"], "").await.key;
        let own = create_limited(&app, "own", vec![limit(5, v1::RatePeriod::Minute)]).await;
        let known = [digest(&plain), digest(&own), digest(&app.admin_key)];
        let unknown: Vec<KeyDigest> = random_keys(200).iter().map(|key| digest(key)).collect();

        let mut asked = unknown.clone();
        asked.splice(50..50, known);
        let before = store.query_count();
        let found = store.find_keys_by_digests(&asked).await.unwrap();
        assert_eq!(store.query_count() - before, 1, "one query");
        assert_eq!(found.len(), 3);
        for digest in known {
            let one = store.find_key_by_digest(&digest).await.unwrap().unwrap();
            let many = found.iter().find(|(_, stored, _)| *stored == digest);
            assert_eq!(many, Some(&one), "the same record, digest and limits");
        }
        // The organization's default applies to a key without limits of its own.
        let limits = |digest: KeyDigest| {
            let (_, _, limits) = found.iter().find(|row| row.1 == digest).unwrap();
            *limits
        };
        assert_ne!(limits(known[0]), limits(known[1]));
        assert_eq!(limits(known[0]), limits(known[2]));

        // Past 256 digests, one query per 256.
        let mut asked: Vec<KeyDigest> = random_keys(600).iter().map(|key| digest(key)).collect();
        asked.extend(known);
        let before = store.query_count();
        let found = store.find_keys_by_digests(&asked).await.unwrap();
        assert_eq!(store.query_count() - before, 3);
        assert_eq!(found.len(), 3);

        let before = store.query_count();
        assert!(store.find_keys_by_digests(&[]).await.unwrap().is_empty());
        assert!(
            store
                .find_keys_by_digests(&unknown)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.query_count() - before,
            1,
            "nothing asked, nothing sent"
        );
    }
}
