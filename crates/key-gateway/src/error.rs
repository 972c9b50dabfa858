//! Errors as the product docs show them:
//! `{"error": {"code": "invalid_api_key", "message": "The API key provided is invalid"}, "status": 401}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use key_proto::ErrorCode;
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;
use utoipa::ToSchema;

/// What starting or running the gateway can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream address is not a valid URI.
    #[error("invalid upstream address {0:?}: {1}")]
    Upstream(String, String),
    /// A file of the upstream's TLS settings cannot be used.
    #[error("upstream TLS: {0}")]
    UpstreamTls(String),
    /// The gateway's own certificate cannot be used.
    #[error(transparent)]
    Tls(#[from] key_tls::Error),
    /// An entry of the trusted proxies is neither an address nor a CIDR network.
    #[error("invalid trusted proxy {0:?}: expected an IP address or a CIDR network")]
    TrustedProxy(String),
    /// The listener failed.
    #[error("HTTP server error: {0}")]
    Io(#[from] std::io::Error),
}

/// An error response. Its status comes from the code, through the one table in key-proto.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// Extra response headers, e.g. `Retry-After` on a 429.
    headers: Vec<(axum::http::HeaderName, HeaderValue)>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
    /// The HTTP status, repeated in the body.
    #[schema(example = 401)]
    pub(crate) status: u16,
}

/// The platform error code and its message.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `invalid_api_key`.
    #[schema(example = "invalid_api_key")]
    pub(crate) code: String,
    /// A human-readable message, e.g. `The API key provided is invalid`.
    #[schema(example = "The API key provided is invalid")]
    pub(crate) message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The error with extra response headers.
    pub(crate) fn with_headers(
        mut self,
        headers: Vec<(axum::http::HeaderName, HeaderValue)>,
    ) -> ApiError {
        self.headers = headers;
        self
    }

    /// A malformed request; `message` names the field.
    pub(crate) fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    /// The 503 of a request the gateway shed, or whose call the gRPC server shed: at capacity,
    /// retry in a second.
    pub(crate) fn overloaded() -> ApiError {
        ApiError::new(
            ErrorCode::Overloaded,
            "Keyrack is at capacity; retry in a second",
        )
        .with_headers(vec![(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(1),
        )])
    }

    /// An unexpected failure; the details belong in the log, never in the response.
    pub(crate) fn internal() -> ApiError {
        ApiError::new(ErrorCode::Internal, "internal error")
    }

    /// The platform error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, as the response's body carries it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.reason().to_owned(),
                message: self.message.clone(),
            },
            status: self.status().as_u16(),
        }
    }

    /// Translates a gRPC status: the `ErrorInfo` reason picks the code, the message is the
    /// service's. A status without one is the transport's (the service is down, the connection
    /// broke) and becomes `unavailable`, or `internal` with details only in the log.
    pub(crate) fn from_status(status: &tonic::Status) -> ApiError {
        let reason = status.get_details_error_info().map(|info| info.reason);
        if let Some(code) = reason.as_deref().and_then(ErrorCode::from_reason) {
            if code == ErrorCode::Overloaded {
                return ApiError::overloaded();
            }
            return ApiError::new(code, status.message());
        }
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(grpc_status = ?status.code(), message = status.message(), "upstream unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the service is unavailable, try again",
                )
            }
            _ => {
                tracing::error!(grpc_status = ?status.code(), message = status.message(), "unexpected upstream error");
                ApiError::internal()
            }
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        ApiError::from_status(&status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        response.headers_mut().extend(self.headers.iter().cloned());
        if self.status() == StatusCode::UNAUTHORIZED {
            // RFC 6750: tell HTTP clients which scheme is expected.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="keyrack", error="invalid_token""#),
            );
        }
        response
    }
}
