//! The cache notice listener: on PostgreSQL, the changes every replica commits reach this
//! process's key cache, so a key revoked through one replica is refused by all of them at once.
//!
//! While the listener has no connection (at start, and after a loss until it reconnects), the
//! key cache is suspended and every verification reads the store: slower, never stale. The
//! listener's losses only cost speed, so readiness does not depend on it; the metric
//! `keyrack_cache_notices_listening` and the logs tell.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use key_core::Error;
use key_store::{CacheNotice, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{metrics::Metrics, verify::KeyCache};

/// The first wait before subscribing again after a failure; it doubles at each failure in a
/// row, up to [`MAX_RETRY_DELAY`].
const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to subscribe.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Applies other processes' changes to the key cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheNotices {
    store: Store,
    cache: Arc<KeyCache>,
    metrics: Metrics,
    listening: watch::Sender<bool>,
    markers: Arc<Markers>,
}

/// The markers this process sends itself ([`CacheNotices::caught_up`]).
#[derive(Debug)]
struct Markers {
    /// Tells this process's markers from other replicas'.
    instance: Uuid,
    /// The number of the last marker sent.
    sent: AtomicU64,
    /// The number of the last marker received.
    received: watch::Sender<u64>,
}

impl CacheNotices {
    /// The listener of `store`'s notices for `cache`. On PostgreSQL the cache is suspended
    /// until the listener is subscribed ([`CacheNotices::run`]); on SQLite there is nothing to
    /// listen to (one process) and the cache is used at once.
    pub(crate) fn new(store: Store, cache: Arc<KeyCache>, metrics: Metrics) -> CacheNotices {
        let needed = store.sends_cache_notices();
        if needed {
            cache.suspend();
        }
        metrics.set_cache_notices_listening(!needed);
        CacheNotices {
            store,
            cache,
            metrics,
            listening: watch::Sender::new(!needed),
            markers: Arc::new(Markers {
                instance: Uuid::new_v4(),
                sent: AtomicU64::new(0),
                received: watch::Sender::new(0),
            }),
        }
    }

    /// Returns once every change committed before the call has reached this process's cache
    /// (at once on SQLite), or fails after `timeout`: a marker notice goes through the
    /// database behind them. For tests, and for whoever must read their own writes through
    /// another replica.
    pub async fn caught_up(&self, timeout: Duration) -> Result<(), Error> {
        if !self.store.sends_cache_notices() {
            return Ok(());
        }
        let number = self.markers.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let mut received = self.markers.received.subscribe();
        self.store
            .send_cache_marker(&format!("{}:{number}", self.markers.instance))
            .await?;
        tokio::time::timeout(timeout, received.wait_for(|seen| *seen >= number))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|_| ())
            .ok_or(Error::Unavailable)
    }

    /// Waits at most `timeout` until the key cache is in use: at once on SQLite; on
    /// PostgreSQL, once the listener is subscribed. Returns whether it is. A server may
    /// serve before (from the store), so this only spares a freshly started process its
    /// first second of database reads, and tests a race.
    pub async fn wait_until_listening(&self, timeout: Duration) -> bool {
        let mut listening = self.listening.subscribe();
        tokio::time::timeout(timeout, listening.wait_for(|listening| *listening))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Subscribes and applies notices until `cancel` fires, subscribing again with backoff
    /// after every loss. Returns at once on SQLite.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let Some(mut listener) = self.store.notice_listener() else {
            return;
        };
        let mut retry_delay = MIN_RETRY_DELAY;
        loop {
            let subscribed = tokio::select! {
                () = cancel.cancelled() => return,
                subscribed = listener.subscribe() => subscribed,
            };
            if let Err(error) = subscribed {
                tracing::warn!(
                    %error,
                    retry_in = ?retry_delay,
                    "cannot listen for cache notices; every verification reads the database"
                );
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(retry_delay) => {}
                }
                retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                continue;
            }
            retry_delay = MIN_RETRY_DELAY;
            // Changes committed before the subscription were not heard: start from empty.
            self.cache.resume();
            self.set_listening(true);
            tracing::info!("listening for cache notices; the key cache is in use");
            loop {
                let next = tokio::select! {
                    () = cancel.cancelled() => return,
                    next = listener.next() => next,
                };
                match next {
                    Ok(notice) => self.apply(notice),
                    Err(error) => {
                        self.cache.suspend();
                        self.set_listening(false);
                        self.metrics.cache_notice_listener_lost();
                        tracing::warn!(
                            %error,
                            "lost the cache notice listener; the key cache is emptied and every \
                             verification reads the database until it is back"
                        );
                        break;
                    }
                }
            }
        }
    }

    fn apply(&self, notice: CacheNotice) {
        self.metrics.cache_notice_received();
        match notice {
            CacheNotice::Key(digest) => self.cache.forget_digest(&digest),
            CacheNotice::Member(member_id) => self.cache.forget_member(member_id),
            CacheNotice::Organization(organization_id) => {
                self.cache.forget_organization(organization_id);
            }
            CacheNotice::Marker(marker) => {
                let number = marker
                    .strip_prefix(&format!("{}:", self.markers.instance))
                    .and_then(|number| number.parse().ok());
                if let Some(number) = number {
                    self.markers.received.send_if_modified(|seen| {
                        let newer = number > *seen;
                        *seen = (*seen).max(number);
                        newer
                    });
                }
            }
        }
    }

    fn set_listening(&self, listening: bool) {
        self.metrics.set_cache_notices_listening(listening);
        self.listening.send_replace(listening);
    }
}
