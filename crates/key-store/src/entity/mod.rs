//! One module per table. Column types are portable between SQLite and PostgreSQL.

pub(crate) mod alert_event;
pub(crate) mod alerting_key;
pub(crate) mod alerting_organization;
pub(crate) mod api_key;
pub(crate) mod audit_event;
pub(crate) mod member;
pub(crate) mod oauth_client;
pub(crate) mod oauth_code;
pub(crate) mod oauth_token;
pub(crate) mod organization;
pub(crate) mod session;
pub(crate) mod usage_bucket;
pub(crate) mod webhook_delivery;
pub(crate) mod webhook_delivery_attempt;
pub(crate) mod webhook_endpoint;
