//! Store lookups of keys the key cache did not have, coalesced under load.
//!
//! The negative cache only helps with digests seen before; a flood of always-new random
//! well-formed keys misses it every time. Looked up one by one, each such key costs a query,
//! and the per-query overhead (not the indexed read) then eats the CPU that valid keys need.
//! `KeyLookups` keeps that cost bounded whatever the request rate:
//!
//! - At most one lookup is in flight per process.
//! - A miss that finds nothing in flight and nobody waiting is looked up at once, on its own,
//!   so the latency of a cold miss in quiet times (or from one caller at a time) is one query.
//! - A miss that finds a lookup in flight waits. The misses that arrived meanwhile go together,
//!   in one `Store::find_keys_by_digests` query, started no sooner than `pace` after the
//!   previous lookup started; after a lookup that misses had to wait for, the next miss also
//!   keeps that pace. Under a flood, the miss path thus makes at most one query per `pace`
//!   (1,000 per second by default), each with many digests.
//! - At most `max_waiting` misses wait; beyond that a miss is refused as `Unavailable` (try
//!   again) instead of growing memory without bound.
//!
//! On SQLite a lone miss is read on the calling thread in microseconds (key-store's
//! `SqliteReads`), so there misses seldom find a lookup in flight and go alone; the batches and
//! their pace matter where a query is a round trip (PostgreSQL) or goes through sqlx's pool.
//!
//! Nothing is ever answered from an older read: a waiting miss is answered by a query that
//! started after it arrived, so a key created a moment ago (on any replica) is found.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use key_core::{Error, KeyDigest};
pub(crate) use key_store::FoundKey;
use key_store::Store;
use tokio::{runtime::Handle, sync::oneshot, time::Instant};

use crate::metrics::Metrics;

/// How long, by default, a batch of waiting misses waits after the previous lookup started.
pub(crate) const DEFAULT_PACE: Duration = Duration::from_millis(1);

/// The most distinct digests in one batch; more wait for the next. As many as the store puts
/// in one query, so a batch is one query.
pub(crate) const DEFAULT_MAX_BATCH: usize = key_store::MAX_DIGESTS_PER_QUERY;

/// The most misses that may wait at once; more are refused.
pub(crate) const DEFAULT_MAX_WAITING: usize = 10_000;

/// Where keys are looked up: the store, or a fake in the unit tests below.
pub(crate) trait FindKeys: Send + Sync + 'static {
    /// The keys stored under any of `digests`, in any order; an unknown digest is absent.
    fn find_keys(
        &self,
        digests: &[KeyDigest],
    ) -> impl Future<Output = Result<Vec<FoundKey>, Error>> + Send;
}

impl FindKeys for Store {
    async fn find_keys(&self, digests: &[KeyDigest]) -> Result<Vec<FoundKey>, Error> {
        Ok(self.find_keys_by_digests(digests).await?)
    }
}

/// The store's OAuth access tokens, found as the keys their grants are
/// (`Store::find_access_tokens_by_digests`): their own coalesced lookups, so a flood of made-up
/// tokens costs what a flood of made-up keys does.
#[derive(Debug, Clone)]
pub(crate) struct AccessTokens(pub(crate) Store);

impl FindKeys for AccessTokens {
    async fn find_keys(&self, digests: &[KeyDigest]) -> Result<Vec<FoundKey>, Error> {
        Ok(self.0.find_access_tokens_by_digests(digests).await?)
    }
}

/// Each waiting miss's answer goes back through its own channel.
type Reply = oneshot::Sender<Result<Option<FoundKey>, Error>>;

/// Coalesced lookups of keys by digest. Shared by every request of a process (in an `Arc`).
#[derive(Debug)]
pub(crate) struct KeyLookups<S = Store> {
    source: S,
    pace: Duration,
    max_batch: usize,
    max_waiting: usize,
    /// A std mutex: it is held for a few instructions and never across an await.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether a lookup is in flight or a batch task is scheduled. Never more than one, and
    /// nobody waits while this is false.
    busy: bool,
    /// When the last lookup started.
    last_start: Option<Instant>,
    /// Whether misses had to wait during or since the last lookup (it was a batch, or others
    /// came while it ran): then the next lookup keeps the pace even if it finds nobody waiting.
    /// A lookup nobody waited for lets the next one go at once, so one caller at a time is
    /// never slowed down; it cannot have two queries in flight anyway.
    crowded: bool,
    /// The misses waiting for the next batch, in arrival order.
    waiting: Vec<(KeyDigest, Reply)>,
}

impl<S: FindKeys> KeyLookups<S> {
    /// Lookups in `source`, with the default pace and bounds.
    pub(crate) fn new(source: S) -> KeyLookups<S> {
        KeyLookups::with_limits(source, DEFAULT_PACE, DEFAULT_MAX_BATCH, DEFAULT_MAX_WAITING)
    }
}

impl<S: FindKeys> KeyLookups<S> {
    /// Lookups in `source`: batches at least `pace` apart, of at most `max_batch` distinct
    /// digests, with at most `max_waiting` misses waiting.
    pub(crate) fn with_limits(
        source: S,
        pace: Duration,
        max_batch: usize,
        max_waiting: usize,
    ) -> KeyLookups<S> {
        KeyLookups {
            source,
            pace,
            max_batch: max_batch.max(1),
            max_waiting,
            state: Mutex::new(State::default()),
        }
    }

    /// The key stored under `digest`, if any: looked up at once when the store is quiet,
    /// otherwise in the next batch. `Unavailable` when too many misses wait already; a failed
    /// batch fails each of its misses with its error. Batches are counted in `metrics`.
    pub(crate) async fn find(
        self: &Arc<Self>,
        digest: KeyDigest,
        metrics: &Metrics,
    ) -> Result<Option<FoundKey>, Error> {
        let waiting = {
            let mut state = self.lock();
            let now = Instant::now();
            let paced = state.crowded
                && state
                    .last_start
                    .is_some_and(|start| now < start + self.pace);
            if !state.busy && !paced {
                state.busy = true;
                state.crowded = false;
                state.last_start = Some(now);
                None
            } else if state.waiting.len() >= self.max_waiting {
                metrics.key_lookup_refused();
                return Err(Error::Unavailable);
            } else {
                let (reply, answer) = oneshot::channel();
                state.waiting.push((digest, reply));
                state.crowded = true;
                if !state.busy {
                    // Nothing in flight, but the last lookup was crowded and recent: a batch
                    // task waits out the pace.
                    state.busy = true;
                    self.spawn_batch(&mut state, metrics);
                }
                Some(answer)
            }
        };
        match waiting {
            None => {
                // Ends this lookup's turn however the lookup ends, even if the request is
                // cancelled mid-query: misses that came meanwhile are handed to a batch task.
                let _turn = Turn {
                    lookups: Arc::clone(self),
                    metrics: metrics.clone(),
                };
                let found = self.source.find_keys(std::slice::from_ref(&digest)).await?;
                Ok(found.into_iter().find(|(_, stored, _)| *stored == digest))
            }
            // The batch task answers every waiting miss, unless it died (a panic) or the
            // runtime is shutting down.
            Some(answer) => answer.await.unwrap_or_else(|_| {
                Err(Error::Internal(
                    "a batched key lookup ended without an answer".to_owned(),
                ))
            }),
        }
    }

    /// Starts the task that runs the next batch. `state.busy` is already true and stays so:
    /// the task owns the turn now.
    fn spawn_batch(self: &Arc<Self>, state: &mut State, metrics: &Metrics) {
        // A request always runs on the runtime; only a drop during the runtime's shutdown may
        // find none, and then nobody is left to answer, so the waiting misses are dropped (their
        // callers, if any are still polled, get an error).
        match Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(Arc::clone(self).run_batch(metrics.clone()));
            }
            Err(_) => {
                state.waiting.clear();
                state.busy = false;
            }
        }
    }

    /// Waits out the pace, then looks up every waiting miss (up to `max_batch` digests) in one
    /// query and answers each. Runs in its own task, so a cancelled caller cannot stop it.
    async fn run_batch(self: Arc<Self>, metrics: Metrics) {
        let _turn = Turn {
            lookups: Arc::clone(&self),
            metrics: metrics.clone(),
        };
        let start_at = self.lock().last_start.map(|start| start + self.pace);
        if let Some(start_at) = start_at {
            tokio::time::sleep_until(start_at).await;
        }
        let mut batch = self.take_batch();
        if batch.is_empty() {
            return;
        }
        metrics.key_lookup_batch(batch.len());
        let digests: Vec<KeyDigest> = batch.keys().copied().collect();
        match self.source.find_keys(&digests).await {
            Ok(found) => {
                for key in found {
                    if let Some(replies) = batch.remove(&key.1) {
                        answer(replies, || Ok(Some(key.clone())));
                    }
                }
                for replies in batch.into_values() {
                    answer(replies, || Ok(None));
                }
            }
            Err(error) => {
                for replies in batch.into_values() {
                    answer(replies, || Err(copy_error(&error)));
                }
            }
        }
    }

    /// Takes the waiting misses of the next batch, in arrival order, up to `max_batch`
    /// distinct digests; a digest asked for more than once is looked up once. Misses whose
    /// callers went away are dropped here. Notes the batch's start.
    fn take_batch(&self) -> HashMap<KeyDigest, Vec<Reply>> {
        let mut state = self.lock();
        let mut batch: HashMap<KeyDigest, Vec<Reply>> = HashMap::new();
        let mut taken = 0;
        while let Some((digest, _)) = state.waiting.get(taken) {
            if batch.len() == self.max_batch && !batch.contains_key(digest) {
                break;
            }
            batch.entry(*digest).or_default();
            taken += 1;
        }
        for (digest, reply) in state.waiting.drain(..taken) {
            if !reply.is_closed()
                && let Some(replies) = batch.get_mut(&digest)
            {
                replies.push(reply);
            }
        }
        batch.retain(|_, replies| !replies.is_empty());
        if !batch.is_empty() {
            state.last_start = Some(Instant::now());
            state.crowded = true;
        }
        batch
    }

    /// Called when a lookup ends (answered, failed or cancelled): hands the misses that came
    /// meanwhile to a new batch task, or marks the store quiet.
    fn turn_ended(self: &Arc<Self>, metrics: &Metrics) {
        let mut state = self.lock();
        if state.waiting.is_empty() {
            state.busy = false;
        } else {
            self.spawn_batch(&mut state, metrics);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The turn of the lookup in flight; dropping it ends the turn.
struct Turn<S: FindKeys> {
    lookups: Arc<KeyLookups<S>>,
    metrics: Metrics,
}

impl<S: FindKeys> Drop for Turn<S> {
    fn drop(&mut self) {
        self.lookups.turn_ended(&self.metrics);
    }
}

/// Sends `answer()` to each waiting caller; one that went away meanwhile is skipped.
fn answer(replies: Vec<Reply>, answer: impl Fn() -> Result<Option<FoundKey>, Error>) {
    for reply in replies {
        let _ = reply.send(answer());
    }
}

/// The same error for each miss of a failed batch. A lookup fails only as `Unavailable` or
/// `Internal` (see key-store's conversion); the rest is kept as its message.
fn copy_error(error: &Error) -> Error {
    match error {
        Error::Unavailable => Error::Unavailable,
        Error::Internal(detail) => Error::Internal(detail.clone()),
        other => Error::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::{collections::HashSet, time::Duration};

    use chrono::{TimeZone, Utc};
    use key_core::{Environment, KeyRecord, KeyType, RateLimits, RedactedKey, ScopeSet};
    use uuid::Uuid;

    use super::*;

    /// A store of `known` digests that takes `delay` per query and records each query's start
    /// and digests; it fails every query when `fail` is set.
    #[derive(Debug, Default)]
    struct FakeStore {
        known: HashSet<KeyDigest>,
        delay: Duration,
        fail: bool,
        queries: Mutex<Vec<(Instant, Vec<KeyDigest>)>>,
    }

    impl FindKeys for FakeStore {
        async fn find_keys(&self, digests: &[KeyDigest]) -> Result<Vec<FoundKey>, Error> {
            self.queries
                .lock()
                .unwrap()
                .push((Instant::now(), digests.to_vec()));
            tokio::time::sleep(self.delay).await;
            if self.fail {
                return Err(Error::Unavailable);
            }
            Ok(digests
                .iter()
                .filter(|digest| self.known.contains(digest))
                .map(|digest| (record(), *digest, RateLimits::NONE))
                .collect())
        }
    }

    impl FakeStore {
        fn queries(&self) -> Vec<(Instant, Vec<KeyDigest>)> {
            self.queries.lock().unwrap().clone()
        }
    }

    fn digest(n: u32) -> KeyDigest {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        KeyDigest::from_slice(&bytes).unwrap()
    }

    fn record() -> KeyRecord {
        KeyRecord {
            id: Uuid::now_v7(),
            organization_id: Uuid::nil(),
            name: "test".into(),
            scopes: ScopeSet::EMPTY,
            environment: Environment::Live,
            redacted: RedactedKey {
                environment: Environment::Live,
                last4: "abcd".into(),
            },
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            expires_at: None,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            rotated_from: None,
            rotated_to: None,
            key_type: KeyType::Organization,
            member_id: None,
            operator: false,
            rate_limits: RateLimits::NONE,
            disabled_at: None,
            metadata: None,
            ip_allowlist: key_core::IpAllowlist::EMPTY,
            credits: None,
            oauth: None,
        }
    }

    fn lookups(store: FakeStore, pace: Duration, max_waiting: usize) -> Arc<KeyLookups<FakeStore>> {
        Arc::new(KeyLookups::with_limits(store, pace, 256, max_waiting))
    }

    /// Starts `find` for each digest at once, each in its own task, and collects the answers
    /// in the same order.
    async fn find_all(
        lookups: &Arc<KeyLookups<FakeStore>>,
        metrics: &Metrics,
        digests: impl IntoIterator<Item = KeyDigest>,
    ) -> Vec<Result<Option<FoundKey>, Error>> {
        let tasks: Vec<_> = digests
            .into_iter()
            .map(|digest| {
                let (lookups, metrics) = (Arc::clone(lookups), metrics.clone());
                tokio::spawn(async move { lookups.find(digest, &metrics).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn a_lone_miss_is_looked_up_at_once_and_alone() {
        let store = FakeStore {
            known: [digest(1)].into(),
            ..FakeStore::default()
        };
        let lookups = lookups(store, Duration::from_secs(60), 100);
        let metrics = Metrics::new();
        let started = Instant::now();
        let found = lookups.find(digest(1), &metrics).await.unwrap();
        assert_eq!(found.unwrap().1, digest(1));
        // One caller at a time is never paced, however quick its misses come.
        assert!(lookups.find(digest(2), &metrics).await.unwrap().is_none());
        assert!(lookups.find(digest(3), &metrics).await.unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(5), "not paced");
        let queries = lookups.source.queries();
        assert_eq!(queries.len(), 3);
        assert!(queries.iter().all(|(_, digests)| digests.len() == 1));
        assert_eq!(metrics.key_lookup_counts(), (0, 0, 0), "no batch");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_go_together_and_each_gets_its_own_answer() {
        let store = FakeStore {
            known: (0..500).filter(|n| n % 7 == 0).map(digest).collect(),
            delay: Duration::from_millis(2),
            ..FakeStore::default()
        };
        let pace = Duration::from_millis(5);
        let lookups = lookups(store, pace, 10_000);
        let metrics = Metrics::new();
        let answers = find_all(&lookups, &metrics, (0..500).map(digest)).await;
        for (n, answer) in (0u32..).zip(answers) {
            let found = answer.unwrap();
            assert_eq!(found.is_some(), n % 7 == 0, "digest {n}");
            if let Some((_, stored, _)) = found {
                assert_eq!(stored, digest(n));
            }
        }
        let queries = lookups.source.queries();
        assert!(
            queries.len() <= 10,
            "{} queries for 500 misses",
            queries.len()
        );
        let looked_up: usize = queries.iter().map(|(_, digests)| digests.len()).sum();
        assert_eq!(looked_up, 500, "each digest once");
        for pair in queries.windows(2) {
            // The pace runs from the moment a lookup was decided, a few microseconds before
            // the fake store notes it.
            let apart = pair[1].0 - pair[0].0;
            assert!(apart >= pace - Duration::from_micros(200), "{apart:?}");
        }
        let (batches, digests, refused) = metrics.key_lookup_counts();
        assert!(batches >= 1 && batches as usize <= queries.len());
        assert!(digests >= 256, "{digests}");
        assert_eq!(refused, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_holds_at_most_its_cap_and_a_digest_once() {
        let store = FakeStore {
            delay: Duration::from_millis(20),
            ..FakeStore::default()
        };
        let lookups = Arc::new(KeyLookups::with_limits(
            store,
            Duration::from_millis(1),
            3,
            100,
        ));
        let metrics = Metrics::new();
        // The first miss goes alone; the others wait for it, then go three digests at a time.
        let digests = [0, 1, 1, 2, 2, 2, 3, 4, 5, 5].map(digest);
        let answers = find_all(&lookups, &metrics, digests).await;
        assert!(answers.iter().all(|answer| matches!(answer, Ok(None))));
        let queries = lookups.source.queries();
        assert!(queries.iter().all(|(_, digests)| digests.len() <= 3));
        for (_, digests) in &queries {
            let distinct: HashSet<_> = digests.iter().collect();
            assert_eq!(distinct.len(), digests.len(), "a digest once per batch");
        }
        assert!(queries.len() <= 4, "{}", queries.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn too_many_waiting_misses_are_refused_as_unavailable() {
        let store = FakeStore {
            delay: Duration::from_millis(200),
            ..FakeStore::default()
        };
        let lookups = lookups(store, Duration::from_millis(1), 4);
        let metrics = Metrics::new();
        let answers = find_all(&lookups, &metrics, (0..20).map(digest)).await;
        let refused = answers
            .iter()
            .filter(|answer| matches!(answer, Err(Error::Unavailable)))
            .count();
        // One in flight, four waiting: the other fifteen are refused.
        assert!(refused >= 15, "{refused}");
        assert!(answers.iter().filter(|answer| answer.is_ok()).count() >= 1);
        assert_eq!(metrics.key_lookup_counts().2, refused as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_fails_each_of_its_misses() {
        let store = FakeStore {
            delay: Duration::from_millis(10),
            fail: true,
            ..FakeStore::default()
        };
        let lookups = lookups(store, Duration::from_millis(1), 100);
        let metrics = Metrics::new();
        let answers = find_all(&lookups, &metrics, (0..30).map(digest)).await;
        assert!(
            answers
                .iter()
                .all(|answer| matches!(answer, Err(Error::Unavailable)))
        );
        // And the lookups go on afterwards.
        let answers = find_all(&lookups, &metrics, (30..40).map(digest)).await;
        assert_eq!(answers.len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_callers_do_not_break_the_batch() {
        let store = FakeStore {
            known: [digest(7)].into(),
            delay: Duration::from_millis(30),
            ..FakeStore::default()
        };
        let lookups = lookups(store, Duration::from_millis(1), 100);
        let metrics = Metrics::new();
        // The first miss runs on its own, in its caller: cancel it mid-query.
        let first = {
            let (lookups, metrics) = (Arc::clone(&lookups), metrics.clone());
            tokio::spawn(async move { lookups.find(digest(1), &metrics).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        // These wait behind it; cancel half of them too.
        let waiting: Vec<_> = (2..12)
            .map(|n| {
                let (lookups, metrics) = (Arc::clone(&lookups), metrics.clone());
                tokio::spawn(async move { lookups.find(digest(n), &metrics).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.abort();
        // Digest 7 is at index 5, which stays.
        for task in waiting.iter().step_by(2) {
            task.abort();
        }
        let mut answered = 0;
        for (index, task) in waiting.into_iter().enumerate() {
            match task.await {
                Ok(answer) => {
                    let found = answer.unwrap();
                    assert_eq!(found.is_some(), index == 5, "only digest 7 is known");
                    answered += 1;
                }
                Err(error) => assert!(error.is_cancelled()),
            }
        }
        assert!(answered >= 5, "{answered}");
        // The lookups are not stuck: a new miss is answered.
        let found = lookups.find(digest(7), &metrics).await.unwrap();
        assert!(found.is_some());
    }
}
