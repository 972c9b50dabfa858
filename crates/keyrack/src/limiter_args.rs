//! `keyrack serve`'s rate limiter options: where the counters live.

use std::time::Duration;

use clap::Args;
use key_grpc::{KeyManager, RedisLimiter};

/// Rate limiter options of `serve`.
#[derive(Debug, Args)]
pub(crate) struct LimiterArgs {
    /// Redis that keeps rate limits global across replicas, e.g. `redis://127.0.0.1:6379`.
    /// Unset: each process keeps its own limits in memory.
    #[arg(long, env = "KEYRACK_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Milliseconds a rate limit decision waits for Redis before deciding locally.
    #[arg(long, env = "KEYRACK_REDIS_TIMEOUT_MS", default_value_t = 50)]
    redis_timeout_ms: u64,
}

impl LimiterArgs {
    /// `manager` with its limiter. A malformed Redis URL stops the start (a configuration
    /// mistake); an unreachable Redis does not: the limiter starts on local limits, says so in
    /// the log and the metrics, and moves to Redis once it answers.
    pub(crate) async fn apply(&self, manager: KeyManager) -> anyhow::Result<KeyManager> {
        let Some(url) = &self.redis_url else {
            tracing::info!("rate limits are kept in this process's memory (no --redis-url)");
            return Ok(manager);
        };
        let limiter =
            RedisLimiter::new(url)?.with_timeout(Duration::from_millis(self.redis_timeout_ms));
        // Logs whether Redis answered; either way the limiter is ready.
        limiter.probe(manager.metrics()).await;
        Ok(manager.with_limiter(limiter))
    }
}
