//! Usage metering: verifications are counted in memory and written to the store in batches, so
//! the verification path makes no database write.

use std::{
    collections::HashMap,
    mem,
    sync::{Arc, Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use key_core::Error;
use key_store::{Store, UsageCount};
use tokio::sync::Mutex as AsyncMutex;
use uuid::Uuid;

/// How many independently locked shards the counts are spread over.
const SHARDS: usize = 16;

/// One hourly bucket: key, organization, hour start (seconds since the epoch), outcome code.
type CountKey = (Uuid, Uuid, i64, &'static str);

#[derive(Debug, Default)]
struct Shard {
    counts: HashMap<CountKey, i64>,
    last_used: HashMap<Uuid, DateTime<Utc>>,
}

impl Shard {
    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.last_used.is_empty()
    }

    fn add(&mut self, key: CountKey, count: i64) {
        *self.counts.entry(key).or_insert(0) += count;
    }

    fn touch(&mut self, key_id: Uuid, at: DateTime<Utc>) {
        self.last_used
            .entry(key_id)
            .and_modify(|latest| *latest = (*latest).max(at))
            .or_insert(at);
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    shards: [Mutex<Shard>; SHARDS],
    /// Held for a whole flush (take and write), so a reader that flushes first waits for a
    /// flush already under way and then sees its counts in the store.
    flushing: Arc<AsyncMutex<()>>,
}

/// Verification counts in memory: per key, hour and outcome a count, and per key the latest
/// use. Cheap to clone; clones share the counts. [`Meter::flush`] adds them to the store.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    inner: Arc<Inner>,
}

impl Meter {
    /// An empty meter that flushes into `store`.
    pub(crate) fn new(store: Store) -> Meter {
        Meter {
            inner: Arc::new(Inner {
                store,
                shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
                flushing: Arc::new(AsyncMutex::new(())),
            }),
        }
    }

    fn shard(&self, key_id: Uuid) -> MutexGuard<'_, Shard> {
        // The last bytes of a UUID (v4 or v7) are random.
        let bytes = key_id.as_bytes();
        let index = usize::from(bytes[15] ^ bytes[14]) % SHARDS;
        // A panic while counting leaves the counts consistent enough to keep counting.
        self.inner.shards[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one verification of `key_id` (of `organization_id`) with outcome `code` at `at`.
    /// Takes one shard lock briefly; allocates only when a new bucket appears.
    pub(crate) fn record(
        &self,
        key_id: Uuid,
        organization_id: Uuid,
        code: &'static str,
        at: DateTime<Utc>,
    ) {
        let mut shard = self.shard(key_id);
        shard.add(
            (key_id, organization_id, key_store::hour_start(at), code),
            1,
        );
        shard.touch(key_id, at);
    }

    /// Takes every count out of memory and adds it to the store in one transaction. If the
    /// write fails, the counts go back into memory for the next flush, and the error is
    /// returned. Returns how many buckets were written.
    ///
    /// The write runs in a task of its own: a caller that gives up waiting (a cancelled
    /// request) neither loses the counts nor interrupts the transaction.
    pub(crate) async fn flush(&self) -> Result<usize, Error> {
        let guard = Arc::clone(&self.inner.flushing).lock_owned().await;
        let taken = self.take();
        if taken.is_empty() {
            return Ok(0);
        }
        let meter = self.clone();
        let write = tokio::spawn(async move {
            let _guard = guard;
            let counts: Vec<UsageCount> = taken
                .counts
                .iter()
                .map(
                    |(&(key_id, organization_id, hour_start, code), &count)| UsageCount {
                        key_id,
                        organization_id,
                        hour_start,
                        code: code.to_owned(),
                        count,
                    },
                )
                .collect();
            let last_used: Vec<(Uuid, DateTime<Utc>)> =
                taken.last_used.iter().map(|(&k, &v)| (k, v)).collect();
            match meter
                .inner
                .store
                .record_usage_batch(&counts, &last_used)
                .await
            {
                Ok(()) => Ok(counts.len()),
                Err(error) => {
                    tracing::warn!(
                        buckets = counts.len(),
                        %error,
                        "usage flush failed; the counts are kept for the next flush"
                    );
                    meter.merge(taken);
                    Err(Error::from(error))
                }
            }
        });
        match write.await {
            Ok(result) => result,
            Err(join_error) => Err(Error::Internal(format!(
                "usage flush task failed: {join_error}"
            ))),
        }
    }

    /// Everything counted so far, leaving the meter empty.
    fn take(&self) -> Shard {
        let mut taken = Shard::default();
        for shard in &self.inner.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            if shard.is_empty() {
                continue;
            }
            let Shard { counts, last_used } = mem::take(&mut *shard);
            drop(shard);
            if taken.is_empty() {
                taken = Shard { counts, last_used };
            } else {
                taken.counts.extend(counts);
                taken.last_used.extend(last_used);
            }
        }
        taken
    }

    /// Puts counts that could not be written back, added to whatever was counted since.
    fn merge(&self, taken: Shard) {
        for (key, count) in taken.counts {
            self.shard(key.0).add(key, count);
        }
        for (key_id, at) in taken.last_used {
            self.shard(key_id).touch(key_id, at);
        }
    }
}
