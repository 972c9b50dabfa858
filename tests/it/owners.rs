//! Owners: an organization that has an owner keeps one. Its last owner can be neither demoted
//! nor removed, by anybody, however many changes race; and the REST gateway answers the owner
//! rules with 403 and 409.

use key_proto::v1::{self, Role};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::helpers::{Backend, TestApp, assert_status, authed, backends, spawn_app};

const LAST_OWNER_DEMOTED: &str =
    "the last owner of an organization cannot be demoted: make another member an owner first";
const LAST_OWNER_REMOVED: &str =
    "the last owner of an organization cannot be removed: make another member an owner first";

async fn add_member(app: &TestApp, key: &str, user_id: &str, role: Role) -> v1::Member {
    let request = v1::AddMemberRequest {
        user_id: user_id.into(),
        role: role.into(),
    };
    app.client
        .clone()
        .add_member(authed(key, request))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
}

async fn set_role(app: &TestApp, key: &str, id: &str, role: Role) -> Result<v1::Member, Status> {
    let request = v1::UpdateMemberRequest {
        id: id.into(),
        role: role.into(),
    };
    app.client
        .clone()
        .update_member(authed(key, request))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn remove(app: &TestApp, key: &str, id: &str) -> Result<v1::Member, Status> {
    app.client
        .clone()
        .remove_member(authed(key, v1::RemoveMemberRequest { id: id.into() }))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

/// A personal key with `admin` for `member`, made by `key`.
async fn personal_admin_key(app: &TestApp, key: &str, member: &str) -> String {
    let request = v1::CreateKeyRequest {
        name: "personal".into(),
        scopes: vec!["admin".into()],
        key_type: v1::KeyType::Personal.into(),
        member_id: member.into(),
        ..Default::default()
    };
    app.client
        .clone()
        .create_key(authed(key, request))
        .await
        .unwrap()
        .into_inner()
        .key
}

/// The ids of the owners of the organization of `key`.
async fn owners(app: &TestApp, key: &str) -> Vec<String> {
    app.client
        .clone()
        .list_members(authed(key, v1::ListMembersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .filter(|member| member.role() == Role::Owner)
        .map(|member| member.id)
        .collect()
}

fn assert_last_owner(result: Result<v1::Member, Status>, message: &str) {
    let status = result.unwrap_err();
    assert_status(&status, Code::FailedPrecondition, "conflict", Some(message));
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ada = add_member(&app, &app.admin_key, "ada@example.com", Role::Owner).await;
        let ada_key = personal_admin_key(&app, &app.admin_key, &ada.id).await;

        // Not by the organization's key, not by herself.
        for key in [&app.admin_key, &ada_key] {
            for role in [Role::Admin, Role::Viewer] {
                assert_last_owner(set_role(&app, key, &ada.id, role).await, LAST_OWNER_DEMOTED);
            }
            assert_last_owner(remove(&app, key, &ada.id).await, LAST_OWNER_REMOVED);
        }
        assert_eq!(owners(&app, &app.admin_key).await, vec![ada.id.clone()]);
        assert!(app.verify(&ada_key, &["admin"]).await.valid);
        // Owner again: no demotion, so allowed.
        set_role(&app, &ada_key, &ada.id, Role::Owner)
            .await
            .unwrap();

        // With a second owner, either may go; then the other is the last.
        let grace = add_member(&app, &ada_key, "grace@example.com", Role::Owner).await;
        set_role(&app, &ada_key, &ada.id, Role::Admin)
            .await
            .unwrap();
        assert_last_owner(
            remove(&app, &app.admin_key, &grace.id).await,
            LAST_OWNER_REMOVED,
        );
        assert_last_owner(
            set_role(&app, &app.admin_key, &grace.id, Role::Member).await,
            LAST_OWNER_DEMOTED,
        );
        assert_eq!(owners(&app, &app.admin_key).await, vec![grace.id.clone()]);
        set_role(&app, &app.admin_key, &ada.id, Role::Owner)
            .await
            .unwrap();
        remove(&app, &app.admin_key, &grace.id).await.unwrap();
        assert_eq!(owners(&app, &app.admin_key).await, vec![ada.id]);
    }
}

/// Two owners of a new organization, each with a personal key with `admin`; the organization's
/// first admin key.
async fn two_owners(app: &TestApp, round: usize) -> (String, [(String, String); 2]) {
    let created = app
        .client
        .clone()
        .create_organization(authed(
            &app.admin_key,
            v1::CreateOrganizationRequest {
                name: format!("race {round}"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let organization_key = created.key;
    let mut pair = Vec::new();
    for user in ["ada@example.com", "grace@example.com"] {
        let member = add_member(app, &organization_key, user, Role::Owner).await;
        let key = personal_admin_key(app, &organization_key, &member.id).await;
        pair.push((member.id, key));
    }
    let [first, second]: [(String, String); 2] = pair.try_into().unwrap();
    (organization_key, [first, second])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_demoting_or_removing_each_other_at_once_leave_one_owner() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        for round in 0..12 {
            let (organization_key, [(ada, ada_key), (grace, grace_key)]) =
                two_owners(&app, round).await;
            // Each demotes (or, every other round, removes) the other, at the same time.
            let (first, second) = if round % 2 == 0 {
                tokio::join!(
                    set_role(&app, &ada_key, &grace, Role::Admin),
                    set_role(&app, &grace_key, &ada, Role::Admin),
                )
            } else {
                tokio::join!(
                    remove(&app, &ada_key, &grace),
                    set_role(&app, &grace_key, &ada, Role::Admin),
                )
            };
            assert_eq!(
                owners(&app, &organization_key).await.len(),
                1,
                "round {round}: {first:?} {second:?}"
            );
            // One change went through; the other was refused, as the last owner's departure,
            // because its caller was no longer an owner when it was judged, or (a removal
            // first) because its caller's key died with its membership.
            let refused = match (first, second) {
                (Ok(_), Err(status)) | (Err(status), Ok(_)) => status,
                other => panic!("round {round}: {other:?}"),
            };
            let removed_first = round % 2 == 1 && refused.code() == Code::Unauthenticated;
            assert!(
                removed_first
                    || matches!(
                        refused.code(),
                        Code::FailedPrecondition | Code::PermissionDenied
                    ),
                "{refused:?}"
            );
        }
    }
}

async fn rest(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, format!("{}{path}", app.http))
        .bearer_auth(key);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rest_answers_403_to_an_admin_touching_an_owner_and_409_to_the_last_owners_departure() {
    let app = spawn_app(&Backend::Sqlite).await;
    let key = app.admin_key.clone();
    let (status, ada) = rest(
        &app,
        Method::POST,
        "/api/members",
        &key,
        json!({"userId": "ada@example.com", "role": "owner"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    let (status, adam) = rest(
        &app,
        Method::POST,
        "/api/members",
        &key,
        json!({"userId": "adam@example.com", "role": "admin"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{adam}");
    let (status, adam_key) = rest(
        &app,
        Method::POST,
        "/api/api-keys",
        &key,
        json!({"name": "adam", "scopes": ["admin"], "keyType": "personal", "memberId": adam["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{adam_key}");
    let adam_key = adam_key["key"].as_str().unwrap().to_owned();
    let ada_path = format!("/api/members/{}", ada["id"].as_str().unwrap());

    // An admin touches no owner, and no ceiling of the policy.
    for (method, path, body) in [
        (Method::PATCH, ada_path.as_str(), json!({"role": "admin"})),
        (Method::DELETE, ada_path.as_str(), Value::Null),
        (
            Method::POST,
            "/api/members",
            json!({"userId": "eve@example.com", "role": "owner"}),
        ),
        (
            Method::PUT,
            "/api/organization/policy",
            json!({"maxKeyLifetimeDays": 30}),
        ),
    ] {
        let (status, body) = rest(&app, method, path, &adam_key, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "insufficient_scope", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("only an owner may"),
            "{body}"
        );
    }

    // The last owner stays, whoever asks.
    let (status, body) = rest(
        &app,
        Method::PATCH,
        &ada_path,
        &key,
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "conflict", "message": LAST_OWNER_DEMOTED}, "status": 409})
    );
    let (status, body) = rest(&app, Method::DELETE, &ada_path, &key, Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["message"], LAST_OWNER_REMOVED);
}
