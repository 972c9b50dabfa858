//! The key cache on the VerifyKey path: hits read nothing, unknown keys are read once, every
//! change that alters a verdict takes effect at the next verification in the same process,
//! and another replica follows within the cache's TTL (moved with the injected clock).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{TimeDelta, TimeZone, Utc};
use key_core::{ApiKey, Environment, Error, RandomSource, Role};
use key_proto::v1::{self, key_service_client::KeyServiceClient};
use key_service::KeyCacheSettings;
use ring::rand::SystemRandom;

use crate::{
    helpers::{TestApp, authed, backends, spawn_app, spawn_app_configured, spawn_second_server},
    process::TIMEOUT,
    ratelimit::limit,
    redis_limiter::{sample, scrape_metrics, serve_with_metrics},
};

/// How many database statements `app`'s store sent while `run` ran.
async fn queries<T>(app: &TestApp, run: impl std::future::Future<Output = T>) -> (T, u64) {
    let before = app.keyrack.store.query_count();
    let value = run.await;
    (value, app.keyrack.store.query_count() - before)
}

async fn key_id(app: &TestApp, key: &str) -> String {
    let verdict = app.verify(key, &[]).await;
    assert!(!verdict.key_id.is_empty(), "{verdict:?}");
    verdict.key_id
}

async fn update(app: &TestApp, request: v1::UpdateKeyRequest) {
    app.client
        .clone()
        .update_key(authed(&app.admin_key, request))
        .await
        .unwrap();
}

async fn set_policy(app: &TestApp, policy: v1::OrganizationPolicy) {
    app.client
        .clone()
        .update_organization_policy(authed(
            &app.admin_key,
            v1::UpdateOrganizationPolicyRequest {
                policy: Some(policy),
            },
        ))
        .await
        .unwrap();
}

/// Adds a member with `role` and creates a personal key for them with `chat`; returns the
/// member's id and the key.
async fn member_with_key(app: &TestApp, role: Role) -> (String, String) {
    let role = match role {
        Role::Owner => v1::Role::Owner,
        Role::Admin => v1::Role::Admin,
        Role::Member => v1::Role::Member,
        Role::Viewer => v1::Role::Viewer,
    };
    let member = app
        .client
        .clone()
        .add_member(authed(
            &app.admin_key,
            v1::AddMemberRequest {
                user_id: "alice@example.com".into(),
                role: role.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .id;
    let key = app
        .client
        .clone()
        .create_key(authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "alice".into(),
                scopes: vec!["chat".into(), "agents:read".into()],
                key_type: v1::KeyType::Personal.into(),
                member_id: member.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .key;
    (member, key)
}

/// Verifies `key` until it is cached and asserts that the next verification is a hit: valid,
/// with no query.
async fn cached(app: &TestApp, key: &str, scopes: &[&str]) {
    app.caught_up().await;
    assert!(app.verify(key, scopes).await.valid);
    let (verdict, sent) = queries(app, app.verify(key, scopes)).await;
    assert!(verdict.valid, "{verdict:?}");
    assert_eq!(sent, 0, "a cached key is verified without a query");
}

#[tokio::test]
async fn a_cached_key_is_verified_without_any_query() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("hot", &["chat"], "").await.key;
        let (first, sent) = queries(&app, app.verify(&key, &["chat"])).await;
        assert!(first.valid);
        assert_eq!(sent, 1, "a cold miss reads one row");
        let (_, sent) = queries(&app, async {
            for _ in 0..50 {
                let verdict = app.verify(&key, &["chat"]).await;
                assert!(verdict.valid);
                assert_eq!(verdict.name, "hot");
                assert_eq!(verdict.scopes, vec!["chat"]);
            }
            // A hit still judges the scopes the request asks for.
            let refused = app.verify(&key, &["admin"]).await;
            assert_eq!(refused.code(), v1::VerifyCode::InsufficientScope);
        })
        .await;
        assert_eq!(sent, 0);
        let (hits, misses, _) = app.keyrack.metrics.key_cache_counts();
        assert!(hits >= 51, "{hits}");
        assert!(misses >= 1);
        let scrape = app.keyrack.metrics.render();
        assert!(
            scrape
                .lines()
                .any(|line| line.starts_with("keyrack_key_cache_hits_total ")),
            "{scrape}"
        );
        // The admin key authenticates admin RPCs from the same cache.
        assert_eq!(app.keyrack.verifier.cached_keys().0, 2);
    }
}

#[tokio::test]
async fn a_flood_of_random_keys_reads_each_once_and_evicts_no_valid_key() {
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.key_cache = KeyCacheSettings {
                negative_capacity: 64,
                ..KeyCacheSettings::default()
            };
        })
        .await;
        let good = app.create_key("good", &["chat"], "").await.key;
        cached(&app, &good, &["chat"]).await;

        let rng = SystemRandom::new();
        let flood: Vec<ApiKey> = (0..40)
            .map(|_| ApiKey::generate(Environment::Live, &rng).unwrap())
            .collect();
        let (_, sent) = queries(&app, async {
            for key in &flood {
                assert!(!app.verify(key.expose(), &[]).await.valid);
            }
        })
        .await;
        assert!(sent <= 40, "at most one query per distinct key: {sent}");
        let (_, sent) = queries(&app, async {
            for key in &flood {
                let verdict = app.verify(key.expose(), &[]).await;
                assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
            }
        })
        .await;
        assert_eq!(sent, 0, "unknown keys seen before are refused from memory");
        assert_eq!(app.keyrack.metrics.key_cache_counts().2, 40);

        // Many more unknown keys than the negative cache holds: they evict each other, never
        // a valid key.
        for _ in 0..300 {
            let stranger = ApiKey::generate(Environment::Live, &rng).unwrap();
            assert!(!app.verify(stranger.expose(), &[]).await.valid);
        }
        let (cached_keys, unknown) = app.keyrack.verifier.cached_keys();
        assert!(unknown <= 64 + 16, "bounded: {unknown}");
        assert!(cached_keys >= 2);
        let (verdict, sent) = queries(&app, app.verify(&good, &["chat"])).await;
        assert!(verdict.valid);
        assert_eq!(sent, 0, "the valid key is still cached");
    }
}

#[tokio::test]
async fn revoke_takes_effect_at_the_next_verification() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("revoked", &["chat"], "").await.key;
        cached(&app, &key, &["chat"]).await;
        let id = key_id(&app, &key).await;
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id,
                    reason: "leaked".into(),
                },
            ))
            .await
            .unwrap();
        let verdict = app.verify(&key, &["chat"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
        // Revoked stays revoked from the cache too. (On PostgreSQL the revocation's own notice
        // arrives a few milliseconds later and drops the entry once more: wait for it, and let
        // one verification cache the revoked record again, before counting.)
        app.caught_up().await;
        app.verify(&key, &["chat"]).await;
        let (verdict, sent) = queries(&app, app.verify(&key, &["chat"])).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
        assert_eq!(sent, 0);
    }
}

#[tokio::test]
async fn rotation_changes_the_old_keys_expiry_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let old = app.create_key("rotated", &["chat"], "").await.key;
        cached(&app, &old, &["chat"]).await;
        assert_eq!(app.verify(&old, &[]).await.expire_time, None);
        let id = key_id(&app, &old).await;
        let rotated = app
            .client
            .clone()
            .rotate_key(authed(
                &app.admin_key,
                v1::RotateKeyRequest {
                    id: id.clone(),
                    grace_period: Some(prost_types::Duration {
                        seconds: 3600,
                        nanos: 0,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let verdict = app.verify(&old, &["chat"]).await;
        assert!(verdict.valid);
        let deadline = app.clock_now() + TimeDelta::hours(1);
        assert_eq!(
            verdict.expire_time.unwrap().seconds,
            deadline.timestamp(),
            "the grace period is seen at once"
        );
        assert!(app.verify(&rotated.key, &["chat"]).await.valid);

        // Rotating the successor with no grace revokes it at once.
        let successor = rotated.api_key.unwrap().id;
        cached(&app, &rotated.key, &["chat"]).await;
        app.client
            .clone()
            .rotate_key(authed(
                &app.admin_key,
                v1::RotateKeyRequest {
                    id: successor,
                    grace_period: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 0,
                    }),
                },
            ))
            .await
            .unwrap();
        let verdict = app.verify(&rotated.key, &["chat"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
    }
}

#[tokio::test]
async fn updates_of_scopes_expiry_and_rate_limits_take_effect_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("updated", &["chat"], "").await.key;
        let id = key_id(&app, &key).await;

        cached(&app, &key, &["chat"]).await;
        update(
            &app,
            v1::UpdateKeyRequest {
                id: id.clone(),
                scopes: vec!["agents:read".into()],
                ..Default::default()
            },
        )
        .await;
        let verdict = app.verify(&key, &["chat"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InsufficientScope);
        assert!(app.verify(&key, &["agents:read"]).await.valid);

        cached(&app, &key, &["agents:read"]).await;
        update(
            &app,
            v1::UpdateKeyRequest {
                id: id.clone(),
                expires_at: Some("2026-01-15T12:30:00Z".into()),
                ..Default::default()
            },
        )
        .await;
        let verdict = app.verify(&key, &[]).await;
        let expiry = Utc.with_ymd_and_hms(2026, 1, 15, 12, 30, 0).unwrap();
        assert_eq!(verdict.expire_time.unwrap().seconds, expiry.timestamp());

        cached(&app, &key, &["agents:read"]).await;
        update(
            &app,
            v1::UpdateKeyRequest {
                id: id.clone(),
                rate_limits: vec![limit(1, v1::RatePeriod::Hour)],
                ..Default::default()
            },
        )
        .await;
        assert!(app.verify(&key, &[]).await.valid);
        let refused = app.verify(&key, &[]).await;
        assert_eq!(refused.code(), v1::VerifyCode::RateLimited);
        assert_eq!(refused.message, "Rate limit exceeded: 1 request per hour");
    }
}

#[tokio::test]
async fn member_demotion_and_removal_take_effect_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (member, key) = member_with_key(&app, Role::Member).await;
        cached(&app, &key, &["chat"]).await;
        app.client
            .clone()
            .update_member(authed(
                &app.admin_key,
                v1::UpdateMemberRequest {
                    id: member.clone(),
                    role: v1::Role::Viewer.into(),
                },
            ))
            .await
            .unwrap();
        let verdict = app.verify(&key, &["chat"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InsufficientScope);
        assert_eq!(verdict.scopes, vec!["agents:read"]);

        cached(&app, &key, &["agents:read"]).await;
        app.client
            .clone()
            .remove_member(authed(
                &app.admin_key,
                v1::RemoveMemberRequest { id: member },
            ))
            .await
            .unwrap();
        let verdict = app.verify(&key, &["agents:read"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
    }
}

#[tokio::test]
async fn policy_changes_take_effect_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (_, personal) = member_with_key(&app, Role::Member).await;
        let organization_key = app.create_key("team", &["chat"], "").await.key;
        cached(&app, &personal, &["chat"]).await;
        cached(&app, &organization_key, &["chat"]).await;

        // Members lose `chat`; the organization's keys get a default limit of one an hour.
        set_policy(
            &app,
            v1::OrganizationPolicy {
                role_scopes: vec![v1::RoleScopes {
                    role: v1::Role::Member.into(),
                    scopes: vec!["agents:read".into()],
                }],
                default_rate_limits: vec![limit(1, v1::RatePeriod::Hour)],
                ..Default::default()
            },
        )
        .await;
        let verdict = app.verify(&personal, &["chat"]).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InsufficientScope);
        assert!(app.verify(&organization_key, &["chat"]).await.valid);
        let refused = app.verify(&organization_key, &["chat"]).await;
        assert_eq!(refused.code(), v1::VerifyCode::RateLimited);
    }
}

#[tokio::test]
async fn expiry_is_judged_by_the_clock_even_on_a_hit() {
    for backend in backends() {
        // A TTL longer than the key's life: only the stored expiry can refuse it.
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.key_cache = KeyCacheSettings {
                ttl: Duration::from_secs(30 * 24 * 3600),
                ..KeyCacheSettings::default()
            };
        })
        .await;
        let key = app
            .create_key("two hours", &["chat"], "2026-01-15T12:30:00Z")
            .await
            .key;
        cached(&app, &key, &["chat"]).await;
        let expiry = Utc.with_ymd_and_hms(2026, 1, 15, 12, 30, 0).unwrap();
        app.clock.set(expiry - TimeDelta::seconds(1));
        let (verdict, sent) = queries(&app, app.verify(&key, &["chat"])).await;
        assert!(verdict.valid);
        assert_eq!(sent, 0);
        app.clock.set(expiry);
        let (verdict, sent) = queries(&app, app.verify(&key, &["chat"])).await;
        assert_eq!(verdict.code(), v1::VerifyCode::ExpiredApiKey);
        assert_eq!(sent, 0, "refused from the cache, at its expiry instant");
    }
}

/// Another process on the same database: on PostgreSQL the revocation's notice reaches its
/// cache at once; SQLite is one process (`serve` refuses a second), so a second application
/// on the same file sees the change only when its entry is the TTL old.
#[tokio::test]
async fn another_replica_sees_a_revocation_at_once_on_postgres_and_within_the_ttl_on_sqlite() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let second = spawn_second_server(&app).await;
        let key = app.create_key("shared", &["chat"], "").await.key;
        let verify_on_second = || {
            let mut client = second.client.clone();
            let key = key.clone();
            async move {
                client
                    .verify_key(v1::VerifyKeyRequest {
                        key,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        assert!(verify_on_second().await.valid);
        let id = key_id(&app, &key).await;
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id,
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        assert!(!app.verify(&key, &[]).await.valid, "at once where revoked");
        if matches!(backend, crate::helpers::Backend::Postgres(_)) {
            // The clock stands still: only the notice can end the entry.
            second.caught_up().await;
            let verdict = verify_on_second().await;
            assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
        } else {
            let ttl = TimeDelta::from_std(key_service::DEFAULT_KEY_CACHE_TTL).unwrap();
            app.clock.advance(ttl - TimeDelta::milliseconds(1));
            assert!(verify_on_second().await.valid);
            app.clock.advance(TimeDelta::milliseconds(1));
            let verdict = verify_on_second().await;
            assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
        }
        second.stop().await;
    }
}

#[tokio::test]
async fn a_zero_ttl_turns_the_cache_off() {
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.key_cache = KeyCacheSettings {
                ttl: Duration::ZERO,
                ..KeyCacheSettings::default()
            };
        })
        .await;
        let key = app.create_key("uncached", &["chat"], "").await.key;
        let stranger = ApiKey::generate(Environment::Live, &SystemRandom::new()).unwrap();
        let (_, sent) = queries(&app, async {
            for _ in 0..5 {
                assert!(app.verify(&key, &["chat"]).await.valid);
                assert!(!app.verify(stranger.expose(), &[]).await.valid);
            }
        })
        .await;
        assert_eq!(sent, 10, "every verification reads the database");
        assert_eq!(app.keyrack.verifier.cached_keys(), (0, 0));
    }
}

/// Draws from the system, except for one planned draw of 64 bytes: a key issued then is
/// known to the test before it exists.
#[derive(Debug, Default)]
struct PlannedRandom {
    planned: Mutex<Option<[u8; 64]>>,
}

impl RandomSource for PlannedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        let planned = self.planned.lock().unwrap().take();
        match planned {
            Some(bytes) if dest.len() == bytes.len() => {
                dest.copy_from_slice(&bytes);
                Ok(())
            }
            _ => RandomSource::fill(&SystemRandom::new(), dest),
        }
    }
}

/// Replays the same 64 bytes, all below 248, so that one draw makes a whole key.
#[derive(Debug)]
struct Replay([u8; 64]);

impl RandomSource for Replay {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        dest.copy_from_slice(&self.0[..dest.len()]);
        Ok(())
    }
}

#[tokio::test]
async fn a_key_created_after_its_digest_was_refused_works() {
    for backend in backends() {
        let rng = Arc::new(PlannedRandom::default());
        let source = rng.clone();
        let app = spawn_app_configured(&backend, move |setup| setup.parts.random = source).await;
        let mut bytes = [0_u8; 64];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::try_from(i * 3 % 240).unwrap();
        }
        let future = ApiKey::generate(Environment::Live, &Replay(bytes)).unwrap();
        assert!(!app.verify(future.expose(), &[]).await.valid);
        let (verdict, sent) = queries(&app, app.verify(future.expose(), &[])).await;
        assert_eq!(verdict.code(), v1::VerifyCode::InvalidApiKey);
        assert_eq!(sent, 0, "refused from the negative cache");

        *rng.planned.lock().unwrap() = Some(bytes);
        let created = app.create_key("planned", &["chat"], "").await;
        assert_eq!(created.key, future.expose(), "the planned key was issued");
        let verdict = app.verify(future.expose(), &["chat"]).await;
        assert!(verdict.valid, "{verdict:?}");
    }
}

/// `keyrack serve --key-cache-ttl 0`: the flag reaches the application, and every verification
/// reads the database (the metrics count misses only).
#[tokio::test]
async fn serve_with_a_zero_ttl_answers_every_verification_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (mut served, grpc, metrics, stderr) =
        serve_with_metrics(dir.path(), &["--key-cache-ttl", "0"]).await;
    assert!(stderr.contains("the key cache is off"), "{stderr}");
    let admin = crate::process::bootstrap_key(dir.path());
    let mut client = KeyServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    for _ in 0..3 {
        let verdict = client
            .verify_key(v1::VerifyKeyRequest {
                key: admin.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(verdict.valid);
    }
    let scrape = scrape_metrics(&metrics).await;
    assert_eq!(
        sample(&scrape, "keyrack_key_cache_hits_total").as_deref(),
        Some("0"),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "keyrack_key_cache_misses_total").as_deref(),
        Some("3"),
        "{scrape}"
    );
    let status = served.terminate(TIMEOUT);
    assert!(status.success(), "{status}:\n{}", served.stderr());
}

/// One tenant cannot empty every tenant's cache: a policy or member change drops only that
/// organization's (or member's) keys, and a change that changes nothing drops none.
#[tokio::test]
async fn a_tenants_changes_drop_only_its_own_keys_and_no_ops_drop_none() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let other_admin = app.other_organization_admin("other").await;
        let mine = app.create_key("mine", &["chat"], "").await.key;
        let theirs = app
            .client
            .clone()
            .create_key(authed(
                &other_admin,
                v1::CreateKeyRequest {
                    name: "theirs".into(),
                    scopes: vec!["chat".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key;
        cached(&app, &mine, &["chat"]).await;
        cached(&app, &theirs, &["chat"]).await;

        // The other tenant changes its policy, and its members, in a loop.
        let member = app
            .client
            .clone()
            .add_member(authed(
                &other_admin,
                v1::AddMemberRequest {
                    user_id: "loop@example.com".into(),
                    role: v1::Role::Member.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap()
            .id;
        for days in [30, 31, 30] {
            app.client
                .clone()
                .update_organization_policy(authed(
                    &other_admin,
                    v1::UpdateOrganizationPolicyRequest {
                        policy: Some(v1::OrganizationPolicy {
                            max_key_age_days: days,
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .unwrap();
            app.client
                .clone()
                .update_member(authed(
                    &other_admin,
                    v1::UpdateMemberRequest {
                        id: member.clone(),
                        role: v1::Role::Viewer.into(),
                    },
                ))
                .await
                .unwrap();
        }
        let ((), reads) = queries(&app, async {
            assert!(app.verify(&mine, &["chat"]).await.valid);
        })
        .await;
        assert_eq!(reads, 0, "my key was dropped by another tenant's changes");

        // My own no-op changes drop nothing either.
        let ((), reads) = queries(&app, async {
            set_policy(&app, v1::OrganizationPolicy::default()).await;
        })
        .await;
        assert!(reads > 0);
        let ((), reads) = queries(&app, async {
            assert!(app.verify(&mine, &["chat"]).await.valid);
        })
        .await;
        assert_eq!(reads, 0, "an unchanged policy dropped my key");
    }
}
