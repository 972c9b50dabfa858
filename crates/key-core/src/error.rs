use chrono::NaiveDate;

use crate::Scope;

/// Everything that can go wrong in Keyrack's domain, in the platform's terms.
///
/// The messages of the first three variants are the product's public messages, word for word.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed, unknown or revoked key.
    #[error("The API key provided is invalid")]
    InvalidApiKey,
    /// No credential was presented at all, or not as a bearer token.
    #[error(
        "The API key provided is invalid: send it as the header Authorization: Bearer YOUR_API_KEY"
    )]
    MissingApiKey,
    /// The key's expiry has passed; the date is the last day it worked (UTC).
    #[error("API key expired on {0}")]
    ExpiredApiKey(NaiveDate),
    /// The key is valid but lacks a scope the operation needs.
    #[error("API key lacks required scope: {0}")]
    InsufficientScope(Scope),
    /// The caller's key is valid but the operation is not allowed to it for a reason other than a
    /// missing scope (e.g. it needs an operator key).
    #[error("{0}")]
    Forbidden(String),
    /// A request field is malformed; `field` names it.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The request field, e.g. `scopes`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The thing does not exist, or belongs to another organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well formed but the key's state forbids it, e.g. rotating a revoked key.
    #[error("{0}")]
    Conflict(String),
    /// A rate limit of the key is exhausted (`Rate limit exceeded: 100 requests per minute`).
    #[error("Rate limit exceeded: {0}")]
    RateLimited(crate::RateLimit),
    /// The client's address failed too many verifications in a row and is cooling off.
    #[error("Rate limit exceeded: too many failed verifications, try again later")]
    TooManyFailures,
    /// A dependency (the database) cannot be reached.
    #[error("the service is unavailable, try again")]
    Unavailable,
    /// A bug or an unexpected state; details go to the log, never to the caller.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The platform error code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidApiKey | Error::MissingApiKey => ErrorCode::InvalidApiKey,
            Error::ExpiredApiKey(_) => ErrorCode::ExpiredApiKey,
            Error::InsufficientScope(_) | Error::Forbidden(_) => ErrorCode::InsufficientScope,
            Error::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RateLimited(_) | Error::TooManyFailures => ErrorCode::RateLimited,
            Error::Unavailable => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The platform's error codes, and the one table that maps each to its HTTP status and its
/// canonical gRPC status code. The gRPC server and the REST gateway both read this table, so a
/// code means the same thing on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `invalid_api_key`
    InvalidApiKey,
    /// `expired_api_key`
    ExpiredApiKey,
    /// `insufficient_scope`
    InsufficientScope,
    /// `invalid_request`
    InvalidRequest,
    /// `not_found`
    NotFound,
    /// `conflict`: the key's current state forbids the change.
    Conflict,
    /// `method_not_allowed`: an HTTP route exists, but not with this method.
    MethodNotAllowed,
    /// `payload_too_large`: an HTTP body over the gateway's limit.
    PayloadTooLarge,
    /// `rate_limited`
    RateLimited,
    /// `unavailable`
    Unavailable,
    /// `internal`
    Internal,
}

/// One row per code: the code, its reason string, its HTTP status, its gRPC code number
/// (`google.rpc.Code`: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 7 PERMISSION_DENIED,
/// 8 RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION, 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE,
/// 16 UNAUTHENTICATED).
const TABLE: [(ErrorCode, &str, u16, i32); 11] = [
    (ErrorCode::InvalidApiKey, "invalid_api_key", 401, 16),
    (ErrorCode::ExpiredApiKey, "expired_api_key", 401, 16),
    (ErrorCode::InsufficientScope, "insufficient_scope", 403, 7),
    (ErrorCode::InvalidRequest, "invalid_request", 400, 3),
    (ErrorCode::NotFound, "not_found", 404, 5),
    (ErrorCode::Conflict, "conflict", 409, 9),
    (ErrorCode::MethodNotAllowed, "method_not_allowed", 405, 12),
    (ErrorCode::PayloadTooLarge, "payload_too_large", 413, 3),
    (ErrorCode::RateLimited, "rate_limited", 429, 8),
    (ErrorCode::Unavailable, "unavailable", 503, 14),
    (ErrorCode::Internal, "internal", 500, 13),
];

impl ErrorCode {
    fn row(self) -> (ErrorCode, &'static str, u16, i32) {
        // The table lists every variant exactly once (a unit test checks it).
        TABLE
            .into_iter()
            .find(|row| row.0 == self)
            .unwrap_or(TABLE[TABLE.len() - 1])
    }

    /// The reason string, as in `{"error": {"code": …}}` and `google.rpc.ErrorInfo.reason`.
    pub fn reason(self) -> &'static str {
        self.row().1
    }

    /// The HTTP status the REST gateway answers with.
    pub fn http_status(self) -> u16 {
        self.row().2
    }

    /// The canonical gRPC status code number.
    pub fn grpc_code(self) -> i32 {
        self.row().3
    }

    /// The code with this reason string, if any.
    pub fn from_reason(reason: &str) -> Option<ErrorCode> {
        TABLE
            .into_iter()
            .find(|row| row.1 == reason)
            .map(|row| row.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_exactly_one_row() {
        for (code, reason, _, _) in TABLE {
            assert_eq!(TABLE.iter().filter(|row| row.0 == code).count(), 1);
            assert_eq!(ErrorCode::from_reason(reason), Some(code));
            assert_eq!(code.reason(), reason);
        }
    }

    #[test]
    fn product_messages_are_exact() {
        assert_eq!(
            Error::InvalidApiKey.to_string(),
            "The API key provided is invalid"
        );
        let date = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
        assert_eq!(
            Error::ExpiredApiKey(date).to_string(),
            "API key expired on 2024-12-31"
        );
        assert_eq!(
            Error::InsufficientScope(Scope::AgentsWrite).to_string(),
            "API key lacks required scope: agents:write"
        );
    }

    #[test]
    fn statuses_match_the_product_docs() {
        assert_eq!(ErrorCode::InvalidApiKey.http_status(), 401);
        assert_eq!(ErrorCode::ExpiredApiKey.http_status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.http_status(), 403);
    }
}
