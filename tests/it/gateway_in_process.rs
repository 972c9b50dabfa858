//! The gateway of `keyrack serve` calls the key service of its own process in memory
//! (`GrpcServer::local_service`): what a caller sees must be what it saw over loopback, here
//! readiness during a graceful shutdown. The caller's address in the audit log is asserted by
//! `audit::the_gateway_lists_events_with_the_request_id_and_the_callers_address`.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{Backend, spawn_app};

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn while_the_server_drains_the_gateway_is_not_ready_but_still_answers() {
    let app = spawn_app(&Backend::Sqlite).await;
    let key = app.create_key("drain", &["chat"], "").await.key;
    let http = app.http.clone();
    let get = |path: &str, bearer: Option<&str>| {
        let mut request = client().get(format!("{http}{path}"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    assert_eq!(get("/readyz", None).await.unwrap().status(), StatusCode::OK);

    // A health Watch never ends on its own, so the server drains for its whole drain timeout
    // (500 ms in tests) before it stops.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "keyrack.v1.KeyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();

    let mut app = app;
    let stopping = Instant::now();
    let stopped = tokio::spawn(async move {
        app.stop_grpc().await;
        app
    });
    // Not ready as soon as the drain starts, like the gRPC health the gateway reads...
    loop {
        let response = get("/readyz", None).await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["message"], "the key service is not serving");
            break;
        }
        assert!(
            stopping.elapsed() < Duration::from_millis(400),
            "/readyz still 200 during the drain"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...while requests are still answered, as the network's in flight are.
    assert!(stopping.elapsed() < Duration::from_millis(400), "too slow");
    let during = get("/api/auth/verify?scope=chat", Some(&key))
        .await
        .unwrap();
    assert_eq!(during.status(), StatusCode::OK);

    // Once the server has stopped (and flushed its usage), nothing more is taken: 503.
    let _app = stopped.await.unwrap();
    let after = get("/api/auth/verify?scope=chat", Some(&key))
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
}
