//! `keyrack serve`'s key cache options: how many keys VerifyKey answers from memory, and for
//! how long.

use clap::Args;
use key_grpc::{
    DEFAULT_NEGATIVE_CACHE_CAPACITY, DEFAULT_NEGATIVE_CACHE_TTL, KeyCacheSettings, KeyManager,
};

/// Key cache options of `serve`.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// How many keys are cached in memory for verification (a few hundred bytes each).
    #[arg(long, env = "KEYRACK_KEY_CACHE_CAPACITY", default_value_t = key_grpc::DEFAULT_KEY_CACHE_CAPACITY)]
    key_cache_capacity: usize,
    /// How long a cached key is trusted, e.g. `5s`: another replica's revocation or change
    /// takes effect here within this time (this process's own changes at once). `0` turns the
    /// cache off: every verification reads the database.
    #[arg(long, env = "KEYRACK_KEY_CACHE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    key_cache_ttl: std::time::Duration,
}

impl CacheArgs {
    /// `manager` with these options applied. Unknown keys are remembered with the defaults
    /// (`DEFAULT_NEGATIVE_CACHE_CAPACITY` digests for `DEFAULT_NEGATIVE_CACHE_TTL`).
    pub(crate) fn apply(&self, manager: KeyManager) -> KeyManager {
        let settings = KeyCacheSettings {
            capacity: self.key_cache_capacity,
            ttl: self.key_cache_ttl,
            negative_capacity: DEFAULT_NEGATIVE_CACHE_CAPACITY,
            negative_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
        };
        if settings.ttl.is_zero() || settings.capacity == 0 {
            tracing::warn!("the key cache is off: every verification reads the database");
        }
        manager.with_key_cache(settings)
    }
}
