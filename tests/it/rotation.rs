//! RotateKey, UpdateKey and the rotation policy (`rotation_due`), through the gRPC API and the
//! REST gateway, with the injected clock.

use chrono::{TimeDelta, TimeZone, Utc};
use key_core::{AuditAction, AuditEvent, AuditOutcome};
use key_proto::v1::{self, VerifyCode};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_status, authed, backends, spawn_app, start_time};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn grace(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

async fn rotate_as(
    app: &TestApp,
    caller: &str,
    id: &str,
    grace_period: Option<prost_types::Duration>,
) -> Result<v1::RotateKeyResponse, Status> {
    app.client
        .clone()
        .rotate_key(authed(
            caller,
            v1::RotateKeyRequest {
                id: id.to_owned(),
                grace_period,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn rotate(
    app: &TestApp,
    id: &str,
    grace_period: Option<prost_types::Duration>,
) -> Result<v1::RotateKeyResponse, Status> {
    rotate_as(app, &app.admin_key, id, grace_period).await
}

async fn update_as(
    app: &TestApp,
    caller: &str,
    request: v1::UpdateKeyRequest,
) -> Result<v1::ApiKey, Status> {
    app.client
        .clone()
        .update_key(authed(caller, request))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

async fn update(app: &TestApp, request: v1::UpdateKeyRequest) -> Result<v1::ApiKey, Status> {
    update_as(app, &app.admin_key, request).await
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

fn seconds(at: chrono::DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn field_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get("field").cloned())
        .unwrap_or_default()
}

/// The organization's audit events, oldest first, read straight from the store.
async fn audit_trail(app: &TestApp, organization_id: &str) -> Vec<AuditEvent> {
    let mut events = app
        .keyrack
        .store
        .list_audit_events(
            organization_id.parse().unwrap(),
            &key_store::AuditFilter::default(),
            None,
            100,
        )
        .await
        .unwrap();
    events.reverse();
    events
}

/// The one event of `action` about `target`.
fn event_about<'e>(events: &'e [AuditEvent], action: AuditAction, target: &str) -> &'e AuditEvent {
    let found: Vec<_> = events
        .iter()
        .filter(|event| event.action == action && event.target == target)
        .collect();
    assert_eq!(found.len(), 1, "{action:?} on {target}: {events:#?}");
    found[0]
}

/// The admin key's id, as VerifyKey tells it.
async fn admin_id(app: &TestApp) -> Uuid {
    app.verify(&app.admin_key, &[])
        .await
        .key_id
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// RotateKey
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn both_keys_work_within_the_grace_period_and_only_the_new_one_after_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app
            .create_key("Production API", &["chat", "agents:read"], "")
            .await;
        let old = created.api_key.unwrap();

        let rotated = rotate(&app, &old.id, grace(3600)).await.unwrap();
        let new = rotated.api_key.unwrap();
        let old_after = rotated.rotated_key.unwrap();
        assert!(rotated.key.starts_with("sk_live_"), "{}", rotated.key);
        assert_ne!(rotated.key, created.key);
        assert_ne!(new.id, old.id);
        assert_eq!(
            new.redacted_key,
            format!("sk_live_…{}", &rotated.key[rotated.key.len() - 4..])
        );
        assert_eq!(new.name, "Production API");
        assert_eq!(new.scopes, vec!["chat", "agents:read"]);
        assert_eq!(new.environment(), v1::Environment::Live);
        assert_eq!(new.organization_id, old.organization_id);
        assert_eq!(new.state(), v1::KeyState::Active);
        assert!(new.expire_time.is_none(), "the old key never expired");
        assert_eq!(new.rotated_from_id, old.id);
        assert_eq!(new.rotated_to_id, "");
        assert_eq!(old_after.id, old.id);
        assert_eq!(old_after.rotated_to_id, new.id);
        assert_eq!(old_after.rotated_from_id, "");
        assert_eq!(old_after.state(), v1::KeyState::Active);
        assert!(old_after.revoke_time.is_none());
        let grace_end = start_time() + TimeDelta::hours(1);
        assert_eq!(old_after.expire_time.unwrap().seconds, seconds(grace_end));

        // The links are stored, not only reported once.
        assert_eq!(get(&app, &old.id).await.rotated_to_id, new.id);
        assert_eq!(get(&app, &new.id).await.rotated_from_id, old.id);

        // Within the grace period both keys work; a client still on the old key shows in its
        // last_used_time.
        app.clock.advance(TimeDelta::minutes(30));
        let verdict = app.verify(&created.key, &["chat"]).await;
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(verdict.key_id, old.id);
        assert!(app.verify(&rotated.key, &["chat"]).await.valid);
        let old_record = get(&app, &old.id).await;
        assert_eq!(
            old_record.last_used_time.unwrap().seconds,
            seconds(start_time() + TimeDelta::minutes(30))
        );
        app.clock.set(grace_end - TimeDelta::seconds(1));
        assert!(app.verify(&created.key, &["chat"]).await.valid);

        // From the end of the grace period on, the old key is expired; the new one works.
        app.clock.set(grace_end);
        let expired = app.verify(&created.key, &["chat"]).await;
        assert_eq!(expired.code(), VerifyCode::ExpiredApiKey);
        assert_eq!(expired.message, "API key expired on 2026-01-15");
        assert!(
            app.verify(&rotated.key, &["chat", "agents:read"])
                .await
                .valid
        );
        assert_eq!(get(&app, &old.id).await.state(), v1::KeyState::Expired);

        // The audit trail: who rotated which key, and the successor's creation, by the caller.
        let events = audit_trail(&app, &old.organization_id).await;
        let admin = admin_id(&app).await;
        let rotate_event = event_about(&events, AuditAction::KeyRotate, &old.id);
        assert_eq!(rotate_event.actor_key_id, Some(admin));
        assert_eq!(rotate_event.outcome, AuditOutcome::Success);
        assert_eq!(rotate_event.time, start_time());
        let create_event = event_about(&events, AuditAction::KeyCreate, &new.id);
        assert_eq!(create_event.actor_key_id, Some(admin));
        // Never any key material.
        let dump = format!("{events:?}");
        assert!(!dump.contains(&rotated.key) && !dump.contains(&created.key));
    }
}

#[tokio::test]
async fn grace_zero_revokes_the_old_key_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Leaked", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let rotated = rotate(&app, &id, grace(0)).await.unwrap();
        let old = rotated.rotated_key.unwrap();
        assert_eq!(old.state(), v1::KeyState::Revoked);
        assert_eq!(old.revoke_reason, "rotated");
        assert_eq!(old.revoke_time.unwrap().seconds, seconds(start_time()));
        assert_eq!(old.rotated_to_id, rotated.api_key.unwrap().id);

        let verdict = app.verify(&created.key, &["chat"]).await;
        assert_eq!(verdict.code(), VerifyCode::InvalidApiKey);
        assert!(app.verify(&rotated.key, &["chat"]).await.valid);
    }
}

#[tokio::test]
async fn the_default_grace_is_24_hours_and_an_earlier_expiry_is_kept() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Default grace", &["chat"], "").await;
        let rotated = rotate(&app, &created.api_key.unwrap().id, None)
            .await
            .unwrap();
        let grace_end = start_time() + TimeDelta::hours(24);
        assert_eq!(
            rotated.rotated_key.unwrap().expire_time.unwrap().seconds,
            seconds(grace_end)
        );
        app.clock.set(grace_end - TimeDelta::milliseconds(1));
        assert!(app.verify(&created.key, &[]).await.valid);
        app.clock.set(grace_end);
        assert_eq!(
            app.verify(&created.key, &[]).await.code(),
            VerifyCode::ExpiredApiKey
        );

        // A key expiring before the grace period ends keeps its expiry; its successor gets
        // the same lifetime it was issued with, from the rotation on.
        app.clock.set(start_time());
        let short = app
            .create_key("Two hours", &["chat"], "2026-01-15T12:30:00Z")
            .await;
        app.clock.advance(TimeDelta::hours(1));
        let rotated = rotate(&app, &short.api_key.unwrap().id, grace(86_400))
            .await
            .unwrap();
        let old = rotated.rotated_key.unwrap();
        assert_eq!(
            old.expire_time.unwrap().seconds,
            seconds(Utc.with_ymd_and_hms(2026, 1, 15, 12, 30, 0).unwrap())
        );
        assert_eq!(
            rotated.api_key.unwrap().expire_time.unwrap().seconds,
            seconds(start_time() + TimeDelta::hours(3))
        );
    }
}

#[tokio::test]
async fn a_grace_period_over_30_days_or_negative_is_refused() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let id = app
            .create_key("Grace", &["chat"], "")
            .await
            .api_key
            .unwrap()
            .id;
        let thirty_days = 30 * 86_400;
        for bad in [
            grace(thirty_days + 1),
            grace(-1),
            Some(prost_types::Duration {
                seconds: 1,
                nanos: -5,
            }),
        ] {
            let status = rotate(&app, &id, bad).await.unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert_eq!(field_of(&status), "grace_period", "{status:?}");
        }
        // Nothing was rotated by the refusals; exactly 30 days is allowed.
        assert_eq!(get(&app, &id).await.rotated_to_id, "");
        let rotated = rotate(&app, &id, grace(thirty_days)).await.unwrap();
        assert_eq!(
            rotated.rotated_key.unwrap().expire_time.unwrap().seconds,
            seconds(start_time() + TimeDelta::days(30))
        );
    }
}

#[tokio::test]
async fn revoked_expired_and_rotated_keys_cannot_be_rotated() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let revoked = app
            .create_key("Revoked", &["chat"], "")
            .await
            .api_key
            .unwrap();
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: revoked.id.clone(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        let status = rotate(&app, &revoked.id, None).await.unwrap_err();
        assert_status(
            &status,
            Code::FailedPrecondition,
            "conflict",
            Some("a revoked key cannot be rotated"),
        );

        let rotated = app
            .create_key("Rotated", &["chat"], "")
            .await
            .api_key
            .unwrap();
        let successor = rotate(&app, &rotated.id, None)
            .await
            .unwrap()
            .api_key
            .unwrap();
        let status = rotate(&app, &rotated.id, None).await.unwrap_err();
        let message = format!(
            "the key was already rotated: its successor is {}",
            successor.id
        );
        assert_status(
            &status,
            Code::FailedPrecondition,
            "conflict",
            Some(&message),
        );
        // The successor itself can be rotated in turn.
        let third = rotate(&app, &successor.id, None).await.unwrap();
        assert_eq!(third.api_key.unwrap().rotated_from_id, successor.id);

        let expiring = app
            .create_key("Expiring", &["chat"], "2026-01-16")
            .await
            .api_key
            .unwrap();
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 17, 0, 0, 0).unwrap());
        let status = rotate(&app, &expiring.id, None).await.unwrap_err();
        assert_status(
            &status,
            Code::FailedPrecondition,
            "conflict",
            Some("an expired key cannot be rotated: it expired on 2026-01-16"),
        );

        // A refused rotation leaves no trace in the audit log.
        let events = audit_trail(&app, &revoked.organization_id).await;
        let rotations = events
            .iter()
            .filter(|event| event.action == AuditAction::KeyRotate)
            .count();
        assert_eq!(rotations, 2, "{events:#?}");
    }
}

#[tokio::test]
async fn another_organizations_key_is_not_found() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ours = app.create_key("Ours", &["chat"], "").await.api_key.unwrap();
        let other_admin = app.other_organization_admin("other").await;

        let status = rotate_as(&app, &other_admin, &ours.id, None)
            .await
            .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", Some("key not found"));
        let status = update_as(
            &app,
            &other_admin,
            v1::UpdateKeyRequest {
                id: ours.id.clone(),
                name: Some("Theirs now".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", Some("key not found"));
        let record = get(&app, &ours.id).await;
        assert_eq!(record.name, "Ours");
        assert_eq!(record.rotated_to_id, "");

        // A key that does not exist at all, and an id that is not one.
        let status = rotate(&app, &Uuid::now_v7().to_string(), None)
            .await
            .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", None);
        let status = rotate(&app, "nope", None).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        assert_eq!(field_of(&status), "id");
    }
}

// ---------------------------------------------------------------------------------------------
// UpdateKey
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_renames_and_changes_scopes_at_the_next_verification() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app
            .create_key("Agents", &["agents:read", "agents:write"], "")
            .await;
        let id = created.api_key.unwrap().id;
        assert!(app.verify(&created.key, &["agents:write"]).await.valid);

        // Narrowing: the very next verification lacks the scope.
        let narrowed = update(
            &app,
            v1::UpdateKeyRequest {
                id: id.clone(),
                scopes: vec!["agents:read".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(narrowed.scopes, vec!["agents:read"]);
        assert_eq!(narrowed.name, "Agents", "an unset name stays");
        let lacking = app.verify(&created.key, &["agents:write"]).await;
        assert_eq!(lacking.code(), VerifyCode::InsufficientScope);
        assert_eq!(
            lacking.message,
            "API key lacks required scope: agents:write"
        );

        // Widening and renaming.
        let widened = update(
            &app,
            v1::UpdateKeyRequest {
                id: id.clone(),
                name: Some("Agents and data".into()),
                scopes: vec![
                    "agents:read".into(),
                    "data:write".into(),
                    "data:write".into(),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(widened.name, "Agents and data");
        assert_eq!(widened.scopes, vec!["agents:read", "data:write"]);
        let verdict = app.verify(&created.key, &["data:write"]).await;
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(verdict.name, "Agents and data");

        // Nothing set: nothing changes.
        let same = update(
            &app,
            v1::UpdateKeyRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(same, get(&app, &id).await);

        let events = audit_trail(&app, &widened.organization_id).await;
        let updates: Vec<_> = events
            .iter()
            .filter(|event| event.action == AuditAction::KeyUpdate && event.target == id)
            .collect();
        assert_eq!(updates.len(), 3, "{events:#?}");
        let admin = admin_id(&app).await;
        assert!(
            updates
                .iter()
                .all(|event| event.actor_key_id == Some(admin))
        );
    }
}

#[tokio::test]
async fn update_sets_removes_and_refuses_expiries_and_revives_an_expired_key() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Expiry", &["chat"], "2026-01-20").await;
        let id = created.api_key.unwrap().id;
        let expires_at = |value: &str| v1::UpdateKeyRequest {
            id: id.clone(),
            expires_at: Some(value.to_owned()),
            ..Default::default()
        };

        let later = update(&app, expires_at("2026-02-28")).await.unwrap();
        assert_eq!(
            later.expire_time.unwrap().seconds,
            seconds(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap())
        );
        let never = update(&app, expires_at("")).await.unwrap();
        assert!(never.expire_time.is_none());

        for past in ["2026-01-14", "2026-01-15T10:29:59Z"] {
            let status = update(&app, expires_at(past)).await.unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert_eq!(field_of(&status), "expires_at");
        }
        let status = update(&app, expires_at("soon")).await.unwrap_err();
        assert_eq!(field_of(&status), "expires_at");

        // An expired (not revoked) key comes back with a later expiry.
        update(&app, expires_at("2026-01-15T11:00:00Z"))
            .await
            .unwrap();
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 16, 0, 0, 0).unwrap());
        assert_eq!(
            app.verify(&created.key, &[]).await.code(),
            VerifyCode::ExpiredApiKey
        );
        let revived = update(&app, expires_at("2026-01-31")).await.unwrap();
        assert_eq!(revived.state(), v1::KeyState::Active);
        assert!(app.verify(&created.key, &[]).await.valid);
    }
}

#[tokio::test]
async fn update_refuses_bad_fields_and_revoked_or_rotated_keys() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app
            .create_key("Fields", &["chat"], "")
            .await
            .api_key
            .unwrap();
        for (request, field) in [
            (
                v1::UpdateKeyRequest {
                    id: key.id.clone(),
                    scopes: vec!["chat".into(), "agents:fly".into()],
                    ..Default::default()
                },
                "scopes",
            ),
            (
                v1::UpdateKeyRequest {
                    id: key.id.clone(),
                    name: Some("   ".into()),
                    ..Default::default()
                },
                "name",
            ),
            (
                v1::UpdateKeyRequest {
                    id: key.id.clone(),
                    name: Some("x".repeat(101)),
                    ..Default::default()
                },
                "name",
            ),
            (
                v1::UpdateKeyRequest {
                    id: "not-an-id".into(),
                    ..Default::default()
                },
                "id",
            ),
        ] {
            let status = update(&app, request).await.unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert_eq!(field_of(&status), field, "{status:?}");
        }
        let status = update(
            &app,
            v1::UpdateKeyRequest {
                id: key.id.clone(),
                scopes: vec!["chat".into(), "agents:fly".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(status.message().contains("agents:fly"), "{status:?}");
        assert_eq!(get(&app, &key.id).await.name, "Fields");

        // Revoked: stays as it was.
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: key.id.clone(),
                    reason: "gone".into(),
                },
            ))
            .await
            .unwrap();
        let rename = |id: &str| v1::UpdateKeyRequest {
            id: id.to_owned(),
            name: Some("Renamed".into()),
            expires_at: Some(String::new()),
            ..Default::default()
        };
        let status = update(&app, rename(&key.id)).await.unwrap_err();
        assert_status(
            &status,
            Code::FailedPrecondition,
            "conflict",
            Some("a revoked key cannot be updated"),
        );
        assert_eq!(get(&app, &key.id).await.name, "Fields");

        // Rotated: the successor is the key to change.
        let old = app.create_key("Old", &["chat"], "").await.api_key.unwrap();
        let successor = rotate(&app, &old.id, grace(60))
            .await
            .unwrap()
            .api_key
            .unwrap();
        let status = update(&app, rename(&old.id)).await.unwrap_err();
        let message = format!(
            "a rotated key cannot be updated: update its successor {}",
            successor.id
        );
        assert_status(
            &status,
            Code::FailedPrecondition,
            "conflict",
            Some(&message),
        );
        assert_eq!(
            update(&app, rename(&successor.id)).await.unwrap().name,
            "Renamed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// rotation_due
// ---------------------------------------------------------------------------------------------

async fn list_due(app: &TestApp) -> Vec<String> {
    app.client
        .clone()
        .list_keys(authed(
            &app.admin_key,
            v1::ListKeysRequest {
                rotation_due: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .api_keys
        .into_iter()
        .map(|key| {
            assert!(key.rotation_due, "{key:?}");
            key.id
        })
        .collect()
}

#[tokio::test]
async fn keys_are_due_for_rotation_at_90_days_and_the_list_filters_on_them() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = admin_id(&app).await.to_string();
        let old = app.create_key("Old", &["chat"], "").await.api_key.unwrap();
        assert!(!old.rotation_due);

        app.clock.set(start_time() + TimeDelta::days(89));
        assert!(!get(&app, &old.id).await.rotation_due);
        assert!(list_due(&app).await.is_empty());

        app.clock.set(start_time() + TimeDelta::days(90));
        let young = app
            .create_key("Young", &["chat"], "")
            .await
            .api_key
            .unwrap();
        let revoked = app
            .create_key("Revoked", &["chat"], "")
            .await
            .api_key
            .unwrap();
        assert!(get(&app, &old.id).await.rotation_due);
        assert!(!get(&app, &young.id).await.rotation_due);
        // The bootstrap admin key is as old as `old`; newest first.
        assert_eq!(list_due(&app).await, vec![old.id.clone(), admin.clone()]);

        // The scheduled job's move: rotate what is due; neither key of the pair is due then.
        let rotated = rotate(&app, &old.id, None).await.unwrap();
        assert!(!rotated.rotated_key.unwrap().rotation_due);
        let successor = rotated.api_key.unwrap();
        assert!(!successor.rotation_due);
        assert_eq!(list_due(&app).await, vec![admin.clone()]);

        // Revoked and expired keys are never due; the successor is, 90 days after the
        // rotation.
        app.clock.set(start_time() + TimeDelta::days(200));
        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: revoked.id.clone(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        assert!(!get(&app, &revoked.id).await.rotation_due);
        assert_eq!(
            list_due(&app).await,
            vec![successor.id.clone(), young.id.clone(), admin.clone()]
        );

        // With a state: active is the only one that makes sense.
        let active_due = app
            .client
            .clone()
            .list_keys(authed(
                &app.admin_key,
                v1::ListKeysRequest {
                    rotation_due: true,
                    state: v1::KeyState::Active.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(active_due.api_keys.len(), 3);
        let status = app
            .client
            .clone()
            .list_keys(authed(
                &app.admin_key,
                v1::ListKeysRequest {
                    rotation_due: true,
                    state: v1::KeyState::Revoked.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        assert_eq!(field_of(&status), "rotation_due");
    }
}

// ---------------------------------------------------------------------------------------------
// REST gateway
// ---------------------------------------------------------------------------------------------

fn http(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, format!("{}{path}", app.http))
        .header("authorization", format!("Bearer {}", app.admin_key))
}

async fn json_of(builder: RequestBuilder, status: StatusCode) -> Value {
    let response = builder.send().await.unwrap();
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn assert_rest_error(builder: RequestBuilder, status: StatusCode, code: &str) -> String {
    let body = json_of(builder, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rest_rotate_returns_the_new_key_and_the_old_record() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Web", &["chat"], "").await;
        let old_id = created.api_key.unwrap().id;

        let rotated = json_of(
            http(
                &app,
                Method::POST,
                &format!("/api/api-keys/{old_id}/rotate"),
            )
            .json(&json!({ "gracePeriodSeconds": 3600 })),
            StatusCode::CREATED,
        )
        .await;
        let key = rotated["key"].as_str().unwrap();
        assert!(key.starts_with("sk_live_"), "{rotated}");
        assert_eq!(rotated["name"], "Web");
        assert_eq!(rotated["scopes"], json!(["chat"]));
        assert_eq!(rotated["rotatedFromId"], old_id.as_str());
        assert_eq!(rotated["rotatedToId"], Value::Null);
        assert_eq!(rotated["rotationDue"], false);
        assert_eq!(rotated["rotatedKey"]["id"], old_id.as_str());
        assert_eq!(rotated["rotatedKey"]["rotatedToId"], rotated["id"]);
        assert_eq!(rotated["rotatedKey"]["expiresAt"], "2026-01-15T11:30:00Z");
        assert_eq!(rotated["rotatedKey"]["state"], "active");
        assert!(rotated["rotatedKey"].get("key").is_none(), "{rotated}");
        assert!(app.verify(key, &["chat"]).await.valid);
        assert!(app.verify(&created.key, &["chat"]).await.valid);

        // The body may be left out: the default grace.
        let new_id = rotated["id"].as_str().unwrap();
        let again = json_of(
            http(
                &app,
                Method::POST,
                &format!("/api/api-keys/{new_id}/rotate"),
            ),
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(again["rotatedKey"]["expiresAt"], "2026-01-16T10:30:00Z");

        // Rotating the old key again: 409.
        let message = assert_rest_error(
            http(
                &app,
                Method::POST,
                &format!("/api/api-keys/{old_id}/rotate"),
            ),
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(message.contains("already rotated"), "{message}");
        // A grace period out of range: 400.
        assert_rest_error(
            http(
                &app,
                Method::POST,
                &format!("/api/api-keys/{new_id}/rotate"),
            )
            .json(&json!({ "gracePeriodSeconds": 31 * 86_400 })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
}

#[tokio::test]
async fn rest_patch_updates_a_key_and_the_list_filters_on_rotation_due() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = app.create_key("Patch me", &["chat"], "").await;
        let id = created.api_key.unwrap().id;
        let path = format!("/api/api-keys/{id}");

        let patched = json_of(
            http(&app, Method::PATCH, &path).json(&json!({
                "name": "Patched",
                "scopes": ["chat", "data:read"],
                "expiresAt": "2026-12-31",
            })),
            StatusCode::OK,
        )
        .await;
        assert_eq!(patched["name"], "Patched");
        assert_eq!(patched["scopes"], json!(["chat", "data:read"]));
        assert_eq!(patched["expiresAt"], "2027-01-01T00:00:00Z");
        assert!(app.verify(&created.key, &["data:read"]).await.valid);

        // Absent fields stay; null removes the expiry.
        let unexpired = json_of(
            http(&app, Method::PATCH, &path).json(&json!({ "expiresAt": null })),
            StatusCode::OK,
        )
        .await;
        assert_eq!(unexpired["expiresAt"], Value::Null);
        assert_eq!(unexpired["name"], "Patched");
        assert_eq!(unexpired["scopes"], json!(["chat", "data:read"]));

        let message = assert_rest_error(
            http(&app, Method::PATCH, &path).json(&json!({ "scopes": ["agents:fly"] })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert!(message.contains("agents:fly"), "{message}");
        assert_rest_error(
            http(&app, Method::PATCH, &path).json(&json!({ "colour": "blue" })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;

        // ?rotationDue=true
        app.clock.set(start_time() + TimeDelta::days(90));
        let due = json_of(
            http(&app, Method::GET, "/api/api-keys?rotationDue=true"),
            StatusCode::OK,
        )
        .await;
        let data = due["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{due}");
        assert!(data.iter().all(|key| key["rotationDue"] == true), "{due}");
        assert_eq!(data[0]["id"], id.as_str());
    }
}

#[tokio::test]
async fn the_openapi_document_lists_rotate_and_patch() {
    let app = spawn_app(&crate::helpers::Backend::Sqlite).await;
    let document = json_of(http(&app, Method::GET, "/openapi.json"), StatusCode::OK).await;
    let paths = &document["paths"];
    assert!(
        paths["/api/api-keys/{id}/rotate"]["post"].is_object(),
        "{paths}"
    );
    assert!(paths["/api/api-keys/{id}"]["patch"].is_object(), "{paths}");
    let key = &document["components"]["schemas"]["ApiKeyJson"]["properties"];
    for field in ["rotatedFromId", "rotatedToId", "rotationDue"] {
        assert!(key[field].is_object(), "{field}: {key}");
    }
    // A wrong method on the rotate route is a 405, like everywhere else.
    let id = Uuid::now_v7();
    let wrong = http(&app, Method::GET, &format!("/api/api-keys/{id}/rotate"));
    assert_rest_error(wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}
