//! Leaked-key reports in GitHub's secret-scanning partner format, end to end: a P-256 key pair
//! made here stands in for GitHub's (its public key in a keys file of GitHub's shape), reports
//! are signed with it and POSTed to `/api/secret-scanning/reports`, and the test checks what
//! GitHub would get back and what Keyrack did: the leaked key refused at once, the audit event,
//! the `key_leaked` alert and its webhook delivery; the flag policy; and refusals that change
//! nothing (a bad signature, an unknown key id, no keys configured, oversized reports).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use key_core::{ApiKey, Environment};
use key_proto::v1;
use key_service::{SecretScanningKeys, WebhookSettings};
use ring::{
    digest::{SHA256, digest},
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    helpers::{TestApp, authed, backends, spawn_app, spawn_app_configured},
    process::{LoggedChild, bootstrap_key, keyrack, run_bounded},
};

/// GitHub's stand-in: a P-256 key pair and the keys file that lists its public key.
pub(crate) struct Signer {
    pair: EcdsaKeyPair,
    identifier: String,
    keys_file: String,
}

impl Signer {
    pub(crate) fn new(identifier: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // The PEM as another library writes it (rcgen), as GitHub's API serves its keys.
        let pem = rcgen::KeyPair::try_from(pkcs8.as_ref())
            .unwrap()
            .public_key_pem();
        let keys_file = json!({"public_keys": [
            {"key_identifier": identifier, "key": pem, "is_current": true},
        ]})
        .to_string();
        Signer {
            pair,
            identifier: identifier.to_owned(),
            keys_file,
        }
    }

    pub(crate) fn keys(&self) -> SecretScanningKeys {
        SecretScanningKeys::parse(&self.keys_file).unwrap()
    }

    /// Base64 of the DER signature of `body`, as `Github-Public-Key-Signature` carries it.
    fn sign(&self, body: &[u8]) -> String {
        BASE64.encode(self.pair.sign(&SystemRandom::new(), body).unwrap())
    }
}

/// GitHub's report of `tokens`, found at `url`.
pub(crate) fn report(tokens: &[&str], url: &str) -> String {
    Value::Array(
        tokens
            .iter()
            .map(|token| {
                json!({"token": token, "type": "keyrack_api_key", "url": url, "source": "content"})
            })
            .collect(),
    )
    .to_string()
}

/// POSTs `body` with the given signature headers; the status and the JSON answer.
async fn post_report(
    app: &TestApp,
    body: &str,
    identifier: Option<&str>,
    signature: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/secret-scanning/reports", app.http))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(identifier) = identifier {
        request = request.header("Github-Public-Key-Identifier", identifier);
    }
    if let Some(signature) = signature {
        request = request.header("Github-Public-Key-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn signed(app: &TestApp, signer: &Signer, body: &str) -> (u16, Value) {
    post_report(
        app,
        body,
        Some(&signer.identifier),
        Some(&signer.sign(body.as_bytes())),
    )
    .await
}

fn token_hash(token: &str) -> String {
    digest(&SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn leaked_events(app: &TestApp, key_id: &str) -> Vec<v1::AuditEvent> {
    app.client
        .clone()
        .list_audit_events(authed(
            &app.admin_key,
            v1::ListAuditEventsRequest {
                target: key_id.to_owned(),
                action: "key.leaked".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_events
}

async fn leak_alerts(app: &TestApp, key_id: &str) -> Vec<v1::AlertEvent> {
    app.client
        .clone()
        .list_alert_events(authed(
            &app.admin_key,
            v1::ListAlertEventsRequest {
                key_id: key_id.to_owned(),
                r#type: v1::AlertType::KeyLeaked.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .alert_events
}

async fn get_key(app: &TestApp, id: &str) -> v1::ApiKey {
    app.client
        .clone()
        .get_key(authed(&app.admin_key, v1::GetKeyRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap()
}

/// A real HTTP server on loopback that records the bodies POSTed to it and answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    async fn receive(State(bodies): State<Arc<Mutex<Vec<String>>>>, body: Bytes) -> StatusCode {
        bodies
            .lock()
            .unwrap()
            .push(String::from_utf8(body.to_vec()).unwrap());
        StatusCode::OK
    }
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(Arc::clone(&bodies));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bodies)
}

const URL: &str = "https://github.com/octocat/hello/blob/abc123/config.env";

#[tokio::test]
async fn a_signed_report_revokes_a_leaked_key_audits_alerts_and_delivers() {
    let signer = Signer::new("90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a");
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.parts.secret_scanning_keys = Some(signer.keys());
            setup.settings.webhooks = WebhookSettings {
                allow_http: true,
                allow_private: true,
                poll_interval: Duration::from_secs(3600),
                ..WebhookSettings::default()
            };
        })
        .await;
        let (url, delivered) = receiver().await;
        app.client
            .clone()
            .create_webhook_endpoint(authed(
                &app.admin_key,
                v1::CreateWebhookEndpointRequest {
                    url,
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let leaked = app.create_key("deploy", &["chat"], "").await;
        let leaked_id = leaked.api_key.unwrap().id;
        let bystander = app.create_key("other", &["chat"], "").await.key;
        // Verified once, so the key is in this process's cache: the revocation must drop it.
        assert!(app.verify(&leaked.key, &["chat"]).await.valid);
        let mut look_alike = leaked.key.clone();
        // The same shape, a wrong checksum: a false positive without any lookup.
        look_alike.replace_range(look_alike.len() - 1.., "0");
        if look_alike == leaked.key {
            look_alike.replace_range(look_alike.len() - 1.., "1");
        }
        let unknown = ApiKey::generate(Environment::Live, &SystemRandom::new()).unwrap();
        let unknown = unknown.expose();

        let body = report(&[&leaked.key, &look_alike, unknown], URL);
        let (status, answer) = signed(&app, &signer, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!([
                {"token_hash": token_hash(&leaked.key), "token_type": "keyrack_api_key", "label": "true_positive"},
                {"token_hash": token_hash(&look_alike), "token_type": "keyrack_api_key", "label": "false_positive"},
                {"token_hash": token_hash(unknown), "token_type": "keyrack_api_key", "label": "false_positive"},
            ])
        );
        // Refused at once, by this very process (whose cache held it).
        assert_eq!(
            app.verify(&leaked.key, &["chat"]).await.reason,
            "invalid_api_key"
        );
        assert!(app.verify(&bystander, &["chat"]).await.valid);
        let record = get_key(&app, &leaked_id).await;
        assert!(record.revoke_time.is_some());
        assert_eq!(
            record.revoke_reason,
            format!("leaked: found in public at {URL}")
        );
        // The audit event: by the secret-scanning service, saying what was done and where.
        let events = leaked_events(&app, &leaked_id).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].actor_type, "secret_scanning");
        assert_eq!(events[0].actor_key_id, "");
        assert_eq!(
            events[0].reason,
            format!("revoked: found in content at {URL}")
        );
        // The alert, and its delivery to the organization's endpoint.
        let alerts = leak_alerts(&app, &leaked_id).await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].message.contains(URL), "{alerts:?}");
        assert!(alerts[0].message.contains("revoked"), "{alerts:?}");
        assert_eq!(app.keyrack.jobs.webhooks.deliver_due().await.unwrap(), 1);
        let bodies = delivered.lock().unwrap().clone();
        assert_eq!(bodies.len(), 1);
        let payload: Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(payload["type"], "key_leaked");
        assert_eq!(payload["data"]["keyId"], leaked_id.as_str());
        assert_eq!(payload["data"]["keyName"], "deploy");

        // Reported again (GitHub may find it twice): still a true positive, audited as already
        // revoked, not alerted again.
        let (status, answer) = signed(&app, &signer, &report(&[&leaked.key], URL)).await;
        assert_eq!(status, 200);
        assert_eq!(answer[0]["label"], "true_positive");
        let events = leaked_events(&app, &leaked_id).await;
        assert_eq!(events.len(), 2);
        assert!(
            events[0].reason.starts_with("already revoked"),
            "{events:?}"
        );
        assert_eq!(leak_alerts(&app, &leaked_id).await.len(), 1);
    }
}

#[tokio::test]
async fn the_flag_policy_keeps_a_leaked_key_working_and_alerts() {
    let signer = Signer::new("flag-test-key");
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.parts.secret_scanning_keys = Some(signer.keys());
        })
        .await;
        // The default policy is revoke; an owner sets flag.
        let policy_url = format!("{}/api/organization", app.http);
        let organization: Value = reqwest::Client::new()
            .get(&policy_url)
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(organization["policy"]["leakedKeys"], "revoke");
        let response = reqwest::Client::new()
            .put(format!("{}/api/organization/policy", app.http))
            .bearer_auth(&app.admin_key)
            .json(&json!({"leakedKeys": "flag"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let updated: Value = response.json().await.unwrap();
        assert_eq!(updated["policy"]["leakedKeys"], "flag", "{updated}");

        let leaked = app.create_key("flagged", &["chat"], "").await;
        let leaked_id = leaked.api_key.unwrap().id;
        let (status, answer) = signed(&app, &signer, &report(&[&leaked.key], URL)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer[0]["label"], "true_positive");
        // Still valid, not revoked; the report is in the audit log and the alert.
        assert!(app.verify(&leaked.key, &["chat"]).await.valid);
        assert!(get_key(&app, &leaked_id).await.revoke_time.is_none());
        let events = leaked_events(&app, &leaked_id).await;
        assert_eq!(events.len(), 1);
        assert!(events[0].reason.starts_with("flagged"), "{events:?}");
        let alerts = leak_alerts(&app, &leaked_id).await;
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].message.contains("still works"), "{alerts:?}");
    }
}

#[tokio::test]
async fn unsigned_misdirected_or_oversized_reports_change_nothing() {
    let signer = Signer::new("github-key");
    let impostor = Signer::new("github-key");
    for backend in backends() {
        let app = spawn_app_configured(&backend, |setup| {
            setup.parts.secret_scanning_keys = Some(signer.keys());
        })
        .await;
        let key = app.create_key("victim", &["chat"], "").await;
        let key_id = key.api_key.unwrap().id;
        let body = report(&[&key.key], URL);

        // Signed by another key under the same identifier, by the right key over another body,
        // under an unknown identifier, or not at all: 401, and nothing happens.
        let refusals = [
            (
                Some(signer.identifier.as_str()),
                Some(impostor.sign(body.as_bytes())),
            ),
            (Some(signer.identifier.as_str()), Some(signer.sign(b"[]"))),
            (Some("some-other-key"), Some(signer.sign(body.as_bytes()))),
            (
                Some(signer.identifier.as_str()),
                Some("bm90IGEgc2lnbmF0dXJl".to_owned()),
            ),
            (None, None),
        ];
        for (identifier, signature) in refusals {
            let (status, answer) = post_report(&app, &body, identifier, signature.as_deref()).await;
            assert_eq!(status, 401, "{identifier:?}: {answer}");
            assert_eq!(answer["error"]["code"], "invalid_api_key", "{answer}");
        }
        assert!(app.verify(&key.key, &["chat"]).await.valid);
        assert!(leaked_events(&app, &key_id).await.is_empty());
        assert!(leak_alerts(&app, &key_id).await.is_empty());

        // Signed but not GitHub's JSON, or too many tokens: 400. Too large: 413.
        let (status, _) = signed(&app, &signer, r#"{"token": "x"}"#).await;
        assert_eq!(status, 400);
        let many: Vec<String> = (0..101).map(|n| format!("token{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (status, answer) = signed(&app, &signer, &report(&many, URL)).await;
        assert_eq!(status, 400, "{answer}");
        let huge = report(&[&"x".repeat(50 * 1024)], URL);
        let (status, answer) = signed(&app, &signer, &huge).await;
        assert_eq!(status, 413);
        assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
        assert!(app.verify(&key.key, &["chat"]).await.valid);
    }
    // A server without --secret-scanning-keys accepts no report.
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let key = app.create_key("victim", &["chat"], "").await;
        let body = report(&[&key.key], URL);
        let (status, answer) = signed(&app, &signer, &body).await;
        assert_eq!(status, 401, "{answer}");
        assert!(app.verify(&key.key, &["chat"]).await.valid);
    }
}

#[test]
fn serve_reads_its_secret_scanning_keys_file_and_refuses_a_bad_one() {
    let signer = Signer::new("served-key");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("github-keys.json");
    std::fs::write(&keys, &signer.keys_file).unwrap();
    let data_dir = dir.path().join("data");
    let serve = |keys: &std::path::Path| {
        let mut command = keyrack();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--metrics-listen", "off", "--secret-scanning-keys"])
            .arg(keys)
            .arg("--data-dir")
            .arg(&data_dir);
        command
    };
    let mut served = LoggedChild::spawn(serve(&keys), "serve --secret-scanning-keys");
    served.wait_for_line("keys loaded", Duration::from_secs(30), |line| {
        line.contains("secret-scanning keys loaded").then_some(())
    });
    let http = served.wait_for_line("HTTP gateway listening", Duration::from_secs(30), |line| {
        let after = &line[line.find("HTTP gateway listening")?..];
        let value = &after[after.find("address=")? + "address=".len()..];
        Some(value.split_whitespace().next()?.to_owned())
    });
    let admin = bootstrap_key(&data_dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        // The bootstrap key itself, found in public: revoked by a report signed with the file's
        // key, after which it no longer lists the keys.
        let body = report(&[&admin], URL);
        let response = client
            .post(format!("http://{http}/api/secret-scanning/reports"))
            .header("Github-Public-Key-Identifier", &signer.identifier)
            .header("Github-Public-Key-Signature", signer.sign(body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer[0]["label"], "true_positive", "{answer}");
        let listed = client
            .get(format!("http://{http}/api/api-keys"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 401);
    });
    assert!(served.terminate(Duration::from_secs(30)).success());

    // A file with another kind of key stops the start, naming the flag and the key.
    std::fs::write(
        &keys,
        r#"{"public_keys": [{"key_identifier": "k", "key": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"}]}"#,
    )
    .unwrap();
    let ran = run_bounded(serve(&keys), Duration::from_secs(30));
    assert!(!ran.status.success(), "{ran:?}");
    assert!(
        ran.stderr.contains("--secret-scanning-keys"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("public key 1: not an uncompressed ECDSA P-256 public key"),
        "{}",
        ran.stderr
    );
}
