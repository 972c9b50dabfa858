//! Webhook endpoints, and the delivery of alert events to them: signed HTTPS POSTs, retried with
//! exponential backoff for at least 24 hours, at least once.
//!
//! `rpc` holds the five handlers, `settings` the knobs a deployment (or a test) sets on the
//! manager, and `worker` the delivery loop that `GrpcServer::run_until` runs.

mod rpc;
mod settings;
mod worker;

pub(crate) use rpc::{
    create_webhook_endpoint, delete_webhook_endpoint, list_webhook_deliveries,
    list_webhook_endpoints, rotate_webhook_secret,
};
pub(crate) use settings::WebhookRuntime;
pub use settings::WebhookSettings;
pub(crate) use worker::deliver_periodically;
