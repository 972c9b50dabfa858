//! Organizations and members through the public APIs: CreateOrganization (operator keys only)
//! and the new organization's first admin key, GetOrganization and UpdateOrganizationPolicy,
//! AddMember, UpdateMember, RemoveMember and ListMembers, the audit events of every change,
//! and the same through the REST gateway.

use key_core::AuditAction;
use key_proto::v1::{self, Role};
use key_store::AuditFilter;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::{Backend, TestApp, assert_status, authed, backends, spawn_app};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn field_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .expect("ErrorInfo")
        .metadata
        .get("field")
        .cloned()
        .unwrap_or_default()
}

/// Asserts INVALID_ARGUMENT `invalid_request` naming `field`.
fn assert_invalid(status: &Status, field: &str) {
    assert_status(status, Code::InvalidArgument, "invalid_request", None);
    assert_eq!(field_of(status), field, "{status:?}");
}

fn assert_denied(status: &Status) {
    assert_status(status, Code::PermissionDenied, "insufficient_scope", None);
}

async fn create_organization(
    app: &TestApp,
    key: &str,
    name: &str,
) -> Result<v1::CreateOrganizationResponse, Status> {
    app.client
        .clone()
        .create_organization(authed(
            key,
            v1::CreateOrganizationRequest { name: name.into() },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn get_organization(app: &TestApp, key: &str) -> Result<v1::Organization, Status> {
    app.client
        .clone()
        .get_organization(authed(key, v1::GetOrganizationRequest {}))
        .await
        .map(|response| response.into_inner().organization.unwrap())
}

async fn update_policy(
    app: &TestApp,
    key: &str,
    policy: v1::OrganizationPolicy,
) -> Result<v1::Organization, Status> {
    app.client
        .clone()
        .update_organization_policy(authed(
            key,
            v1::UpdateOrganizationPolicyRequest {
                policy: Some(policy),
            },
        ))
        .await
        .map(|response| response.into_inner().organization.unwrap())
}

async fn add_member(
    app: &TestApp,
    key: &str,
    user_id: &str,
    role: i32,
) -> Result<v1::Member, Status> {
    app.client
        .clone()
        .add_member(authed(
            key,
            v1::AddMemberRequest {
                user_id: user_id.into(),
                role,
            },
        ))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn update_member(
    app: &TestApp,
    key: &str,
    id: &str,
    role: i32,
) -> Result<v1::Member, Status> {
    app.client
        .clone()
        .update_member(authed(
            key,
            v1::UpdateMemberRequest {
                id: id.into(),
                role,
            },
        ))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn remove_member(app: &TestApp, key: &str, id: &str) -> Result<v1::Member, Status> {
    app.client
        .clone()
        .remove_member(authed(key, v1::RemoveMemberRequest { id: id.into() }))
        .await
        .map(|response| response.into_inner().member.unwrap())
}

async fn list_members(
    app: &TestApp,
    key: &str,
    page_size: i32,
    page_token: &str,
) -> Result<v1::ListMembersResponse, Status> {
    app.client
        .clone()
        .list_members(authed(
            key,
            v1::ListMembersRequest {
                page_size,
                page_token: page_token.into(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Every member, following next_page_token with pages of `page_size`.
async fn all_members(app: &TestApp, key: &str, page_size: i32) -> Vec<v1::Member> {
    let mut members = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_members(app, key, page_size, &token).await.unwrap();
        assert!(page.members.len() <= usize::try_from(page_size).unwrap());
        members.extend(page.members);
        if page.next_page_token.is_empty() {
            return members;
        }
        token = page.next_page_token;
    }
}

async fn organization_of(app: &TestApp, key: &str) -> String {
    let verdict = app.verify(key, &[]).await;
    assert!(verdict.valid, "{verdict:?}");
    verdict.organization_id
}

/// Every audit event of `organization`, newest first, straight from the store.
async fn events(app: &TestApp, organization: &str) -> Vec<key_core::AuditEvent> {
    app.keyrack
        .store
        .list_audit_events(
            organization.parse().unwrap(),
            &AuditFilter::default(),
            None,
            100,
        )
        .await
        .unwrap()
}

fn count(events: &[key_core::AuditEvent], action: AuditAction, target: &str) -> usize {
    events
        .iter()
        .filter(|event| event.action == action && event.target == target)
        .count()
}

fn role_scopes(organization: &v1::Organization, role: Role) -> Vec<String> {
    organization
        .policy
        .as_ref()
        .unwrap()
        .role_scopes
        .iter()
        .find(|entry| entry.role == i32::from(role))
        .map(|entry| entry.scopes.clone())
        .unwrap_or_default()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// A key of the default organization without `admin`.
async fn scoped_key(app: &TestApp) -> String {
    app.create_key("Scoped", &["chat", "agents:read", "analytics:read"], "")
        .await
        .key
}

// ---------------------------------------------------------------------------------------------
// CreateOrganization
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_operator_key_creates_an_organization_with_a_working_admin_key() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let default_org = organization_of(&app, &app.admin_key).await;
        let operator_key_id = app.verify(&app.admin_key, &[]).await.key_id;

        let created = create_organization(&app, &app.admin_key, "Acme Corp")
            .await
            .unwrap();
        let organization = created.organization.unwrap();
        assert_eq!(organization.name, "Acme Corp");
        assert_ne!(organization.id, default_org);
        let policy = organization.policy.clone().unwrap();
        assert_eq!(policy.max_key_age_days, 90);
        assert_eq!(policy.max_key_lifetime_days, 0);
        assert_eq!(policy.role_scopes.len(), 4);
        assert_eq!(
            role_scopes(&organization, Role::Viewer),
            strings(&["agents:read", "data:read", "analytics:read"])
        );

        // The first admin key: an organization key with `admin`, not an operator key.
        let record = created.admin_key.unwrap();
        assert_eq!(record.organization_id, organization.id);
        assert_eq!(record.scopes, strings(&["admin"]));
        assert_eq!(record.key_type, i32::from(v1::KeyType::Organization));
        assert!(!record.operator);
        assert!(!record.scoped);
        assert!(created.key.starts_with("sk_live_"));
        let verdict = app.verify(&created.key, &["admin"]).await;
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(verdict.key_id, record.id);
        assert_eq!(verdict.organization_id, organization.id);

        // It administers its own organization, and only that one.
        let own = get_organization(&app, &created.key).await.unwrap();
        assert_eq!(own.id, organization.id);
        assert_eq!(own.name, "Acme Corp");
        let keys = app
            .client
            .clone()
            .list_keys(authed(&created.key, v1::ListKeysRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .api_keys;
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id, record.id);
        assert_eq!(
            get_organization(&app, &app.admin_key).await.unwrap().id,
            default_org
        );

        // The audit trail: the new organization's creation and first key, by the operator key,
        // and the creation in the operator's own organization too.
        let new_log = events(&app, &organization.id).await;
        assert_eq!(
            count(&new_log, AuditAction::OrganizationCreate, &organization.id),
            1
        );
        assert_eq!(count(&new_log, AuditAction::KeyCreate, &record.id), 1);
        for event in &new_log {
            assert_eq!(event.actor_key_id, Some(operator_key_id.parse().unwrap()));
        }
        let operator_log = events(&app, &default_org).await;
        assert_eq!(
            count(
                &operator_log,
                AuditAction::OrganizationCreate,
                &organization.id
            ),
            1
        );
    }
}

#[tokio::test]
async fn only_operator_keys_create_organizations_and_names_are_unique_and_valid() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let created = create_organization(&app, &app.admin_key, "Acme")
            .await
            .unwrap();

        // Admins that are not operators, and scoped keys, are refused, and the refusal is
        // audited in their organization.
        let other_admin = app.other_organization_admin("other").await;
        let scoped = scoped_key(&app).await;
        for key in [&created.key, &other_admin, &scoped] {
            let status = create_organization(&app, key, "Not allowed")
                .await
                .unwrap_err();
            assert_denied(&status);
        }
        let denied = events(&app, &created.organization.unwrap().id)
            .await
            .into_iter()
            .filter(|event| event.action == AuditAction::AuthDenied)
            .count();
        assert_eq!(denied, 1);

        // A taken name is a conflict; nothing is created.
        let status = create_organization(&app, &app.admin_key, "Acme")
            .await
            .unwrap_err();
        assert_status(&status, Code::FailedPrecondition, "conflict", None);
        assert!(status.message().contains("already exists"), "{status:?}");
        for name in ["default", "other"] {
            let status = create_organization(&app, &app.admin_key, name)
                .await
                .unwrap_err();
            assert_status(&status, Code::FailedPrecondition, "conflict", None);
        }

        for name in ["", "   ", "tab\there", &"a".repeat(101)] {
            let status = create_organization(&app, &app.admin_key, name)
                .await
                .unwrap_err();
            assert_invalid(&status, "name");
        }
        assert!(
            create_organization(&app, &app.admin_key, &"é".repeat(100))
                .await
                .is_ok()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GetOrganization and UpdateOrganizationPolicy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_policy_round_trips_with_role_overrides_and_defaults() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let organization = get_organization(&app, &app.admin_key).await.unwrap();
        assert_eq!(organization.name, "default");
        assert_eq!(organization.policy.as_ref().unwrap().max_key_age_days, 90);
        assert_eq!(
            role_scopes(&organization, Role::Member),
            strings(&[
                "chat",
                "agents:read",
                "agents:write",
                "data:read",
                "analytics:read"
            ])
        );

        let updated = update_policy(
            &app,
            &app.admin_key,
            v1::OrganizationPolicy {
                default_rate_limits: Vec::new(),
                max_key_age_days: 30,
                max_key_lifetime_days: 365,
                role_scopes: vec![v1::RoleScopes {
                    role: Role::Member.into(),
                    scopes: strings(&["chat", "data:read"]),
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let read = get_organization(&app, &app.admin_key).await.unwrap();
        assert_eq!(updated, read);
        let policy = read.policy.clone().unwrap();
        assert_eq!(policy.max_key_age_days, 30);
        assert_eq!(policy.max_key_lifetime_days, 365);
        assert_eq!(
            role_scopes(&read, Role::Member),
            strings(&["chat", "data:read"])
        );
        // Roles not listed keep their defaults.
        assert_eq!(
            role_scopes(&read, Role::Viewer),
            strings(&["agents:read", "data:read", "analytics:read"])
        );
        assert!(role_scopes(&read, Role::Admin).contains(&"admin".to_owned()));

        // What Get returns can be sent back as it is.
        let again = update_policy(&app, &app.admin_key, policy).await.unwrap();
        assert_eq!(again, read);

        // Zeroes mean the defaults, and an unlisted role its default scopes again.
        let reset = update_policy(&app, &app.admin_key, v1::OrganizationPolicy::default())
            .await
            .unwrap();
        let policy = reset.policy.clone().unwrap();
        assert_eq!(policy.max_key_age_days, 90);
        assert_eq!(policy.max_key_lifetime_days, 0);
        assert_eq!(role_scopes(&reset, Role::Member).len(), 5);

        let log = events(&app, &read.id).await;
        assert_eq!(
            count(&log, AuditAction::OrganizationPolicyUpdate, &read.id),
            3
        );
    }
}

#[tokio::test]
async fn invalid_policies_are_refused_naming_the_field_and_non_admins_are_denied() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let before = get_organization(&app, &app.admin_key).await.unwrap();
        let policy =
            |age: i32, lifetime: i32, role_scopes: Vec<v1::RoleScopes>| v1::OrganizationPolicy {
                default_rate_limits: Vec::new(),
                max_key_age_days: age,
                max_key_lifetime_days: lifetime,
                role_scopes,
                ..Default::default()
            };
        let entry = |role: i32, scopes: &[&str]| v1::RoleScopes {
            role,
            scopes: strings(scopes),
        };
        let cases = [
            (policy(-1, 0, vec![]), "max_key_age_days"),
            (policy(3651, 0, vec![]), "max_key_age_days"),
            (policy(0, -5, vec![]), "max_key_lifetime_days"),
            (policy(0, 4000, vec![]), "max_key_lifetime_days"),
            (policy(0, 0, vec![entry(0, &["chat"])]), "role_scopes"),
            (policy(0, 0, vec![entry(42, &["chat"])]), "role_scopes"),
            (
                policy(0, 0, vec![entry(Role::Member.into(), &["chat", "nope"])]),
                "role_scopes",
            ),
            (
                policy(0, 0, vec![entry(Role::Member.into(), &[])]),
                "role_scopes",
            ),
            (
                policy(
                    0,
                    0,
                    vec![
                        entry(Role::Viewer.into(), &["chat"]),
                        entry(Role::Viewer.into(), &["data:read"]),
                    ],
                ),
                "role_scopes",
            ),
        ];
        for (policy, field) in cases {
            let status = update_policy(&app, &app.admin_key, policy.clone())
                .await
                .unwrap_err();
            assert_invalid(&status, field);
        }
        let status = app
            .client
            .clone()
            .update_organization_policy(authed(
                &app.admin_key,
                v1::UpdateOrganizationPolicyRequest { policy: None },
            ))
            .await
            .unwrap_err();
        assert_invalid(&status, "policy");
        assert_eq!(
            get_organization(&app, &app.admin_key).await.unwrap(),
            before
        );

        let scoped = scoped_key(&app).await;
        assert_denied(&get_organization(&app, &scoped).await.unwrap_err());
        assert_denied(
            &update_policy(&app, &scoped, v1::OrganizationPolicy::default())
                .await
                .unwrap_err(),
        );
        let log = events(&app, &before.id).await;
        assert_eq!(
            count(&log, AuditAction::OrganizationPolicyUpdate, &before.id),
            0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn members_are_added_changed_removed_and_listed_newest_first() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let organization = organization_of(&app, &app.admin_key).await;
        let mut added = Vec::new();
        for (user, role) in [
            ("ada@example.com", Role::Owner),
            ("grace@example.com", Role::Admin),
            ("linus@example.com", Role::Member),
            ("ken@example.com", Role::Viewer),
            ("barbara@example.com", Role::Member),
        ] {
            let member = add_member(&app, &app.admin_key, user, role.into())
                .await
                .unwrap();
            assert_eq!(member.user_id, user);
            assert_eq!(member.role, i32::from(role));
            assert_eq!(member.organization_id, organization);
            assert!(member.create_time.is_some());
            added.push(member);
        }

        // Newest first, in pages of two: 2 + 2 + 1, the same whatever the page size.
        let listed = all_members(&app, &app.admin_key, 2).await;
        let mut newest_first = added.clone();
        newest_first.reverse();
        assert_eq!(listed, newest_first);
        assert_eq!(all_members(&app, &app.admin_key, 1000).await, newest_first);
        let first = list_members(&app, &app.admin_key, 2, "").await.unwrap();
        assert_eq!(first.members.len(), 2);
        assert!(!first.next_page_token.is_empty());
        // 0 means the default page size.
        let all = list_members(&app, &app.admin_key, 0, "").await.unwrap();
        assert_eq!(all.members.len(), 5);
        assert!(all.next_page_token.is_empty());

        // Promote, demote; the change shows in the list.
        let linus = &added[2];
        let promoted = update_member(&app, &app.admin_key, &linus.id, Role::Admin.into())
            .await
            .unwrap();
        assert_eq!(promoted.role, i32::from(Role::Admin));
        assert_eq!(promoted.user_id, linus.user_id);
        assert_eq!(promoted.create_time, linus.create_time);
        let demoted = update_member(&app, &app.admin_key, &linus.id, Role::Viewer.into())
            .await
            .unwrap();
        assert_eq!(demoted.role, i32::from(Role::Viewer));
        let listed = all_members(&app, &app.admin_key, 10).await;
        assert_eq!(
            listed.iter().find(|m| m.id == linus.id).unwrap().role,
            i32::from(Role::Viewer)
        );

        // Remove: the response is the member as it was; then it is gone.
        let ken = &added[3];
        let removed = remove_member(&app, &app.admin_key, &ken.id).await.unwrap();
        assert_eq!(&removed, ken);
        let listed = all_members(&app, &app.admin_key, 10).await;
        assert_eq!(listed.len(), 4);
        assert!(listed.iter().all(|m| m.id != ken.id));
        for status in [
            remove_member(&app, &app.admin_key, &ken.id)
                .await
                .unwrap_err(),
            update_member(&app, &app.admin_key, &ken.id, Role::Member.into())
                .await
                .unwrap_err(),
        ] {
            assert_status(
                &status,
                Code::NotFound,
                "not_found",
                Some("member not found"),
            );
        }
        // The user may be added again, as a new member.
        let back = add_member(&app, &app.admin_key, &ken.user_id, Role::Member.into())
            .await
            .unwrap();
        assert_ne!(back.id, ken.id);

        // One event per change, each about its member.
        let log = events(&app, &organization).await;
        for member in &added {
            assert_eq!(count(&log, AuditAction::MemberAdd, &member.id), 1);
        }
        assert_eq!(count(&log, AuditAction::MemberAdd, &back.id), 1);
        assert_eq!(count(&log, AuditAction::MemberUpdate, &linus.id), 2);
        assert_eq!(count(&log, AuditAction::MemberRemove, &ken.id), 1);
        let admin_key_id = app.verify(&app.admin_key, &[]).await.key_id;
        for event in log.iter().filter(|e| e.action == AuditAction::MemberAdd) {
            assert_eq!(event.actor_key_id, Some(admin_key_id.parse().unwrap()));
            assert_eq!(event.outcome, key_core::AuditOutcome::Success);
        }
    }
}

#[tokio::test]
async fn member_requests_are_validated_and_confined_to_the_organization() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let member = add_member(&app, &app.admin_key, "ada", Role::Member.into())
            .await
            .unwrap();

        // A user is a member at most once; the first membership stands.
        let status = add_member(&app, &app.admin_key, "ada", Role::Admin.into())
            .await
            .unwrap_err();
        assert_status(&status, Code::FailedPrecondition, "conflict", None);
        assert!(status.message().contains("already a member"), "{status:?}");
        assert_eq!(
            all_members(&app, &app.admin_key, 10).await,
            vec![member.clone()]
        );

        for role in [0, 99] {
            assert_invalid(
                &add_member(&app, &app.admin_key, "bob", role)
                    .await
                    .unwrap_err(),
                "role",
            );
            assert_invalid(
                &update_member(&app, &app.admin_key, &member.id, role)
                    .await
                    .unwrap_err(),
                "role",
            );
        }
        for user in ["", " ", "new\nline", &"u".repeat(201)] {
            assert_invalid(
                &add_member(&app, &app.admin_key, user, Role::Viewer.into())
                    .await
                    .unwrap_err(),
                "user_id",
            );
        }
        assert!(
            add_member(&app, &app.admin_key, &"u".repeat(200), Role::Viewer.into())
                .await
                .is_ok()
        );
        assert_invalid(
            &update_member(&app, &app.admin_key, "not-an-id", Role::Viewer.into())
                .await
                .unwrap_err(),
            "id",
        );
        assert_invalid(
            &remove_member(&app, &app.admin_key, "").await.unwrap_err(),
            "id",
        );
        assert_invalid(
            &list_members(&app, &app.admin_key, 10, "garbage")
                .await
                .unwrap_err(),
            "page_token",
        );
        assert_invalid(
            &list_members(&app, &app.admin_key, -1, "")
                .await
                .unwrap_err(),
            "page_size",
        );

        // Another organization's member is not found, exactly like one that never existed; the
        // same user may be a member of both.
        let other_admin = app.other_organization_admin("acme").await;
        let theirs = add_member(&app, &other_admin, "ada", Role::Viewer.into())
            .await
            .unwrap();
        assert_ne!(theirs.organization_id, member.organization_id);
        for status in [
            update_member(&app, &app.admin_key, &theirs.id, Role::Owner.into())
                .await
                .unwrap_err(),
            remove_member(&app, &app.admin_key, &theirs.id)
                .await
                .unwrap_err(),
            update_member(&app, &other_admin, &member.id, Role::Owner.into())
                .await
                .unwrap_err(),
        ] {
            assert_status(
                &status,
                Code::NotFound,
                "not_found",
                Some("member not found"),
            );
        }
        let listed = all_members(&app, &other_admin, 10).await;
        assert_eq!(listed, vec![theirs.clone()]);

        // Keys without `admin` manage no members and see none.
        let scoped = scoped_key(&app).await;
        for status in [
            add_member(&app, &scoped, "eve", Role::Owner.into())
                .await
                .unwrap_err(),
            update_member(&app, &scoped, &member.id, Role::Owner.into())
                .await
                .unwrap_err(),
            remove_member(&app, &scoped, &member.id).await.unwrap_err(),
            list_members(&app, &scoped, 10, "").await.unwrap_err(),
        ] {
            assert_denied(&status);
        }
        let unchanged = all_members(&app, &app.admin_key, 10).await;
        assert!(unchanged.contains(&member));
    }
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

fn http() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

async fn rest(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http()
        .request(method, format!("{}{path}", app.http))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn rest_creates_organizations_and_reads_and_sets_the_policy() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (status, created) = rest(
        &app,
        Method::POST,
        "/api/organizations",
        &app.admin_key,
        Some(json!({"name": "Acme Corp"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["organization"]["name"], "Acme Corp");
    assert_eq!(created["organization"]["policy"]["maxKeyAgeDays"], 90);
    assert_eq!(
        created["organization"]["policy"]["maxKeyLifetimeDays"],
        Value::Null
    );
    assert_eq!(created["adminKey"]["scopes"], json!(["admin"]));
    assert_eq!(
        created["adminKey"]["organizationId"],
        created["organization"]["id"]
    );
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(app.verify(&key, &["admin"]).await.valid);

    let (status, body) = rest(
        &app,
        Method::POST,
        "/api/organizations",
        &app.admin_key,
        Some(json!({"name": "Acme Corp"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = rest(
        &app,
        Method::POST,
        "/api/organizations",
        &key,
        Some(json!({"name": "Sneaky"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_scope");

    let (status, organization) = rest(&app, Method::GET, "/api/organization", &key, None).await;
    assert_eq!(status, StatusCode::OK, "{organization}");
    assert_eq!(organization, created["organization"]);

    let (status, updated) = rest(
        &app,
        Method::PUT,
        "/api/organization/policy",
        &key,
        Some(json!({
            "maxKeyAgeDays": 60,
            "maxKeyLifetimeDays": 180,
            "roleScopes": [{"role": "viewer", "scopes": ["data:read"]}],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["policy"]["maxKeyAgeDays"], 60);
    assert_eq!(updated["policy"]["maxKeyLifetimeDays"], 180);
    let viewer = updated["policy"]["roleScopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["role"] == "viewer")
        .unwrap();
    assert_eq!(viewer["scopes"], json!(["data:read"]));

    let (status, body) = rest(
        &app,
        Method::PUT,
        "/api/organization/policy",
        &key,
        Some(json!({"maxKeyAgeDays": 5000})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_key_age_days"),
        "{body}"
    );
}

#[tokio::test]
async fn rest_manages_members() {
    let app = spawn_app(&Backend::Sqlite).await;
    let key = app.admin_key.clone();
    let (status, ada) = rest(
        &app,
        Method::POST,
        "/api/members",
        &key,
        Some(json!({"userId": "ada@example.com", "role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    assert_eq!(ada["userId"], "ada@example.com");
    assert_eq!(ada["role"], "member");
    let id = ada["id"].as_str().unwrap().to_owned();

    let (status, body) = rest(
        &app,
        Method::POST,
        "/api/members",
        &key,
        Some(json!({"userId": "ada@example.com", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = rest(
        &app,
        Method::POST,
        "/api/members",
        &key,
        Some(json!({"userId": "bob", "role": "boss"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");

    let (status, grace) = rest(
        &app,
        Method::POST,
        "/api/members",
        &key,
        Some(json!({"userId": "grace", "role": "admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{grace}");

    let (status, page) = rest(&app, Method::GET, "/api/members?pageSize=1", &key, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"], json!([grace]));
    let token = page["nextPageToken"].as_str().unwrap().to_owned();
    let (status, page) = rest(
        &app,
        Method::GET,
        &format!("/api/members?pageSize=1&pageToken={token}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"], json!([ada]));
    assert_eq!(page["nextPageToken"], Value::Null);

    let (status, updated) = rest(
        &app,
        Method::PATCH,
        &format!("/api/members/{id}"),
        &key,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["role"], "viewer");

    let (status, removed) = rest(
        &app,
        Method::DELETE,
        &format!("/api/members/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed, updated);
    let (status, body) = rest(
        &app,
        Method::DELETE,
        &format!("/api/members/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");

    let scoped = scoped_key(&app).await;
    let (status, body) = rest(&app, Method::GET, "/api/members", &scoped, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
