//! `/healthz` (the process is up) and `/readyz` (the key service answers SERVING), and their
//! JSON shape.

use axum::{Json, extract::State};
use key_proto::ErrorCode;
use serde::Serialize;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use utoipa::ToSchema;

use crate::{ApiError, error::ErrorBody, upstream::Upstream};

/// The gateway process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Up", body = HealthJson)))]
pub(crate) async fn healthz() -> Json<HealthJson> {
    Json(HealthJson {
        status: "ok".to_owned(),
    })
}

/// The upstream key service reports SERVING.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthJson),
        (status = 503, description = "The key service is not serving", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(upstream): State<Upstream>) -> Result<Json<HealthJson>, ApiError> {
    let request = HealthCheckRequest {
        service: "keyrack.v1.KeyService".to_owned(),
    };
    let status = upstream
        .health
        .clone()
        .check(request)
        .await
        .map(|r| r.into_inner().status());
    match status {
        Ok(ServingStatus::Serving) => Ok(Json(HealthJson {
            status: "ready".to_owned(),
        })),
        _ => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the key service is not serving",
        )),
    }
}

/// Liveness and readiness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthJson {
    /// `ok` or `ready`.
    pub(crate) status: String,
}
