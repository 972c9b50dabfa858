//! Standard Webhooks as a signing mode: an endpoint created with `"signing": "standard"` gets a
//! `whsec_<base64>` secret, and its deliveries, received by a real HTTP server in the test,
//! verify with the specification's own Python library (`standardwebhooks`, tools/venv), before
//! and after a rotation (which keeps the mode); an endpoint created without `signing` keeps
//! Keyrack's scheme.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chrono::Utc;
use key_proto::v1;
use key_service::WebhookSettings;
use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;
use tokio::net::TcpListener;

use crate::{
    helpers::{TestApp, authed, backends, spawn_app_configured},
    process::{repo_root, run_bounded, venv_tool},
};

/// One POST as the receiver got it.
#[derive(Debug, Clone)]
struct Delivery {
    headers: HashMap<String, String>,
    body: String,
}

/// A real HTTP server on loopback that records every POST and answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    async fn receive(
        State(received): State<Arc<Mutex<Vec<Delivery>>>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let headers = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        received.lock().unwrap().push(Delivery {
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        });
        StatusCode::OK
    }
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// The deliveries of `test` events `received` (moving the clock to today also raises a
/// `dormant_key_used` alert for the bootstrap key, delivered beside them).
fn test_events(received: &Mutex<Vec<Delivery>>) -> Vec<Delivery> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|delivery| serde_json::from_str::<Value>(&delivery.body).unwrap()["type"] == "test")
        .cloned()
        .collect()
}

async fn rest(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", app.http))
        .bearer_auth(&app.admin_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What `standardwebhooks.Webhook(secret).verify(body, headers)` says of `delivery`: `Ok` with
/// "verified", or `Err` with the library's refusal.
fn python_verifies(secret: &str, delivery: &Delivery) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("delivery.json");
    let input = json!({"secret": secret, "headers": delivery.headers, "body": delivery.body});
    std::fs::write(&path, input.to_string()).unwrap();
    let mut command = Command::new(venv_tool("python"));
    command
        .arg(repo_root().join("tests/webhooks/verify_standard.py"))
        .arg(&path);
    let ran = run_bounded(command, Duration::from_secs(60));
    if ran.status.success() && ran.stdout.trim() == "verified" {
        Ok(())
    } else {
        Err(format!("{}{}", ran.stdout, ran.stderr))
    }
}

/// Sends a `test` alert event to every endpoint (TestAlertRules) and delivers it.
async fn send_test_event(app: &TestApp, key_id: &str) {
    app.client
        .clone()
        .test_alert_rules(authed(
            &app.admin_key,
            v1::TestAlertRulesRequest {
                key_id: key_id.to_owned(),
                rules: None,
            },
        ))
        .await
        .unwrap();
    app.keyrack.jobs.webhooks.deliver_due().await.unwrap();
}

#[tokio::test]
async fn standard_endpoints_deliver_what_the_standardwebhooks_library_verifies() {
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.settings.webhooks = WebhookSettings {
                allow_http: true,
                allow_private: true,
                // The test alone drives deliveries.
                poll_interval: Duration::from_secs(3600),
                ..WebhookSettings::default()
            };
        })
        .await;
        // The library checks the timestamp against the real clock (5 minutes' tolerance).
        app.clock.set(Utc::now());
        let key_id = app
            .create_key("ci", &["chat"], "")
            .await
            .api_key
            .unwrap()
            .id;
        let (standard_url, standard) = receiver().await;
        let (keyrack_url, keyrack) = receiver().await;

        // Created with `signing: standard`: a whsec_ secret whose rest is base64 of 32 bytes.
        let (status, created) = rest(
            &app,
            Method::POST,
            "/api/webhook-endpoints",
            Some(json!({"url": standard_url, "signing": "standard"})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["webhookEndpoint"]["signing"], "standard");
        let secret = created["signingSecret"].as_str().unwrap().to_owned();
        let key = BASE64
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        let standard_id = created["webhookEndpoint"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Without `signing`, Keyrack's scheme, as before.
        let (status, created) = rest(
            &app,
            Method::POST,
            "/api/webhook-endpoints",
            Some(json!({"url": keyrack_url})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["webhookEndpoint"]["signing"], "keyrack");
        // A mode that does not exist names the field.
        let (status, refused) = rest(
            &app,
            Method::POST,
            "/api/webhook-endpoints",
            Some(json!({"url": keyrack_url, "signing": "svix"})),
        )
        .await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused.to_string().contains("signing"), "{refused}");
        // Listed with their modes, over REST and gRPC.
        let (_, listed) = rest(&app, Method::GET, "/api/webhook-endpoints", None).await;
        let modes: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|endpoint| endpoint["signing"].as_str().unwrap())
            .collect();
        assert_eq!(modes, ["standard", "keyrack"]);
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
        assert_eq!(
            listed.webhook_endpoints[0].signing(),
            v1::WebhookSigning::Standard
        );

        send_test_event(&app, &key_id).await;
        let delivered = test_events(&standard);
        assert_eq!(delivered.len(), 1, "{delivered:?}");
        let delivery = &delivered[0];
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        assert_eq!(event["type"], "test");
        // The message id is the event id (the same on every retry), the timestamp now.
        assert_eq!(
            delivery.headers["webhook-id"],
            event["id"].as_str().unwrap()
        );
        assert_eq!(
            delivery.headers["webhook-timestamp"],
            app.clock_now().timestamp().to_string()
        );
        assert!(delivery.headers["webhook-signature"].starts_with("v1,"));
        assert!(!delivery.headers.contains_key("keyrack-signature"));
        python_verifies(&secret, delivery).unwrap();
        // The library is no rubber stamp: a changed body, or another secret, is refused.
        let tampered = Delivery {
            body: delivery.body.replace("test", "tset"),
            ..delivery.clone()
        };
        assert!(python_verifies(&secret, &tampered).is_err());
        let other = format!("whsec_{}", BASE64.encode([7_u8; 32]));
        assert!(python_verifies(&other, delivery).is_err());
        // The keyrack endpoint got Keyrack's signature and no Standard Webhooks headers.
        let delivered = test_events(&keyrack);
        assert_eq!(delivered.len(), 1);
        assert!(delivered[0].headers["keyrack-signature"].starts_with("t="));
        assert!(!delivered[0].headers.contains_key("webhook-signature"));

        // A rotation keeps the mode: a new whsec_ base64 secret, which alone verifies now.
        let (status, rotated) = rest(
            &app,
            Method::POST,
            &format!("/api/webhook-endpoints/{standard_id}/rotate-secret"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{rotated}");
        assert_eq!(rotated["webhookEndpoint"]["signing"], "standard");
        let new_secret = rotated["signingSecret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        assert_eq!(
            BASE64
                .decode(new_secret.strip_prefix("whsec_").unwrap())
                .unwrap()
                .len(),
            32
        );
        send_test_event(&app, &key_id).await;
        let delivered = test_events(&standard);
        assert_eq!(delivered.len(), 2);
        python_verifies(&new_secret, &delivered[1]).unwrap();
        assert!(python_verifies(&secret, &delivered[1]).is_err());
    }
}
