//! Load shedding through the real binary: with one call allowed in flight and that one held
//! (a write waiting for a database lock the test holds), the next call is refused at once,
//! over gRPC with RESOURCE_EXHAUSTED `overloaded` and a RetryInfo, over REST with 503 and
//! `Retry-After: 1`; health checks still answer; once the held call ends, calls are admitted
//! again; and the refusal wrote no access-log line.

use std::time::{Duration, Instant};

use key_proto::v1::{self, key_service_client::KeyServiceClient};
use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    helpers::authed,
    process::{LoggedChild, TIMEOUT, bootstrap_key, keyrack},
    redis_limiter::logged_address,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_in_flight_bound_calls_are_refused_at_once_and_health_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = keyrack();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--metrics-listen", "off"])
        .args(["--max-in-flight", "1", "--http-max-in-flight", "1"])
        .arg("--data-dir")
        .arg(dir.path());
    let mut served = LoggedChild::spawn(command, "serve");
    let (mut grpc, mut http) = (None, None);
    while grpc.is_none() || http.is_none() {
        let (g, h) = served.wait_for_line("listening", TIMEOUT, |line| {
            logged_address(line, "gRPC server listening")
                .map(|a| (Some(a), None))
                .or_else(|| logged_address(line, "HTTP gateway listening").map(|a| (None, Some(a))))
        });
        grpc = grpc.or(g);
        http = http.or(h);
    }
    let (grpc, http) = (grpc.unwrap(), http.unwrap());
    let admin = bootstrap_key(dir.path());
    let client = KeyServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let web = reqwest::Client::builder().no_proxy().build().unwrap();

    // The test takes SQLite's write lock: a key creation then waits (up to the store's
    // statement timeout) and holds the one place in flight.
    let mut options = ConnectOptions::new(format!(
        "sqlite://{}",
        dir.path().join("keyrack.db").display()
    ));
    options.max_connections(1).sqlx_logging(false);
    let locker = Database::connect(options).await.unwrap();
    locker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();

    let held = {
        let mut client = client.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            client
                .create_key(authed(
                    &admin,
                    v1::CreateKeyRequest {
                        name: "held".into(),
                        scopes: vec!["chat".into()],
                        ..Default::default()
                    },
                ))
                .await
        })
    };
    let held_http = {
        let (web, http, admin) = (web.clone(), http.clone(), admin.clone());
        tokio::spawn(async move {
            web.post(format!("http://{http}/api/api-keys"))
                .bearer_auth(admin)
                .json(&serde_json::json!({"name": "held", "scopes": ["chat"]}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let refused = client
        .clone()
        .verify_key(v1::VerifyKeyRequest {
            key: "sk_live_whatever".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let details = refused.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "overloaded");
    assert_eq!(
        details.retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(1))
    );
    let health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .check(tonic_health::pb::HealthCheckRequest::default())
    .await;
    assert!(health.is_ok(), "{health:?}");

    let shed = web
        .get(format!("http://{http}/api/auth/verify"))
        .bearer_auth("sk_live_whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(body["status"], 503, "{body}");
    let healthz = web
        .get(format!("http://{http}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);

    // The lock goes; the held calls finish, and the next ones are admitted.
    locker.execute_unprepared("ROLLBACK").await.unwrap();
    held.await.unwrap().unwrap();
    assert_eq!(held_http.await.unwrap(), 201);
    let admitted = client
        .clone()
        .verify_key(v1::VerifyKeyRequest {
            key: "sk_live_whatever".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(admitted.code(), v1::VerifyCode::InvalidApiKey);
    assert!(served.terminate(TIMEOUT).success(), "{}", served.stderr());
    // Refusals are counted, not logged one by one: under overload a line per refusal would
    // add a log storm. Admitted calls keep their line.
    let stderr = served.stderr();
    let access = |status: &str| {
        stderr.lines().any(|line| {
            line.contains("grpc call") && line.contains("VerifyKey") && line.contains(status)
        })
    };
    assert!(access("status=0"), "{stderr}");
    assert!(!access("status=8"), "{stderr}");
}
