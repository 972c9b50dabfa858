//! Keyrack's gRPC server: the `keyrack.v1.KeyService` implementation, the authentication
//! layer for admin RPCs, health, reflection, and the assembly that serves them with a graceful
//! shutdown.
//!
//! Handlers translate between protobuf and the domain; decisions live in [`KeyManager`] and
//! `key-core`.

mod alerts;
mod audit;
mod audit_log;
mod auth;
mod convert;
mod error;
mod limiter;
mod manager;
mod meter;
mod metrics;
mod organizations;
mod paging;
mod rotation;
mod server;
mod service;
mod status;
mod webhooks;

pub use audit::{Actor, RequestContext};
pub use auth::Principal;
pub use error::Error;
pub use limiter::{
    BruteForceGuard, DEFAULT_COOLING_PERIOD, DEFAULT_FAILURE_THRESHOLD, Limiter, LocalLimiter,
};
pub use manager::{FLUSH_INTERVAL, KeyManager, NewKeyRequest, Rotation, Verification};
pub use metrics::{ContextField, Metrics, UnknownKeyReason};
pub use server::{DEFAULT_DRAIN_TIMEOUT, GrpcServer};
pub use status::{ERROR_DOMAIN, status_from_error};
