//! The judgements Keyrack makes by its own measures rather than by thresholds an organization
//! sets: unusual activity (a usage spike, a dormant key used) and a key expiring soon.
//!
//! Each is arithmetic on counts and instants handed in by the caller: the store supplies the
//! counts and the clock supplies "now".

use chrono::{DateTime, TimeDelta, Utc};

/// Unusual activity: an hour is a spike when it has more than this many times the key's
/// trailing hourly average...
pub const SPIKE_FACTOR: i64 = 10;

/// ...and at least this many requests, so that a quiet key's tenth request is no spike.
pub const SPIKE_MIN_REQUESTS: i64 = 100;

/// Unusual activity: the window the hourly average of a spike is taken over, in hours (7 days).
pub const SPIKE_TRAILING_HOURS: i64 = 7 * 24;

/// Unusual activity: a key used after at least this much silence is a dormant key used.
pub const DORMANCY: TimeDelta = TimeDelta::days(30);

/// A key expiring within this much time raises a `key_expiring` alert.
pub const EXPIRY_NOTICE: TimeDelta = TimeDelta::days(7);

/// Whether an hour with `current` requests is a spike for a key that had `trailing_total`
/// requests in the [`SPIKE_TRAILING_HOURS`] hours before it: more than [`SPIKE_FACTOR`] times
/// the hourly average of those hours (quiet hours count as zero), and at least
/// [`SPIKE_MIN_REQUESTS`]. A key with no history spikes at its first hour of 100 requests.
pub fn is_usage_spike(current: i64, trailing_total: i64) -> bool {
    // current > factor × total / hours, without the division's rounding or any overflow.
    current >= SPIKE_MIN_REQUESTS
        && i128::from(current) * i128::from(SPIKE_TRAILING_HOURS)
            > i128::from(SPIKE_FACTOR) * i128::from(trailing_total)
}

/// Whether a use at `used_at` ends a silence that began at `silent_since` (the key's previous
/// use, or its creation if it was never used) long enough to call the key dormant.
pub fn is_dormant_use(silent_since: DateTime<Utc>, used_at: DateTime<Utc>) -> bool {
    used_at - silent_since >= DORMANCY
}

/// Whether a key that stops working at `expires_at` expires within [`EXPIRY_NOTICE`] of `now`
/// (and has not expired yet).
pub fn expires_soon(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < expires_at && expires_at - now <= EXPIRY_NOTICE
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::alerting::fixtures::at;

    #[test]
    fn spikes_need_ten_times_the_average_and_a_hundred_requests() {
        // A week of 10 an hour: the average is 10, a spike is more than 100.
        let week = 10 * SPIKE_TRAILING_HOURS;
        assert!(!is_usage_spike(100, week));
        assert!(is_usage_spike(101, week));
        // A quiet key: 99 requests are no spike, 100 are.
        assert!(!is_usage_spike(99, 0));
        assert!(is_usage_spike(100, 0));
        assert!(!is_usage_spike(i64::MAX / 100, i64::MAX));
        assert!(is_usage_spike(i64::MAX, i64::MAX));
    }

    #[test]
    fn dormancy_starts_at_thirty_days_and_expiry_notice_at_seven() {
        let since = at(10, 0);
        assert!(!is_dormant_use(
            since,
            since + TimeDelta::days(30) - TimeDelta::seconds(1)
        ));
        assert!(is_dormant_use(since, since + TimeDelta::days(30)));
        let now = at(10, 0);
        assert!(expires_soon(now + TimeDelta::days(7), now));
        assert!(!expires_soon(
            now + TimeDelta::days(7) + TimeDelta::seconds(1),
            now
        ));
        assert!(!expires_soon(now, now));
    }

    proptest! {
        #[test]
        fn a_spike_is_exactly_above_ten_times_the_average(current in 0i64..1_000_000, total in 0i64..10_000_000) {
            let average = total as f64 / SPIKE_TRAILING_HOURS as f64;
            let expected = current >= SPIKE_MIN_REQUESTS && (current as f64) > 10.0 * average + 1e-9;
            // Near the boundary floating point may round either way; elsewhere it must agree.
            if ((current as f64) - 10.0 * average).abs() > 1e-6 {
                prop_assert_eq!(is_usage_spike(current, total), expected);
            }
        }
    }
}
