//! The generated code of the `keyrack.v1` protocol: message types, the `KeyService` client and
//! server stubs, and the encoded file descriptor set that the reflection service serves.
//!
//! Every other crate uses these types; none generates its own.

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
