//! The one error boundary of the gRPC transport: every handler returns `key_core::Error`, and
//! [`status_from_error`] turns it into a `tonic::Status` here and nowhere else.

use std::collections::HashMap;

use key_core::Error;
use key_proto::{ERROR_DOMAIN, ErrorCode};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// Turns a domain error into a status: the canonical code from key-proto's table (through
/// [`wire_code`]), the error's message, and an `ErrorInfo` whose reason is the platform's error
/// code. Internal details are logged here and never sent.
pub fn status_from_error(error: Error) -> Status {
    let code = wire_code(error.code());
    let mut metadata = HashMap::new();
    match &error {
        Error::InvalidArgument { field, .. } => {
            metadata.insert("field".to_owned(), (*field).to_owned());
        }
        Error::InsufficientScope(scope) => {
            metadata.insert("scope".to_owned(), scope.as_str().to_owned());
        }
        Error::Internal(detail) => {
            tracing::error!(detail = %detail, "internal error");
        }
        _ => {}
    }
    let details = ErrorDetails::with_error_info(code.reason(), ERROR_DOMAIN, metadata);
    Status::with_error_details(code.grpc_code(), error.to_string(), details)
}

/// The wire's code of a domain error code. Exhaustive, so a new domain code cannot reach the
/// wire unmapped; the test below checks both name it alike.
fn wire_code(code: key_core::ErrorCode) -> ErrorCode {
    use key_core::ErrorCode as Domain;
    match code {
        Domain::InvalidApiKey => ErrorCode::InvalidApiKey,
        Domain::ExpiredApiKey => ErrorCode::ExpiredApiKey,
        Domain::InsufficientScope => ErrorCode::InsufficientScope,
        Domain::DisabledApiKey => ErrorCode::DisabledApiKey,
        Domain::IpNotAllowed => ErrorCode::IpNotAllowed,
        Domain::UsageExceeded => ErrorCode::UsageExceeded,
        Domain::InvalidRequest => ErrorCode::InvalidRequest,
        Domain::NotFound => ErrorCode::NotFound,
        Domain::Conflict => ErrorCode::Conflict,
        Domain::RateLimited => ErrorCode::RateLimited,
        Domain::Unavailable => ErrorCode::Unavailable,
        Domain::InvalidClient => ErrorCode::InvalidClient,
        Domain::InvalidGrant => ErrorCode::InvalidGrant,
        Domain::UnauthorizedClient => ErrorCode::UnauthorizedClient,
        Domain::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
        Domain::InvalidScope => ErrorCode::InvalidScope,
        Domain::Internal => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use key_core::{AuditAction, Scope};

    use super::*;

    #[test]
    fn the_domain_and_the_wire_name_every_code_scope_and_action_alike() {
        for code in key_core::ErrorCode::ALL {
            assert_eq!(wire_code(code).reason(), code.reason());
        }
        assert_eq!(Scope::ALL.map(Scope::as_str), key_proto::SCOPES);
        assert_eq!(
            AuditAction::ALL.map(AuditAction::as_str),
            key_proto::AUDIT_ACTIONS
        );
        assert_eq!(
            Error::MissingApiKey.to_string(),
            key_proto::MISSING_API_KEY_MESSAGE
        );
    }

    #[test]
    fn statuses_carry_the_canonical_code_and_error_info() {
        let status = status_from_error(Error::InsufficientScope(Scope::AgentsWrite));
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "API key lacks required scope: agents:write"
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "insufficient_scope");
        assert_eq!(info.domain, "keyrack");
        assert_eq!(
            info.metadata.get("scope").map(String::as_str),
            Some("agents:write")
        );
    }
}
