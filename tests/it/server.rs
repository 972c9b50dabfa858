//! Health and graceful shutdown, as an orchestrator sees them.

use key_proto::v1;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{Backend, authed, spawn_app};

#[tokio::test]
async fn health_reports_serving_then_not_serving_on_shutdown() {
    let mut app = spawn_app(&Backend::Sqlite).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "keyrack.v1.KeyService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }

    let mut watch = health
        .watch(HealthCheckRequest {
            service: "keyrack.v1.KeyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    app.stop().await;
    // The watcher saw NOT_SERVING before the server went away.
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );

    // And the server is gone.
    let refused = app
        .client
        .clone()
        .list_keys(authed(&app.admin_key, v1::ListKeysRequest::default()))
        .await;
    assert!(refused.is_err());
}
