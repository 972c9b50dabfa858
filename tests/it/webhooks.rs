//! Webhooks: endpoints (create, list, delete, rotate), and alert events delivered to a real
//! HTTP receiver in the test, which checks `Keyrack-Signature` with the secret shown at
//! creation. Time moves on the injected clock: retries and giving up are driven step by step
//! with `WebhookDelivery::deliver_due` (the job the test drives).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use chrono::{DateTime, TimeDelta, Utc};
use key_core::{Clock, DEFAULT_SIGNATURE_TOLERANCE, FixedClock, SignatureCheck, SigningSecret};
use key_proto::v1;
use key_service::WebhookSettings;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, assert_status, authed, backends, spawn_app, spawn_app_configured,
    spawn_second_server_configured,
};

/// What the receiver saw of one POST.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
    signature: SignatureCheck,
    /// The status the receiver answered.
    answered: StatusCode,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or_default()
    }
}

/// A real HTTP server on 127.0.0.1:0 standing in for a customer's endpoint. It checks every
/// request's signature with the secret it is given (as a receiver would, against its own clock:
/// the test's), records it, and answers the statuses it is told to, then 200 (503 while it is
/// told it is unavailable).
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

struct ReceiverState {
    secret: Mutex<Option<SigningSecret>>,
    clock: FixedClock,
    answers: Mutex<VecDeque<StatusCode>>,
    unavailable: AtomicBool,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    async fn start(clock: &FixedClock) -> Receiver {
        Receiver::serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), clock)
    }

    /// A receiver on `listener`.
    fn serve(listener: TcpListener, clock: &FixedClock) -> Receiver {
        let state = Arc::new(ReceiverState {
            secret: Mutex::new(None),
            clock: clock.clone(),
            answers: Mutex::new(VecDeque::new()),
            unavailable: AtomicBool::new(false),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(Arc::clone(&state));
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    fn trust(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = Some(SigningSecret::parse(secret).unwrap());
    }

    /// Answers the next requests with `statuses`, in order, then 200 again.
    fn answer(&self, statuses: &[StatusCode]) {
        self.state
            .answers
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    /// While `unavailable`, answers every request with 503, as a receiver whose backend is down.
    fn set_unavailable(&self, unavailable: bool) {
        self.state.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = match state.secret.lock().unwrap().as_ref() {
        Some(secret) => secret.verify(
            headers
                .get("keyrack-signature")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default(),
            &body,
            state.clock.now(),
            DEFAULT_SIGNATURE_TOLERANCE,
        ),
        None => SignatureCheck::Mismatch,
    };
    let answered = if signature != SignatureCheck::Valid {
        StatusCode::UNAUTHORIZED
    } else if state.unavailable.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        state
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(StatusCode::OK)
    };
    state.received.lock().unwrap().push(Received {
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
        signature,
        answered,
    });
    answered
}

/// Webhook settings for tests: http allowed (the receiver is plain http on loopback), and a
/// worker poll so rare that the test alone drives deliveries.
fn driven_by_the_test() -> WebhookSettings {
    WebhookSettings {
        allow_http: true,
        // The receivers listen on loopback.
        allow_private: true,
        poll_interval: Duration::from_secs(3600),
        ..WebhookSettings::default()
    }
}

async fn spawn_webhook_app(backend: &Backend) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.webhooks = driven_by_the_test();
    })
    .await
}

async fn create_endpoint(
    app: &TestApp,
    url: &str,
) -> Result<v1::CreateWebhookEndpointResponse, tonic::Status> {
    let request = v1::CreateWebhookEndpointRequest {
        url: url.into(),
        description: "alerts to ops".into(),
        ..Default::default()
    };
    app.client
        .clone()
        .create_webhook_endpoint(authed(&app.admin_key, request))
        .await
        .map(tonic::Response::into_inner)
}

async fn list_deliveries(
    app: &TestApp,
    request: v1::ListWebhookDeliveriesRequest,
) -> Vec<v1::WebhookDelivery> {
    app.client
        .clone()
        .list_webhook_deliveries(authed(&app.admin_key, request))
        .await
        .unwrap()
        .into_inner()
        .webhook_deliveries
}

async fn the_delivery(app: &TestApp, event_id: Uuid) -> v1::WebhookDelivery {
    let mut deliveries = list_deliveries(
        app,
        v1::ListWebhookDeliveriesRequest {
            event_id: event_id.to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries.remove(0)
}

async fn default_organization(app: &TestApp) -> Uuid {
    app.keyrack
        .store
        .find_organization_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Stores an alert event's deliveries as the alerts code does, in a transaction of its own;
/// returns the event's id, its payload and how many deliveries were queued.
async fn enqueue_event(app: &TestApp, organization_id: Uuid) -> (Uuid, String, usize) {
    let event_id = Uuid::now_v7();
    let payload = json!({
        "id": event_id,
        "type": "high_usage",
        "createdAt": app.clock_now(),
        "organizationId": organization_id,
        "data": {"observed": 10_000, "threshold": 10_000},
    })
    .to_string();
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    // The transaction reads before it writes, so on SQLite it takes the write lock at BEGIN,
    // as every write transaction of the store does (`Store::begin_write`): a deferred one fails
    // when a delivery worker writes in between.
    let txn = sea_orm::TransactionTrait::begin_with_options(
        &db,
        sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..sea_orm::TransactionOptions::default()
        },
    )
    .await
    .unwrap();
    let queued = key_store::enqueue_webhook_deliveries(
        &txn,
        organization_id,
        event_id,
        &payload,
        app.clock_now(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    db.close().await.unwrap();
    (event_id, payload, queued)
}

fn to_time(timestamp: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).unwrap()).unwrap()
}

#[tokio::test]
async fn an_event_is_signed_retried_after_500_and_its_attempts_are_queryable() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let receiver = Receiver::start(&app.clock).await;
        let created = create_endpoint(&app, &receiver.url).await.unwrap();
        receiver.trust(&created.signing_secret);
        let endpoint = created.webhook_endpoint.unwrap();
        let organization_id = default_organization(&app).await;
        let (event_id, payload, queued) = enqueue_event(&app, organization_id).await;
        assert_eq!(queued, 1);
        receiver.answer(&[
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
        ]);

        // First attempt, at once: 500, so it stays pending, due again within 30 s.
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
        let delivery = the_delivery(&app, event_id).await;
        assert_eq!(delivery.state(), v1::DeliveryState::Pending);
        assert_eq!(delivery.webhook_endpoint_id, endpoint.id);
        assert_eq!(delivery.attempts.len(), 1);
        assert_eq!(delivery.attempts[0].status_code, 500);
        assert!(delivery.attempts[0].error.contains("500"), "{delivery:?}");
        let next = to_time(delivery.next_attempt_time.as_ref().unwrap());
        assert!(next > app.clock_now() && next <= app.clock_now() + TimeDelta::seconds(30));
        // Nothing is due before then.
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 0);

        // Second attempt at its time: 500 again; the wait doubles (at most 60 s).
        app.clock.set(next);
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
        let delivery = the_delivery(&app, event_id).await;
        let next = to_time(delivery.next_attempt_time.as_ref().unwrap());
        assert!(next > app.clock_now() + TimeDelta::seconds(53));
        assert!(next <= app.clock_now() + TimeDelta::seconds(60));

        // Third attempt: 200. Succeeded, three attempts recorded, nothing more due.
        app.clock.set(next);
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
        let delivery = the_delivery(&app, event_id).await;
        assert_eq!(delivery.state(), v1::DeliveryState::Succeeded);
        assert_eq!(delivery.next_attempt_time, None);
        let statuses: Vec<i32> = delivery.attempts.iter().map(|a| a.status_code).collect();
        assert_eq!(statuses, [500, 500, 200]);
        assert!(delivery.attempts[2].error.is_empty());
        app.clock.advance(TimeDelta::days(2));
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 0);

        // The receiver saw three signed POSTs of the same event, body unchanged, attempt
        // numbers increasing: the event id is the idempotency id.
        let received = receiver.received();
        assert_eq!(received.len(), 3);
        for (number, request) in received.iter().enumerate() {
            assert_eq!(request.signature, SignatureCheck::Valid);
            assert_eq!(request.body, payload);
            assert_eq!(request.header("keyrack-event-id"), event_id.to_string());
            assert_eq!(request.header("keyrack-delivery-id"), delivery.id);
            assert_eq!(request.header("keyrack-attempt"), (number + 1).to_string());
            assert_eq!(request.header("content-type"), "application/json");
            assert_eq!(request.header("user-agent"), "Keyrack-Webhooks/1");
        }
        let body: Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(body["id"], event_id.to_string());
        // The deployment's counters saw two failed attempts and one success.
        let metrics = app.keyrack.metrics.render();
        for line in [
            r#"keyrack_webhook_delivery_attempts_total{outcome="failed"} 2"#,
            r#"keyrack_webhook_delivery_attempts_total{outcome="succeeded"} 1"#,
        ] {
            assert!(metrics.contains(line), "{metrics}");
        }

        // Filters: by state and endpoint.
        let succeeded = list_deliveries(
            &app,
            v1::ListWebhookDeliveriesRequest {
                state: v1::DeliveryState::Succeeded.into(),
                webhook_endpoint_id: endpoint.id.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(succeeded.len(), 1);
        let pending = list_deliveries(
            &app,
            v1::ListWebhookDeliveriesRequest {
                state: v1::DeliveryState::Pending.into(),
                ..Default::default()
            },
        )
        .await;
        assert!(pending.is_empty());
    }
}

#[tokio::test]
async fn a_delivery_gives_up_after_retrying_for_at_least_a_day() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let receiver = Receiver::start(&app.clock).await;
        let created = create_endpoint(&app, &receiver.url).await.unwrap();
        receiver.trust(&created.signing_secret);
        receiver.answer(&[StatusCode::SERVICE_UNAVAILABLE; 100]);
        let organization_id = default_organization(&app).await;
        let (event_id, _, _) = enqueue_event(&app, organization_id).await;
        let created_at = app.clock_now();

        // Each attempt at the time the previous one scheduled, until the delivery gives up.
        let mut delivery = the_delivery(&app, event_id).await;
        while delivery.state() == v1::DeliveryState::Pending {
            app.clock
                .set(to_time(delivery.next_attempt_time.as_ref().unwrap()));
            assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
            delivery = the_delivery(&app, event_id).await;
            assert!(delivery.attempts.len() < 100, "never gives up");
        }
        assert_eq!(delivery.state(), v1::DeliveryState::Failed);
        assert_eq!(delivery.next_attempt_time, None);
        let first = to_time(delivery.attempts[0].attempt_time.as_ref().unwrap());
        let last = to_time(
            delivery
                .attempts
                .last()
                .unwrap()
                .attempt_time
                .as_ref()
                .unwrap(),
        );
        assert_eq!(first, created_at);
        assert!(last - first >= TimeDelta::hours(24), "{first} → {last}");
        assert!(last - first <= TimeDelta::hours(25), "{first} → {last}");
        assert!(delivery.attempts.iter().all(|a| a.status_code == 503));
        // Every attempt reached the receiver, signed, and was recorded.
        let received = receiver.received();
        assert_eq!(received.len(), delivery.attempts.len());
        assert!(
            received
                .iter()
                .all(|r| r.signature == SignatureCheck::Valid)
        );
        app.clock.advance(TimeDelta::days(3));
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 0);
    }
}

/// A receiver down for an hour (its port refusing connections for the first half, its server
/// answering 503 for the second) while events keep coming, then back: every event queued during
/// the outage is delivered exactly once when it returns, none is given up, and the wait after
/// the return is within the retry schedule's cap. The job runs every 30 s of the test's clock,
/// as the worker would poll.
#[tokio::test]
async fn a_receiver_down_for_an_hour_gets_every_event_once_when_it_returns() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        // The receiver's port, bound but not listening: connections to it are refused.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let url = format!("http://{}/hooks", socket.local_addr().unwrap());
        let created = create_endpoint(&app, &url).await.unwrap();
        let organization_id = default_organization(&app).await;
        let down_at = app.clock_now();
        let (half_time, back_at) = (
            down_at + TimeDelta::minutes(30),
            down_at + TimeDelta::hours(1),
        );
        let cap = driven_by_the_test().retry.cap;
        let step = TimeDelta::seconds(30);

        let mut socket = Some(socket);
        let mut receiver: Option<Receiver> = None;
        let mut events = Vec::new();
        let mut next_event = down_at;
        loop {
            let now = app.clock_now();
            if now >= half_time && receiver.is_none() {
                let listener = socket.take().unwrap().listen(1024).unwrap();
                let up = Receiver::serve(listener, &app.clock);
                up.trust(&created.signing_secret);
                up.set_unavailable(true);
                receiver = Some(up);
            }
            if now >= back_at {
                receiver.as_ref().unwrap().set_unavailable(false);
            } else if now >= next_event {
                events.push(enqueue_event(&app, organization_id).await.0);
                next_event += TimeDelta::minutes(5);
            }
            app.keyrack.jobs.webhooks.deliver_due().await.unwrap();
            if now >= back_at {
                let pending = list_deliveries(
                    &app,
                    v1::ListWebhookDeliveriesRequest {
                        state: v1::DeliveryState::Pending.into(),
                        ..Default::default()
                    },
                )
                .await;
                if pending.is_empty() {
                    break;
                }
                assert!(
                    now < back_at + cap,
                    "still pending {cap} after the receiver returned: {pending:#?}"
                );
            }
            app.clock.advance(step);
        }

        let deliveries = list_deliveries(&app, v1::ListWebhookDeliveriesRequest::default()).await;
        assert_eq!(deliveries.len(), events.len());
        let (mut refused, mut unavailable, mut last_delivered) = (0, 0, back_at);
        for delivery in &deliveries {
            assert_eq!(
                delivery.state(),
                v1::DeliveryState::Succeeded,
                "{delivery:#?}"
            );
            let (last, failed) = delivery.attempts.split_last().unwrap();
            assert_eq!(last.status_code, 200, "{delivery:#?}");
            let delivered = to_time(last.attempt_time.as_ref().unwrap());
            assert!(delivered >= back_at, "{delivery:#?}");
            last_delivered = last_delivered.max(delivered);
            for attempt in failed {
                match attempt.status_code {
                    0 => {
                        assert_eq!(attempt.error, "connection failed", "{delivery:#?}");
                        refused += 1;
                    }
                    503 => unavailable += 1,
                    _ => panic!("unexpected attempt: {delivery:#?}"),
                }
            }
        }
        // Both halves of the outage were met.
        assert!(refused > 0 && unavailable > 0, "{deliveries:#?}");
        // The receiver answered each event 200 exactly once, and 503 to the attempts above.
        let received = receiver.unwrap().received();
        assert!(
            received
                .iter()
                .all(|r| r.signature == SignatureCheck::Valid)
        );
        let mut accepted: HashMap<String, usize> = HashMap::new();
        for request in received.iter().filter(|r| r.answered == StatusCode::OK) {
            *accepted
                .entry(request.header("keyrack-event-id").to_owned())
                .or_default() += 1;
        }
        let expected: HashMap<String, usize> =
            events.iter().map(|event| (event.to_string(), 1)).collect();
        assert_eq!(accepted, expected, "each event accepted exactly once");
        assert_eq!(
            received
                .iter()
                .filter(|r| r.answered == StatusCode::SERVICE_UNAVAILABLE)
                .count(),
            unavailable
        );
        eprintln!(
            "webhook receiver down for 1 h: {} events queued meanwhile, {refused} attempts \
             refused and {unavailable} answered 503, none given up; each delivered once, the \
             last {} min after the receiver returned",
            events.len(),
            (last_delivered - back_at).num_seconds() as f64 / 60.0
        );
    }
}

#[tokio::test]
async fn the_signing_secret_is_shown_once_and_stored_only_sealed() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let receiver = Receiver::start(&app.clock).await;
        let created = create_endpoint(&app, &receiver.url).await.unwrap();
        let secret = created.signing_secret.clone();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let endpoint = created.webhook_endpoint.unwrap();
        assert_eq!(endpoint.url, receiver.url);
        assert_eq!(endpoint.description, "alerts to ops");

        // Never in a listing.
        let listed = app
            .client
            .clone()
            .list_webhook_endpoints(authed(
                &app.admin_key,
                v1::ListWebhookEndpointsRequest::default(),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.webhook_endpoints, vec![endpoint.clone()]);
        assert!(!format!("{listed:?}").contains(&secret[6..]));

        // Never in the database in plaintext: not in any row, nor (SQLite) in its files.
        let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
        let select = sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT id, url, description, sealed_secret FROM webhook_endpoints",
        );
        let rows = db.query_all_raw(select).await.unwrap();
        assert_eq!(rows.len(), 1);
        let sealed: Vec<u8> = rows[0].try_get("", "sealed_secret").unwrap();
        assert!(
            !sealed
                .windows(secret.len() - 6)
                .any(|window| window == &secret.as_bytes()[6..])
        );
        db.close().await.unwrap();
        if let Some(path) = &app.sqlite_path {
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    assert!(
                        !bytes
                            .windows(secret.len() - 6)
                            .any(|window| window == &secret.as_bytes()[6..]),
                        "{} holds the secret",
                        file.display()
                    );
                }
            }
        }

        // Rotation: a new secret, shown once; deliveries are signed with it, not the old one.
        app.clock.advance(TimeDelta::minutes(5));
        let rotated = app
            .client
            .clone()
            .rotate_webhook_secret(authed(
                &app.admin_key,
                v1::RotateWebhookSecretRequest {
                    id: endpoint.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let new_secret = rotated.signing_secret;
        assert!(new_secret.starts_with("whsec_") && new_secret != secret);
        let rotated_endpoint = rotated.webhook_endpoint.unwrap();
        assert_eq!(rotated_endpoint.create_time, endpoint.create_time);
        assert_eq!(
            to_time(rotated_endpoint.secret_rotate_time.as_ref().unwrap()),
            app.clock_now()
        );
        receiver.trust(&new_secret);
        let organization_id = default_organization(&app).await;
        enqueue_event(&app, organization_id).await;
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
        let received = receiver.received();
        assert_eq!(received[0].signature, SignatureCheck::Valid);
        let old = SigningSecret::parse(&secret).unwrap();
        assert_eq!(
            old.verify(
                received[0].header("keyrack-signature"),
                received[0].body.as_bytes(),
                app.clock_now(),
                DEFAULT_SIGNATURE_TOLERANCE,
            ),
            SignatureCheck::Mismatch
        );
    }
}

#[tokio::test]
async fn endpoints_are_listed_in_pages_and_another_organizations_are_not_found() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let created = create_endpoint(&app, &format!("https://hooks.example.com/{n}"))
                .await
                .unwrap();
            ids.push(created.webhook_endpoint.unwrap().id);
        }
        let mut client = app.client.clone();
        let page = |token: &str| v1::ListWebhookEndpointsRequest {
            page_size: 2,
            page_token: token.into(),
        };
        let first = client
            .list_webhook_endpoints(authed(&app.admin_key, page("")))
            .await
            .unwrap()
            .into_inner();
        let second = client
            .list_webhook_endpoints(authed(&app.admin_key, page(&first.next_page_token)))
            .await
            .unwrap()
            .into_inner();
        let listed: Vec<String> = first
            .webhook_endpoints
            .iter()
            .chain(&second.webhook_endpoints)
            .map(|endpoint| endpoint.id.clone())
            .collect();
        assert_eq!(listed, ids, "oldest first");
        assert!(second.next_page_token.is_empty());

        // Another organization neither sees nor touches them.
        let other = app.other_organization_admin("other").await;
        let listed = client
            .list_webhook_endpoints(authed(&other, v1::ListWebhookEndpointsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.webhook_endpoints.is_empty());
        let status = client
            .delete_webhook_endpoint(authed(
                &other,
                v1::DeleteWebhookEndpointRequest { id: ids[0].clone() },
            ))
            .await
            .unwrap_err();
        assert_status(
            &status,
            Code::NotFound,
            "not_found",
            Some("webhook endpoint not found"),
        );
        let status = client
            .rotate_webhook_secret(authed(
                &other,
                v1::RotateWebhookSecretRequest { id: ids[0].clone() },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        // Malformed ids and filters name their field.
        for (status, field) in [
            (
                client
                    .delete_webhook_endpoint(authed(
                        &app.admin_key,
                        v1::DeleteWebhookEndpointRequest { id: "nope".into() },
                    ))
                    .await
                    .unwrap_err(),
                "id",
            ),
            (
                client
                    .list_webhook_deliveries(authed(
                        &app.admin_key,
                        v1::ListWebhookDeliveriesRequest {
                            event_id: "nope".into(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap_err(),
                "event_id",
            ),
            (
                client
                    .list_webhook_deliveries(authed(
                        &app.admin_key,
                        v1::ListWebhookDeliveriesRequest {
                            state: 42,
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap_err(),
                "state",
            ),
        ] {
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            let info = status.get_details_error_info().unwrap();
            assert_eq!(info.metadata["field"], field, "{status:?}");
        }
    }
}

#[tokio::test]
async fn deleting_an_endpoint_stops_its_deliveries() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let receiver = Receiver::start(&app.clock).await;
        let created = create_endpoint(&app, &receiver.url).await.unwrap();
        receiver.trust(&created.signing_secret);
        receiver.answer(&[StatusCode::INTERNAL_SERVER_ERROR]);
        let endpoint_id = created.webhook_endpoint.unwrap().id;
        let organization_id = default_organization(&app).await;
        let (event_id, _, _) = enqueue_event(&app, organization_id).await;
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);

        let mut client = app.client.clone();
        let delete = || v1::DeleteWebhookEndpointRequest {
            id: endpoint_id.clone(),
        };
        client
            .delete_webhook_endpoint(authed(&app.admin_key, delete()))
            .await
            .unwrap();
        // Its pending delivery is abandoned: failed, never attempted again.
        app.clock.advance(TimeDelta::hours(2));
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 0);
        assert_eq!(receiver.received().len(), 1);
        let delivery = the_delivery(&app, event_id).await;
        assert_eq!(delivery.state(), v1::DeliveryState::Failed);
        assert_eq!(delivery.attempts.len(), 1);
        // New events are not queued for it, and it is gone from the API.
        let (_, _, queued) = enqueue_event(&app, organization_id).await;
        assert_eq!(queued, 0);
        let listed = client
            .list_webhook_endpoints(authed(
                &app.admin_key,
                v1::ListWebhookEndpointsRequest::default(),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.webhook_endpoints.is_empty());
        let status = client
            .delete_webhook_endpoint(authed(&app.admin_key, delete()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
}

#[tokio::test]
async fn http_urls_are_refused_unless_the_server_allows_them() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        for (url, description) in [
            ("http://127.0.0.1:9/hooks", "must use https"),
            (
                "https://user:secret@hooks.example.com/",
                "must not contain credentials",
            ),
            ("hooks.example.com/a", "not an absolute URL"),
            ("", "required"),
        ] {
            let status = create_endpoint(&app, url).await.unwrap_err();
            assert_status(&status, Code::InvalidArgument, "invalid_request", None);
            assert_eq!(
                status.get_details_error_info().unwrap().metadata["field"],
                "url"
            );
            assert!(status.message().contains(description), "{status:?}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
        let status = create_endpoint(&app, &long).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = app
            .client
            .clone()
            .create_webhook_endpoint(authed(
                &app.admin_key,
                v1::CreateWebhookEndpointRequest {
                    url: "https://hooks.example.com/".into(),
                    description: "d".repeat(201),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            status.get_details_error_info().unwrap().metadata["field"],
            "description"
        );
        create_endpoint(&app, "https://hooks.example.com/")
            .await
            .unwrap();

        let allowing = spawn_webhook_app(&backend).await;
        create_endpoint(&allowing, "http://127.0.0.1:9/hooks")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once() {
    for backend in backends() {
        // Both servers' workers poll often and compete for the same deliveries.
        let eager = WebhookSettings {
            allow_http: true,
            // The receivers listen on loopback.
            allow_private: true,
            poll_interval: Duration::from_millis(20),
            ..WebhookSettings::default()
        };
        let app = spawn_app_configured(&backend, |setup| setup.settings.webhooks = eager).await;
        // A second replica on the same database, its worker as eager.
        let replica =
            spawn_second_server_configured(&app, |setup| setup.settings.webhooks = eager).await;
        let receiver = Receiver::start(&app.clock).await;
        let created = create_endpoint(&app, &receiver.url).await.unwrap();
        receiver.trust(&created.signing_secret);
        let organization_id = default_organization(&app).await;
        let mut events = Vec::new();
        for _ in 0..10 {
            events.push(enqueue_event(&app, organization_id).await.0);
        }
        // Both replicas also drive a round by hand at the same moment.
        let (a, b) = tokio::join!(
            app.keyrack.jobs.webhooks.deliver_due(),
            replica.keyrack.jobs.webhooks.deliver_due()
        );
        a.unwrap();
        b.unwrap();

        // Wait until every delivery has succeeded (the workers run on their own).
        let mut rounds = 0;
        loop {
            let pending = list_deliveries(
                &app,
                v1::ListWebhookDeliveriesRequest {
                    state: v1::DeliveryState::Pending.into(),
                    ..Default::default()
                },
            )
            .await;
            if pending.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 500, "deliveries still pending: {pending:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for request in receiver.received() {
            assert_eq!(request.signature, SignatureCheck::Valid);
            *seen
                .entry(request.header("keyrack-event-id").to_owned())
                .or_default() += 1;
        }
        let expected: HashMap<String, usize> =
            events.iter().map(|event| (event.to_string(), 1)).collect();
        assert_eq!(seen, expected, "each event POSTed exactly once");
        let deliveries = list_deliveries(&app, v1::ListWebhookDeliveriesRequest::default()).await;
        assert_eq!(deliveries.len(), 10);
        assert!(
            deliveries
                .iter()
                .all(|d| d.attempts.len() == 1 && d.state() == v1::DeliveryState::Succeeded)
        );
        replica.stop().await;
    }
}

#[tokio::test]
async fn the_gateway_manages_endpoints_and_lists_deliveries() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let receiver = Receiver::start(&app.clock).await;
        let http = reqwest::Client::new();
        let bearer = format!("Bearer {}", app.admin_key);
        let created = http
            .post(format!("{}/api/webhook-endpoints", app.http))
            .header("authorization", &bearer)
            .json(&json!({"url": receiver.url, "description": "ops"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        let id = created["webhookEndpoint"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret = created["signingSecret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(created["webhookEndpoint"]["url"], receiver.url);
        receiver.trust(&secret);

        let listed: Value = http
            .get(format!("{}/api/webhook-endpoints", app.http))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["data"][0]["id"], id);
        assert_eq!(listed["nextPageToken"], Value::Null);
        assert!(!listed.to_string().contains(&secret));

        let rotated = http
            .post(format!(
                "{}/api/webhook-endpoints/{id}/rotate-secret",
                app.http
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(rotated.status(), 200);
        let rotated: Value = rotated.json().await.unwrap();
        let new_secret = rotated["signingSecret"].as_str().unwrap();
        assert_ne!(new_secret, secret);
        receiver.trust(new_secret);

        let organization_id = default_organization(&app).await;
        let (event_id, _, _) = enqueue_event(&app, organization_id).await;
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
        let deliveries: Value = http
            .get(format!(
                "{}/api/webhook-deliveries?eventId={event_id}&state=succeeded&pageSize=10",
                app.http
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let delivery = &deliveries["data"][0];
        assert_eq!(delivery["eventId"], event_id.to_string());
        assert_eq!(delivery["webhookEndpointId"], id);
        assert_eq!(delivery["state"], "succeeded");
        assert_eq!(delivery["attempts"][0]["statusCode"], 200);

        let bad = http
            .get(format!(
                "{}/api/webhook-deliveries?state=sideways",
                app.http
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);

        let deleted = http
            .delete(format!("{}/api/webhook-endpoints/{id}", app.http))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        let again = http
            .delete(format!("{}/api/webhook-endpoints/{id}", app.http))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404);
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn a_test_alert_reaches_the_endpoint_end_to_end() {
    for backend in backends() {
        let app = spawn_webhook_app(&backend).await;
        let receiver = Receiver::start(&app.clock).await;
        let created = create_endpoint(&app, &receiver.url).await.unwrap();
        receiver.trust(&created.signing_secret);
        let key = app.create_key("ci", &["chat"], "").await.api_key.unwrap();

        // TestAlertRules stores a `test` event and queues it for every endpoint, in one
        // transaction; the worker delivers it.
        let event = app
            .client
            .clone()
            .test_alert_rules(authed(
                &app.admin_key,
                v1::TestAlertRulesRequest {
                    key_id: key.id.clone(),
                    rules: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .test_event
            .unwrap();
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);

        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].signature, SignatureCheck::Valid);
        assert_eq!(received[0].header("keyrack-event-id"), event.id);
        let body: Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(body["id"], event.id);
        assert_eq!(body["type"], "test");
        assert_eq!(body["organizationId"], event.organization_id);
        let delivery = the_delivery(&app, event.id.parse().unwrap()).await;
        assert_eq!(delivery.state(), v1::DeliveryState::Succeeded);
        assert_eq!(
            delivery.webhook_endpoint_id,
            created.webhook_endpoint.unwrap().id
        );
    }
}

/// A tenant's endpoint must not reach the deployment's own network: by default a delivery to a
/// loopback (or private, or link-local) address is refused without connecting, whether the URL
/// names the address or a name that resolves to it, and an attempt's record holds a class of
/// error, never the system's detail that would map ports.
#[tokio::test]
async fn deliveries_to_internal_addresses_are_refused_and_errors_reveal_no_detail() {
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.webhooks = WebhookSettings {
                allow_http: true,
                poll_interval: Duration::from_secs(3600),
                ..WebhookSettings::default()
            };
        })
        .await;
        let receiver = Receiver::start(&app.clock).await;
        let by_name = receiver.url.replace("127.0.0.1", "localhost");
        for url in [receiver.url.as_str(), by_name.as_str()] {
            create_endpoint(&app, url).await.unwrap();
        }
        let (event_id, _, queued) = enqueue_event(&app, default_organization(&app).await).await;
        assert_eq!(queued, 2);
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 2);
        assert!(
            receiver.received().is_empty(),
            "an internal address was reached"
        );
        let deliveries = list_deliveries(
            &app,
            v1::ListWebhookDeliveriesRequest {
                event_id: event_id.to_string(),
                ..Default::default()
            },
        )
        .await;
        for delivery in &deliveries {
            assert_eq!(
                delivery.attempts[0].error,
                "refused: the endpoint's address is not public (--webhook-allow-private allows it)"
            );
        }

        // Allowed (a deployment's own network), a closed port is only "connection failed".
        let allowed = spawn_app_configured(&backend, |setup| {
            setup.settings.webhooks = driven_by_the_test();
        })
        .await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", closed.local_addr().unwrap());
        drop(closed);
        create_endpoint(&allowed, &url).await.unwrap();
        let (event_id, _, _) = enqueue_event(&allowed, default_organization(&allowed).await).await;
        allowed.keyrack.jobs.webhooks.deliver_due().await.unwrap();
        let delivery = the_delivery(&allowed, event_id).await;
        assert_eq!(delivery.attempts[0].error, "connection failed");
    }
}

/// An endpoint that holds every request until the test lets them go, as a tenant's overloaded
/// receiver does until the worker's timeout.
struct HeldReceiver {
    url: String,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl HeldReceiver {
    async fn start() -> HeldReceiver {
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = (
            Arc::clone(&arrived),
            Arc::clone(&release),
            Arc::clone(&released),
        );
        let app = Router::new()
            .route(
                "/hooks",
                post(
                    |State((arrived, release, released)): State<(
                        Arc<std::sync::atomic::AtomicUsize>,
                        Arc<tokio::sync::Notify>,
                        Arc<std::sync::atomic::AtomicBool>,
                    )>| async move {
                        arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let notified = release.notified();
                        if !released.load(std::sync::atomic::Ordering::SeqCst) {
                            notified.await;
                        }
                        StatusCode::OK
                    },
                ),
            )
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HeldReceiver {
            url,
            arrived,
            release,
            released,
        }
    }

    fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn let_go(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.release.notify_waiters();
    }
}

#[tokio::test]
async fn one_tenants_slow_endpoint_does_not_hold_up_another_tenants_deliveries() {
    for backend in backends() {
        let eager = WebhookSettings {
            allow_http: true,
            // The receivers listen on loopback.
            allow_private: true,
            poll_interval: Duration::from_millis(20),
            ..WebhookSettings::default()
        };
        let app = spawn_app_configured(&backend, |setup| setup.settings.webhooks = eager).await;
        // Tenant A: a backlog of 40 events to an endpoint that does not answer.
        let held = HeldReceiver::start().await;
        create_endpoint(&app, &held.url).await.unwrap();
        let tenant_a = default_organization(&app).await;
        for _ in 0..40 {
            enqueue_event(&app, tenant_a).await;
        }
        let mut waited = 0;
        while held.arrived() == 0 {
            waited += 1;
            assert!(waited < 500, "tenant A's deliveries never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Tenant B: one event, to an endpoint that answers at once.
        let b_admin = app.other_organization_admin("tenant-b").await;
        let receiver = Receiver::start(&app.clock).await;
        let created = app
            .client
            .clone()
            .create_webhook_endpoint(authed(
                &b_admin,
                v1::CreateWebhookEndpointRequest {
                    url: receiver.url.clone(),
                    description: "tenant b".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        receiver.trust(&created.signing_secret);
        let tenant_b = app
            .keyrack
            .store
            .find_organization_by_name("tenant-b")
            .await
            .unwrap()
            .unwrap()
            .id;
        enqueue_event(&app, tenant_b).await;

        // B's event arrives while every one of A's attempts is still held, and A holds only
        // its share of the worker.
        let mut waited = 0;
        while receiver.received().is_empty() {
            waited += 1;
            assert!(
                waited < 300,
                "tenant B's delivery waited on tenant A's endpoint"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            held.arrived() <= 4,
            "{} of A's attempts at once",
            held.arrived()
        );
        held.let_go();
    }
}
