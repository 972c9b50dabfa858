//! Keyrack's persistence: sea-orm entities, migrations and the repository API.
//!
//! Only this crate knows SQL. The same code runs on SQLite (the embedded default) and on
//! PostgreSQL (production); the backend is picked by the database URL.

mod activity;
mod alerts;
mod audit;
mod bulk;
mod connect;
// sea-orm's derives generate `pub` items inside these crate-private modules.
#[allow(unreachable_pub)]
mod entity;
mod error;
mod keys;
mod members;
mod migration;
mod notices;
mod oauth;
mod organizations;
mod sessions;
mod settings;
mod sqlite_reads;
mod store;
mod usage;
mod usage_query;
mod usage_retention;
mod webhooks;

pub use activity::{FlushReport, KeyActivity};
pub use alerts::{AlertEvent, AlertEventFilter, AlertKey, PeriodCount};
pub use audit::AuditFilter;
pub use connect::StoreTimeouts;
pub use error::Error;
pub use keys::{
    FoundKey, KeyChanges, KeyFilter, KeyRotation, MAX_DIGESTS_PER_QUERY, NewKey, Spend,
};
pub use members::Member;
pub use notices::{
    CacheNotice, HEARTBEAT_DEADLINE, HEARTBEAT_INTERVAL, ListenerError, NoticeListener,
};
pub use oauth::{
    AuthorizationCode, CodeRedemption, NewToken, OauthClient, OauthGrant, StoredToken, TokenUse,
    USED_CODE_RETENTION,
};
pub use organizations::Organization;
pub use sessions::{MAX_SESSIONS_PER_PRINCIPAL, StoredSession};
pub use store::Store;
pub use usage::{Dimension, KeyUse, Resolution, UsageCount};
pub use usage_query::{KeyOwner, UsageKeys, UsageRow};
pub use webhooks::{
    ClaimedDelivery, DeliveryAttempt, DeliveryClaim, DeliveryFilter, NewWebhookEndpoint,
    WebhookDelivery, WebhookEndpoint, enqueue_webhook_deliveries,
};
