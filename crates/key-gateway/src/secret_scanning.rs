//! `POST /api/secret-scanning/reports`: GitHub's secret-scanning partner endpoint. No bearer
//! credential: the raw body and the `Github-Public-Key-Identifier` and
//! `Github-Public-Key-Signature` headers go upstream untouched (ReportLeakedKeys), where the
//! signature is verified against the configured keys before anything is read. The answer is
//! GitHub's feedback array, one entry per reported token.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
};
use key_proto::{ErrorCode, v1};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    ApiError,
    error::ErrorBody,
    upstream::{Upstream, forward},
};

/// The largest report accepted (413 beyond): key-service's `MAX_REPORT_BYTES`, so that the
/// report and its headers fit in one gRPC message.
pub(crate) const REPORT_BODY_LIMIT: usize = 48 * 1024;

const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";
const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// Receives a GitHub secret-scanning report (`[{"token", "type", "url", "source"}]`, at most
/// 100 tokens and 48 KiB). Each reported Keyrack key is revoked or flagged as its
/// organization's policy says.
#[utoipa::path(
    post, path = "/api/secret-scanning/reports", tag = "secret-scanning",
    request_body(content = String, content_type = "application/json",
        description = "GitHub's report, signed: [{\"token\", \"type\", \"url\", \"source\"}]"),
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "Which of the configured keys signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA (P-256, SHA-256) signature of the raw body"),
    ),
    responses(
        (status = 200, description = "One feedback entry per reported token, in order", body = Vec<LeakFeedbackJson>),
        (status = 400, description = "Not GitHub's JSON, or more than 100 tokens", body = ErrorBody),
        (status = 401, description = "The signature does not verify against a configured key (or none is configured)", body = ErrorBody),
        (status = 413, description = "Body over 48 KiB", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn report(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<LeakFeedbackJson>>, ApiError> {
    // Refused in the API's error shape, as every other body is (`body.rs`).
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "a secret-scanning report is at most 48 KiB",
            )
        } else {
            ApiError::invalid_request(format!("cannot read the request body: {rejection}"))
        }
    })?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let request = v1::ReportLeakedKeysRequest {
        payload: body.to_vec(),
        key_identifier: header(KEY_IDENTIFIER_HEADER),
        signature: header(SIGNATURE_HEADER),
    };
    let response = upstream
        .keys
        .clone()
        .report_leaked_keys(forward(&headers, request))
        .await?
        .into_inner();
    Ok(Json(
        response
            .verdicts
            .into_iter()
            .map(|verdict| LeakFeedbackJson {
                token_hash: verdict.token_hash,
                token_type: verdict.token_type,
                label: if verdict.true_positive {
                    "true_positive"
                } else {
                    "false_positive"
                },
            })
            .collect(),
    ))
}

/// GitHub's feedback on one reported token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeakFeedbackJson {
    /// Lowercase hex SHA-256 of the reported token (never the token itself).
    token_hash: String,
    /// The report's `type` for it.
    token_type: String,
    /// `true_positive` (a Keyrack key of this server, live or not) or `false_positive`.
    #[schema(example = "true_positive")]
    label: &'static str,
}
