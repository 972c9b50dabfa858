//! One module per table. Column types are portable between SQLite and PostgreSQL.

pub(crate) mod api_key;
pub(crate) mod audit_event;
pub(crate) mod member;
pub(crate) mod organization;
pub(crate) mod usage_bucket;
pub(crate) mod usage_hourly;
