//! Alerts: rules, their evaluation after each usage flush and by a periodic sweep, and alert
//! events (queued for the webhook endpoints in the event's own transaction).
//!
//! `rpc` holds the four handlers and `convert` their protobuf translations; `evaluate` judges
//! a flushed batch against the rules in force, `sweep` finds keys about to expire or due for
//! rotation, and `fire` stores an alert once and queues its webhook payload. `runtime` keeps
//! the background evaluations countable, so a caller can wait for them.

mod convert;
mod evaluate;
mod fire;
mod rpc;
mod runtime;
mod sweep;

pub(crate) use rpc::{get_alert_rules, list_alert_events, set_alert_rules, test_alert_rules};
pub(crate) use runtime::AlertRuntime;
pub use runtime::DEFAULT_ALERT_SWEEP_INTERVAL;
pub(crate) use sweep::sweep_periodically;

use crate::KeyManager;

/// Called after every successful usage flush with what it wrote; evaluates the alert rules of
/// the keys used. It does not block the flush: the evaluation runs in a task of its own (one
/// at a time per process), counted until it ends, so `KeyManager::alerts_idle` can wait for it.
pub(crate) fn usage_flushed(manager: &KeyManager, report: key_store::FlushReport) {
    if report.keys.is_empty() {
        return;
    }
    let Some(pending) = manager.alert_runtime().start_evaluation() else {
        // The thresholds are judged again at the key's next flush; this batch's new countries
        // and dormant uses are not.
        tracing::warn!(
            keys = report.keys.len(),
            "alert evaluations are backed up; this flush is not evaluated"
        );
        return;
    };
    let manager = manager.clone();
    tokio::spawn(async move {
        let _pending = pending;
        let _one_at_a_time = manager.alert_runtime().evaluation_lock().await;
        if let Err(error) = evaluate::evaluate_flush(&manager, &report).await {
            // The thresholds are judged again at the next flush of the key; a new country or
            // a dormant key of this batch is not.
            tracing::warn!(%error, keys = report.keys.len(), "alert evaluation failed");
        }
    });
}
