//! Refusals, and how each transport hears them: the product's JSON over HTTP, a status with a
//! `google.rpc.ErrorInfo` over gRPC.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body_util::Full;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::v1;

/// The `domain` of the `google.rpc.ErrorInfo` of every gRPC refusal, as Keyrack's own.
pub const ERROR_DOMAIN: &str = "keyrack";

/// The message of a request without a bearer credential (`invalid_api_key`), word for word
/// Keyrack's: the product's message with the fix appended.
pub const MISSING_API_KEY_MESSAGE: &str =
    "The API key provided is invalid: send it as the header Authorization: Bearer YOUR_API_KEY";

/// Keyrack's error codes with the HTTP status and the gRPC code each is answered with, the
/// same table as Keyrack's own front doors (a test in Keyrack's workspace keeps them equal).
pub const ERROR_CODES: [(&str, u16, Code); 20] = [
    ("invalid_api_key", 401, Code::Unauthenticated),
    ("expired_api_key", 401, Code::Unauthenticated),
    ("insufficient_scope", 403, Code::PermissionDenied),
    ("disabled_api_key", 401, Code::Unauthenticated),
    ("ip_not_allowed", 403, Code::PermissionDenied),
    ("usage_exceeded", 429, Code::ResourceExhausted),
    ("invalid_request", 400, Code::InvalidArgument),
    ("not_found", 404, Code::NotFound),
    ("conflict", 409, Code::FailedPrecondition),
    ("method_not_allowed", 405, Code::Unimplemented),
    ("payload_too_large", 413, Code::InvalidArgument),
    ("rate_limited", 429, Code::ResourceExhausted),
    ("unavailable", 503, Code::Unavailable),
    ("overloaded", 503, Code::ResourceExhausted),
    ("invalid_client", 401, Code::Unauthenticated),
    ("invalid_grant", 400, Code::FailedPrecondition),
    ("unauthorized_client", 400, Code::PermissionDenied),
    ("unsupported_grant_type", 400, Code::InvalidArgument),
    ("invalid_scope", 400, Code::InvalidArgument),
    ("internal", 500, Code::Internal),
];

const INVALID_API_KEY: &str = "invalid_api_key";

/// Why a request was not let through: Keyrack's verdict on its key, or Keyrack not answering.
/// The layer answers it ([`Refusal::http_response`], [`Refusal::grpc_status`]);
/// [`KeyrackClient::verify`](crate::KeyrackClient::verify) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    code: &'static str,
    http_status: u16,
    grpc_code: Code,
    message: String,
    /// The required scope the key lacks (`insufficient_scope`).
    scope: Option<String>,
    /// How long until a retry may succeed (`rate_limited`, `overloaded`).
    retry_after: Option<Duration>,
    /// `X-RateLimit-*` of a rate limited verdict.
    rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RateLimit {
    limit: u32,
    remaining: u32,
    reset: i64,
}

impl Refusal {
    /// A refusal with `code` (a row of [`ERROR_CODES`]; an unknown one is `invalid_api_key`, as
    /// Keyrack's REST gateway answers a reason it does not know) and `message`.
    fn new(code: &str, message: impl Into<String>) -> Refusal {
        let row = ERROR_CODES
            .iter()
            .find(|row| row.0 == code)
            .or_else(|| ERROR_CODES.iter().find(|row| row.0 == INVALID_API_KEY))
            .copied()
            .unwrap_or((INVALID_API_KEY, 401, Code::Unauthenticated));
        Refusal {
            code: row.0,
            http_status: row.1,
            grpc_code: row.2,
            message: message.into(),
            scope: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// No bearer credential: Keyrack is not asked.
    pub(crate) fn missing_key() -> Refusal {
        Refusal::new(INVALID_API_KEY, MISSING_API_KEY_MESSAGE)
    }

    /// Keyrack's verdict on a key it did not let through. `required` are the scopes asked
    /// for: an `insufficient_scope` names the first the key lacks, as Keyrack does.
    pub(crate) fn from_verdict(verdict: &v1::VerifyKeyResponse, required: &[String]) -> Refusal {
        let mut refusal = Refusal::new(&verdict.reason, verdict.message.clone());
        if refusal.code == "insufficient_scope" {
            refusal.scope = required
                .iter()
                .find(|scope| !verdict.scopes.contains(scope))
                .cloned();
        }
        if refusal.code == "rate_limited" {
            // Whole seconds, rounded up, as the REST gateway's Retry-After.
            let retry_after = verdict.retry_after.as_ref().map_or(0, |d| {
                d.seconds.max(0) + i64::from(d.nanos > 0 && d.seconds >= 0)
            });
            refusal.retry_after = Some(Duration::from_secs(retry_after.unsigned_abs()));
            refusal.rate_limit = Some(RateLimit {
                limit: verdict.limit,
                remaining: verdict.remaining,
                reset: verdict.reset.as_ref().map_or(0, |t| t.seconds),
            });
        }
        refusal
    }

    /// Keyrack did not give a verdict: unreachable, past the deadline, or failing. The layer
    /// fails closed.
    pub(crate) fn from_status(status: &tonic::Status) -> Refusal {
        let reason = status.get_details_error_info().map(|info| info.reason);
        match reason.as_deref() {
            Some("overloaded") => {
                let mut refusal =
                    Refusal::new("overloaded", "Keyrack is at capacity; retry in a second");
                refusal.retry_after = Some(Duration::from_secs(1));
                refusal
            }
            // Only a required scope Keyrack does not know: this service's configuration.
            Some("invalid_request") => {
                tracing::error!(
                    message = status.message(),
                    "Keyrack refused the layer's required scopes; fix the service's configuration"
                );
                Refusal::new("internal", "internal error")
            }
            _ => {
                tracing::warn!(
                    grpc_status = ?status.code(),
                    message = status.message(),
                    "Keyrack unavailable, refusing the request"
                );
                Refusal::unavailable()
            }
        }
    }

    /// Keyrack did not answer within the deadline.
    pub(crate) fn unavailable() -> Refusal {
        Refusal::new("unavailable", "the service is unavailable, try again")
    }

    /// The code, e.g. `invalid_api_key`; the `code` of the JSON and the gRPC `ErrorInfo.reason`.
    pub fn code(&self) -> &str {
        self.code
    }

    /// The message, e.g. `The API key provided is invalid`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status: 401, 403, 429, 503...
    pub fn http_status(&self) -> StatusCode {
        StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The canonical gRPC code: `UNAUTHENTICATED`, `PERMISSION_DENIED`...
    pub fn grpc_code(&self) -> Code {
        self.grpc_code
    }

    /// How long until a retry may succeed, for a rate limited or overloaded answer.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP answer: `{"error": {"code", "message"}, "status"}` with its status, and
    /// `WWW-Authenticate` on a 401, `Retry-After` and `X-RateLimit-*` when rate limited, as
    /// Keyrack's REST gateway answers.
    pub fn http_response(&self) -> http::Response<Full<Bytes>> {
        let body = serde_json::json!({
            "error": {"code": self.code, "message": self.message},
            "status": self.http_status,
        });
        let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = self.http_status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.http_status == 401 {
            // RFC 6750: tell HTTP clients which scheme is expected.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="keyrack", error="invalid_token""#),
            );
        }
        if let Some(retry_after) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
        }
        if let Some(limit) = self.rate_limit {
            if limit.limit > 0 {
                headers.insert(
                    HeaderName::from_static("x-ratelimit-limit"),
                    HeaderValue::from(limit.limit),
                );
            }
            headers.insert(
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from(limit.remaining),
            );
            headers.insert(
                HeaderName::from_static("x-ratelimit-reset"),
                HeaderValue::from(limit.reset),
            );
        }
        response
    }

    /// The gRPC answer: the canonical code, the message, and a `google.rpc.ErrorInfo` (domain
    /// `keyrack`, the code as reason, the missing `scope` in its metadata), plus a
    /// `google.rpc.RetryInfo` when a retry may succeed later.
    pub fn grpc_status(&self) -> tonic::Status {
        let mut metadata = HashMap::new();
        if let Some(scope) = &self.scope {
            metadata.insert("scope".to_owned(), scope.clone());
        }
        let mut details = ErrorDetails::with_error_info(self.code, ERROR_DOMAIN, metadata);
        if let Some(retry_after) = self.retry_after {
            details.set_retry_info(Some(retry_after));
        }
        tonic::Status::with_error_details(self.grpc_code, self.message.clone(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_reason_is_invalid_api_key_with_the_message_kept() {
        let refusal = Refusal::new("no_such_reason", "Some message");
        assert_eq!(refusal.code(), "invalid_api_key");
        assert_eq!(refusal.http_status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refusal.message(), "Some message");
    }

    #[test]
    fn an_insufficient_scope_names_the_first_missing_scope() {
        let verdict = v1::VerifyKeyResponse {
            reason: "insufficient_scope".into(),
            message: "API key lacks required scope: agents:write".into(),
            scopes: vec!["chat".into(), "agents:read".into()],
            ..Default::default()
        };
        let required = ["agents:read".to_owned(), "agents:write".to_owned()];
        let status = Refusal::from_verdict(&verdict, &required).grpc_status();
        assert_eq!(status.code(), Code::PermissionDenied);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "insufficient_scope");
        assert_eq!(info.domain, "keyrack");
        assert_eq!(info.metadata["scope"], "agents:write");
    }

    #[test]
    fn a_rate_limited_answer_says_when_to_retry() {
        let verdict = v1::VerifyKeyResponse {
            reason: "rate_limited".into(),
            message: "Rate limit exceeded: 1 request per minute".into(),
            retry_after: Some(prost_types::Duration {
                seconds: 41,
                nanos: 5,
            }),
            limit: 1,
            reset: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let response = Refusal::from_verdict(&verdict, &[]).http_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let headers = response.headers();
        assert_eq!(headers[header::RETRY_AFTER], "42");
        assert_eq!(headers["x-ratelimit-limit"], "1");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert_eq!(headers["x-ratelimit-reset"], "1700000000");
    }
}
