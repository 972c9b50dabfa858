//! How long usage is kept at each resolution, and the pruning that enforces it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use key_core::Error;
use key_store::{Resolution, Store};

/// How often, by default, the server prunes usage older than its retention.
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

/// Deletes the rows of each resolution whose bucket started more than its retention before
/// `now`, in bounded batches (at most `PRUNE_BATCHES_PER_RUN` of `PRUNE_BATCH` rows each per
/// resolution). Returns how many rows it deleted.
pub(crate) async fn prune(
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
