//! The words of the wire that both transports speak: the platform's error codes with their HTTP
//! and gRPC statuses, the `google.rpc.ErrorInfo` domain, and the names of scopes and audit
//! actions. They live here, beside the protocol, so that a front door (the REST gateway) can read
//! them without depending on the domain crate; the domain's own types carry the same names, and
//! a test in a crate that sees both keeps the lists in step.

use tonic::Code;

/// The `domain` of every `google.rpc.ErrorInfo` the service attaches to a status.
pub const ERROR_DOMAIN: &str = "keyrack";

/// The scope names, in the product docs' order (key-core's `Scope::ALL`).
pub const SCOPES: [&str; 8] = [
    "chat",
    "agents:read",
    "agents:write",
    "agents:delete",
    "data:read",
    "data:write",
    "analytics:read",
    "admin",
];

/// The audit log's action names, in key-core's `AuditAction::ALL` order.
pub const AUDIT_ACTIONS: [&str; 29] = [
    "key.create",
    "key.rotate",
    "key.update",
    "key.revoke",
    "key.disable",
    "key.enable",
    "auth.denied",
    "organization.create",
    "organization.policy.update",
    "member.add",
    "member.update",
    "member.remove",
    "alert_rules.update",
    "webhook_endpoint.create",
    "webhook_endpoint.delete",
    "webhook_endpoint.rotate_secret",
    "session.create",
    "session.end",
    "sign_in_link.create",
    "key.leaked",
    "oauth_client.create",
    "oauth_client.delete",
    "oauth.consent.grant",
    "oauth.consent.deny",
    "oauth.token.issue",
    "oauth.token.refresh",
    "oauth.token.revoke",
    "oauth.grant.revoke",
    "oauth.reuse_detected",
];

/// The message for a request without a bearer credential (`invalid_api_key`), word for word
/// key-core's `Error::MissingApiKey`: the product's public message, with the fix appended.
pub const MISSING_API_KEY_MESSAGE: &str =
    "The API key provided is invalid: send it as the header Authorization: Bearer YOUR_API_KEY";

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
    /// `disabled_api_key`: the key is disabled until it is enabled again.
    DisabledApiKey,
    /// `ip_not_allowed`: the key's IP allowlist refuses the client's address.
    IpNotAllowed,
    /// `usage_exceeded`: the key's credits are spent (until its refill, if it has one).
    UsageExceeded,
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
    /// `overloaded`: the front door is at its bound on requests in flight; retry in a second.
    Overloaded,
    /// `invalid_client`: OAuth client authentication failed (RFC 6749 5.2).
    InvalidClient,
    /// `invalid_grant`: an OAuth authorization code or refresh token that is invalid, expired,
    /// revoked, used already, or not the client's (RFC 6749 5.2).
    InvalidGrant,
    /// `unauthorized_client`: the OAuth client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`: a token request's grant type is not one the server offers.
    UnsupportedGrantType,
    /// `invalid_scope`: requested OAuth scopes are unknown or exceed what was granted.
    InvalidScope,
    /// `internal`
    Internal,
}

/// One row per code: the code, its reason string, its HTTP status and its gRPC code.
const TABLE: [(ErrorCode, &str, u16, Code); 20] = [
    (
        ErrorCode::InvalidApiKey,
        "invalid_api_key",
        401,
        Code::Unauthenticated,
    ),
    (
        ErrorCode::ExpiredApiKey,
        "expired_api_key",
        401,
        Code::Unauthenticated,
    ),
    (
        ErrorCode::InsufficientScope,
        "insufficient_scope",
        403,
        Code::PermissionDenied,
    ),
    // As an expired key: the credential does not work now, whatever the request.
    (
        ErrorCode::DisabledApiKey,
        "disabled_api_key",
        401,
        Code::Unauthenticated,
    ),
    // As a missing scope: the credential is good, but not from where it is used.
    (
        ErrorCode::IpNotAllowed,
        "ip_not_allowed",
        403,
        Code::PermissionDenied,
    ),
    // As a rate limit: the credential is good, but its uses are spent for now.
    (
        ErrorCode::UsageExceeded,
        "usage_exceeded",
        429,
        Code::ResourceExhausted,
    ),
    (
        ErrorCode::InvalidRequest,
        "invalid_request",
        400,
        Code::InvalidArgument,
    ),
    (ErrorCode::NotFound, "not_found", 404, Code::NotFound),
    (
        ErrorCode::Conflict,
        "conflict",
        409,
        Code::FailedPrecondition,
    ),
    (
        ErrorCode::MethodNotAllowed,
        "method_not_allowed",
        405,
        Code::Unimplemented,
    ),
    (
        ErrorCode::PayloadTooLarge,
        "payload_too_large",
        413,
        Code::InvalidArgument,
    ),
    (
        ErrorCode::RateLimited,
        "rate_limited",
        429,
        Code::ResourceExhausted,
    ),
    (
        ErrorCode::Unavailable,
        "unavailable",
        503,
        Code::Unavailable,
    ),
    (
        ErrorCode::Overloaded,
        "overloaded",
        503,
        Code::ResourceExhausted,
    ),
    // OAuth 2.0's token endpoint errors (RFC 6749 5.2): 401 for a failed client
    // authentication, 400 for everything else.
    (
        ErrorCode::InvalidClient,
        "invalid_client",
        401,
        Code::Unauthenticated,
    ),
    (
        ErrorCode::InvalidGrant,
        "invalid_grant",
        400,
        Code::FailedPrecondition,
    ),
    (
        ErrorCode::UnauthorizedClient,
        "unauthorized_client",
        400,
        Code::PermissionDenied,
    ),
    (
        ErrorCode::UnsupportedGrantType,
        "unsupported_grant_type",
        400,
        Code::InvalidArgument,
    ),
    (
        ErrorCode::InvalidScope,
        "invalid_scope",
        400,
        Code::InvalidArgument,
    ),
    (ErrorCode::Internal, "internal", 500, Code::Internal),
];

impl ErrorCode {
    /// Every code, in the table's order.
    pub const ALL: [ErrorCode; 20] = {
        let mut all = [ErrorCode::Internal; 20];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> (ErrorCode, &'static str, u16, Code) {
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

    /// The canonical gRPC status code.
    pub fn grpc_code(self) -> Code {
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
            assert_eq!(TABLE.iter().filter(|row| row.1 == reason).count(), 1);
            assert_eq!(ErrorCode::from_reason(reason), Some(code));
            assert_eq!(code.reason(), reason);
        }
        assert_eq!(ErrorCode::ALL, TABLE.map(|row| row.0));
        assert_eq!(ErrorCode::from_reason("no_such_reason"), None);
    }

    #[test]
    fn statuses_match_the_product_docs() {
        assert_eq!(ErrorCode::InvalidApiKey.http_status(), 401);
        assert_eq!(ErrorCode::ExpiredApiKey.http_status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.http_status(), 403);
    }

    #[test]
    fn grpc_codes_are_the_canonical_ones() {
        // google.rpc.Code numbers, as key-core's table gives them.
        let numbers = [
            16, 16, 7, 16, 7, 8, 3, 5, 9, 12, 3, 8, 14, 8, 16, 9, 7, 3, 3, 13,
        ];
        for (code, number) in ErrorCode::ALL.into_iter().zip(numbers) {
            assert_eq!(i32::from(code.grpc_code()), number, "{code:?}");
        }
    }

    #[test]
    fn names_are_unique() {
        for list in [&SCOPES[..], &AUDIT_ACTIONS[..]] {
            let mut names = list.to_vec();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), list.len());
        }
    }
}
