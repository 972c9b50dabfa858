//! The generated code of the `keyrack.v1` protocol: message types, the `KeyService` client and
//! server stubs, and the encoded file descriptor set that the reflection service serves; and the
//! wire's vocabulary that both transports read: the error codes with their HTTP and gRPC
//! statuses, the scope and audit action names, and the one parser of the bearer credential.
//!
//! Every other crate uses these types; none generates its own.

mod bearer;
pub mod envoy;
mod metadata;
mod vocabulary;

pub use bearer::{BearerError, bearer_token};
pub use metadata::{METADATA_HEADER, metadata_header_value};
pub use vocabulary::{AUDIT_ACTIONS, ERROR_DOMAIN, ErrorCode, MISSING_API_KEY_MESSAGE, SCOPES};

/// The `keyrack.v1` package.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("keyrack.v1");
}

/// The encoded `FileDescriptorSet` of keyrack.v1, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keyrack_descriptor");
