//! Keyrack's persistence: sea-orm entities, migrations and the repository API.
//!
//! Only this crate knows SQL. The same code runs on SQLite (the embedded default) and on
//! PostgreSQL (production); the backend is picked by the database URL.

mod activity;
mod audit;
mod connect;
// sea-orm's derives generate `pub` items inside these crate-private modules.
#[allow(unreachable_pub)]
mod entity;
mod error;
mod keys;
mod members;
mod migration;
mod organizations;
mod usage;

pub use activity::{FlushReport, KeyActivity};
pub use audit::AuditFilter;
pub use connect::Store;
pub use error::Error;
pub use keys::{KeyChanges, KeyFilter, KeyRotation, NewKey};
pub use members::Member;
pub use organizations::Organization;
pub use usage::{UsageCount, UsageRow, hour_start};
