//! Webhook deliveries: where a delivery stands, and when a failed one is tried again. (The
//! HTTP headers a delivery carries belong to the worker that sends it, in key-service.)

use chrono::{DateTime, TimeDelta, Utc};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not yet answered with 2xx; another attempt is scheduled.
    Pending,
    /// An attempt was answered with 2xx.
    Succeeded,
    /// Retries ran out, or the endpoint was deleted.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state stored as `name`.
    pub fn parse(name: &str) -> Option<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// When a failed delivery is tried again.
///
/// The first attempt is made as soon as the delivery exists. After the n-th failed attempt
/// (n ≥ 1) the next one waits `min(base × 2^(n−1), cap)`, shortened by a jitter of up to 10 %
/// (so replicas and endpoints do not retry in lockstep). With the defaults (30 s base, 1 h cap):
/// 30 s, 1 min, 2 min, 4 min, 8 min, 16 min, 32 min, then every hour. A delivery gives up when
/// its next attempt would fall more than `horizon` (25 h) after its creation. As no wait
/// exceeds the cap, the last attempt is made more than `horizon − cap` (24 h) after creation:
/// retries span at least 24 hours (about 31 attempts with the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after the first failed attempt.
    pub base: TimeDelta,
    /// The longest wait between two attempts.
    pub cap: TimeDelta,
    /// No attempt is scheduled later than this after the delivery's creation.
    pub horizon: TimeDelta,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            base: TimeDelta::seconds(30),
            cap: TimeDelta::hours(1),
            horizon: TimeDelta::hours(25),
        }
    }
}

impl RetrySchedule {
    /// The default schedule with another `base` wait (tests use a short one).
    pub fn with_base(base: TimeDelta) -> RetrySchedule {
        RetrySchedule {
            base,
            ..RetrySchedule::default()
        }
    }

    /// When to try again after `attempts_made` failed attempts, the last one at `now`, of a
    /// delivery created at `created_at`; `None` to give up. `jitter` is a random value: the
    /// wait is shortened by `jitter / u32::MAX × 10 %`.
    pub fn next_attempt(
        &self,
        created_at: DateTime<Utc>,
        attempts_made: u32,
        now: DateTime<Utc>,
        jitter: u32,
    ) -> Option<DateTime<Utc>> {
        let doublings = attempts_made.saturating_sub(1).min(30);
        let wait = self
            .base
            .checked_mul(1_i32 << doublings)
            .map_or(self.cap, |wait| wait.min(self.cap));
        let wait_ms = wait.num_milliseconds();
        let shortening =
            i64::try_from(i128::from(wait_ms) * i128::from(jitter) / (10 * i128::from(u32::MAX)))
                .unwrap_or(0);
        let next = now + TimeDelta::milliseconds(wait_ms - shortening);
        (next <= created_at + self.horizon).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_the_cap_and_span_at_least_a_day() {
        let schedule = RetrySchedule::default();
        let created = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            schedule.next_attempt(created, 1, created, 0),
            Some(created + TimeDelta::seconds(30))
        );
        assert_eq!(
            schedule.next_attempt(created, 3, created, 0),
            Some(created + TimeDelta::minutes(2))
        );
        assert_eq!(
            schedule.next_attempt(created, 20, created, 0),
            Some(created + TimeDelta::hours(1))
        );
        // The largest jitter shortens a wait by 10 %.
        assert_eq!(
            schedule.next_attempt(created, 1, created, u32::MAX),
            Some(created + TimeDelta::seconds(27))
        );
        for jitter in [0, u32::MAX / 2, u32::MAX] {
            let mut now = created;
            let mut attempts = 1;
            while let Some(next) = schedule.next_attempt(created, attempts, now, jitter) {
                assert!(next > now);
                now = next;
                attempts += 1;
            }
            assert!(now - created >= TimeDelta::hours(24), "{jitter}: {now}");
            assert!(now - created <= TimeDelta::hours(25));
            assert!((25..=40).contains(&attempts), "{attempts}");
        }
    }
}
