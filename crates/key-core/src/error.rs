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
    /// The key exists but is disabled (until it is enabled again).
    #[error("API key is disabled")]
    DisabledApiKey,
    /// The key has an IP allowlist and the client's address is not on it, or no client address
    /// was given.
    #[error("API key is not allowed from this IP address")]
    IpNotAllowed,
    /// The key has credits and fewer left than the verification's cost.
    #[error("API key usage limit exceeded")]
    UsageExceeded,
    /// A request authenticated otherwise than by a key (a signed secret-scanning report) whose
    /// credential does not verify: `invalid_api_key`'s status (401), with its own message.
    #[error("{0}")]
    Unauthenticated(&'static str),
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
    /// An OAuth refusal at the token endpoint (RFC 6749 §5.2), with its description.
    #[error("{1}")]
    Oauth(crate::OauthError, String),
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
            Error::InvalidApiKey | Error::MissingApiKey | Error::Unauthenticated(_) => {
                ErrorCode::InvalidApiKey
            }
            Error::ExpiredApiKey(_) => ErrorCode::ExpiredApiKey,
            Error::DisabledApiKey => ErrorCode::DisabledApiKey,
            Error::IpNotAllowed => ErrorCode::IpNotAllowed,
            Error::UsageExceeded => ErrorCode::UsageExceeded,
            Error::InsufficientScope(_) | Error::Forbidden(_) => ErrorCode::InsufficientScope,
            Error::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RateLimited(_) | Error::TooManyFailures => ErrorCode::RateLimited,
            Error::Oauth(error, _) => match error {
                crate::OauthError::InvalidClient => ErrorCode::InvalidClient,
                crate::OauthError::InvalidGrant => ErrorCode::InvalidGrant,
                crate::OauthError::UnauthorizedClient => ErrorCode::UnauthorizedClient,
                crate::OauthError::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
                crate::OauthError::InvalidScope => ErrorCode::InvalidScope,
            },
            Error::Unavailable => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The platform's error codes that the domain produces, by their reason strings: the `code` of
/// `{"error": {"code": …}}`, `google.rpc.ErrorInfo.reason`, and the usage `code` of a refused
/// verification. How each travels (HTTP status, gRPC code) is the wire's business: key-proto's
/// `ErrorCode` table, which also holds the codes only a transport produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `invalid_api_key`
    InvalidApiKey,
    /// `expired_api_key`
    ExpiredApiKey,
    /// `insufficient_scope`
    InsufficientScope,
    /// `disabled_api_key`
    DisabledApiKey,
    /// `ip_not_allowed`
    IpNotAllowed,
    /// `usage_exceeded`
    UsageExceeded,
    /// `invalid_request`
    InvalidRequest,
    /// `not_found`
    NotFound,
    /// `conflict`: the key's current state forbids the change.
    Conflict,
    /// `rate_limited`
    RateLimited,
    /// `unavailable`
    Unavailable,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `internal`
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::InvalidApiKey,
        ErrorCode::ExpiredApiKey,
        ErrorCode::InsufficientScope,
        ErrorCode::DisabledApiKey,
        ErrorCode::IpNotAllowed,
        ErrorCode::UsageExceeded,
        ErrorCode::InvalidRequest,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidScope,
        ErrorCode::Internal,
    ];

    /// The reason string, e.g. `invalid_api_key`.
    pub const fn reason(self) -> &'static str {
        match self {
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::ExpiredApiKey => "expired_api_key",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::DisabledApiKey => "disabled_api_key",
            ErrorCode::IpNotAllowed => "ip_not_allowed",
            ErrorCode::UsageExceeded => "usage_exceeded",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct() {
        for code in ErrorCode::ALL {
            let same = ErrorCode::ALL
                .iter()
                .filter(|other| other.reason() == code.reason())
                .count();
            assert_eq!(same, 1, "{code:?}");
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
}
