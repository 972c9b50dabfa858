//! No escalation: nobody gets more from a key than the permission rules give them, by rotating
//! a key they may not hold, or by loosening the limits and lifetime an admin set.

use key_proto::v1;
use tonic::{Code, Status};

use crate::helpers::{TestApp, assert_status, authed, backends, spawn_app};

/// The organization's first key's id: the bootstrap operator key of `default`.
async fn bootstrap_key_id(app: &TestApp) -> String {
    app.client
        .clone()
        .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .api_keys
        .into_iter()
        .find(|key| key.operator)
        .unwrap()
        .id
}

fn assert_forbidden(result: Result<impl std::fmt::Debug, Status>, mentions: &str) {
    let status = result.unwrap_err();
    assert_status(&status, Code::PermissionDenied, "insufficient_scope", None);
    assert!(status.message().contains(mentions), "{status:?}");
}

#[tokio::test]
async fn only_an_operator_key_rotates_updates_or_revokes_an_operator_key() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let operator_id = bootstrap_key_id(&app).await;
        // An organization admin of `default`, not an operator.
        let admin = app.create_key("team admin", &["admin"], "").await.key;
        let mut client = app.client.clone();

        let rotated = client
            .rotate_key(authed(
                &admin,
                v1::RotateKeyRequest {
                    id: operator_id.clone(),
                    grace_period: Some(prost_types::Duration {
                        seconds: 30 * 24 * 3600,
                        nanos: 0,
                    }),
                },
            ))
            .await;
        assert_forbidden(rotated, "operator key");
        let updated = client
            .update_key(authed(
                &admin,
                v1::UpdateKeyRequest {
                    id: operator_id.clone(),
                    name: Some("mine now".into()),
                    ..Default::default()
                },
            ))
            .await;
        assert_forbidden(updated, "operator key");
        let revoked = client
            .revoke_key(authed(
                &admin,
                v1::RevokeKeyRequest {
                    id: operator_id.clone(),
                    reason: String::new(),
                },
            ))
            .await;
        assert_forbidden(revoked, "operator key");
        // The operator key itself still may (a leaked operator key must be able to go).
        let own = client
            .rotate_key(authed(
                &app.admin_key,
                v1::RotateKeyRequest {
                    id: operator_id,
                    grace_period: Some(prost_types::Duration::default()),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(own.api_key.unwrap().operator);
    }
}

#[tokio::test]
async fn an_operator_key_without_admin_creates_no_organization() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let operator_id = bootstrap_key_id(&app).await;
        let mut client = app.client.clone();
        client
            .update_key(authed(
                &app.admin_key,
                v1::UpdateKeyRequest {
                    id: operator_id,
                    scopes: vec!["chat".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let created = client
            .create_organization(authed(
                &app.admin_key,
                v1::CreateOrganizationRequest {
                    name: "acme".into(),
                },
            ))
            .await;
        let status = created.unwrap_err();
        assert_status(
            &status,
            Code::PermissionDenied,
            "insufficient_scope",
            Some("API key lacks required scope: admin"),
        );
    }
}

/// A member of `app`'s organization with a personal key of its own (made by the admin, with
/// `limits` and `expires_at`); returns the key and its id.
async fn member_with_key(
    app: &TestApp,
    user: &str,
    limits: Vec<v1::RateLimit>,
    expires_at: &str,
) -> (String, String) {
    let mut client = app.client.clone();
    let member = client
        .add_member(authed(
            &app.admin_key,
            v1::AddMemberRequest {
                user_id: user.into(),
                role: v1::Role::Member.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .id;
    let created = client
        .create_key(authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "personal".into(),
                scopes: vec!["chat".into()],
                key_type: v1::KeyType::Personal.into(),
                member_id: member,
                expires_at: expires_at.into(),
                rate_limits: limits,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (created.key, created.api_key.unwrap().id)
}

fn per_minute(requests: u32) -> v1::RateLimit {
    v1::RateLimit {
        requests,
        per: v1::RatePeriod::Minute.into(),
    }
}

async fn update(
    app: &TestApp,
    key: &str,
    request: v1::UpdateKeyRequest,
) -> Result<v1::ApiKey, Status> {
    app.client
        .clone()
        .update_key(authed(key, request))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

#[tokio::test]
async fn a_member_tightens_their_own_key_but_never_loosens_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (key, id) = member_with_key(&app, "mallory", vec![per_minute(10)], "2026-02-01").await;

        // Looser limits, cleared limits (no default here: unlimited), a later expiry, no expiry.
        let looser = v1::UpdateKeyRequest {
            id: id.clone(),
            rate_limits: vec![per_minute(1_000_000)],
            ..Default::default()
        };
        assert_forbidden(update(&app, &key, looser).await, "rate limits");
        let cleared = v1::UpdateKeyRequest {
            id: id.clone(),
            clear_rate_limits: true,
            ..Default::default()
        };
        assert_forbidden(update(&app, &key, cleared).await, "rate limits");
        let later = v1::UpdateKeyRequest {
            id: id.clone(),
            expires_at: Some("2027-02-01".into()),
            ..Default::default()
        };
        assert_forbidden(update(&app, &key, later).await, "expiry");
        let forever = v1::UpdateKeyRequest {
            id: id.clone(),
            expires_at: Some(String::new()),
            ..Default::default()
        };
        assert_forbidden(update(&app, &key, forever).await, "expiry");

        // Tighter is always allowed.
        let tighter = v1::UpdateKeyRequest {
            id: id.clone(),
            rate_limits: vec![per_minute(5)],
            expires_at: Some("2026-01-20".into()),
            ..Default::default()
        };
        let key_now = update(&app, &key, tighter).await.unwrap();
        assert_eq!(key_now.rate_limits, vec![per_minute(5)]);

        // An admin still may loosen it.
        let loosened = v1::UpdateKeyRequest {
            id,
            clear_rate_limits: true,
            expires_at: Some(String::new()),
            ..Default::default()
        };
        let key_now = update(&app, &app.admin_key, loosened).await.unwrap();
        assert!(key_now.rate_limits.is_empty() && key_now.expire_time.is_none());
    }
}

#[tokio::test]
async fn an_expired_personal_key_is_not_brought_back_by_its_member() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (key, id) = member_with_key(&app, "trudy", vec![], "2026-01-16").await;
        // The member's key expires; another of their keys asks to revive it.
        let second = app
            .client
            .clone()
            .create_key(authed(
                &key,
                v1::CreateKeyRequest {
                    name: "second".into(),
                    scopes: vec!["chat".into()],
                    key_type: v1::KeyType::Personal.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .key;
        app.clock.advance(chrono::TimeDelta::days(2));
        let revive = v1::UpdateKeyRequest {
            id,
            expires_at: Some("2027-01-01".into()),
            ..Default::default()
        };
        assert_forbidden(update(&app, &second, revive).await, "expiry");
    }
}

#[tokio::test]
async fn a_member_creates_no_key_with_limits_looser_than_the_organizations() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut client = app.client.clone();
        let policy = v1::OrganizationPolicy {
            default_rate_limits: vec![per_minute(60)],
            ..Default::default()
        };
        client
            .update_organization_policy(authed(
                &app.admin_key,
                v1::UpdateOrganizationPolicyRequest {
                    policy: Some(policy),
                },
            ))
            .await
            .unwrap();
        let (key, _) = member_with_key(&app, "eve", vec![], "").await;
        let greedy = client
            .create_key(authed(
                &key,
                v1::CreateKeyRequest {
                    name: "greedy".into(),
                    scopes: vec!["chat".into()],
                    key_type: v1::KeyType::Personal.into(),
                    rate_limits: vec![per_minute(1_000)],
                    ..Default::default()
                },
            ))
            .await;
        assert_forbidden(greedy, "rate limits");
        let modest = client
            .create_key(authed(
                &key,
                v1::CreateKeyRequest {
                    name: "modest".into(),
                    scopes: vec!["chat".into()],
                    key_type: v1::KeyType::Personal.into(),
                    rate_limits: vec![per_minute(30)],
                    ..Default::default()
                },
            ))
            .await;
        assert!(modest.is_ok(), "{modest:?}");
    }
}
