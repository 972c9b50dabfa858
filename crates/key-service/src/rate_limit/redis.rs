//! Rate limits shared by every replica through Redis, with local limits while Redis is
//! unreachable.
//!
//! One decision is one round trip: a Lua script (sent once, then called by its SHA with
//! EVALSHA) reads every window of the key, and counts the request in all of them only if all
//! allow it, atomically. It is the same fixed-window, all-or-nothing decision as
//! `key_core::RateWindows`, on the `now` of the verifier's clock, so replicas agree on windows
//! and `reset` and tests drive it with their clock.
//!
//! Verification never fails because of the limiter. Each call to Redis is bounded by a short
//! timeout; on an error or a timeout the request is decided by a [`LocalLimiter`], counted
//! (`keyrack_rate_limiter_fallbacks_total`), and the limiter is marked down
//! (`keyrack_rate_limiter_remote_up` 0, one log line). While down, requests do not wait for
//! Redis: at most one request per retry interval tries it again, and the first that gets an
//! answer brings the limiter back (gauge 1, one log line).

use std::{
    fmt,
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use key_core::{Period, RateDecision, RateLimit, RateLimits};
use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tracing::Instrument;
use uuid::Uuid;

use super::local::LocalLimiter;
use crate::{SetupError, metrics::Metrics};

/// How long a decision waits for Redis by default before falling back to local limits.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// How often, by default, Redis is tried again while it is unreachable.
pub const DEFAULT_REDIS_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long the first contact (connecting and loading the script) may take at start.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a window's counter outlives the window in Redis. The counter's name holds its
/// window, so an ended window's counter is never read again and only waits to expire; the
/// margin keeps a window alive across clock differences between the replicas, which choose
/// windows, and Redis, which expires them.
const EXPIRY_MARGIN_MS: i64 = 5_000;

/// KEYS[i] is the counter of one window of the key, ARGV[2i-1] its limit, ARGV[2i] its expiry
/// in milliseconds. Returns 0 when the request was counted in every window, else a bit mask
/// of the windows that refused it (bit i-1 for KEYS[i]), having counted nothing.
const ACQUIRE_SCRIPT: &str = r"
local refused = 0
local bit = 1
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[2 * i - 1]) then
    refused = refused + bit
  end
  bit = bit * 2
end
if refused > 0 then
  return refused
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
  end
end
return 0
";

/// Rate limit counters in Redis, shared by every replica that uses the same Redis.
#[derive(Debug)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    timeout: Duration,
    breaker: Breaker,
    fallback: LocalLimiter,
}

impl RedisLimiter {
    /// A limiter on the Redis at `url` (`redis://host:6379`, `rediss://…` is not built in).
    /// Nothing is contacted yet: an unreachable Redis is not an error here (see
    /// [`RedisLimiter::probe`]); a malformed URL is.
    pub fn new(url: &str) -> Result<RedisLimiter, SetupError> {
        let client = Client::open(url)?;
        // Only the address goes to the log: the URL may carry a password.
        let address = client.get_connection_info().addr().to_string();
        // The connection's own retries run in the background; decisions never wait for more
        // than the limiter's timeout, whatever the connection is doing.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisLimiter {
            connection,
            script: Script::new(ACQUIRE_SCRIPT),
            timeout: DEFAULT_REDIS_TIMEOUT,
            breaker: Breaker::new(address, DEFAULT_REDIS_RETRY_INTERVAL),
            fallback: LocalLimiter::default(),
        })
    }

    /// Waits at most `timeout` for Redis on each decision ([`DEFAULT_REDIS_TIMEOUT`] by
    /// default).
    pub fn with_timeout(mut self, timeout: Duration) -> RedisLimiter {
        self.timeout = timeout;
        self
    }

    /// While Redis is unreachable, tries it again at most every `interval`
    /// ([`DEFAULT_REDIS_RETRY_INTERVAL`] by default).
    pub fn with_retry_interval(mut self, interval: Duration) -> RedisLimiter {
        self.breaker.interval_ms = millis(interval);
        self
    }

    /// Connects and loads the script, so the first decision takes one round trip. Returns
    /// whether Redis answered; either way the limiter is usable (on local limits until Redis
    /// answers), and the outcome is logged and set in `metrics`.
    pub async fn probe(&self, metrics: &Metrics) -> bool {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(PROBE_TIMEOUT, self.script.load_async(&mut connection)).await {
            Ok(Ok(_)) => {
                self.breaker.succeeded(metrics);
                true
            }
            Ok(Err(error)) => {
                self.breaker.failed(metrics, &error);
                false
            }
            Err(_) => {
                self.breaker.failed(metrics, &NoAnswer(PROBE_TIMEOUT));
                false
            }
        }
    }

    /// Decides one request of key `key_id` at `now` under `limits` in Redis, or locally while
    /// Redis is unreachable (see the module docs).
    pub async fn acquire(
        &self,
        key_id: Uuid,
        limits: &RateLimits,
        now: DateTime<Utc>,
        metrics: &Metrics,
    ) -> RateDecision {
        if limits.is_empty() {
            return RateDecision::Allowed;
        }
        if self.breaker.may_try() {
            let decide = self
                .decide(key_id, limits, now)
                .instrument(key_telemetry::child_span(|| {
                    tracing::info_span!("redis.rate_limit", db.system.name = "redis")
                }));
            match tokio::time::timeout(self.timeout, decide).await {
                Ok(Ok(decision)) => {
                    self.breaker.succeeded(metrics);
                    return decision;
                }
                Ok(Err(error)) => self.breaker.failed(metrics, &error),
                Err(_) => self.breaker.failed(metrics, &NoAnswer(self.timeout)),
            }
        }
        metrics.limiter_fallback();
        self.fallback.acquire(key_id, limits, now)
    }

    /// The limiter that decides while Redis is unreachable.
    pub(super) fn fallback(&self) -> &LocalLimiter {
        &self.fallback
    }

    async fn decide(
        &self,
        key_id: Uuid,
        limits: &RateLimits,
        now: DateTime<Utc>,
    ) -> redis::RedisResult<RateDecision> {
        let mut invocation = self.script.prepare_invoke();
        for limit in limits.iter() {
            let (start, _) = window(limit.per, now);
            // The braces are a Redis Cluster hash tag: all of a key's counters live on one
            // node, as one script must touch keys of one slot only.
            invocation.key(format!(
                "keyrack:rl:{{{key_id}}}:{}:{start}",
                limit.per.as_str()
            ));
            invocation
                .arg(limit.requests)
                .arg(limit.per.seconds() * 1000 + EXPIRY_MARGIN_MS);
        }
        let mut connection = self.connection.clone();
        let refused: u8 = invocation.invoke_async(&mut connection).await?;
        Ok(decision(refused, limits, now))
    }
}

/// The decision the script's answer `refused` means: of several refusing limits, the one that
/// stays closed longest, as `RateWindows::acquire` picks.
fn decision(refused: u8, limits: &RateLimits, now: DateTime<Utc>) -> RateDecision {
    let mut longest: Option<(RateLimit, DateTime<Utc>)> = None;
    for (index, limit) in limits.iter().enumerate() {
        if refused & (1 << index) == 0 {
            continue;
        }
        let (_, end) = window(limit.per, now);
        if longest.is_none_or(|(_, at)| end > at) {
            longest = Some((limit, end));
        }
    }
    match longest {
        None => RateDecision::Allowed,
        Some((limit, reset)) => RateDecision::Limited {
            limit,
            retry_after: reset - now,
            reset,
        },
    }
}

/// The window of `per` containing `now` (key-core's windows): its start in Unix seconds, which
/// names its counter, and its end.
fn window(per: Period, now: DateTime<Utc>) -> (i64, DateTime<Utc>) {
    let (index, end) = per.window(now);
    (index * per.seconds(), end)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Redis gave no answer within the timeout.
#[derive(Debug)]
struct NoAnswer(Duration);

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {} ms", self.0.as_millis())
    }
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A circuit breaker on atomics: whether Redis answered last, and when it may be tried again
/// while it does not. Reading it is all a request does while Redis is up.
#[derive(Debug)]
struct Breaker {
    /// Redis's address, for the log.
    address: String,
    state: AtomicU8,
    /// While down: when (milliseconds since `started`) the next request may try Redis.
    retry_at_ms: AtomicU64,
    interval_ms: u64,
    started: Instant,
}

impl Breaker {
    fn new(address: String, interval: Duration) -> Breaker {
        Breaker {
            address,
            state: AtomicU8::new(UNKNOWN),
            retry_at_ms: AtomicU64::new(0),
            interval_ms: millis(interval),
            started: Instant::now(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// Whether this request should ask Redis. While down, only the one request that moves
    /// the retry time forward does, once per interval.
    fn may_try(&self) -> bool {
        if self.state.load(Ordering::Relaxed) != DOWN {
            return true;
        }
        let now = self.elapsed_ms();
        let retry_at = self.retry_at_ms.load(Ordering::Relaxed);
        now >= retry_at
            && self
                .retry_at_ms
                .compare_exchange(
                    retry_at,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn succeeded(&self, metrics: &Metrics) {
        if self.state.load(Ordering::Relaxed) == UP {
            return;
        }
        let before = self.state.swap(UP, Ordering::Relaxed);
        if before == UP {
            return;
        }
        metrics.set_limiter_remote_up(true);
        if before == DOWN {
            tracing::info!(redis = %self.address, "Redis rate limiter reachable again: rate limits are global again");
        } else {
            tracing::info!(redis = %self.address, "Redis rate limiter connected: rate limits are global");
        }
    }

    fn failed(&self, metrics: &Metrics, error: &dyn fmt::Display) {
        self.retry_at_ms.store(
            self.elapsed_ms().saturating_add(self.interval_ms),
            Ordering::Relaxed,
        );
        if self.state.swap(DOWN, Ordering::Relaxed) != DOWN {
            metrics.set_limiter_remote_up(false);
            tracing::warn!(
                redis = %self.address,
                %error,
                "Redis rate limiter unreachable: falling back to local rate limits (per process) until it answers"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_longest_closed_refusing_limit_is_reported() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 30).unwrap();
        let limits = RateLimits::parse("x", "2/second 5/minute").unwrap();
        assert_eq!(decision(0, &limits, now), RateDecision::Allowed);
        let RateDecision::Limited {
            limit,
            retry_after,
            reset,
        } = decision(0b11, &limits, now)
        else {
            panic!("not limited");
        };
        assert_eq!(limit.per, Period::Minute);
        assert_eq!(retry_after, chrono::TimeDelta::seconds(30));
        assert_eq!(reset, Utc.with_ymd_and_hms(2026, 1, 1, 12, 1, 0).unwrap());
    }

    #[test]
    fn while_down_one_request_per_interval_tries_again() {
        let metrics = Metrics::new();
        let breaker = Breaker::new("test".to_owned(), Duration::from_secs(3600));
        assert!(breaker.may_try());
        breaker.failed(&metrics, &"refused");
        assert!(!breaker.may_try());
        assert!(
            metrics
                .render()
                .lines()
                .any(|line| line == "keyrack_rate_limiter_remote_up 0")
        );
        breaker.retry_at_ms.store(0, Ordering::Relaxed);
        assert!(breaker.may_try());
        assert!(!breaker.may_try(), "only one request tries");
        breaker.succeeded(&metrics);
        assert!(breaker.may_try());
        assert!(
            metrics
                .render()
                .lines()
                .any(|line| line == "keyrack_rate_limiter_remote_up 1")
        );
    }
}
