//! Alerts: what each is about, and how one is built, with the numbers behind it, a sentence
//! for people and the dedup key that makes it fire at most once.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::{
    AlertPeriod, AlertThreshold, SPIKE_FACTOR, SPIKE_MIN_REQUESTS, SPIKE_TRAILING_HOURS,
    key::expiry::last_valid_day,
};

/// What an alert is about. The names are stable: they are stored, sent to webhooks and used
/// as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertType {
    /// `high_usage`: a key's verifications in a period reached the threshold.
    HighUsage,
    /// `failures`: a key's failed verifications in a period reached the threshold.
    Failures,
    /// `new_country`: first use of a key from a country it was never used from.
    NewCountry,
    /// `usage_spike`: an hour above 10× the key's trailing 7-day hourly average (and ≥ 100).
    UsageSpike,
    /// `dormant_key_used`: use after 30 days or more of silence.
    DormantKeyUsed,
    /// `key_expiring`: the key expires within 7 days.
    KeyExpiring,
    /// `rotation_due`: the key reached its organization's maximum key age.
    RotationDue,
    /// `test`: sent on request, to try the webhooks.
    Test,
    /// `key_leaked`: a secret-scanning report found the key in public.
    KeyLeaked,
}

impl AlertType {
    /// Every type.
    pub const ALL: [AlertType; 9] = [
        AlertType::HighUsage,
        AlertType::Failures,
        AlertType::NewCountry,
        AlertType::UsageSpike,
        AlertType::DormantKeyUsed,
        AlertType::KeyExpiring,
        AlertType::RotationDue,
        AlertType::Test,
        AlertType::KeyLeaked,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertType::HighUsage => "high_usage",
            AlertType::Failures => "failures",
            AlertType::NewCountry => "new_country",
            AlertType::UsageSpike => "usage_spike",
            AlertType::DormantKeyUsed => "dormant_key_used",
            AlertType::KeyExpiring => "key_expiring",
            AlertType::RotationDue => "rotation_due",
            AlertType::Test => "test",
            AlertType::KeyLeaked => "key_leaked",
        }
    }

    /// The type with this name, if any.
    pub fn parse(name: &str) -> Option<AlertType> {
        AlertType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// One alert about to be stored, before it has an id: what it is about, the numbers behind it,
/// the sentence for people, and the dedup key that lets it be stored only once however many
/// evaluations (or replicas) raise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What it is about.
    pub alert_type: AlertType,
    /// The key concerned; `None` for a test alert.
    pub key_id: Option<Uuid>,
    /// The start of the period it is about: the hour or day of a threshold or a spike, the
    /// hour of a new country's or a dormant key's use, the expiry of an expiring key, the
    /// creation of a key due for rotation, the instant of a test.
    pub period_start: DateTime<Utc>,
    /// The count observed (thresholds and spikes), else 0.
    pub observed: i64,
    /// The threshold crossed (thresholds and spikes), else 0.
    pub threshold: i64,
    /// The new country, for `new_country`.
    pub country: Option<String>,
    /// A sentence for people.
    pub message: String,
    /// `{type}:{key}:{what}`: equal for every raising of the same alert, so the store keeps
    /// one.
    pub dedup_key: String,
}

impl Alert {
    fn about_key(
        alert_type: AlertType,
        key_id: Uuid,
        what: impl std::fmt::Display,
        period_start: DateTime<Utc>,
        message: String,
    ) -> Alert {
        Alert {
            alert_type,
            key_id: Some(key_id),
            period_start,
            observed: 0,
            threshold: 0,
            country: None,
            message,
            dedup_key: format!("{}:{key_id}:{what}", alert_type.as_str()),
        }
    }

    /// The key `key_name` made `observed` requests in the period starting at `period_start`,
    /// reaching `rule`. Once per key per period.
    pub fn high_usage(
        key_id: Uuid,
        key_name: &str,
        rule: AlertThreshold,
        period_start: DateTime<Utc>,
        observed: i64,
    ) -> Alert {
        let message = format!(
            "Key '{key_name}' made {observed} requests {} (threshold {})",
            rule.period().in_words(),
            rule.threshold()
        );
        Alert {
            observed,
            threshold: rule.threshold(),
            ..Alert::about_key(
                AlertType::HighUsage,
                key_id,
                period_start.timestamp(),
                period_start,
                message,
            )
        }
    }

    /// The key failed `observed` verifications in the period starting at `period_start`,
    /// reaching `rule`. Once per key per period.
    pub fn failures(
        key_id: Uuid,
        key_name: &str,
        rule: AlertThreshold,
        period_start: DateTime<Utc>,
        observed: i64,
    ) -> Alert {
        let message = format!(
            "Key '{key_name}' failed {observed} verifications {} (threshold {})",
            rule.period().in_words(),
            rule.threshold()
        );
        Alert {
            observed,
            threshold: rule.threshold(),
            ..Alert::about_key(
                AlertType::Failures,
                key_id,
                period_start.timestamp(),
                period_start,
                message,
            )
        }
    }

    /// The key was used from `country` for the first time, at `used_at`. Once per key per
    /// country.
    pub fn new_country(
        key_id: Uuid,
        key_name: &str,
        country: &str,
        used_at: DateTime<Utc>,
    ) -> Alert {
        let message = format!("Key '{key_name}' was used from a new country: {country}");
        Alert {
            country: Some(country.to_owned()),
            ..Alert::about_key(
                AlertType::NewCountry,
                key_id,
                country,
                AlertPeriod::Hourly.period_start(used_at),
                message,
            )
        }
    }

    /// The hour starting at `hour_start` has `observed` requests against `trailing_total` in
    /// the week before it (see [`is_usage_spike`]). Once per key per hour. The threshold
    /// reported is the smallest count that is a spike.
    ///
    /// [`is_usage_spike`]: crate::is_usage_spike
    pub fn usage_spike(
        key_id: Uuid,
        key_name: &str,
        hour_start: DateTime<Utc>,
        observed: i64,
        trailing_total: i64,
    ) -> Alert {
        // The smallest count above factor × average, and never below the minimum.
        let above_average = SPIKE_FACTOR.saturating_mul(trailing_total) / SPIKE_TRAILING_HOURS + 1;
        let threshold = above_average.max(SPIKE_MIN_REQUESTS);
        let message = format!(
            "Key '{key_name}' made {observed} requests this hour, more than {SPIKE_FACTOR} times its hourly average of the last 7 days ({average:.1})",
            // A display value only; the decision was made in integers.
            average = trailing_total as f64 / SPIKE_TRAILING_HOURS as f64,
        );
        Alert {
            observed,
            threshold,
            ..Alert::about_key(
                AlertType::UsageSpike,
                key_id,
                hour_start.timestamp(),
                hour_start,
                message,
            )
        }
    }

    /// The key, silent since `silent_since`, was used at `used_at` (see [`is_dormant_use`]).
    /// Once per silence: the dedup key names the silence's start, which every replica reads
    /// the same.
    ///
    /// [`is_dormant_use`]: crate::is_dormant_use
    pub fn dormant_key_used(
        key_id: Uuid,
        key_name: &str,
        silent_since: DateTime<Utc>,
        used_at: DateTime<Utc>,
    ) -> Alert {
        let days = (used_at - silent_since).num_days();
        let message = format!("Key '{key_name}' was used after {days} days of silence");
        Alert::about_key(
            AlertType::DormantKeyUsed,
            key_id,
            silent_since.timestamp(),
            AlertPeriod::Hourly.period_start(used_at),
            message,
        )
    }

    /// The key stops working at `expires_at`, within [`EXPIRY_NOTICE`]. Once per key per
    /// expiry: a key whose expiry moves is announced again.
    ///
    /// [`EXPIRY_NOTICE`]: crate::EXPIRY_NOTICE
    pub fn key_expiring(key_id: Uuid, key_name: &str, expires_at: DateTime<Utc>) -> Alert {
        let message = format!(
            "Key '{key_name}' expires within 7 days: it works until {}",
            last_valid_day(expires_at)
        );
        Alert::about_key(
            AlertType::KeyExpiring,
            key_id,
            expires_at.timestamp(),
            expires_at,
            message,
        )
    }

    /// The key, created at `created_at`, reached its organization's `max_key_age`. Once per
    /// key (its creation never changes).
    pub fn rotation_due(
        key_id: Uuid,
        key_name: &str,
        created_at: DateTime<Utc>,
        max_key_age: TimeDelta,
    ) -> Alert {
        let message = format!(
            "Key '{key_name}' is due for rotation: it is older than the organization's maximum key age of {} days",
            max_key_age.num_days()
        );
        Alert::about_key(
            AlertType::RotationDue,
            key_id,
            created_at.timestamp(),
            created_at,
            message,
        )
    }

    /// The key `key_name` was reported found in public at `url` (by a secret-scanning report
    /// received at `now`); `revoked` says whether the policy revoked it. Once per key: later
    /// reports of the same key are audited, not alerted again.
    pub fn key_leaked(
        key_id: Uuid,
        key_name: &str,
        url: &str,
        revoked: bool,
        now: DateTime<Utc>,
    ) -> Alert {
        let done = if revoked {
            "it was revoked"
        } else {
            "it still works (the organization's policy flags leaked keys): rotate it"
        };
        let message = format!("Key '{key_name}' was found in public at {url}; {done}");
        Alert::about_key(AlertType::KeyLeaked, key_id, "leaked", now, message)
    }

    /// A test alert, asked for at `now` about the key `key_name`. Every test is its own
    /// alert: `id` (the event's) makes the dedup key unique.
    pub fn test(id: Uuid, key_name: &str, now: DateTime<Utc>) -> Alert {
        Alert {
            alert_type: AlertType::Test,
            key_id: None,
            period_start: now,
            observed: 0,
            threshold: 0,
            country: None,
            message: format!(
                "Test alert for key '{key_name}': this endpoint receives Keyrack alerts"
            ),
            dedup_key: format!("{}:{id}", AlertType::Test.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::alerting::fixtures::{FIELDS, at};

    #[test]
    fn a_spike_alert_reports_the_smallest_spiking_count() {
        // A week of 10 an hour: the average is 10, so 101 is the smallest spike.
        let week = 10 * SPIKE_TRAILING_HOURS;
        let alert = Alert::usage_spike(Uuid::nil(), "ci", at(10, 0), 101, week);
        assert_eq!(alert.threshold, 101);
    }

    #[test]
    fn dedup_keys_name_the_type_the_key_and_the_period() {
        let key = Uuid::from_u128(7);
        let rule = AlertThreshold::new(FIELDS, 10000, Some(AlertPeriod::Daily)).unwrap();
        let day = AlertPeriod::Daily.period_start(at(9, 0));
        let alert = Alert::high_usage(key, "ci", rule, day, 10000);
        assert_eq!(
            alert.dedup_key,
            format!("high_usage:{key}:{}", day.timestamp())
        );
        assert_eq!(
            alert.message,
            "Key 'ci' made 10000 requests today (threshold 10000)"
        );
        let again = Alert::high_usage(key, "ci", rule, day, 10500);
        assert_eq!(alert.dedup_key, again.dedup_key);
        let next_day = Alert::high_usage(key, "ci", rule, day + TimeDelta::days(1), 10000);
        assert_ne!(alert.dedup_key, next_day.dedup_key);
        assert_eq!(
            Alert::new_country(key, "ci", "DE", at(9, 5)).dedup_key,
            format!("new_country:{key}:DE")
        );
        let midnight = Utc.with_ymd_and_hms(2026, 1, 18, 0, 0, 0).unwrap();
        let expiring = Alert::key_expiring(key, "ci", midnight);
        assert_eq!(
            expiring.message,
            "Key 'ci' expires within 7 days: it works until 2026-01-17"
        );
        assert_ne!(
            Alert::test(Uuid::from_u128(1), "ci", at(1, 0)).dedup_key,
            Alert::test(Uuid::from_u128(2), "ci", at(1, 0)).dedup_key
        );
        for kind in AlertType::ALL {
            assert_eq!(AlertType::parse(kind.as_str()), Some(kind));
        }
    }
}
