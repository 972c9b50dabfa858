//! The background jobs: the usage flusher (with the pruning of rate limit state), usage
//! retention, the alert sweep, webhook delivery and the cache notice listener, plus the alert evaluation that each flush
//! hands off. Each is a small type with a `run` (one pass) that tests may call directly;
//! [`Jobs::start`] runs them periodically, all under one cancellation token in one `JoinSet`,
//! and [`RunningJobs::stop`] ends them in order: the passes under way finish, the usage
//! counted since the last flush is written, and the alerts that flush triggers are stored.
//!
//! The binary starts the jobs beside the servers and stops them after the servers drained, so
//! nothing is counted after the last flush.

mod alert_evaluation;
mod alert_sweep;
mod cache_notices;
mod database_probe;
mod retention;
mod webhook_delivery;

use std::{future::Future, time::Duration};

use key_core::Error;
use tokio::{task::JoinSet, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use self::{
    alert_evaluation::AlertEvaluator,
    alert_sweep::{AlertSweep, DEFAULT_ALERT_SWEEP_INTERVAL},
    cache_notices::CacheNotices,
    database_probe::{DatabaseProbe, PROBE_INTERVAL, PROBE_TIMEOUT},
    retention::{DEFAULT_ALERT_RETENTION, RETENTION_INTERVAL, RetentionJob, UsageRetention},
    webhook_delivery::{WebhookDelivery, WebhookSettings},
};
use crate::{
    metrics::Metrics,
    verify::{Meter, Verifier},
};

/// How often, by default, the usage counted in memory is written to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How long an operation waits for the flush it asks for before answering without it: reads
/// show this process's latest counts when the store takes them in time, and never fail or
/// hang because metering does.
pub const OPERATION_FLUSH_BOUND: Duration = Duration::from_secs(1);

/// Writes the usage counted in memory to the store and hands what it wrote to the alert
/// evaluation. Cheap to clone; clones share the meter.
#[derive(Debug, Clone)]
pub struct UsageFlusher {
    meter: Meter,
    alerts: AlertEvaluator,
    metrics: Metrics,
}

impl UsageFlusher {
    pub(crate) fn new(meter: Meter, alerts: AlertEvaluator, metrics: Metrics) -> UsageFlusher {
        UsageFlusher {
            meter,
            alerts,
            metrics,
        }
    }

    /// Adds every verification counted in memory so far to the store, in one transaction, and
    /// returns how many per-minute counts it wrote (each into its minute, hour and day rows).
    /// Waits for a flush already under way, so usage read from the store afterwards includes
    /// every verification answered before the call. Cheap when nothing was counted. On failure
    /// the counts stay in memory for the next flush. What was written goes to the alert rules.
    pub async fn flush(&self) -> Result<usize, Error> {
        let alerts = self.alerts.clone();
        self.meter
            .flush(self.metrics.clone(), move |report| {
                alerts.usage_flushed(report);
            })
            .await
    }

    /// [`UsageFlusher::flush`] for an operation that answers anyway: it waits at most
    /// [`OPERATION_FLUSH_BOUND`] and never fails (the write goes on in its own task, and a
    /// failed one keeps its counts for the next flush). Returns whether counts were written.
    pub async fn flush_before_answering(&self) -> bool {
        match tokio::time::timeout(OPERATION_FLUSH_BOUND, self.flush()).await {
            Ok(Ok(written)) => written > 0,
            Ok(Err(error)) => {
                tracing::warn!(%error, "answering without this process's latest usage counts");
                false
            }
            Err(_) => {
                tracing::warn!(
                    bound = ?OPERATION_FLUSH_BOUND,
                    "usage flush still running; answering without waiting for it"
                );
                false
            }
        }
    }
}

/// The jobs of one process, ready to start. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    /// The usage flusher, also run once more at the stop.
    pub usage: UsageFlusher,
    /// The evaluation of each flush's alerts; the stop waits for it.
    pub alerts: AlertEvaluator,
    /// Usage retention, every [`RETENTION_INTERVAL`].
    pub retention: RetentionJob,
    /// Expiry and rotation alerts, every sweep interval.
    pub alert_sweep: AlertSweep,
    /// Webhook delivery, every poll interval.
    pub webhooks: WebhookDelivery,
    /// Readiness: whether the database answers, every [`PROBE_INTERVAL`].
    pub database: DatabaseProbe,
    /// Other replicas' changes to the key cache, as they commit (PostgreSQL).
    pub cache_notices: CacheNotices,
    /// Whose rate limit state the flusher prunes.
    pub(crate) verifier: Verifier,
    /// How often the usage flusher runs.
    pub(crate) flush_interval: Duration,
    /// How often the alert sweep runs.
    pub(crate) alert_sweep_interval: Duration,
}

impl Jobs {
    /// Starts every job on the current runtime. The flusher runs at once and then every flush
    /// interval; the others wait one interval first, like every later run: a server that has
    /// just started has nothing more urgent than one that has been running, and makes no
    /// query of its own.
    pub fn start(&self) -> RunningJobs {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(self.cache_notices.clone().run(cancel.clone()));
        let flush = {
            let (usage, verifier) = (self.usage.clone(), self.verifier.clone());
            move || {
                let (usage, verifier) = (usage.clone(), verifier.clone());
                async move {
                    // A failed flush has logged itself and kept its counts for the next one.
                    let _ = usage.flush().await;
                    verifier.prune_rate_limit_state();
                }
            }
        };
        tasks.spawn(every(
            cancel.clone(),
            Duration::ZERO,
            self.flush_interval,
            flush,
        ));
        let retention = self.retention.clone();
        tasks.spawn(every(
            cancel.clone(),
            RETENTION_INTERVAL,
            RETENTION_INTERVAL,
            move || {
                let retention = retention.clone();
                async move { retention.run().await }
            },
        ));
        let sweep = self.alert_sweep.clone();
        tasks.spawn(every(
            cancel.clone(),
            self.alert_sweep_interval,
            self.alert_sweep_interval,
            move || {
                let sweep = sweep.clone();
                async move { sweep.run().await }
            },
        ));
        let database = self.database.clone();
        tasks.spawn(every(
            cancel.clone(),
            PROBE_INTERVAL,
            PROBE_INTERVAL,
            move || {
                let database = database.clone();
                async move { database.run().await }
            },
        ));
        let webhooks = self.webhooks.clone();
        let poll = webhooks.poll_interval();
        tasks.spawn(every(cancel.clone(), poll, poll, move || {
            let webhooks = webhooks.clone();
            async move { webhooks.run().await }
        }));
        RunningJobs {
            cancel,
            tasks,
            usage: self.usage.clone(),
            alerts: self.alerts.clone(),
            webhooks: self.webhooks.clone(),
        }
    }
}

/// The jobs while they run; [`RunningJobs::stop`] ends them.
#[derive(Debug)]
pub struct RunningJobs {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    usage: UsageFlusher,
    alerts: AlertEvaluator,
    webhooks: WebhookDelivery,
}

impl RunningJobs {
    /// Stops every job after the pass it is making (a webhook attempt under way is made and
    /// recorded; deliveries not yet attempted stay pending in the store for the next start),
    /// writes whatever usage is left, even if serving failed, and waits until the alerts of
    /// the last flushes are stored (and their deliveries queued).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = joined {
                tracing::warn!(%error, "a background job failed");
            }
        }
        self.webhooks.idle().await;
        match self.usage.flush().await {
            Ok(buckets) => tracing::info!(buckets, "usage flushed"),
            Err(error) => {
                tracing::warn!(%error, "usage not flushed at shutdown; these counts are lost")
            }
        }
        self.alerts.idle().await;
    }
}

/// Calls `run` at `first` from now and then every `period` until `cancel` fires. A run under
/// way when it fires finishes first; a run that takes longer than `period` delays the next
/// instead of bunching them.
async fn every<F, Fut>(cancel: CancellationToken, first: Duration, period: Duration, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => run().await,
        }
    }
}
