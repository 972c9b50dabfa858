//! Domain errors become gRPC statuses here and nowhere else.

use std::collections::HashMap;

use key_core::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `google.rpc.ErrorInfo.domain` of every Keyrack error.
pub const ERROR_DOMAIN: &str = "keyrack";

/// Turns a domain error into a status: the canonical code from `key_core::ErrorCode`'s table,
/// the error's message, and an `ErrorInfo` whose reason is the platform's error code. Internal
/// details are logged here and never sent.
pub fn status_from_error(error: Error) -> Status {
    let code = error.code();
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
    Status::with_error_details(Code::from_i32(code.grpc_code()), error.to_string(), details)
}
