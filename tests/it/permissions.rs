//! The permission table (`key_core::PERMISSIONS`), row by row, allowed and denied, through the
//! gRPC API; and personal keys: self-generated within the member's role, limited at every
//! verification by the member's current role, dead once the member is removed.

use key_core::{Action, PERMISSIONS, Role};
use key_proto::v1;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::helpers::{TestApp, assert_status, authed, backends, spawn_app};

const ADMIN_MESSAGE: &str = "API key lacks required scope: admin";
const OWNERS_MESSAGE: &str = "only an owner may add, promote, demote or remove an owner";
const CEILINGS_MESSAGE: &str =
    "only an owner may change the maximum key lifetime, the default rate limits or the role scopes";
const OWNER_KEYS_MESSAGE: &str =
    "only an owner may create, rotate, update or revoke a key that acts as an owner";

/// A tenant with keys of every kind, for the rows below.
struct World {
    app: TestApp,
    /// An organization key with `admin`, not an operator key.
    admin: String,
    admin_id: String,
    /// An organization key without `admin`: `chat`, `analytics:read`.
    scoped: String,
    /// An organization key with `chat` only.
    chat: String,
    /// Members, by role `member`.
    alice: String,
    bob: String,
    /// Alice's personal key (`chat`, `agents:read`, `analytics:read`), made by an admin.
    alice_key: String,
    alice_key_id: String,
    /// Bob's personal key (`chat`).
    bob_key_id: String,
    /// The scoped organization key's id.
    scoped_id: String,
    /// A member with role `owner`, and their personal key with `admin` (made by the operator).
    olivia: String,
    olivia_key: String,
    olivia_key_id: String,
    /// A member with role `admin`, and their personal key with `admin`.
    adam_key: String,
}

async fn world(app: TestApp) -> World {
    let admin = app.create_key("admin", &["admin"], "").await;
    let scoped = app
        .create_key("scoped", &["chat", "analytics:read"], "")
        .await;
    let chat = app.create_key("chat", &["chat"], "").await.key;
    let alice = add_member(&app, "alice@example.com", Role::Member).await;
    let bob = add_member(&app, "bob@example.com", Role::Member).await;
    let alice_key = create(
        &app,
        &app.admin_key,
        personal(&alice, &["chat", "agents:read", "analytics:read"]),
    )
    .await
    .unwrap();
    let bob_key = create(&app, &app.admin_key, personal(&bob, &["chat"]))
        .await
        .unwrap();
    let olivia = add_member(&app, "olivia@example.com", Role::Owner).await;
    let olivia_key = create(&app, &app.admin_key, personal(&olivia, &["admin"]))
        .await
        .unwrap();
    let adam = add_member(&app, "adam@example.com", Role::Admin).await;
    let adam_key = create(&app, &app.admin_key, personal(&adam, &["admin"]))
        .await
        .unwrap()
        .key;
    World {
        admin: admin.key,
        admin_id: admin.api_key.unwrap().id,
        olivia,
        olivia_key_id: olivia_key.api_key.unwrap().id,
        olivia_key: olivia_key.key,
        adam_key,
        scoped: scoped.key,
        scoped_id: scoped.api_key.unwrap().id,
        chat,
        alice,
        bob,
        alice_key_id: alice_key.api_key.unwrap().id,
        alice_key: alice_key.key,
        bob_key_id: bob_key.api_key.unwrap().id,
        app,
    }
}

/// Adds a member through AddMember.
async fn add_member(app: &TestApp, user_id: &str, role: Role) -> String {
    let request = v1::AddMemberRequest {
        user_id: user_id.into(),
        role: role_to_proto(role).into(),
    };
    app.client
        .clone()
        .add_member(authed(&app.admin_key, request))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
        .id
}

/// Changes a member's role through UpdateMember.
async fn set_role(app: &TestApp, member: &str, role: Role) {
    let request = v1::UpdateMemberRequest {
        id: member.into(),
        role: role_to_proto(role).into(),
    };
    app.client
        .clone()
        .update_member(authed(&app.admin_key, request))
        .await
        .unwrap();
}

/// Removes a member through RemoveMember.
async fn remove_member(app: &TestApp, member: &str) {
    let request = v1::RemoveMemberRequest { id: member.into() };
    app.client
        .clone()
        .remove_member(authed(&app.admin_key, request))
        .await
        .unwrap();
}

pub(crate) fn role_to_proto(role: Role) -> v1::Role {
    match role {
        Role::Owner => v1::Role::Owner,
        Role::Admin => v1::Role::Admin,
        Role::Member => v1::Role::Member,
        Role::Viewer => v1::Role::Viewer,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// A personal key for `member` (empty: the caller's own).
fn personal(member: &str, scopes: &[&str]) -> v1::CreateKeyRequest {
    v1::CreateKeyRequest {
        name: "personal".into(),
        scopes: strings(scopes),
        key_type: v1::KeyType::Personal.into(),
        member_id: member.into(),
        ..Default::default()
    }
}

fn organization_key(scopes: &[&str]) -> v1::CreateKeyRequest {
    v1::CreateKeyRequest {
        name: "team".into(),
        scopes: strings(scopes),
        key_type: v1::KeyType::Organization.into(),
        ..Default::default()
    }
}

async fn create(
    app: &TestApp,
    key: &str,
    request: v1::CreateKeyRequest,
) -> Result<v1::CreateKeyResponse, Status> {
    app.client
        .clone()
        .create_key(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(app: &TestApp, key: &str, id: &str) -> Result<v1::ApiKey, Status> {
    app.client
        .clone()
        .get_key(authed(key, v1::GetKeyRequest { id: id.into() }))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

async fn list(app: &TestApp, key: &str) -> Result<Vec<v1::ApiKey>, Status> {
    app.client
        .clone()
        .list_keys(authed(key, v1::ListKeysRequest::default()))
        .await
        .map(|response| response.into_inner().api_keys)
}

async fn revoke(app: &TestApp, key: &str, id: &str) -> Result<v1::ApiKey, Status> {
    let request = v1::RevokeKeyRequest {
        id: id.into(),
        reason: String::new(),
    };
    app.client
        .clone()
        .revoke_key(authed(key, request))
        .await
        .map(|response| response.into_inner().api_key.unwrap())
}

async fn usage(app: &TestApp, key: &str, key_id: &str) -> Result<v1::ListUsageResponse, Status> {
    let request = v1::ListUsageRequest {
        key_id: key_id.into(),
        ..Default::default()
    };
    app.client
        .clone()
        .list_usage(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

fn assert_denied(result: Result<impl std::fmt::Debug, Status>, message: &str) {
    let status = result.unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        "insufficient_scope",
        Some(message),
    );
}

fn assert_not_found(result: Result<impl std::fmt::Debug, Status>) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// Every row has its test; the match breaks the build when a row is added without one.
#[test]
fn every_row_has_a_test() {
    for (action, _) in PERMISSIONS {
        let test = match action {
            Action::CreateOrganization => "row_create_organization",
            Action::ReadOrganization => "row_read_organization",
            Action::UpdateOrganizationPolicy => "row_update_organization_policy",
            Action::ManageMembers => "row_manage_members",
            Action::ReadMembers => "row_read_members",
            Action::CreateOrganizationKey => "row_create_organization_key",
            Action::CreatePersonalKey => "row_create_personal_key",
            Action::ReadKeys => "row_read_keys",
            Action::ManageKeys => "row_manage_keys",
            Action::ReadUsage => "row_read_usage",
            Action::ReadAuditLog => "row_read_audit_log",
            Action::ReadAlerts => "row_read_alerts",
            Action::ManageAlerts => "row_manage_alerts",
            Action::ManageWebhooks => "row_manage_webhooks",
            Action::ManageOwners => "row_manage_owners",
            Action::ChangePolicyCeilings => "row_change_policy_ceilings",
            Action::ManageOwnerKeys => "row_manage_owner_keys",
            Action::ManageOauthClients => "row_manage_oauth_clients",
            Action::ManageOauthGrants => "row_manage_oauth_grants",
        };
        assert!(!test.is_empty());
    }
}

#[tokio::test]
async fn row_create_organization() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        let request = || v1::CreateOrganizationRequest {
            name: "acme".into(),
        };
        // Operator keys only: an organization's admin key is not enough.
        for key in [&w.admin, &w.alice_key, &w.scoped] {
            let status = client
                .create_organization(authed(key, request()))
                .await
                .unwrap_err();
            assert_status(&status, Code::PermissionDenied, "insufficient_scope", None);
        }
        let created = client
            .create_organization(authed(&w.app.admin_key, request()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.organization.unwrap().name, "acme");
        assert!(!created.key.is_empty());
    }
}

#[tokio::test]
async fn row_read_organization() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        for key in [&w.scoped, &w.alice_key] {
            assert_denied(
                client
                    .get_organization(authed(key, v1::GetOrganizationRequest {}))
                    .await,
                ADMIN_MESSAGE,
            );
        }
        let organization = client
            .get_organization(authed(&w.admin, v1::GetOrganizationRequest {}))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(organization.name, "default");
    }
}

#[tokio::test]
async fn row_update_organization_policy() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        let request = || v1::UpdateOrganizationPolicyRequest {
            policy: Some(v1::OrganizationPolicy {
                max_key_age_days: 30,
                ..Default::default()
            }),
        };
        for key in [&w.scoped, &w.alice_key] {
            assert_denied(
                client
                    .update_organization_policy(authed(key, request()))
                    .await,
                ADMIN_MESSAGE,
            );
        }
        let organization = client
            .update_organization_policy(authed(&w.admin, request()))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(organization.policy.unwrap().max_key_age_days, 30);
    }
}

#[tokio::test]
async fn row_manage_members() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        for key in [&w.scoped, &w.alice_key] {
            let add = v1::AddMemberRequest {
                user_id: "mallory@example.com".into(),
                role: v1::Role::Admin.into(),
            };
            assert_denied(client.add_member(authed(key, add)).await, ADMIN_MESSAGE);
            // Not even on oneself: a member cannot promote themself.
            let update = v1::UpdateMemberRequest {
                id: w.alice.clone(),
                role: v1::Role::Admin.into(),
            };
            assert_denied(
                client.update_member(authed(key, update)).await,
                ADMIN_MESSAGE,
            );
            let remove = v1::RemoveMemberRequest { id: w.bob.clone() };
            assert_denied(
                client.remove_member(authed(key, remove)).await,
                ADMIN_MESSAGE,
            );
        }
        let added = client
            .add_member(authed(
                &w.admin,
                v1::AddMemberRequest {
                    user_id: "carol@example.com".into(),
                    role: v1::Role::Viewer.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        let updated = client
            .update_member(authed(
                &w.admin,
                v1::UpdateMemberRequest {
                    id: added.id.clone(),
                    role: v1::Role::Member.into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        assert_eq!(updated.role(), v1::Role::Member);
        client
            .remove_member(authed(&w.admin, v1::RemoveMemberRequest { id: added.id }))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn row_read_members() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        for key in [&w.scoped, &w.alice_key] {
            assert_denied(
                client
                    .list_members(authed(key, v1::ListMembersRequest::default()))
                    .await,
                ADMIN_MESSAGE,
            );
        }
        let members = client
            .list_members(authed(&w.admin, v1::ListMembersRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .members;
        let ids: Vec<_> = members.iter().map(|member| member.id.as_str()).collect();
        assert!(ids.contains(&w.alice.as_str()) && ids.contains(&w.bob.as_str()));
    }
}

#[tokio::test]
async fn row_create_organization_key() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // Without `admin`: refused, whether asked for explicitly or by the caller's own kind.
        assert_denied(
            create(app, &w.scoped, organization_key(&["chat"])).await,
            ADMIN_MESSAGE,
        );
        let mut unspecified = organization_key(&["chat"]);
        unspecified.key_type = v1::KeyType::Unspecified.into();
        assert_denied(create(app, &w.chat, unspecified).await, ADMIN_MESSAGE);
        // A member's personal key, even one with every scope of its role, is no admin.
        assert_denied(
            create(app, &w.alice_key, organization_key(&["chat"])).await,
            ADMIN_MESSAGE,
        );
        let created = create(app, &w.admin, organization_key(&["chat", "data:write"]))
            .await
            .unwrap()
            .api_key
            .unwrap();
        assert_eq!(created.key_type(), v1::KeyType::Organization);
        assert_eq!(created.member_id, "");
        assert!(created.scoped);
        assert!(!created.operator);
        // An organization key has no member.
        let mut with_member = organization_key(&["chat"]);
        with_member.member_id = w.alice.clone();
        let status = create(app, &w.admin, with_member).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
    }
}

#[tokio::test]
async fn row_create_personal_key() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // Own member: allowed without `admin` (self-generated).
        let own = create(app, &w.alice_key, personal("", &["chat"]))
            .await
            .unwrap()
            .api_key
            .unwrap();
        assert_eq!(own.member_id, w.alice);
        // Another member: needs `admin`.
        assert_denied(
            create(app, &w.alice_key, personal(&w.bob, &["chat"])).await,
            ADMIN_MESSAGE,
        );
        // An organization key without `admin` has no member of its own.
        assert_denied(
            create(app, &w.scoped, personal(&w.alice, &["chat"])).await,
            ADMIN_MESSAGE,
        );
        // An admin creates one for any member.
        let for_bob = create(app, &w.admin, personal(&w.bob, &["chat"]))
            .await
            .unwrap()
            .api_key
            .unwrap();
        assert_eq!(for_bob.key_type(), v1::KeyType::Personal);
        assert_eq!(for_bob.member_id, w.bob);
    }
}

#[tokio::test]
async fn row_read_keys() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // Own personal key: allowed.
        let own = get(app, &w.alice_key, &w.alice_key_id).await.unwrap();
        assert_eq!(own.member_id, w.alice);
        // Another member's key, or an organization key: `admin`.
        assert_denied(get(app, &w.alice_key, &w.bob_key_id).await, ADMIN_MESSAGE);
        assert_denied(get(app, &w.alice_key, &w.scoped_id).await, ADMIN_MESSAGE);
        assert_denied(get(app, &w.scoped, &w.alice_key_id).await, ADMIN_MESSAGE);
        assert_denied(get(app, &w.scoped, &w.scoped_id).await, ADMIN_MESSAGE);
        get(app, &w.admin, &w.bob_key_id).await.unwrap();

        // Listing: a member sees only their own personal keys; an admin sees everything; an
        // organization key without `admin` nothing.
        create(app, &w.alice_key, personal("", &["chat"]))
            .await
            .unwrap();
        let mine = list(app, &w.alice_key).await.unwrap();
        assert_eq!(mine.len(), 2, "{mine:#?}");
        assert!(mine.iter().all(|key| key.member_id == w.alice));
        let all = list(app, &w.admin).await.unwrap();
        assert!(all.len() > mine.len());
        assert!(all.iter().any(|key| key.id == w.bob_key_id));
        assert_denied(list(app, &w.scoped).await, ADMIN_MESSAGE);
        // Paging works on the member's keys as on the organization's.
        let page = app
            .client
            .clone()
            .list_keys(authed(
                &w.alice_key,
                v1::ListKeysRequest {
                    page_size: 1,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.api_keys.len(), 1);
        let next = app
            .client
            .clone()
            .list_keys(authed(
                &w.alice_key,
                v1::ListKeysRequest {
                    page_size: 1,
                    page_token: page.next_page_token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next.api_keys.len(), 1);
        assert_eq!(next.api_keys[0].id, w.alice_key_id);
        assert_eq!(next.next_page_token, "");
    }
}

#[tokio::test]
async fn row_manage_keys() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        let mut client = app.client.clone();
        let spare = create(app, &w.alice_key, personal("", &["chat"]))
            .await
            .unwrap()
            .api_key
            .unwrap()
            .id;

        // Another member's key, an organization key: `admin`, for every change.
        for (caller, target) in [
            (&w.alice_key, &w.bob_key_id),
            (&w.alice_key, &w.scoped_id),
            (&w.scoped, &w.scoped_id),
            (&w.scoped, &spare),
        ] {
            assert_denied(revoke(app, caller, target).await, ADMIN_MESSAGE);
            let rotate = v1::RotateKeyRequest {
                id: target.clone(),
                grace_period: None,
            };
            assert_denied(
                client.rotate_key(authed(caller, rotate)).await,
                ADMIN_MESSAGE,
            );
            let update = v1::UpdateKeyRequest {
                id: target.clone(),
                name: Some("mine now".into()),
                ..Default::default()
            };
            assert_denied(
                client.update_key(authed(caller, update)).await,
                ADMIN_MESSAGE,
            );
        }

        // Own keys: update, rotate, revoke.
        let updated = client
            .update_key(authed(
                &w.alice_key,
                v1::UpdateKeyRequest {
                    id: spare.clone(),
                    name: Some("renamed".into()),
                    scopes: strings(&["agents:read"]),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        assert_eq!(updated.scopes, vec!["agents:read"]);
        let rotated = client
            .rotate_key(authed(
                &w.alice_key,
                v1::RotateKeyRequest {
                    id: spare.clone(),
                    grace_period: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let successor = rotated.api_key.unwrap();
        assert_eq!(successor.key_type(), v1::KeyType::Personal);
        assert_eq!(successor.member_id, w.alice);
        let revoked = revoke(app, &w.alice_key, &successor.id).await.unwrap();
        assert_eq!(revoked.state(), v1::KeyState::Revoked);
        // An admin manages anybody's.
        revoke(app, &w.admin, &w.bob_key_id).await.unwrap();
    }
}

#[tokio::test]
async fn row_read_usage() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // A personal key without `analytics:read` reads its own keys' usage only.
        let chat_only = create(app, &w.alice_key, personal("", &["chat"]))
            .await
            .unwrap();
        let chat_only_id = chat_only.api_key.unwrap().id;
        usage(app, &chat_only.key, &chat_only_id).await.unwrap();
        usage(app, &chat_only.key, &w.alice_key_id).await.unwrap();
        let analytics = "API key lacks required scope: analytics:read";
        assert_denied(usage(app, &chat_only.key, "").await, analytics);
        assert_denied(usage(app, &chat_only.key, &w.bob_key_id).await, analytics);
        assert_denied(usage(app, &w.chat, "").await, analytics);
        assert_denied(usage(app, &w.chat, &chat_only_id).await, analytics);
        // `analytics:read` reads the organization's usage, of any key.
        usage(app, &w.scoped, "").await.unwrap();
        usage(app, &w.scoped, &w.bob_key_id).await.unwrap();
        usage(app, &w.alice_key, "").await.unwrap();
        usage(app, &w.admin, &w.bob_key_id).await.unwrap();
    }
}

#[tokio::test]
async fn row_read_audit_log() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        for key in [&w.scoped, &w.alice_key] {
            assert_denied(
                client
                    .list_audit_events(authed(key, v1::ListAuditEventsRequest::default()))
                    .await,
                ADMIN_MESSAGE,
            );
        }
        let events = client
            .list_audit_events(authed(&w.admin, v1::ListAuditEventsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert!(!events.is_empty());
    }
}

/// GetAlertRules of a key (empty: the organization's).
async fn get_alert_rules(
    app: &TestApp,
    key: &str,
    key_id: &str,
) -> Result<v1::GetAlertRulesResponse, Status> {
    let request = v1::GetAlertRulesRequest {
        key_id: key_id.into(),
    };
    app.client
        .clone()
        .get_alert_rules(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

/// ListAlertEvents of a key (empty: the organization's).
async fn list_alert_events(
    app: &TestApp,
    key: &str,
    key_id: &str,
) -> Result<v1::ListAlertEventsResponse, Status> {
    let request = v1::ListAlertEventsRequest {
        key_id: key_id.into(),
        ..Default::default()
    };
    app.client
        .clone()
        .list_alert_events(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

/// SetAlertRules of a key (empty: the organization's): unusual activity only.
async fn set_alert_rules(
    app: &TestApp,
    key: &str,
    key_id: &str,
) -> Result<v1::SetAlertRulesResponse, Status> {
    let request = v1::SetAlertRulesRequest {
        key_id: key_id.into(),
        rules: Some(v1::AlertRules {
            unusual_activity: true,
            ..Default::default()
        }),
        clear: false,
    };
    app.client
        .clone()
        .set_alert_rules(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

/// TestAlertRules of a key.
async fn test_alert_rules(
    app: &TestApp,
    key: &str,
    key_id: &str,
) -> Result<v1::TestAlertRulesResponse, Status> {
    let request = v1::TestAlertRulesRequest {
        key_id: key_id.into(),
        rules: None,
    };
    app.client
        .clone()
        .test_alert_rules(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn row_read_alerts() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // A personal key without `analytics:read` reads its own member's keys' alerts only.
        let chat_only = create(app, &w.alice_key, personal("", &["chat"]))
            .await
            .unwrap();
        let chat_only_id = chat_only.api_key.unwrap().id;
        for key_id in [&chat_only_id, &w.alice_key_id] {
            get_alert_rules(app, &chat_only.key, key_id).await.unwrap();
            list_alert_events(app, &chat_only.key, key_id)
                .await
                .unwrap();
        }
        let analytics = "API key lacks required scope: analytics:read";
        assert_denied(get_alert_rules(app, &chat_only.key, "").await, analytics);
        assert_denied(list_alert_events(app, &chat_only.key, "").await, analytics);
        assert_denied(
            get_alert_rules(app, &chat_only.key, &w.bob_key_id).await,
            analytics,
        );
        assert_denied(
            list_alert_events(app, &chat_only.key, &w.bob_key_id).await,
            analytics,
        );
        assert_denied(get_alert_rules(app, &w.chat, "").await, analytics);
        assert_denied(
            list_alert_events(app, &w.chat, &chat_only_id).await,
            analytics,
        );
        // `analytics:read` reads the organization's rules and events, and any key's.
        get_alert_rules(app, &w.scoped, "").await.unwrap();
        get_alert_rules(app, &w.scoped, &w.bob_key_id)
            .await
            .unwrap();
        list_alert_events(app, &w.scoped, "").await.unwrap();
        list_alert_events(app, &w.alice_key, &w.bob_key_id)
            .await
            .unwrap();
        get_alert_rules(app, &w.admin, &w.bob_key_id).await.unwrap();
        // Another organization's key is unknown, whatever the caller's scopes.
        let other = app.other_organization_admin("other").await;
        assert_not_found(get_alert_rules(app, &other, &w.bob_key_id).await);
        assert_not_found(list_alert_events(app, &other, &w.bob_key_id).await);
    }
}

#[tokio::test]
async fn row_manage_alerts() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // A member sets and tests the rules of their own personal keys only.
        set_alert_rules(app, &w.alice_key, &w.alice_key_id)
            .await
            .unwrap();
        test_alert_rules(app, &w.alice_key, &w.alice_key_id)
            .await
            .unwrap();
        assert_denied(set_alert_rules(app, &w.alice_key, "").await, ADMIN_MESSAGE);
        assert_denied(
            set_alert_rules(app, &w.alice_key, &w.bob_key_id).await,
            ADMIN_MESSAGE,
        );
        assert_denied(
            test_alert_rules(app, &w.alice_key, &w.bob_key_id).await,
            ADMIN_MESSAGE,
        );
        // An organization key without `admin` sets nothing, not even its own rules.
        assert_denied(set_alert_rules(app, &w.scoped, "").await, ADMIN_MESSAGE);
        assert_denied(
            set_alert_rules(app, &w.scoped, &w.scoped_id).await,
            ADMIN_MESSAGE,
        );
        assert_denied(
            test_alert_rules(app, &w.scoped, &w.scoped_id).await,
            ADMIN_MESSAGE,
        );
        // `admin` sets the organization's rules and any key's, and tests any key.
        set_alert_rules(app, &w.admin, "").await.unwrap();
        set_alert_rules(app, &w.admin, &w.bob_key_id).await.unwrap();
        test_alert_rules(app, &w.admin, &w.scoped_id).await.unwrap();
        let other = app.other_organization_admin("other").await;
        assert_not_found(set_alert_rules(app, &other, &w.bob_key_id).await);
        assert_not_found(test_alert_rules(app, &other, &w.bob_key_id).await);
    }
}

#[tokio::test]
async fn row_manage_webhooks() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        let create = |url: &str| v1::CreateWebhookEndpointRequest {
            url: url.into(),
            description: "alerts".into(),
            ..Default::default()
        };
        let endpoint = client
            .create_webhook_endpoint(authed(&w.admin, create("https://hooks.example.com/a")))
            .await
            .unwrap()
            .into_inner()
            .webhook_endpoint
            .unwrap();
        // Neither an organization key without `admin` nor a member's personal key may touch
        // webhooks, not even to read them: they carry the organization's alerts elsewhere.
        for key in [&w.scoped, &w.alice_key] {
            assert_denied(
                client
                    .create_webhook_endpoint(authed(key, create("https://hooks.example.com/b")))
                    .await,
                ADMIN_MESSAGE,
            );
            assert_denied(
                client
                    .list_webhook_endpoints(authed(key, v1::ListWebhookEndpointsRequest::default()))
                    .await,
                ADMIN_MESSAGE,
            );
            let id = || endpoint.id.clone();
            assert_denied(
                client
                    .rotate_webhook_secret(authed(key, v1::RotateWebhookSecretRequest { id: id() }))
                    .await,
                ADMIN_MESSAGE,
            );
            assert_denied(
                client
                    .list_webhook_deliveries(authed(
                        key,
                        v1::ListWebhookDeliveriesRequest::default(),
                    ))
                    .await,
                ADMIN_MESSAGE,
            );
            assert_denied(
                client
                    .delete_webhook_endpoint(authed(
                        key,
                        v1::DeleteWebhookEndpointRequest { id: id() },
                    ))
                    .await,
                ADMIN_MESSAGE,
            );
        }
        // `admin` does all five.
        let listed = client
            .list_webhook_endpoints(authed(&w.admin, v1::ListWebhookEndpointsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .webhook_endpoints;
        assert_eq!(listed, vec![endpoint.clone()]);
        client
            .rotate_webhook_secret(authed(
                &w.admin,
                v1::RotateWebhookSecretRequest {
                    id: endpoint.id.clone(),
                },
            ))
            .await
            .unwrap();
        client
            .list_webhook_deliveries(authed(
                &w.admin,
                v1::ListWebhookDeliveriesRequest::default(),
            ))
            .await
            .unwrap();
        client
            .delete_webhook_endpoint(authed(
                &w.admin,
                v1::DeleteWebhookEndpointRequest {
                    id: endpoint.id.clone(),
                },
            ))
            .await
            .unwrap();
    }
}

async fn add_as(
    app: &TestApp,
    key: &str,
    user_id: &str,
    role: v1::Role,
) -> Result<v1::Member, Status> {
    let request = v1::AddMemberRequest {
        user_id: user_id.into(),
        role: role.into(),
    };
    app.client
        .clone()
        .add_member(authed(key, request))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn set_role_as(
    app: &TestApp,
    key: &str,
    member: &str,
    role: v1::Role,
) -> Result<v1::Member, Status> {
    let request = v1::UpdateMemberRequest {
        id: member.into(),
        role: role.into(),
    };
    app.client
        .clone()
        .update_member(authed(key, request))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn remove_as(app: &TestApp, key: &str, member: &str) -> Result<v1::Member, Status> {
    let request = v1::RemoveMemberRequest { id: member.into() };
    app.client
        .clone()
        .remove_member(authed(key, request))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

/// Every member's role, by member id, as the organization key sees them.
async fn roles(w: &World) -> Vec<(String, v1::Role)> {
    let mut roles: Vec<_> = w
        .app
        .client
        .clone()
        .list_members(authed(&w.admin, v1::ListMembersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .map(|member| (member.id.clone(), member.role()))
        .collect();
    roles.sort();
    roles
}

#[tokio::test]
async fn row_manage_owners() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        let before = roles(&w).await;
        // A member with role `admin` adds, promotes, demotes and removes no owner.
        assert_denied(
            add_as(app, &w.adam_key, "eve@example.com", v1::Role::Owner).await,
            OWNERS_MESSAGE,
        );
        assert_denied(
            set_role_as(app, &w.adam_key, &w.bob, v1::Role::Owner).await,
            OWNERS_MESSAGE,
        );
        assert_denied(
            set_role_as(app, &w.adam_key, &w.olivia, v1::Role::Admin).await,
            OWNERS_MESSAGE,
        );
        assert_denied(remove_as(app, &w.adam_key, &w.olivia).await, OWNERS_MESSAGE);
        assert_eq!(roles(&w).await, before);

        // Every other change of members stays an admin's.
        let carol = add_as(app, &w.adam_key, "carol@example.com", v1::Role::Admin)
            .await
            .unwrap();
        set_role_as(app, &w.adam_key, &carol.id, v1::Role::Viewer)
            .await
            .unwrap();
        remove_as(app, &w.adam_key, &carol.id).await.unwrap();

        // An owner does all four; so does an organization key with `admin`.
        let dora = add_as(app, &w.olivia_key, "dora@example.com", v1::Role::Owner)
            .await
            .unwrap();
        set_role_as(app, &w.olivia_key, &w.bob, v1::Role::Owner)
            .await
            .unwrap();
        set_role_as(app, &w.olivia_key, &dora.id, v1::Role::Admin)
            .await
            .unwrap();
        remove_as(app, &w.admin, &w.bob).await.unwrap();
        let after = roles(&w).await;
        assert!(after.contains(&(w.olivia.clone(), v1::Role::Owner)));
        assert!(after.contains(&(dora.id.clone(), v1::Role::Admin)));
        assert!(after.iter().all(|(id, _)| *id != w.bob));
    }
}

fn policy(
    lifetime_days: i32,
    role_scopes: &[(v1::Role, &[&str])],
    limits: &[u32],
) -> v1::OrganizationPolicy {
    v1::OrganizationPolicy {
        max_key_age_days: 30,
        max_key_lifetime_days: lifetime_days,
        role_scopes: role_scopes
            .iter()
            .map(|(role, scopes)| v1::RoleScopes {
                role: (*role).into(),
                scopes: strings(scopes),
            })
            .collect(),
        default_rate_limits: limits
            .iter()
            .map(|requests| v1::RateLimit {
                requests: *requests,
                per: v1::RatePeriod::Minute.into(),
            })
            .collect(),
        ..Default::default()
    }
}

async fn set_policy(
    app: &TestApp,
    key: &str,
    policy: v1::OrganizationPolicy,
) -> Result<v1::OrganizationPolicy, Status> {
    app.client
        .clone()
        .update_organization_policy(authed(
            key,
            v1::UpdateOrganizationPolicyRequest {
                policy: Some(policy),
            },
        ))
        .await
        .map(|response| response.into_inner().organization.unwrap().policy.unwrap())
}

#[tokio::test]
async fn row_change_policy_ceilings() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // An admin changes the maximum key age, the ceilings sent as they are.
        let set = set_policy(app, &w.adam_key, policy(0, &[], &[]))
            .await
            .unwrap();
        assert_eq!(set.max_key_age_days, 30);
        // The ceilings are an owner's: the maximum key lifetime, the default rate limits and
        // the scopes of a role.
        for ceiling in [
            policy(7, &[], &[]),
            policy(0, &[], &[100]),
            policy(0, &[(v1::Role::Viewer, &["data:read"])], &[]),
        ] {
            assert_denied(
                set_policy(app, &w.adam_key, ceiling).await,
                CEILINGS_MESSAGE,
            );
        }
        let ceilings = policy(7, &[(v1::Role::Viewer, &["data:read"])], &[100]);
        let set = set_policy(app, &w.olivia_key, ceilings.clone())
            .await
            .unwrap();
        assert_eq!(set.max_key_lifetime_days, 7);
        // An admin's update that would clear them is refused; one that keeps them passes.
        assert_denied(
            set_policy(app, &w.adam_key, policy(0, &[], &[])).await,
            CEILINGS_MESSAGE,
        );
        let kept = set_policy(
            app,
            &w.adam_key,
            v1::OrganizationPolicy {
                max_key_age_days: 60,
                ..ceilings
            },
        )
        .await
        .unwrap();
        assert_eq!(kept.max_key_age_days, 60);
        assert_eq!(kept.max_key_lifetime_days, 7);
        assert_eq!(kept.default_rate_limits.len(), 1);
        // An organization key with `admin` changes them too.
        let cleared = set_policy(app, &w.admin, policy(0, &[], &[]))
            .await
            .unwrap();
        assert_eq!(cleared.max_key_lifetime_days, 0);
    }
}

#[tokio::test]
async fn row_manage_owner_keys() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        let mut client = app.client.clone();
        // A member with role `admin` creates no key that acts as an owner: an organization key
        // with `admin`, an owner's personal key with `admin`…
        assert_denied(
            create(app, &w.adam_key, organization_key(&["admin"])).await,
            OWNER_KEYS_MESSAGE,
        );
        assert_denied(
            create(app, &w.adam_key, personal(&w.olivia, &["admin"])).await,
            OWNER_KEYS_MESSAGE,
        );
        // …rotates, updates or revokes none…
        for target in [&w.admin_id, &w.olivia_key_id] {
            let rotate = v1::RotateKeyRequest {
                id: target.clone(),
                grace_period: None,
            };
            assert_denied(
                client.rotate_key(authed(&w.adam_key, rotate)).await,
                OWNER_KEYS_MESSAGE,
            );
            let update = v1::UpdateKeyRequest {
                id: target.clone(),
                scopes: strings(&["chat"]),
                ..Default::default()
            };
            assert_denied(
                client.update_key(authed(&w.adam_key, update)).await,
                OWNER_KEYS_MESSAGE,
            );
            assert_denied(revoke(app, &w.adam_key, target).await, OWNER_KEYS_MESSAGE);
        }
        // …and gives no key `admin` that would make it act as one.
        let update = v1::UpdateKeyRequest {
            id: w.scoped_id.clone(),
            scopes: strings(&["admin"]),
            ..Default::default()
        };
        assert_denied(
            client.update_key(authed(&w.adam_key, update)).await,
            OWNER_KEYS_MESSAGE,
        );
        assert!(w.app.verify(&w.admin, &["admin"]).await.valid);
        assert!(w.app.verify(&w.olivia_key, &["admin"]).await.valid);

        // Every other key stays an admin's: scoped organization keys, an owner's personal key
        // without `admin`, anybody else's keys.
        create(app, &w.adam_key, organization_key(&["chat"]))
            .await
            .unwrap();
        let olivia_chat = create(app, &w.adam_key, personal(&w.olivia, &["chat"]))
            .await
            .unwrap()
            .api_key
            .unwrap()
            .id;
        revoke(app, &w.adam_key, &olivia_chat).await.unwrap();
        revoke(app, &w.adam_key, &w.bob_key_id).await.unwrap();

        // An owner does it all.
        create(app, &w.olivia_key, organization_key(&["admin"]))
            .await
            .unwrap();
        let rotated = client
            .rotate_key(authed(
                &w.olivia_key,
                v1::RotateKeyRequest {
                    id: w.admin_id.clone(),
                    grace_period: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rotated.api_key.unwrap().scopes, strings(&["admin"]));
    }
}

#[tokio::test]
async fn a_member_creates_personal_keys_within_their_role_and_their_own_scopes() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        // The caller's own kind and member when unspecified.
        let mut implicit = personal("", &["agents:read"]);
        implicit.key_type = v1::KeyType::Unspecified.into();
        let created = create(app, &w.alice_key, implicit).await.unwrap();
        let record = created.api_key.unwrap();
        assert_eq!(record.key_type(), v1::KeyType::Personal);
        assert_eq!(record.member_id, w.alice);
        assert!(record.scoped);
        let verdict = app.verify(&created.key, &["agents:read"]).await;
        assert!(verdict.valid);

        // Outside the role `member`: data:write, admin.
        for scope in ["data:write", "admin"] {
            assert_denied(
                create(app, &w.alice_key, personal("", &["chat", scope])).await,
                &format!("scope {scope} is outside the member's role member"),
            );
        }
        // Within the role, but beyond the caller's own key: never escalate.
        assert_denied(
            create(app, &w.alice_key, personal("", &["agents:write"])).await,
            "API key lacks required scope: agents:write",
        );
        // Even an admin stays within the member's role.
        assert_denied(
            create(app, &w.admin, personal(&w.bob, &["admin"])).await,
            "scope admin is outside the member's role member",
        );
        // An update cannot leave the role, nor the caller's own scopes.
        let update = |scopes: &[&str]| v1::UpdateKeyRequest {
            id: w.alice_key_id.clone(),
            scopes: strings(scopes),
            ..Default::default()
        };
        let mut client = app.client.clone();
        assert_denied(
            client
                .update_key(authed(&w.admin, update(&["data:write"])))
                .await,
            "scope data:write is outside the member's role member",
        );
        assert_denied(
            client
                .update_key(authed(&w.alice_key, update(&["agents:write"])))
                .await,
            "API key lacks required scope: agents:write",
        );

        // Every refusal is in the audit log, with the caller and the method.
        let denied = client
            .list_audit_events(authed(
                &w.admin,
                v1::ListAuditEventsRequest {
                    action: "auth.denied".into(),
                    actor_key_id: w.alice_key_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert_eq!(denied.len(), 4, "{denied:#?}");
        assert_eq!(denied[0].target, "/keyrack.v1.KeyService/UpdateKey");
        assert_eq!(denied[3].target, "/keyrack.v1.KeyService/CreateKey");
        assert!(
            denied
                .iter()
                .all(|event| event.reason == "insufficient_scope")
        );
    }
}

#[tokio::test]
async fn an_admin_creates_a_personal_key_for_an_existing_member_only() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        let created = create(app, &w.admin, personal(&w.bob, &["chat", "data:read"]))
            .await
            .unwrap();
        let record = created.api_key.unwrap();
        assert_eq!(record.key_type(), v1::KeyType::Personal);
        assert_eq!(record.member_id, w.bob);
        assert!(record.scoped);
        let verdict = app.verify(&created.key, &["data:read"]).await;
        assert!(verdict.valid);
        assert_eq!(verdict.member_id, w.bob);

        // No such member, a member of another organization, no member at all.
        let unknown = uuid::Uuid::now_v7().to_string();
        assert_not_found(create(app, &w.admin, personal(&unknown, &["chat"])).await);
        let other = app.other_organization_admin("acme").await;
        assert_not_found(create(app, &other, personal(&w.bob, &["chat"])).await);
        let status = create(app, &w.admin, personal("", &["chat"]))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
        let status = create(app, &w.admin, personal("bob", &["chat"]))
            .await
            .unwrap_err();
        assert_status(&status, Code::InvalidArgument, "invalid_request", None);
    }
}

#[tokio::test]
async fn a_personal_key_follows_its_members_role_and_dies_with_the_member() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        let before = app.verify(&w.alice_key, &["chat"]).await;
        assert!(before.valid, "{before:?}");
        assert_eq!(before.scopes, vec!["chat", "agents:read", "analytics:read"]);
        assert_eq!(before.key_type(), v1::KeyType::Personal);
        assert_eq!(before.member_id, w.alice);

        // Demoted to viewer: `chat` is gone at once, the rest stays.
        set_role(app, &w.alice, Role::Viewer).await;
        let after = app.verify(&w.alice_key, &["chat"]).await;
        assert!(!after.valid);
        assert_eq!(after.code(), v1::VerifyCode::InsufficientScope);
        assert_eq!(after.message, "API key lacks required scope: chat");
        assert_eq!(after.scopes, vec!["agents:read", "analytics:read"]);
        assert!(app.verify(&w.alice_key, &["agents:read"]).await.valid);
        // The stored record keeps what was granted; verification limits it.
        let record = get(app, &w.admin, &w.alice_key_id).await.unwrap();
        assert_eq!(record.scopes, vec!["chat", "agents:read", "analytics:read"]);
        // Promoted back: it returns.
        set_role(app, &w.alice, Role::Member).await;
        assert!(app.verify(&w.alice_key, &["chat"]).await.valid);

        // Removed: invalid at once, for verification and as a credential.
        remove_member(app, &w.alice).await;
        let gone = app.verify(&w.alice_key, &[]).await;
        assert!(!gone.valid);
        assert_eq!(gone.code(), v1::VerifyCode::InvalidApiKey);
        assert_eq!(gone.message, "The API key provided is invalid");
        assert_eq!(gone.key_id, "");
        let status = list(app, &w.alice_key).await.unwrap_err();
        assert_status(&status, Code::Unauthenticated, "invalid_api_key", None);
        // An organization key does not depend on any member.
        assert!(app.verify(&w.chat, &["chat"]).await.valid);
    }
}

#[tokio::test]
async fn a_personal_caller_sees_nothing_of_others_and_nothing_of_other_organizations() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let app = &w.app;
        let other = app.other_organization_admin("acme").await;
        let theirs = list(app, &other).await.unwrap()[0].id.clone();
        // Another organization's key does not exist, for a member as for an admin.
        assert_not_found(get(app, &w.alice_key, &theirs).await);
        assert_not_found(revoke(app, &w.alice_key, &theirs).await);
        assert_not_found(usage(app, &w.alice_key, &theirs).await);
        // Another member's key, or the organization's, in the same organization: refused.
        assert_denied(
            revoke(app, &w.alice_key, &w.bob_key_id).await,
            ADMIN_MESSAGE,
        );
        assert_denied(revoke(app, &w.alice_key, &w.scoped_id).await, ADMIN_MESSAGE);
        assert!(app.verify(&w.scoped, &["chat"]).await.valid);
        let listed = list(app, &w.alice_key).await.unwrap();
        assert!(listed.iter().all(|key| key.member_id == w.alice));
        assert!(listed.iter().all(|key| key.scoped));
    }
}

#[tokio::test]
async fn the_gateway_creates_and_shows_personal_keys() {
    let w = world(spawn_app(&crate::helpers::Backend::Sqlite).await).await;
    let app = &w.app;
    let http = reqwest::Client::new();
    let response = http
        .request(Method::POST, format!("{}/api/api-keys", app.http))
        .bearer_auth(&w.admin)
        .json(&json!({
            "name": "Bob's laptop",
            "scopes": ["chat"],
            "keyType": "personal",
            "memberId": w.bob,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["keyType"], "personal");
    assert_eq!(created["memberId"], w.bob.as_str());
    assert_eq!(created["operator"], false);
    assert_eq!(created["scoped"], true);

    let response = http
        .request(Method::GET, format!("{}/api/api-keys", app.http))
        .bearer_auth(&w.alice_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["id"], w.alice_key_id.as_str());
    assert_eq!(data[0]["keyType"], "personal");

    let response = http
        .request(
            Method::GET,
            format!("{}/api/api-keys/{}", app.http, w.scoped_id),
        )
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap();
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["keyType"], "organization");
    assert_eq!(record["memberId"], Value::Null);

    let response = http
        .request(Method::GET, format!("{}/api/auth/verify", app.http))
        .bearer_auth(&w.alice_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let principal: Value = response.json().await.unwrap();
    assert_eq!(principal["keyType"], "personal");
    assert_eq!(principal["memberId"], w.alice.as_str());
}

#[tokio::test]
async fn row_manage_oauth_clients() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        let request = || v1::CreateOauthClientRequest {
            name: "Slack".into(),
            redirect_uris: vec!["https://slack.example.com/cb".into()],
            scopes: vec!["chat".into()],
            ..Default::default()
        };
        for key in [&w.scoped, &w.alice_key] {
            assert_denied(
                client.create_oauth_client(authed(key, request())).await,
                ADMIN_MESSAGE,
            );
            assert_denied(
                client
                    .list_oauth_clients(authed(key, v1::ListOauthClientsRequest::default()))
                    .await,
                ADMIN_MESSAGE,
            );
        }
        let created = client
            .create_oauth_client(authed(&w.admin, request()))
            .await
            .unwrap()
            .into_inner();
        assert!(created.client_secret.starts_with("krc_"));
        let listed = client
            .list_oauth_clients(authed(&w.admin, v1::ListOauthClientsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.clients.len(), 1);
    }
}

#[tokio::test]
async fn row_manage_oauth_grants() {
    for backend in backends() {
        let w = world(spawn_app(&backend).await).await;
        let mut client = w.app.client.clone();
        let list = |member: &str| v1::ListOauthGrantsRequest {
            member_id: member.into(),
            ..Default::default()
        };
        // One's own authorized applications, or with admin anybody's.
        client
            .list_oauth_grants(authed(&w.alice_key, list("")))
            .await
            .unwrap();
        client
            .list_oauth_grants(authed(&w.alice_key, list(&w.alice)))
            .await
            .unwrap();
        assert_denied(
            client
                .list_oauth_grants(authed(&w.alice_key, list(&w.bob)))
                .await,
            ADMIN_MESSAGE,
        );
        client
            .list_oauth_grants(authed(&w.admin, list(&w.bob)))
            .await
            .unwrap();
        assert_not_found(
            client
                .revoke_oauth_grant(authed(
                    &w.admin,
                    v1::RevokeOauthGrantRequest {
                        id: w.alice_key_id.clone(),
                    },
                ))
                .await,
        );
    }
}
