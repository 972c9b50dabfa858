//! An organization's key policy in effect, through the gRPC API with the injected clock: the
//! maximum key age decides `rotation_due` (in Get and List, and the list's filter), and the
//! maximum key lifetime bounds the expiry of every key created, updated or rotated after it is
//! set. Another organization keeps the defaults.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use key_proto::v1;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::{TestApp, assert_status, authed, backends, spawn_app};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn set_policy(app: &TestApp, max_key_age_days: i32, max_key_lifetime_days: i32) {
    let organization = app
        .client
        .clone()
        .update_organization_policy(authed(
            &app.admin_key,
            v1::UpdateOrganizationPolicyRequest {
                policy: Some(v1::OrganizationPolicy {
                    default_rate_limits: Vec::new(),
                    max_key_age_days,
                    max_key_lifetime_days,
                    role_scopes: vec![],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let policy = organization.policy.unwrap();
    assert_eq!(policy.max_key_lifetime_days, max_key_lifetime_days);
}

async fn create_as(caller: &str, app: &TestApp, expires_at: &str) -> Result<v1::ApiKey, Status> {
    app.client
        .clone()
        .create_key(authed(
            caller,
            v1::CreateKeyRequest {
                name: "Policy test".into(),
                scopes: vec!["chat".into()],
                expires_at: expires_at.into(),
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

async fn get_as(caller: &str, app: &TestApp, id: &str) -> v1::ApiKey {
    app.client
        .clone()
        .get_key(authed(caller, v1::GetKeyRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap()
}

/// The ids ListKeys returns with the `rotation_due` filter, each reported due.
async fn list_due_as(caller: &str, app: &TestApp) -> Vec<String> {
    app.client
        .clone()
        .list_keys(authed(
            caller,
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

async fn update_expiry(app: &TestApp, id: &str, expires_at: &str) -> Result<v1::ApiKey, Status> {
    app.client
        .clone()
        .update_key(authed(
            &app.admin_key,
            v1::UpdateKeyRequest {
                id: id.into(),
                expires_at: Some(expires_at.into()),
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

async fn rotate_as(caller: &str, app: &TestApp, id: &str) -> v1::RotateKeyResponse {
    app.client
        .clone()
        .rotate_key(authed(
            caller,
            v1::RotateKeyRequest {
                id: id.into(),
                grace_period: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn expire_seconds(key: &v1::ApiKey) -> Option<i64> {
    key.expire_time.as_ref().map(|ts| ts.seconds)
}

/// INVALID_ARGUMENT on `expires_at`, naming the lifetime.
fn assert_lifetime_refusal(status: &Status, days: i64) {
    assert_status(status, Code::InvalidArgument, "invalid_request", None);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(
        info.metadata.get("field").map(String::as_str),
        Some("expires_at"),
        "{status:?}"
    );
    let rule =
        format!("invalid expires_at: this organization requires keys to expire within {days} days");
    assert!(status.message().starts_with(&rule), "{status:?}");
}

// ---------------------------------------------------------------------------------------------
// Maximum key age
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_maximum_key_age_decides_rotation_due_and_the_list_filter() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let other = app.other_organization_admin("other").await;
        let admin = &app.admin_key;
        let admin_id = app.verify(admin, &[]).await.key_id;
        let other_id = app.verify(&other, &[]).await.key_id;
        set_policy(&app, 30, 0).await;
        let key = create_as(admin, &app, "").await.unwrap();
        let other_key = create_as(&other, &app, "").await.unwrap();

        app.clock.advance(TimeDelta::days(29));
        assert!(!get_as(admin, &app, &key.id).await.rotation_due);
        assert!(list_due_as(admin, &app).await.is_empty());

        app.clock.advance(TimeDelta::days(1));
        assert!(get_as(admin, &app, &key.id).await.rotation_due);
        // Newest first; the bootstrap admin key is as old as the key.
        assert_eq!(
            list_due_as(admin, &app).await,
            vec![key.id.clone(), admin_id.clone()]
        );
        // Another organization keeps the default of 90 days.
        assert!(!get_as(&other, &app, &other_key.id).await.rotation_due);
        assert!(list_due_as(&other, &app).await.is_empty());

        // Rotating answers with the policy too: the old key is no longer due, nor its
        // successor.
        let rotated = rotate_as(admin, &app, &key.id).await;
        assert!(!rotated.rotated_key.unwrap().rotation_due);
        let successor = rotated.api_key.unwrap();
        assert!(!successor.rotation_due);
        assert_eq!(list_due_as(admin, &app).await, vec![admin_id.clone()]);

        // The successor is due 30 days after the rotation.
        app.clock.advance(TimeDelta::days(30));
        assert!(get_as(admin, &app, &successor.id).await.rotation_due);
        assert_eq!(
            list_due_as(admin, &app).await,
            vec![successor.id.clone(), admin_id.clone()]
        );

        app.clock.advance(TimeDelta::days(30));
        assert_eq!(
            list_due_as(&other, &app).await,
            vec![other_key.id.clone(), other_id.clone()]
        );

        // Back to the default: 90 days.
        set_policy(&app, 0, 0).await;
        assert!(!get_as(admin, &app, &successor.id).await.rotation_due);
        assert_eq!(list_due_as(admin, &app).await, vec![admin_id.clone()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Maximum key lifetime
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_maximum_lifetime_requires_new_keys_to_expire_within_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let other = app.other_organization_admin("other").await;
        let admin = &app.admin_key;
        set_policy(&app, 0, 7).await;
        let now = app.clock_now();

        let status = create_as(admin, &app, "").await.unwrap_err();
        assert_lifetime_refusal(&status, 7);
        assert_eq!(
            status.message(),
            "invalid expires_at: this organization requires keys to expire within 7 days: \
             set an expiry"
        );
        let status = create_as(admin, &app, &rfc3339(now + TimeDelta::days(8)))
            .await
            .unwrap_err();
        assert_lifetime_refusal(&status, 7);
        let status = create_as(
            admin,
            &app,
            &rfc3339(now + TimeDelta::days(7) + TimeDelta::seconds(1)),
        )
        .await
        .unwrap_err();
        assert_lifetime_refusal(&status, 7);

        let week = create_as(admin, &app, &rfc3339(now + TimeDelta::days(7)))
            .await
            .unwrap();
        assert_eq!(
            expire_seconds(&week),
            Some((now + TimeDelta::days(7)).timestamp())
        );
        // A date is valid through its end: six days ahead ends within the week.
        let date = (now + TimeDelta::days(6)).date_naive().to_string();
        assert!(create_as(admin, &app, &date).await.is_ok());

        // Another organization keeps the defaults: keys may live forever.
        let forever = create_as(&other, &app, "").await.unwrap();
        assert_eq!(forever.expire_time, None);
        let far = rfc3339(now + TimeDelta::days(365));
        assert!(create_as(&other, &app, &far).await.is_ok());
    }
}

#[tokio::test]
async fn a_maximum_lifetime_bounds_updated_expiries() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let before = create_as(&app.admin_key, &app, "").await.unwrap();
        set_policy(&app, 0, 7).await;
        let now = app.clock_now();
        let week = create_as(&app.admin_key, &app, &rfc3339(now + TimeDelta::days(7)))
            .await
            .unwrap();

        // Removing the expiry is refused, and so is a later one.
        let status = update_expiry(&app, &week.id, "").await.unwrap_err();
        assert_lifetime_refusal(&status, 7);
        let status = update_expiry(&app, &week.id, &rfc3339(now + TimeDelta::days(8)))
            .await
            .unwrap_err();
        assert_lifetime_refusal(&status, 7);
        assert_eq!(
            expire_seconds(&get_as(&app.admin_key, &app, &week.id).await),
            Some((now + TimeDelta::days(7)).timestamp())
        );

        // An earlier one is fine; and a week counts from the change.
        let sooner = update_expiry(&app, &week.id, &rfc3339(now + TimeDelta::days(2)))
            .await
            .unwrap();
        assert_eq!(
            expire_seconds(&sooner),
            Some((now + TimeDelta::days(2)).timestamp())
        );
        app.clock.advance(TimeDelta::days(1));
        let later = rfc3339(now + TimeDelta::days(8));
        assert!(update_expiry(&app, &week.id, &later).await.is_ok());

        // A key from before the policy may still be renamed without an expiry; giving it one
        // obeys the policy.
        let renamed = app
            .client
            .clone()
            .update_key(authed(
                &app.admin_key,
                v1::UpdateKeyRequest {
                    id: before.id.clone(),
                    name: Some("Renamed".into()),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(renamed.expire_time, None);
        let status = update_expiry(&app, &before.id, "").await.unwrap_err();
        assert_lifetime_refusal(&status, 7);
        let status = update_expiry(&app, &before.id, &rfc3339(now + TimeDelta::days(30)))
            .await
            .unwrap_err();
        assert_lifetime_refusal(&status, 7);
    }
}

#[tokio::test]
async fn a_maximum_lifetime_caps_a_successors_expiry() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let other = app.other_organization_admin("other").await;
        let admin = &app.admin_key;
        let forever = create_as(admin, &app, "").await.unwrap();
        let start = app.clock_now();
        let month = create_as(admin, &app, &rfc3339(start + TimeDelta::days(30)))
            .await
            .unwrap();
        let other_forever = create_as(&other, &app, "").await.unwrap();
        set_policy(&app, 0, 7).await;
        let three_days = create_as(admin, &app, &rfc3339(start + TimeDelta::days(3)))
            .await
            .unwrap();

        app.clock.advance(TimeDelta::hours(1));
        let now = app.clock_now();
        let week = Some((now + TimeDelta::days(7)).timestamp());
        // No expiry: the successor gets the longest one allowed.
        let successor = rotate_as(admin, &app, &forever.id).await.api_key.unwrap();
        assert_eq!(expire_seconds(&successor), week);
        // A longer lifetime than allowed: capped.
        let successor = rotate_as(admin, &app, &month.id).await.api_key.unwrap();
        assert_eq!(expire_seconds(&successor), week);
        // A shorter one: kept, counted from the rotation.
        let successor = rotate_as(admin, &app, &three_days.id)
            .await
            .api_key
            .unwrap();
        assert_eq!(
            expire_seconds(&successor),
            Some((now + TimeDelta::days(3)).timestamp())
        );

        // Another organization keeps the defaults: the successor never expires either.
        let successor = rotate_as(&other, &app, &other_forever.id)
            .await
            .api_key
            .unwrap();
        assert_eq!(successor.expire_time, None);
    }
}
