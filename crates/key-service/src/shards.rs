//! Sharded maps with a size counter, shared by the local limiter, the brute-force guard and the
//! tag budget: no lock every request contends on, and a size read without visiting every shard.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, RandomState},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

const SHARDS: usize = 64;

/// Sharded maps keyed by `K`, with their total size kept in an atomic so it can be read (and
/// capped) without visiting every shard. `S` hashes the keys: std's SipHash by default, for
/// keys a client chooses (its address); the rate limiter, keyed by key ids the server drew,
/// takes the faster foldhash.
#[derive(Debug)]
pub(crate) struct Shards<K, V, S = RandomState> {
    shards: Box<[Mutex<HashMap<K, V, S>>]>,
    hasher: S,
    len: AtomicUsize,
}

impl<K: Hash + Eq, V, S: BuildHasher + Default + Clone> Shards<K, V, S> {
    pub(crate) fn new() -> Self {
        let hasher = S::default();
        Shards {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
            len: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on the shard of `key`, under its lock.
    pub(crate) fn with<R>(&self, key: &K, f: impl FnOnce(&mut HashMap<K, V, S>) -> R) -> R {
        // The modulo keeps the index below SHARDS, so the truncation is harmless.
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut map = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = map.len();
        let result = f(&mut map);
        self.count_change(before, map.len());
        result
    }

    /// Keeps the entries for which `keep` is true, one shard at a time; returns how many were
    /// removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let before = map.len();
            map.retain(&mut keep);
            removed += before - map.len();
            self.count_change(before, map.len());
        }
        removed
    }

    fn count_change(&self, before: usize, after: usize) {
        // Only inserts and removals touch the shared counter; most calls change nothing.
        if after > before {
            self.len.fetch_add(after - before, Ordering::Relaxed);
        } else if after < before {
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}
