//! Who may call the admin RPCs: an `admin` key of the same organization, and nobody else.

use chrono::TimeDelta;
use key_proto::v1;
use tonic::{Code, Request};

use crate::helpers::{assert_status, authed, backends, spawn_app};

#[tokio::test]
async fn admin_rpcs_refuse_missing_or_bad_credentials() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut client = app.client.clone();

        let status = client
            .list_keys(Request::new(v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "invalid_api_key", None);
        assert!(
            status
                .message()
                .contains("Authorization: Bearer YOUR_API_KEY"),
            "{}",
            status.message()
        );

        let mut basic = Request::new(v1::ListKeysRequest::default());
        basic.metadata_mut().insert(
            "authorization",
            format!("Basic {}", app.admin_key).parse().unwrap(),
        );
        let status = client.list_keys(basic).await.unwrap_err();
        assert_status(&status, Code::Unauthenticated, "invalid_api_key", None);

        for bad in ["sk_live_abc123...", "", "garbage"] {
            let status = client
                .list_keys(authed(bad, v1::ListKeysRequest::default()))
                .await
                .unwrap_err();
            assert_status(&status, Code::Unauthenticated, "invalid_api_key", None);
        }

        // A valid key without `admin` is known but not allowed.
        let chat = app
            .create_key("chat", &["chat", "agents:read", "analytics:read"], "")
            .await
            .key;
        let status = client
            .create_key(authed(
                &chat,
                v1::CreateKeyRequest {
                    name: "escalate".into(),
                    scopes: vec!["admin".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(
            &status,
            Code::PermissionDenied,
            "insufficient_scope",
            Some("API key lacks required scope: admin"),
        );

        // An expired admin key says so.
        let tomorrow = (app.clock_now() + TimeDelta::days(1))
            .date_naive()
            .to_string();
        let expiring_admin = app
            .create_key("admin until tomorrow", &["admin"], &tomorrow)
            .await
            .key;
        app.clock.advance(TimeDelta::days(3));
        let status = client
            .list_keys(authed(&expiring_admin, v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        let expected = format!("API key expired on {tomorrow}");
        assert_status(
            &status,
            Code::Unauthenticated,
            "expired_api_key",
            Some(&expected),
        );

        // A revoked admin key is just invalid.
        let doomed = app.create_key("doomed admin", &["admin"], "").await;
        client
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: doomed.api_key.unwrap().id,
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        let status = client
            .list_keys(authed(&doomed.key, v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        assert_status(
            &status,
            Code::Unauthenticated,
            "invalid_api_key",
            Some("The API key provided is invalid"),
        );
    }
}

#[tokio::test]
async fn another_organizations_keys_do_not_exist_for_you() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mine = app.create_key("mine", &["chat"], "").await;
        let my_id = mine.api_key.unwrap().id;
        let theirs = app.other_organization_admin("acme").await;
        let mut client = app.client.clone();

        let status = client
            .get_key(authed(&theirs, v1::GetKeyRequest { id: my_id.clone() }))
            .await
            .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", Some("key not found"));
        let status = client
            .revoke_key(authed(
                &theirs,
                v1::RevokeKeyRequest {
                    id: my_id.clone(),
                    reason: "hostile".into(),
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", None);
        let status = client
            .list_usage(authed(
                &theirs,
                v1::ListUsageRequest {
                    key_id: my_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::NotFound, "not_found", None);

        let listed = client
            .list_keys(authed(&theirs, v1::ListKeysRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.api_keys.len(), 1, "only acme's own admin key");
        assert_ne!(listed.api_keys[0].id, my_id);

        // The hostile revoke changed nothing.
        assert!(app.verify(&mine.key, &["chat"]).await.valid);

        // Keys acme creates belong to acme.
        let created = client
            .create_key(authed(
                &theirs,
                v1::CreateKeyRequest {
                    name: "acme key".into(),
                    scopes: vec!["chat".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let verdict = app.verify(&created.key, &[]).await;
        assert_eq!(verdict.organization_id, listed.api_keys[0].organization_id);
        let status = app
            .client
            .clone()
            .get_key(authed(
                &app.admin_key,
                v1::GetKeyRequest {
                    id: created.api_key.unwrap().id,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
}
