//! How long usage, alert events and (when the operator says so) audit events are kept, and the
//! job that prunes what is older.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{Clock, Error};
use key_store::{Resolution, Store};

/// How often the retention job runs. Not at start: a server that starts must answer first.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(300);

/// Rows deleted per statement: small enough that a large backlog never holds a long lock.
const PRUNE_BATCH: u64 = 5_000;
/// Statements per resolution and run; what is left waits for the next run.
const PRUNE_BATCHES_PER_RUN: u32 = 20;

/// How long usage is kept at each resolution. Minute rows answer "what happened just now",
/// hourly rows the last weeks, daily rows the last year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRetention {
    /// Minute buckets (48 hours by default).
    pub minute: TimeDelta,
    /// Hourly buckets (90 days by default).
    pub hour: TimeDelta,
    /// Daily buckets (400 days by default).
    pub day: TimeDelta,
}

impl Default for UsageRetention {
    fn default() -> Self {
        UsageRetention {
            minute: TimeDelta::hours(48),
            hour: TimeDelta::days(90),
            day: TimeDelta::days(400),
        }
    }
}

impl UsageRetention {
    /// The retention of `resolution`.
    pub fn of(&self, resolution: Resolution) -> TimeDelta {
        match resolution {
            Resolution::Minute => self.minute,
            Resolution::Hour => self.hour,
            Resolution::Day => self.day,
        }
    }
}

/// How long, by default, alert events (and their webhook deliveries) are kept.
pub const DEFAULT_ALERT_RETENTION: TimeDelta = TimeDelta::days(90);

/// Deletes usage, alert events and audit events past their retention. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RetentionJob {
    store: Store,
    clock: Arc<dyn Clock>,
    usage: UsageRetention,
    alert_events: TimeDelta,
    audit_events: Option<TimeDelta>,
}

impl RetentionJob {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        usage: UsageRetention,
        alert_events: TimeDelta,
        audit_events: Option<TimeDelta>,
    ) -> Self {
        RetentionJob {
            store,
            clock,
            usage,
            alert_events,
            audit_events,
        }
    }

    /// Deletes what is older than its retention, by the clock, in bounded batches; returns how
    /// many rows it deleted (usage rows, alert events, audit events, ended sessions). The job runs it every
    /// [`RETENTION_INTERVAL`]; tests call it.
    pub async fn prune(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let mut deleted = prune(&self.store, &self.usage, now).await?;
        let before = now - self.alert_events;
        deleted += batches(|| self.store.prune_alert_events(before, PRUNE_BATCH)).await?;
        if let Some(retention) = self.audit_events {
            let before = now - retention;
            deleted += batches(|| self.store.prune_audit_events(before, PRUNE_BATCH)).await?;
        }
        // Sessions and sign-in links past their absolute end (an idle one is deleted when next
        // presented, or here once its lifetime is over).
        deleted += batches(|| self.store.delete_expired_sessions(now, PRUNE_BATCH)).await?;
        // OAuth tokens past their expiry, and authorization codes a day past theirs (kept that
        // long so that a replayed code is recognised and its grant revoked).
        deleted += batches(|| self.store.delete_expired_oauth(now, PRUNE_BATCH)).await?;
        Ok(deleted)
    }

    /// One run of the job: prunes, and logs what it did.
    pub(crate) async fn run(&self) {
        match self.prune().await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "rows past their retention pruned"),
            Err(error) => tracing::warn!(%error, "pruning old rows failed"),
        }
    }
}

/// Runs `batch` until it deletes fewer than a whole batch, at most `PRUNE_BATCHES_PER_RUN`
/// times; what is left waits for the next run.
async fn batches<F, Fut>(mut batch: F) -> Result<u64, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, key_store::Error>>,
{
    let mut deleted = 0;
    for _ in 0..PRUNE_BATCHES_PER_RUN {
        let rows = batch().await?;
        deleted += rows;
        if rows < PRUNE_BATCH {
            break;
        }
    }
    Ok(deleted)
}

/// Deletes the rows of each resolution whose bucket started more than its retention before
/// `now`, in bounded batches (at most `PRUNE_BATCHES_PER_RUN` of `PRUNE_BATCH` rows each per
/// resolution). Returns how many rows it deleted.
async fn prune(
    store: &Store,
    retention: &UsageRetention,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let mut deleted = 0;
    for resolution in Resolution::ALL {
        let before = (now - retention.of(resolution)).timestamp();
        for _ in 0..PRUNE_BATCHES_PER_RUN {
            let batch = store.prune_usage(resolution, before, PRUNE_BATCH).await?;
            deleted += batch;
            if batch < PRUNE_BATCH {
                break;
            }
        }
    }
    Ok(deleted)
}
