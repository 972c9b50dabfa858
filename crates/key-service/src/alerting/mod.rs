//! Alerting: judging a flushed batch of usage against the rules in force (`evaluate`), and
//! firing an alert once, with its webhook deliveries queued in the same transaction (`fire`).
//! The jobs (evaluation after each flush, the periodic sweep) and the alert operations
//! (TestAlertRules) call these.

mod evaluate;
mod fire;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use key_core::{AlertRules, Clock, Error};
use key_store::{AlertEvent, AlertKey, FlushReport, Store};
use uuid::Uuid;

pub use self::evaluate::ThresholdEvaluation;
pub(crate) use self::fire::Firing;
use crate::metrics::Metrics;

/// What alerting reads and writes with. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Alerting {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl Alerting {
    pub(crate) fn new(store: Store, clock: Arc<dyn Clock>, metrics: Metrics) -> Alerting {
        Alerting {
            store,
            clock,
            metrics,
        }
    }

    fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Evaluates the rules of every key of `report` and fires what they raise. Returns how many
    /// alerts this call stored.
    pub(crate) async fn evaluate_flush(&self, report: &FlushReport) -> Result<usize, Error> {
        evaluate::evaluate_flush(self, report).await
    }

    /// Fires those of `firings` that have not fired yet; returns how many it stored.
    pub(crate) async fn fire_new(&self, firings: Vec<Firing<'_>>) -> Result<usize, Error> {
        evaluate::fire_new(self, firings).await
    }

    /// Stores `firing` as the event `id` unless its alert already fired; `None` then.
    pub(crate) async fn fire(
        &self,
        id: Uuid,
        firing: &Firing<'_>,
    ) -> Result<Option<AlertEvent>, Error> {
        fire::fire(self, id, firing).await
    }

    /// What the threshold rules of `rules` say about `key`'s usage in their current periods at
    /// `now`, without firing anything.
    pub(crate) async fn evaluate_thresholds(
        &self,
        key: &AlertKey,
        rules: &AlertRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<ThresholdEvaluation>, Error> {
        evaluate::evaluate_thresholds(self, key, rules, now).await
    }
}
