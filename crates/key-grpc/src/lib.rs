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
mod context;
mod convert;
mod error;
mod geoip;
mod key_cache;
mod key_lookup;
mod limiter;
mod manager;
mod meter;
mod metrics;
mod organizations;
mod paging;
mod redis_limiter;
mod retention;
mod rotation;
mod server;
mod service;
mod status;
mod usage;
mod webhooks;

pub use alerts::DEFAULT_ALERT_SWEEP_INTERVAL;
pub use audit::{Actor, RequestContext};
pub use auth::Principal;
pub use context::{Country, MAX_TAG_LEN, VerifyContext};
pub use error::Error;
pub use geoip::CountryDb;
pub use key_cache::{
    DEFAULT_KEY_CACHE_CAPACITY, DEFAULT_KEY_CACHE_TTL, DEFAULT_NEGATIVE_CACHE_CAPACITY,
    DEFAULT_NEGATIVE_CACHE_TTL, KeyCacheSettings,
};
pub use limiter::{
    BruteForceGuard, DEFAULT_COOLING_PERIOD, DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_MAX_TRACKED_ADDRESSES, LocalLimiter, RateLimiter, STREAK_IDLE_TIMEOUT,
};
pub use manager::{FLUSH_INTERVAL, KeyManager, NewKeyRequest, Rotation, Verification};
pub use metrics::{ContextField, Metrics, UnknownKeyReason};
pub use redis_limiter::{DEFAULT_REDIS_RETRY_INTERVAL, DEFAULT_REDIS_TIMEOUT, RedisLimiter};
pub use retention::{RETENTION_INTERVAL, UsageRetention};
pub use server::{DEFAULT_DRAIN_TIMEOUT, GrpcServer, LocalService};
pub use status::{ERROR_DOMAIN, status_from_error};
pub use webhooks::WebhookSettings;
