//! Keyrack's application layer: what Keyrack *does*, under every front door (the gRPC service,
//! the REST gateway through it, and any later one). It knows no transport: no tonic, no axum,
//! no protobuf.
//!
//! - [`verify`]: the hot path, one entry point ([`Verifier::verify`]) owning the pepper, the
//!   key cache, the coalesced lookups, the rate limiter, the brute-force guard, the meter and
//!   the country database.
//! - [`Access`]: authenticating an admin caller by its key, and the audited permission checks.
//! - the operations, one type per resource ([`Keys`], [`Organizations`], [`UsageReports`],
//!   [`AuditLog`], [`Alerts`], [`Webhooks`], [`LeakReports`]): each decides every rule that is
//!   not request shape and writes its audit event in the change's transaction.
//! - [`jobs`]: the usage flusher, retention, the alert sweep and evaluation, webhook delivery;
//!   started by the binary beside the servers ([`Jobs::start`]) and stopped after them.
//! - [`Application::build`] assembles them from [`Parts`] and [`Settings`].
//!
//! Errors are `key_core::Error` throughout; each front door converts them once per handler.

mod access;
mod alerting;
mod app;
mod error;
pub mod jobs;
mod metrics;
mod ops;
mod rate_limit;
mod requester;
mod settings;
mod shards;
pub mod verify;

pub use access::Access;
pub use alerting::ThresholdEvaluation;
pub use app::{Application, Parts};
pub use error::SetupError;
pub use jobs::{CacheNotices, FLUSH_INTERVAL, Jobs, RunningJobs, UsageRetention, WebhookSettings};
/// The store's types that operations return, so front doors need not depend on key-store.
pub use key_store::{
    AlertEvent, DeliveryAttempt, Member, OauthClient, OauthGrant, Organization, Resolution,
    StoredSession, WebhookDelivery, WebhookEndpoint,
};
pub use metrics::{ContextField, Metrics, UnknownKeyReason};
pub use ops::*;
pub use rate_limit::{
    BruteForceGuard, BruteForceSettings, DEFAULT_COOLING_PERIOD, DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_FAILURE_WINDOW, DEFAULT_MAX_TRACKED, DEFAULT_REDIS_RETRY_INTERVAL,
    DEFAULT_REDIS_TIMEOUT, LocalLimiter, RateLimiter, RedisLimiter, Suspect,
};
pub use requester::{Actor, RequestContext, Requester};
pub use settings::Settings;
pub use verify::{
    DEFAULT_KEY_CACHE_TTL, KeyCacheSettings, Mode, Verification, Verifier, VerifyContext,
};
