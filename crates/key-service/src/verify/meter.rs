//! Usage metering: verifications are counted in memory and written to the store in batches, so
//! the verification path makes no database write.

use std::{
    collections::HashMap,
    mem,
    sync::{Arc, Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use key_core::Error;
use key_store::{Dimension, FlushReport, KeyUse, Resolution, Store, UsageCount};
use tokio::sync::Mutex as AsyncMutex;
use tracing::Instrument;
use uuid::Uuid;

use super::context::Country;
use crate::metrics::Metrics;

/// How many independently locked shards the counts are spread over.
const SHARDS: usize = 16;

/// The most per-minute counts one shard holds between flushes (a sixteenth of 1,000,000,
/// about 100 MiB at the most). Beyond it a verification is answered as always but not counted
/// (`keyrack_usage_counts_dropped_total`): a database that is slow or down for long must not
/// grow the meter without bound.
const MAX_COUNTS_PER_SHARD: usize = 1_000_000 / SHARDS;

/// The most keys one flush writes in one transaction: a backlog (after an outage, say) is
/// written in bounded transactions, none holding the write lock for long.
const MAX_KEYS_PER_TRANSACTION: usize = 1_000;

/// What one count is counted by. Copying one allocates nothing: a code is static, a country
/// two bytes, and a tag a shared pointer to the request's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Value {
    Code(&'static str),
    Country(Country),
    Tag(Arc<str>),
}

/// One per-minute bucket: key, minute start (seconds since the epoch), counted value.
type CountKey = (Uuid, i64, Value);

/// One key's use since the last flush.
#[derive(Debug, Clone)]
struct KeyUseSoFar {
    organization_id: Uuid,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// Few per key and batch: a linear search beats hashing.
    countries: Vec<Country>,
}

impl KeyUseSoFar {
    fn add_country(&mut self, country: Country) {
        if !self.countries.contains(&country) {
            self.countries.push(country);
        }
    }

    fn absorb(&mut self, other: KeyUseSoFar) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        for country in other.countries {
            self.add_country(country);
        }
    }
}

/// The usage context of one verification, as the meter counts it.
#[derive(Debug, Clone)]
pub(crate) struct Counted<'a> {
    /// `valid` or the platform error code.
    pub(crate) code: &'static str,
    /// The client's country, given or looked up.
    pub(crate) country: Option<Country>,
    /// The route or operation, within the tag budget.
    pub(crate) tag: Option<Arc<str>>,
    /// The deployment's counters, for what the meter drops.
    pub(crate) metrics: &'a Metrics,
}

/// The maps of one shard. Their keys are chosen by the server (key ids, minutes, codes) or
/// by the holder of a valid key (a tag), so the fast foldhash is safe to use, and it costs a
/// fraction of std's SipHash on every verification.
#[derive(Debug, Default)]
struct Shard {
    counts: HashMap<CountKey, i64, foldhash::fast::RandomState>,
    keys: HashMap<Uuid, KeyUseSoFar, foldhash::fast::RandomState>,
}

impl Shard {
    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.keys.is_empty()
    }

    fn add(&mut self, key: CountKey, count: i64) {
        *self.counts.entry(key).or_insert(0) += count;
    }

    fn touch(&mut self, key_id: Uuid, key_use: KeyUseSoFar) {
        match self.keys.get_mut(&key_id) {
            Some(existing) => existing.absorb(key_use),
            None => {
                self.keys.insert(key_id, key_use);
            }
        }
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

/// Verification counts in memory: per key, minute and outcome (and country, and tag) a count,
/// and per key its first and latest use and its countries. Cheap to clone; clones share the
/// counts. [`Meter::flush`] adds them to the store.
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

    /// Counts one verification of `key_id` (of `organization_id`) at `at`: its outcome, and
    /// its country and tag when it had them. Takes one shard lock briefly; allocates only when
    /// a new bucket or a new key appears.
    pub(crate) fn record(
        &self,
        key_id: Uuid,
        organization_id: Uuid,
        counted: Counted<'_>,
        at: DateTime<Utc>,
    ) {
        let minute = Resolution::Minute.bucket_start(at.timestamp());
        let mut shard = self.shard(key_id);
        // Up to three new entries; a verification is counted whole or not at all.
        if shard.counts.len() + 3 > MAX_COUNTS_PER_SHARD
            && !shard
                .counts
                .contains_key(&(key_id, minute, Value::Code(counted.code)))
        {
            drop(shard);
            counted.metrics.usage_count_dropped();
            return;
        }
        shard.add((key_id, minute, Value::Code(counted.code)), 1);
        if let Some(country) = counted.country {
            shard.add((key_id, minute, Value::Country(country)), 1);
        }
        if let Some(tag) = counted.tag {
            shard.add((key_id, minute, Value::Tag(tag)), 1);
        }
        match shard.keys.get_mut(&key_id) {
            Some(key_use) => {
                key_use.first = key_use.first.min(at);
                key_use.last = key_use.last.max(at);
                if let Some(country) = counted.country {
                    key_use.add_country(country);
                }
            }
            None => {
                shard.keys.insert(
                    key_id,
                    KeyUseSoFar {
                        organization_id,
                        first: at,
                        last: at,
                        countries: counted.country.into_iter().collect(),
                    },
                );
            }
        }
    }

    /// Takes every count out of memory and adds it to the store, in transactions of at most
    /// [`MAX_KEYS_PER_TRANSACTION`] keys each, then hands what was written to `on_flushed` (the
    /// alert rules). If a write fails, its counts and those not yet written go back into memory
    /// for the next flush, the failure is counted in `metrics`, and the error is returned.
    /// Returns how many per-minute counts were written.
    ///
    /// The write runs in a task of its own: a caller that gives up waiting (a cancelled
    /// request) neither loses the counts nor interrupts a transaction.
    pub(crate) async fn flush(
        &self,
        metrics: Metrics,
        on_flushed: impl FnOnce(FlushReport) + Send + 'static,
    ) -> Result<usize, Error> {
        let guard = Arc::clone(&self.inner.flushing).lock_owned().await;
        let taken = self.take();
        if taken.is_empty() {
            metrics.usage_flushed(None, true);
            return Ok(0);
        }
        let meter = self.clone();
        let span = if key_telemetry::root_sampled("usage.flush") {
            tracing::info_span!("usage.flush", keys = taken.keys.len())
        } else {
            tracing::Span::none()
        };
        let write = tokio::spawn(
            async move {
                let started = std::time::Instant::now();
                let _guard = guard;
                let mut batches = split(taken, MAX_KEYS_PER_TRANSACTION).into_iter();
                let mut written = 0;
                let mut report = FlushReport::default();
                let mut failure = None;
                while let Some(batch) = batches.next() {
                    let (counts, uses) = to_store(&batch);
                    match meter.inner.store.record_usage_batch(&counts, &uses).await {
                        Ok(batch_report) => {
                            written += counts.len();
                            report.keys.extend(batch_report.keys);
                        }
                        Err(error) => {
                            tracing::warn!(
                                counts = counts.len(),
                                %error,
                                "usage flush failed; the counts are kept for the next flush"
                            );
                            metrics.usage_flush_failure();
                            meter.merge(batch);
                            for unwritten in batches.by_ref() {
                                meter.merge(unwritten);
                            }
                            failure = Some(Error::from(error));
                        }
                    }
                }
                metrics.usage_flushed(Some(started.elapsed().as_secs_f64()), failure.is_none());
                if !report.keys.is_empty() {
                    on_flushed(report);
                }
                match failure {
                    Some(error) => Err(error),
                    None => Ok(written),
                }
            }
            .instrument(span),
        );
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
            let Shard { counts, keys } = mem::take(&mut *shard);
            drop(shard);
            // Each key lives in one shard only, so the maps of two shards never overlap.
            if taken.is_empty() {
                taken = Shard { counts, keys };
            } else {
                taken.counts.extend(counts);
                taken.keys.extend(keys);
            }
        }
        taken
    }

    /// Puts counts that could not be written back, added to whatever was counted since.
    fn merge(&self, taken: Shard) {
        for (key, count) in taken.counts {
            self.shard(key.0).add(key, count);
        }
        for (key_id, key_use) in taken.keys {
            self.shard(key_id).touch(key_id, key_use);
        }
    }
}

/// `taken` in batches of at most `max_keys` keys, each key's counts with its use.
fn split(taken: Shard, max_keys: usize) -> Vec<Shard> {
    if taken.keys.len() <= max_keys {
        return vec![taken];
    }
    let Shard { counts, keys } = taken;
    let mut batches: Vec<Shard> = Vec::new();
    let mut batch_of =
        HashMap::with_capacity_and_hasher(keys.len(), foldhash::fast::RandomState::default());
    for (index, (key_id, key_use)) in keys.into_iter().enumerate() {
        if index % max_keys == 0 {
            batches.push(Shard::default());
        }
        let last = batches.len() - 1;
        batch_of.insert(key_id, last);
        batches[last].keys.insert(key_id, key_use);
    }
    for (key, count) in counts {
        if let Some(&index) = batch_of.get(&key.0) {
            batches[index].counts.insert(key, count);
        }
    }
    batches
}

/// The store's form of a batch: per-minute counts with their values as text, and each key's
/// use.
fn to_store(taken: &Shard) -> (Vec<UsageCount>, Vec<KeyUse>) {
    let counts = taken
        .counts
        .iter()
        .filter_map(|((key_id, minute_start, value), &count)| {
            // `record` and `merge` always keep a key's use next to its counts, in the same
            // shard, so the lookup cannot miss.
            let organization_id = taken.keys.get(key_id)?.organization_id;
            let (dimension, value) = match value {
                Value::Code(code) => (Dimension::Code, (*code).to_owned()),
                Value::Country(country) => (Dimension::Country, country.as_str().to_owned()),
                Value::Tag(tag) => (Dimension::Tag, tag.to_string()),
            };
            Some(UsageCount {
                key_id: *key_id,
                organization_id,
                minute_start: *minute_start,
                dimension,
                value,
                count,
            })
        })
        .collect();
    let uses = taken
        .keys
        .iter()
        .map(|(&key_id, key_use)| KeyUse {
            key_id,
            organization_id: key_use.organization_id,
            first_used_at: key_use.first,
            last_used_at: key_use.last,
            countries: key_use
                .countries
                .iter()
                .map(|country| country.as_str().to_owned())
                .collect(),
        })
        .collect();
    (counts, uses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_is_written_in_bounded_batches_that_keep_each_key_whole() {
        let mut taken = Shard::default();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        for n in 0..2_500_u128 {
            let key_id = Uuid::from_u128(n);
            taken.add((key_id, 0, Value::Code("valid")), 1);
            taken.add((key_id, 60, Value::Code("valid")), 2);
            taken.touch(
                key_id,
                KeyUseSoFar {
                    organization_id: Uuid::nil(),
                    first: at,
                    last: at,
                    countries: Vec::new(),
                },
            );
        }
        let batches = split(taken, 1_000);
        assert_eq!(batches.len(), 3);
        let mut total = 0;
        for batch in &batches {
            assert!(batch.keys.len() <= 1_000);
            assert_eq!(batch.counts.len(), 2 * batch.keys.len());
            assert!(
                batch
                    .counts
                    .keys()
                    .all(|key| batch.keys.contains_key(&key.0))
            );
            total += batch.counts.values().sum::<i64>();
        }
        assert_eq!(total, 2_500 * 3);
    }
}
