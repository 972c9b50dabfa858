//! The audit log through the public APIs: what each change and each refused admin call
//! records, who may read it (ListAuditEvents and `GET /api/audit-events`), its filters and
//! paging, and that no event ever holds key material or a webhook signing secret.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{ApiKey, Pepper};
use key_proto::v1::{self, AuditOutcome};
use key_service::WebhookSettings;
use key_store::AuditFilter;
use prost_types::Timestamp;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::helpers::{
    Backend, TestApp, assert_status, authed, backends, spawn_app, spawn_app_configured, start_time,
};

const LIST_KEYS: &str = "/keyrack.v1.KeyService/ListKeys";
const CREATE_KEY: &str = "/keyrack.v1.KeyService/CreateKey";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ts(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap(),
    }
}

async fn try_list(
    app: &TestApp,
    key: &str,
    request: v1::ListAuditEventsRequest,
) -> Result<v1::ListAuditEventsResponse, Status> {
    app.client
        .clone()
        .list_audit_events(authed(key, request))
        .await
        .map(tonic::Response::into_inner)
}

/// Every event `request` matches, following next_page_token to the end.
async fn list_all(
    app: &TestApp,
    key: &str,
    mut request: v1::ListAuditEventsRequest,
) -> Vec<v1::AuditEvent> {
    let mut events = Vec::new();
    loop {
        let page = try_list(app, key, request.clone()).await.unwrap();
        events.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            return events;
        }
        request.page_token = page.next_page_token;
    }
}

/// The admin key's whole log, newest first.
async fn log(app: &TestApp, key: &str) -> Vec<v1::AuditEvent> {
    list_all(app, key, v1::ListAuditEventsRequest::default()).await
}

/// The id behind a plaintext key, as VerifyKey reports it.
async fn key_id(app: &TestApp, key: &str) -> String {
    let verdict = app.verify(key, &[]).await;
    assert!(verdict.valid, "{verdict:?}");
    verdict.key_id
}

async fn organization_of(app: &TestApp, key: &str) -> String {
    app.verify(key, &[]).await.organization_id
}

/// Every event the store holds for `organization`, straight from the database.
async fn stored(app: &TestApp, organization: &str) -> Vec<key_core::AuditEvent> {
    app.keyrack
        .store
        .list_audit_events(
            organization.parse().unwrap(),
            &AuditFilter::default(),
            None,
            10_000,
        )
        .await
        .unwrap()
}

/// The events that belong to no organization (refused calls of unknown callers).
async fn unattributed(app: &TestApp) -> Vec<key_core::AuditEvent> {
    app.keyrack
        .store
        .list_unattributed_audit_events(&AuditFilter::default(), None, 10_000)
        .await
        .unwrap()
}

fn field_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .expect("ErrorInfo")
        .metadata
        .get("field")
        .cloned()
        .unwrap_or_default()
}

fn http() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// `GET /api/audit-events<query>` with `key`; returns the status and the JSON body.
async fn rest_list(app: &TestApp, key: &str, query: &str) -> (StatusCode, Value) {
    let response = http()
        .get(format!("{}/api/audit-events{query}", app.http))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

// ---------------------------------------------------------------------------------------------
// What is recorded
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_key_lifecycle_leaves_a_complete_trail() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin_id = key_id(&app, &app.admin_key).await;
        let organization = organization_of(&app, &app.admin_key).await;

        // The bootstrap key was made by the operator, at start-up, from no network address.
        let trail = log(&app, &app.admin_key).await;
        assert_eq!(trail.len(), 1, "{trail:#?}");
        let bootstrap = &trail[0];
        assert_eq!(bootstrap.time, Some(ts(start_time())));
        assert_eq!(bootstrap.organization_id, organization);
        assert_eq!(bootstrap.actor_type, "operator");
        assert_eq!(bootstrap.actor_key_id, "");
        assert_eq!(bootstrap.action, "key.create");
        assert_eq!(bootstrap.target, admin_id);
        assert_eq!(bootstrap.outcome(), AuditOutcome::Success);
        assert_eq!(bootstrap.reason, "");
        assert_eq!(bootstrap.client_address, "");
        assert_eq!(bootstrap.request_id, "");

        // Create, then revoke, each a minute apart, each with a request id.
        app.clock.advance(TimeDelta::minutes(1));
        let created_at = app.clock_now();
        let mut create = authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "Production API".into(),
                scopes: vec!["chat".into()],
                ..Default::default()
            },
        );
        create
            .metadata_mut()
            .insert("x-request-id", "req-create".parse().unwrap());
        let created = app
            .client
            .clone()
            .create_key(create)
            .await
            .unwrap()
            .into_inner();
        let id = created.api_key.unwrap().id;

        app.clock.advance(TimeDelta::minutes(1));
        let revoked_at = app.clock_now();
        let mut revoke = authed(
            &app.admin_key,
            v1::RevokeKeyRequest {
                id: id.clone(),
                reason: "leaked".into(),
            },
        );
        revoke
            .metadata_mut()
            .insert("x-request-id", "req-revoke".parse().unwrap());
        app.client.clone().revoke_key(revoke).await.unwrap();

        // Reading the log (or anything else) is not a change: three events, newest first.
        app.clock.advance(TimeDelta::minutes(1));
        let trail = log(&app, &app.admin_key).await;
        assert_eq!(trail.len(), 3, "{trail:#?}");
        let (revoke, create) = (&trail[0], &trail[1]);
        assert_eq!(trail[2], *bootstrap);

        assert_eq!(create.time, Some(ts(created_at)));
        assert_eq!(create.organization_id, organization);
        assert_eq!(create.actor_type, "key");
        assert_eq!(create.actor_key_id, admin_id);
        assert_eq!(create.action, "key.create");
        assert_eq!(create.target, id);
        assert_eq!(create.outcome(), AuditOutcome::Success);
        assert_eq!(create.reason, "");
        assert_eq!(create.request_id, "req-create");
        assert!(
            create.client_address.starts_with("127.0.0.1:"),
            "{}",
            create.client_address
        );

        assert_eq!(revoke.time, Some(ts(revoked_at)));
        assert_eq!(revoke.organization_id, organization);
        assert_eq!(revoke.actor_type, "key");
        assert_eq!(revoke.actor_key_id, admin_id);
        assert_eq!(revoke.action, "key.revoke");
        assert_eq!(revoke.target, id);
        assert_eq!(revoke.outcome(), AuditOutcome::Success);
        assert_eq!(revoke.request_id, "req-revoke");
        assert!(revoke.client_address.starts_with("127.0.0.1:"));

        // Ids are distinct and descend with the order of events.
        assert!(trail[0].id > trail[1].id && trail[1].id > trail[2].id);
    }
}

#[tokio::test]
async fn refused_admin_calls_are_recorded_and_shown_only_to_the_known_organization() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let organization = organization_of(&app, &app.admin_key).await;
        let mut client = app.client.clone();

        // Unknown callers: no credential, a malformed one, a revoked admin key.
        let revoked = app.create_key("revoked admin", &["admin"], "").await;
        let revoked_id = revoked.api_key.unwrap().id;
        client
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: revoked_id.clone(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
        // Anonymous refusals are recorded once a minute per client address (a flood of them
        // grows nothing; see reliability.rs): one a minute here.
        let mut anonymous = Request::new(v1::ListKeysRequest::default());
        anonymous
            .metadata_mut()
            .insert("x-request-id", "anon-1".parse().unwrap());
        client.list_keys(anonymous).await.unwrap_err();
        app.clock.advance(TimeDelta::minutes(1));
        client
            .list_keys(authed("sk_live_abc123...", v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        app.clock.advance(TimeDelta::minutes(1));
        client
            .list_keys(authed(&revoked.key, v1::ListKeysRequest::default()))
            .await
            .unwrap_err();

        let unknown = unattributed(&app).await;
        assert_eq!(unknown.len(), 3, "{unknown:#?}");
        for event in &unknown {
            assert_eq!(event.organization_id, None);
            assert_eq!(event.actor_key_id, None, "a revoked key stays anonymous");
            assert_eq!(event.actor_type, key_core::ActorType::Anonymous);
            assert_eq!(event.action, key_core::AuditAction::AuthDenied);
            assert_eq!(event.outcome, key_core::AuditOutcome::Denied);
            assert_eq!(event.target, LIST_KEYS);
            assert_eq!(event.reason.as_deref(), Some("invalid_api_key"));
            assert!(event.time <= app.clock_now());
            let address = event.client_address.as_deref().unwrap();
            assert!(address.starts_with("127.0.0.1:"), "{address}");
            assert!(!format!("{event:?}").contains(&revoked_id));
        }
        assert_eq!(unknown[2].request_id.as_deref(), Some("anon-1"));
        // ... and nobody sees them through the API.
        let visible = log(&app, &app.admin_key).await;
        assert!(
            visible.iter().all(|event| event.action != "auth.denied"),
            "{visible:#?}"
        );

        // Known keys: one lacking `admin`, one expired admin key.
        let chat = app.create_key("chat", &["chat"], "").await;
        let chat_id = chat.api_key.unwrap().id;
        let tomorrow = (app.clock_now() + TimeDelta::days(1))
            .date_naive()
            .to_string();
        let expiring = app
            .create_key("expiring admin", &["admin"], &tomorrow)
            .await;
        let expiring_id = expiring.api_key.unwrap().id;
        let status = client
            .create_key(authed(
                &chat.key,
                v1::CreateKeyRequest {
                    name: "escalate".into(),
                    scopes: vec!["admin".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_status(&status, Code::PermissionDenied, "insufficient_scope", None);
        // The refused caller cannot read the log either; that refusal is recorded too.
        let status = try_list(&app, &chat.key, Default::default())
            .await
            .unwrap_err();
        assert_status(&status, Code::PermissionDenied, "insufficient_scope", None);
        app.clock.advance(TimeDelta::days(3));
        let status = client
            .list_keys(authed(&expiring.key, v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "expired_api_key", None);

        let denied = list_all(
            &app,
            &app.admin_key,
            v1::ListAuditEventsRequest {
                action: "auth.denied".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(denied.len(), 3, "{denied:#?}");
        // The anonymous calls above moved the clock two minutes on.
        let refused_at = start_time() + TimeDelta::minutes(2);
        let expected = [
            (&expiring_id, LIST_KEYS, "expired_api_key", app.clock_now()),
            (
                &chat_id,
                "/keyrack.v1.KeyService/ListAuditEvents",
                "insufficient_scope",
                refused_at,
            ),
            (&chat_id, CREATE_KEY, "insufficient_scope", refused_at),
        ];
        for (event, (actor, target, reason, time)) in denied.iter().zip(expected) {
            assert_eq!(event.organization_id, organization);
            assert_eq!(event.actor_type, "key");
            assert_eq!(&event.actor_key_id, actor);
            assert_eq!(event.target, target);
            assert_eq!(event.reason, reason);
            assert_eq!(event.outcome(), AuditOutcome::Denied);
            assert_eq!(event.time, Some(ts(time)));
            assert!(event.client_address.starts_with("127.0.0.1:"));
        }

        // Another organization's admin sees none of it.
        let other = app.other_organization_admin("acme").await;
        let theirs = log(&app, &other).await;
        assert_eq!(
            theirs.len(),
            1,
            "only their own key's creation: {theirs:#?}"
        );
        assert_ne!(theirs[0].organization_id, organization);
        assert_eq!(theirs[0].actor_type, "operator");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the log
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn filters_and_pages_narrow_the_log_newest_first() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin_id = key_id(&app, &app.admin_key).await;
        // Five creations a minute apart, then two revocations.
        let mut ids = Vec::new();
        let mut times = Vec::new();
        for n in 0..5 {
            app.clock.advance(TimeDelta::minutes(1));
            times.push(app.clock_now());
            let created = app.create_key(&format!("key {n}"), &["chat"], "").await;
            ids.push(created.api_key.unwrap().id);
        }
        for id in &ids[..2] {
            app.clock.advance(TimeDelta::minutes(1));
            app.client
                .clone()
                .revoke_key(authed(
                    &app.admin_key,
                    v1::RevokeKeyRequest {
                        id: id.clone(),
                        reason: String::new(),
                    },
                ))
                .await
                .unwrap();
        }
        let everything = log(&app, &app.admin_key).await;
        assert_eq!(everything.len(), 8, "bootstrap, 5 creations, 2 revocations");
        for pair in everything.windows(2) {
            assert!(pair[0].id > pair[1].id);
            assert!(pair[0].time.unwrap().seconds >= pair[1].time.unwrap().seconds);
        }

        // Paging by two: four full pages, the same events in the same order, no token last.
        let mut request = v1::ListAuditEventsRequest {
            page_size: 2,
            ..Default::default()
        };
        let mut paged = Vec::new();
        let mut pages = 0;
        loop {
            let page = try_list(&app, &app.admin_key, request.clone())
                .await
                .unwrap();
            pages += 1;
            assert_eq!(page.audit_events.len(), 2);
            paged.extend(page.audit_events);
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
        }
        assert_eq!(pages, 4);
        assert_eq!(paged, everything);

        let filtered =
            |request: v1::ListAuditEventsRequest| list_all(&app, &app.admin_key, request);

        // By target: one key's creation and revocation.
        let about = filtered(v1::ListAuditEventsRequest {
            target: ids[0].clone(),
            ..Default::default()
        })
        .await;
        let actions: Vec<_> = about.iter().map(|event| event.action.as_str()).collect();
        assert_eq!(actions, ["key.revoke", "key.create"]);
        assert!(about.iter().all(|event| event.target == ids[0]));

        // By actor: everything but the operator's bootstrap.
        let by_admin = filtered(v1::ListAuditEventsRequest {
            actor_key_id: admin_id.clone(),
            ..Default::default()
        })
        .await;
        assert_eq!(by_admin.len(), 7);
        assert!(by_admin.iter().all(|event| event.actor_key_id == admin_id));
        let by_nobody = filtered(v1::ListAuditEventsRequest {
            actor_key_id: ids[4].clone(),
            ..Default::default()
        })
        .await;
        assert!(by_nobody.is_empty());

        // By action, alone and with the actor.
        let revocations = filtered(v1::ListAuditEventsRequest {
            action: "key.revoke".into(),
            ..Default::default()
        })
        .await;
        let targets: Vec<_> = revocations.iter().map(|event| &event.target).collect();
        assert_eq!(targets, [&ids[1], &ids[0]]);
        let created_by_admin = filtered(v1::ListAuditEventsRequest {
            action: "key.create".into(),
            actor_key_id: admin_id.clone(),
            ..Default::default()
        })
        .await;
        assert_eq!(created_by_admin.len(), 5);

        // By time: [start, end) on the injected clock.
        let window = filtered(v1::ListAuditEventsRequest {
            start_time: Some(ts(times[1])),
            end_time: Some(ts(times[3])),
            ..Default::default()
        })
        .await;
        let targets: Vec<_> = window.iter().map(|event| &event.target).collect();
        assert_eq!(targets, [&ids[2], &ids[1]]);
        let since = filtered(v1::ListAuditEventsRequest {
            start_time: Some(ts(times[4])),
            ..Default::default()
        })
        .await;
        assert_eq!(since.len(), 3, "the last creation and both revocations");
        let before = filtered(v1::ListAuditEventsRequest {
            end_time: Some(ts(times[0])),
            ..Default::default()
        })
        .await;
        assert_eq!(before.len(), 1, "the bootstrap only");

        // Page sizes: 0 means 50, above 1000 means 1000.
        for page_size in [0, 5000] {
            let page = try_list(
                &app,
                &app.admin_key,
                v1::ListAuditEventsRequest {
                    page_size,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(page.audit_events.len(), 8);
            assert_eq!(page.next_page_token, "");
        }
    }
}

#[tokio::test]
async fn another_organizations_events_are_invisible() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let other = app.other_organization_admin("acme").await;
        let other_id = key_id(&app, &other).await;
        let created = app
            .client
            .clone()
            .create_key(authed(
                &other,
                v1::CreateKeyRequest {
                    name: "acme chat".into(),
                    scopes: vec!["chat".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let acme_key_id = created.api_key.unwrap().id;
        let ours = app.create_key("ours", &["chat"], "").await;
        let our_key_id = ours.api_key.unwrap().id;

        let acme = log(&app, &other).await;
        assert_eq!(acme.len(), 2, "{acme:#?}");
        assert!(acme.iter().all(|event| event.target != our_key_id));
        let default = log(&app, &app.admin_key).await;
        assert_eq!(default.len(), 2, "{default:#?}");
        assert!(default.iter().all(|event| event.target != acme_key_id
            && event.target != other_id
            && event.actor_key_id != other_id));

        // Filtering on the other organization's key or actor finds nothing, and their page
        // token only marks a position.
        for request in [
            v1::ListAuditEventsRequest {
                target: acme_key_id.clone(),
                ..Default::default()
            },
            v1::ListAuditEventsRequest {
                actor_key_id: other_id.clone(),
                ..Default::default()
            },
            v1::ListAuditEventsRequest {
                page_token: acme[1].id.clone(),
                ..Default::default()
            },
        ] {
            let found = list_all(&app, &app.admin_key, request).await;
            assert!(
                found
                    .iter()
                    .all(|event| event.organization_id != acme[0].organization_id),
                "{found:#?}"
            );
        }
    }
}

#[tokio::test]
async fn invalid_filters_are_refused_naming_the_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let now = app.clock_now();
        let cases = [
            (
                v1::ListAuditEventsRequest {
                    page_size: -1,
                    ..Default::default()
                },
                "page_size",
            ),
            (
                v1::ListAuditEventsRequest {
                    page_token: "nope".into(),
                    ..Default::default()
                },
                "page_token",
            ),
            (
                v1::ListAuditEventsRequest {
                    actor_key_id: "not-a-key".into(),
                    ..Default::default()
                },
                "actor_key_id",
            ),
            (
                v1::ListAuditEventsRequest {
                    action: "key.delete".into(),
                    ..Default::default()
                },
                "action",
            ),
            (
                v1::ListAuditEventsRequest {
                    target: "x".repeat(501),
                    ..Default::default()
                },
                "target",
            ),
            (
                v1::ListAuditEventsRequest {
                    start_time: Some(Timestamp {
                        seconds: 0,
                        nanos: -1,
                    }),
                    ..Default::default()
                },
                "start_time",
            ),
            (
                v1::ListAuditEventsRequest {
                    end_time: Some(Timestamp {
                        seconds: i64::MAX,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
                "end_time",
            ),
            (
                v1::ListAuditEventsRequest {
                    start_time: Some(ts(now)),
                    end_time: Some(ts(now - TimeDelta::hours(1))),
                    ..Default::default()
                },
                "start_time",
            ),
        ];
        for (request, field) in cases {
            let status = try_list(&app, &app.admin_key, request.clone())
                .await
                .unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert_eq!(field_of(&status), field, "{request:?}: {status:?}");
        }
        let status = try_list(
            &app,
            &app.admin_key,
            v1::ListAuditEventsRequest {
                action: "key.delete".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(
            status.message().contains("key.create") && status.message().contains("auth.denied"),
            "the message lists the actions: {}",
            status.message()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Alert rules and webhook endpoints
// ---------------------------------------------------------------------------------------------

/// A server that accepts `http://` webhook URLs (the tests name a loopback address that never
/// receives anything) and whose worker never polls during a test.
async fn spawn_webhook_app(backend: &Backend) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.webhooks = WebhookSettings {
            allow_http: true,
            // The receivers listen on loopback.
            allow_private: true,
            poll_interval: Duration::from_secs(3600),
            ..WebhookSettings::default()
        };
    })
    .await
}

/// Runs `change` and returns the one event it added to the admin's log; fails if it added
/// none or more than one.
async fn the_event_of<F: Future>(app: &TestApp, change: F) -> (F::Output, v1::AuditEvent) {
    let before = log(app, &app.admin_key).await;
    let output = change.await;
    let mut after = log(app, &app.admin_key).await;
    assert_eq!(after.len(), before.len() + 1, "{after:#?}");
    assert_eq!(after[1..], before[..], "only one event is new");
    (output, after.remove(0))
}

/// Checks a successful change's event: by the admin key, in its organization, now.
fn assert_change(
    app: &TestApp,
    event: &v1::AuditEvent,
    action: &str,
    (admin_id, organization): (&str, &str),
    target: &str,
) {
    assert_eq!(event.action, action, "{event:#?}");
    assert_eq!(event.actor_type, "key");
    assert_eq!(event.actor_key_id, admin_id);
    assert_eq!(event.organization_id, organization);
    assert_eq!(event.target, target);
    assert_eq!(event.outcome(), AuditOutcome::Success);
    assert_eq!(event.reason, "");
    assert_eq!(event.time, Some(ts(app.clock_now())));
    assert!(
        event.client_address.starts_with("127.0.0.1:"),
        "{}",
        event.client_address
    );
}

async fn set_alert_rules(
    app: &TestApp,
    key_id: &str,
    rules: Option<v1::AlertRules>,
) -> Result<v1::SetAlertRulesResponse, Status> {
    let request = v1::SetAlertRulesRequest {
        key_id: key_id.into(),
        clear: rules.is_none(),
        rules,
    };
    app.client
        .clone()
        .set_alert_rules(authed(&app.admin_key, request))
        .await
        .map(tonic::Response::into_inner)
}

fn daily_usage_rules(threshold: i64) -> v1::AlertRules {
    v1::AlertRules {
        unusual_activity: false,
        high_usage: Some(v1::AlertThreshold {
            threshold,
            period: v1::AlertPeriod::Daily.into(),
        }),
        failures: None,
    }
}

#[tokio::test]
async fn setting_and_clearing_alert_rules_records_one_event_each() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin_id = key_id(&app, &app.admin_key).await;
        let organization = organization_of(&app, &app.admin_key).await;
        let who = (admin_id.as_str(), organization.as_str());
        let key = app
            .create_key("chat", &["chat"], "")
            .await
            .api_key
            .unwrap()
            .id;

        // The organization's rules: the target is the organization.
        app.clock.advance(TimeDelta::minutes(1));
        let (set, event) = the_event_of(
            &app,
            set_alert_rules(&app, "", Some(daily_usage_rules(10_000))),
        )
        .await;
        set.unwrap();
        assert_change(&app, &event, "alert_rules.update", who, &organization);

        // A key's own rules, then clearing them: the target is the key, each time.
        app.clock.advance(TimeDelta::minutes(1));
        let (set, event) = the_event_of(
            &app,
            set_alert_rules(&app, &key, Some(daily_usage_rules(5))),
        )
        .await;
        set.unwrap();
        assert_change(&app, &event, "alert_rules.update", who, &key);
        app.clock.advance(TimeDelta::minutes(1));
        let (cleared, event) = the_event_of(&app, set_alert_rules(&app, &key, None)).await;
        assert_eq!(
            cleared.unwrap().source(),
            v1::AlertRulesSource::Organization
        );
        assert_change(&app, &event, "alert_rules.update", who, &key);

        // Resetting the organization to the defaults is a change too.
        app.clock.advance(TimeDelta::minutes(1));
        let (cleared, event) = the_event_of(&app, set_alert_rules(&app, "", None)).await;
        assert_eq!(cleared.unwrap().source(), v1::AlertRulesSource::Default);
        assert_change(&app, &event, "alert_rules.update", who, &organization);

        // The action filter finds exactly these four, newest first.
        let updates = list_all(
            &app,
            &app.admin_key,
            v1::ListAuditEventsRequest {
                action: "alert_rules.update".into(),
                ..Default::default()
            },
        )
        .await;
        let targets: Vec<&str> = updates.iter().map(|event| event.target.as_str()).collect();
        assert_eq!(targets, [&organization, &key, &key, &organization]);
        let by_target = list_all(
            &app,
            &app.admin_key,
            v1::ListAuditEventsRequest {
                target: key.clone(),
                action: "alert_rules.update".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(by_target.len(), 2, "{by_target:#?}");
    }
}

#[tokio::test]
async fn alert_rules_set_on_an_unknown_key_record_nothing() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let organization = organization_of(&app, &app.admin_key).await;
        let other = app.other_organization_admin("acme").await;
        let theirs = app
            .client
            .clone()
            .create_key(authed(
                &other,
                v1::CreateKeyRequest {
                    name: "theirs".into(),
                    scopes: vec!["chat".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap()
            .id;
        let before = stored(&app, &organization).await;

        // A key that does not exist, and another organization's: both NOT_FOUND, no event.
        for id in [uuid::Uuid::now_v7().to_string(), theirs] {
            for rules in [Some(daily_usage_rules(1)), None] {
                let status = set_alert_rules(&app, &id, rules).await.unwrap_err();
                assert_status(&status, Code::NotFound, "not_found", None);
            }
        }
        assert_eq!(stored(&app, &organization).await, before);

        // The store itself: a key gone by the time of the write leaves neither the rules nor
        // the event that would have described them.
        let organization_id: uuid::Uuid = organization.parse().unwrap();
        let missing = uuid::Uuid::now_v7();
        let event = key_core::AuditEvent {
            id: uuid::Uuid::now_v7(),
            time: app.clock_now(),
            organization_id: Some(organization_id),
            actor_key_id: None,
            actor_member_id: None,
            actor_type: key_core::ActorType::Operator,
            action: key_core::AuditAction::AlertRulesUpdate,
            target: missing.to_string(),
            outcome: key_core::AuditOutcome::Success,
            reason: None,
            client_address: None,
            request_id: None,
        };
        let found = app
            .keyrack
            .store
            .set_key_alert_rules(
                organization_id,
                missing,
                Some(&key_core::AlertRules::DEFAULT),
                &event,
            )
            .await
            .unwrap();
        assert!(!found);
        assert_eq!(stored(&app, &organization).await, before);
    }
}

async fn create_endpoint(app: &TestApp, url: &str) -> v1::CreateWebhookEndpointResponse {
    app.client
        .clone()
        .create_webhook_endpoint(authed(
            &app.admin_key,
            v1::CreateWebhookEndpointRequest {
                url: url.into(),
                description: "alerts to ops".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn rotate_secret(app: &TestApp, id: &str) -> Result<v1::RotateWebhookSecretResponse, Status> {
    app.client
        .clone()
        .rotate_webhook_secret(authed(
            &app.admin_key,
            v1::RotateWebhookSecretRequest { id: id.into() },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn delete_endpoint(app: &TestApp, id: &str) -> Result<(), Status> {
    app.client
        .clone()
        .delete_webhook_endpoint(authed(
            &app.admin_key,
            v1::DeleteWebhookEndpointRequest { id: id.into() },
        ))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn webhook_endpoint_changes_record_one_event_each() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let admin_id = key_id(&app, &app.admin_key).await;
        let organization = organization_of(&app, &app.admin_key).await;
        let who = (admin_id.as_str(), organization.as_str());

        app.clock.advance(TimeDelta::minutes(1));
        let (created, event) =
            the_event_of(&app, create_endpoint(&app, "http://127.0.0.1:9/hooks")).await;
        let id = created.webhook_endpoint.unwrap().id;
        assert_change(&app, &event, "webhook_endpoint.create", who, &id);

        app.clock.advance(TimeDelta::minutes(1));
        let (rotated, event) = the_event_of(&app, rotate_secret(&app, &id)).await;
        rotated.unwrap();
        assert_change(&app, &event, "webhook_endpoint.rotate_secret", who, &id);

        app.clock.advance(TimeDelta::minutes(1));
        let (deleted, event) = the_event_of(&app, delete_endpoint(&app, &id)).await;
        deleted.unwrap();
        assert_change(&app, &event, "webhook_endpoint.delete", who, &id);

        // What does not happen is not recorded: the deleted endpoint can be neither rotated
        // nor deleted again, and an endpoint that never existed neither.
        let before = stored(&app, &organization).await;
        for id in [id.clone(), uuid::Uuid::now_v7().to_string()] {
            let status = rotate_secret(&app, &id).await.unwrap_err();
            assert_status(&status, Code::NotFound, "not_found", None);
            let status = delete_endpoint(&app, &id).await.unwrap_err();
            assert_status(&status, Code::NotFound, "not_found", None);
        }
        assert_eq!(stored(&app, &organization).await, before);

        // The endpoint's history, through the target filter, newest first.
        let history = list_all(
            &app,
            &app.admin_key,
            v1::ListAuditEventsRequest {
                target: id.clone(),
                ..Default::default()
            },
        )
        .await;
        let actions: Vec<&str> = history.iter().map(|event| event.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "webhook_endpoint.delete",
                "webhook_endpoint.rotate_secret",
                "webhook_endpoint.create"
            ]
        );
    }
}

#[tokio::test]
async fn audit_events_never_contain_a_webhook_signing_secret() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let organization = organization_of(&app, &app.admin_key).await;

        // Every secret there has been: two creations, three rotations.
        let mut secrets = Vec::new();
        let mut ids = Vec::new();
        for url in ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"] {
            let created = create_endpoint(&app, url).await;
            secrets.push(created.signing_secret);
            ids.push(created.webhook_endpoint.unwrap().id);
        }
        for id in [&ids[0], &ids[0], &ids[1]] {
            secrets.push(rotate_secret(&app, id).await.unwrap().signing_secret);
        }
        delete_endpoint(&app, &ids[1]).await.unwrap();
        assert!(
            secrets.iter().all(|secret| secret.starts_with("whsec_")),
            "{} secrets",
            secrets.len()
        );
        // The whole secret, and its random part alone.
        let needles: Vec<&str> = secrets
            .iter()
            .flat_map(|secret| [secret.as_str(), &secret["whsec_".len()..]])
            .collect();
        let assert_clean = |what: &str, text: &str| {
            assert!(!text.contains("whsec_"), "{what} holds a secret: {text}");
            for needle in &needles {
                assert!(!text.contains(needle), "{what} holds a secret: {text}");
            }
        };

        let events = log(&app, &app.admin_key).await;
        let webhook_events = events
            .iter()
            .filter(|event| event.action.starts_with("webhook_endpoint."))
            .count();
        assert_eq!(webhook_events, 6, "{events:#?}");
        assert_clean("the gRPC audit events", &format!("{events:?}"));

        let response = http()
            .get(format!("{}/api/audit-events?pageSize=1000", app.http))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(text.contains("webhook_endpoint.rotate_secret"), "{text}");
        assert_clean("the REST audit JSON", &text);

        assert_clean(
            "the stored audit rows",
            &format!("{:?}", stored(&app, &organization).await),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Key material
// ---------------------------------------------------------------------------------------------

/// The strings that must appear nowhere in the log for `key`: the key, its 43-character secret
/// part, and its digest under the test pepper (hex).
fn material(key: &str) -> Vec<String> {
    let pepper = Pepper::new(b"integration-test-pepper-0123456789abcdef").unwrap();
    let digest = pepper.digest(&ApiKey::parse(key).unwrap());
    let hex: String = digest
        .as_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    vec![key.to_owned(), key[8..51].to_owned(), hex]
}

#[tokio::test]
async fn audit_events_never_contain_key_material() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let organization = organization_of(&app, &app.admin_key).await;
        let mut keys = vec![app.admin_key.clone()];
        let mut client = app.client.clone();

        // Keys made every way there is: operator, gRPC, the gateway; live and test.
        let other = app.other_organization_admin("acme").await;
        let other_organization = organization_of(&app, &other).await;
        keys.push(other.clone());
        let chat = app.create_key("chat", &["chat"], "").await.key;
        let tomorrow = (app.clock_now() + TimeDelta::days(1))
            .date_naive()
            .to_string();
        let expiring = app.create_key("expiring", &["admin"], &tomorrow).await.key;
        let mut test_key = v1::CreateKeyRequest {
            name: "test".into(),
            scopes: vec!["admin".into()],
            ..Default::default()
        };
        test_key.set_environment(v1::Environment::Test);
        let test_key = client
            .create_key(authed(&app.admin_key, test_key))
            .await
            .unwrap()
            .into_inner();
        let test_id = test_key.api_key.unwrap().id;
        let rest = http()
            .post(format!("{}/api/api-keys", app.http))
            .bearer_auth(&app.admin_key)
            .json(&serde_json::json!({"name": "rest", "scopes": ["admin"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), StatusCode::CREATED);
        let rest: Value = rest.json().await.unwrap();
        let rest_key = rest["key"].as_str().unwrap().to_owned();
        keys.extend([
            chat.clone(),
            expiring.clone(),
            test_key.key.clone(),
            rest_key.clone(),
        ]);

        // Every kind of event, each with a key as the credential.
        client
            .revoke_key(authed(
                &rest_key,
                v1::RevokeKeyRequest {
                    id: test_id,
                    reason: "rotated out".into(),
                },
            ))
            .await
            .unwrap();
        for credential in [&chat, &test_key.key, "sk_live_abc123..."] {
            let _ = client
                .list_keys(authed(credential, v1::ListKeysRequest::default()))
                .await;
        }
        // A key presented where a key does not belong: in the filter, nothing matches.
        let none = list_all(
            &app,
            &app.admin_key,
            v1::ListAuditEventsRequest {
                target: chat.clone(),
                ..Default::default()
            },
        )
        .await;
        assert!(none.is_empty());
        app.clock.advance(TimeDelta::days(3));
        client
            .list_keys(authed(&expiring, v1::ListKeysRequest::default()))
            .await
            .unwrap_err();
        // Through the gateway too, a refusal with a known key.
        let refused = http()
            .get(format!("{}/api/api-keys", app.http))
            .bearer_auth(&chat)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        let needles: Vec<String> = keys.iter().flat_map(|key| material(key)).collect();
        let assert_clean = |what: &str, text: &str| {
            for needle in &needles {
                assert!(
                    !text.contains(needle.as_str()),
                    "{what} holds key material: {text}"
                );
            }
        };

        // gRPC, both organizations, every field.
        let ours = log(&app, &app.admin_key).await;
        let theirs = log(&app, &other).await;
        assert!(ours.len() >= 8, "{ours:#?}");
        assert!(!theirs.is_empty());
        for event in ours.iter().chain(&theirs) {
            for field in [
                &event.id,
                &event.organization_id,
                &event.actor_key_id,
                &event.actor_type,
                &event.action,
                &event.target,
                &event.reason,
                &event.client_address,
                &event.request_id,
            ] {
                assert_clean("a gRPC event", field);
            }
            assert_clean("a gRPC event", &format!("{event:?}"));
        }

        // REST, the raw JSON.
        for key in [&app.admin_key, &other] {
            let response = http()
                .get(format!("{}/api/audit-events?pageSize=1000", app.http))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let text = response.text().await.unwrap();
            assert!(text.contains("key.create"), "{text}");
            assert_clean("the REST audit JSON", &text);
        }

        // The stored rows, of both organizations and of none.
        let rows = [
            stored(&app, &organization).await,
            stored(&app, &other_organization).await,
            unattributed(&app).await,
        ];
        assert_eq!(rows[0].len(), ours.len());
        assert!(!rows[2].is_empty(), "the malformed key's refusal is stored");
        assert_clean("the stored audit rows", &format!("{rows:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Through the gateway
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_gateway_lists_events_with_the_request_id_and_the_callers_address() {
    let app = spawn_app(&Backend::Sqlite).await;
    let admin_id = key_id(&app, &app.admin_key).await;
    app.clock.advance(TimeDelta::minutes(5));
    let response = http()
        .post(format!("{}/api/api-keys", app.http))
        .bearer_auth(&app.admin_key)
        .header("x-request-id", "audit-test-1")
        .json(&serde_json::json!({"name": "via REST", "scopes": ["chat"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();

    let (status, page) = rest_list(&app, &app.admin_key, &format!("?target={id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(page["nextPageToken"], Value::Null);
    let event = &events[0];
    let mut fields: Vec<_> = event.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "action",
            "actorKeyId",
            "actorMemberId",
            "actorType",
            "clientAddress",
            "id",
            "organizationId",
            "outcome",
            "reason",
            "requestId",
            "target",
            "time"
        ]
    );
    assert_eq!(event["requestId"], "audit-test-1");
    assert_eq!(event["action"], "key.create");
    assert_eq!(event["actorType"], "key");
    assert_eq!(event["actorKeyId"], admin_id.as_str());
    assert_eq!(event["target"], id);
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["reason"], Value::Null);
    assert_eq!(event["organizationId"], created["organizationId"]);
    assert_eq!(event["time"], "2026-01-15T10:35:00Z");
    let address = event["clientAddress"].as_str().unwrap();
    // The gateway calls the service in process, so what it forwarded is the whole story: the
    // address of the caller it saw.
    assert_eq!(address, "127.0.0.1");

    // A client's own X-Forwarded-For claim is kept, in front of the address the gateway saw.
    let response = http()
        .delete(format!("{}/api/api-keys/{id}", app.http))
        .bearer_auth(&app.admin_key)
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, page) = rest_list(&app, &app.admin_key, "?action=key.revoke").await;
    let address = page["data"][0]["clientAddress"].as_str().unwrap();
    assert_eq!(address, "203.0.113.7, 127.0.0.1");
    // The gateway made up a request id, and it reached the log.
    assert!(
        !page["data"][0]["requestId"].as_str().unwrap().is_empty(),
        "{page}"
    );

    // Paging and filters as query parameters.
    let (_, first) = rest_list(&app, &app.admin_key, "?pageSize=1").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    assert_eq!(first["data"][0]["action"], "key.revoke");
    let token = first["nextPageToken"].as_str().unwrap().to_owned();
    let (_, second) = rest_list(
        &app,
        &app.admin_key,
        &format!("?pageSize=1&pageToken={token}"),
    )
    .await;
    assert_eq!(second["data"][0]["action"], "key.create");
    assert_eq!(second["data"][0]["target"], id);
    let (_, by_actor) = rest_list(
        &app,
        &app.admin_key,
        &format!("?actorKeyId={admin_id}&from=2026-01-15T10:35:00Z&to=2026-01-15T11:00:00Z"),
    )
    .await;
    assert_eq!(by_actor["data"].as_array().unwrap().len(), 2, "{by_actor}");

    // Bad parameters are 400 naming them; a non-admin key is 403; no key is 401.
    for (query, mention) in [
        ("?action=key.delete", "action"),
        ("?actorKeyId=nope", "actor_key_id"),
        ("?pageToken=nope", "page_token"),
        ("?pageSize=-1", "page_size"),
        ("?from=yesterday", "from"),
        ("?colour=red", "colour"),
    ] {
        let (status, body) = rest_list(&app, &app.admin_key, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(mention), "{query}: {message}");
    }
    let chat = app.create_key("chat", &["chat"], "").await.key;
    let (status, body) = rest_list(&app, &chat, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let response = http()
        .get(format!("{}/api/audit-events", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The endpoint is in the OpenAPI document.
    let document: Value = http()
        .get(format!("{}/openapi.json", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        document["paths"]["/api/audit-events"]["get"].is_object(),
        "{}",
        document["paths"]
    );
}
