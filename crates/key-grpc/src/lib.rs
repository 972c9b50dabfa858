//! Keyrack's gRPC adapter: the `keyrack.v1.KeyService` implementation over tonic, the
//! authentication layer for admin RPCs, health, reflection, and the assembly that serves them
//! with a graceful shutdown.
//!
//! It only translates. Each handler decodes its request, makes one call into the application
//! (`key-service`), encodes the answer, and returns `key_core::Error`, which `status.rs` turns
//! into a status once per handler.

mod alerts;
mod audit_log;
mod auth;
mod convert;
mod error;
mod ext_authz;
mod keys;
mod leaks;
mod oauth;
mod organizations;
mod server;
mod service;
mod sessions;
mod shed;
mod sso;
mod status;
mod telemetry;
mod usage;
mod webhooks;

pub use error::Error;
pub use server::{DEFAULT_DRAIN_TIMEOUT, GrpcServer, LocalService};
pub use shed::DEFAULT_MAX_IN_FLIGHT;
pub use status::status_from_error;

/// The future of the tower services here (`AuthService`, `TelemetryService`, `Shed`,
/// `LocalService`): boxed, since each wraps an inner future in an `async` block.
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
