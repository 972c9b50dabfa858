//! Alerts: the rules an organization (or one key) sets, the unusual-activity rules Keyrack
//! applies itself, and the alerts they raise, each with the key that makes it fire at most once.
//!
//! Everything here is arithmetic on counts and instants handed in by the caller; the store
//! supplies the counts and the clock supplies "now".

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use uuid::Uuid;

use crate::{Error, expiry::last_valid_day};

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

/// The window an alert threshold counts over: a UTC clock hour or a UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertPeriod {
    /// `hourly`
    Hourly,
    /// `daily`
    Daily,
}

impl AlertPeriod {
    /// Both periods.
    pub const ALL: [AlertPeriod; 2] = [AlertPeriod::Hourly, AlertPeriod::Daily];

    /// The period's name, as in the docs' `"period": "daily"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertPeriod::Hourly => "hourly",
            AlertPeriod::Daily => "daily",
        }
    }

    /// The period with this name, if any.
    pub fn parse(name: &str) -> Option<AlertPeriod> {
        AlertPeriod::ALL
            .into_iter()
            .find(|period| period.as_str() == name)
    }

    /// How long one period lasts.
    pub const fn length(self) -> TimeDelta {
        match self {
            AlertPeriod::Hourly => TimeDelta::hours(1),
            AlertPeriod::Daily => TimeDelta::days(1),
        }
    }

    /// The start of the period `at` falls in: its UTC hour or its UTC day.
    pub fn period_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        // Truncating a valid instant to an hour or a day only fails out of chrono's range,
        // where the instant itself is the best answer left.
        at.duration_trunc(self.length()).unwrap_or(at)
    }

    /// How the period reads in a sentence: "this hour" or "today".
    fn in_words(self) -> &'static str {
        match self {
            AlertPeriod::Hourly => "this hour",
            AlertPeriod::Daily => "today",
        }
    }
}

/// A rule that fires when a count reaches `threshold` within one `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertThreshold {
    threshold: i64,
    period: AlertPeriod,
}

impl AlertThreshold {
    /// Validates a threshold as a client gave it: at least 1, with a period. `fields` name the
    /// request's fields in errors (e.g. `rules.high_usage.threshold`).
    pub fn new(
        fields: ThresholdFields,
        threshold: i64,
        period: Option<AlertPeriod>,
    ) -> Result<AlertThreshold, Error> {
        if threshold < 1 {
            return Err(Error::InvalidArgument {
                field: fields.threshold,
                message: "must be at least 1".to_owned(),
            });
        }
        let period = period.ok_or_else(|| Error::InvalidArgument {
            field: fields.period,
            message: "must be hourly or daily".to_owned(),
        })?;
        Ok(AlertThreshold { threshold, period })
    }

    /// The count at which the rule fires.
    pub fn threshold(&self) -> i64 {
        self.threshold
    }

    /// The period counted over.
    pub fn period(&self) -> AlertPeriod {
        self.period
    }

    /// Whether `count` (in one period) makes the rule fire: it fires on reaching the threshold.
    pub fn reached(&self, count: i64) -> bool {
        count >= self.threshold
    }
}

/// The names of a threshold's two fields in a request, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThresholdFields {
    /// E.g. `rules.high_usage.threshold`.
    pub threshold: &'static str,
    /// E.g. `rules.high_usage.period`.
    pub period: &'static str,
}

/// The docs' `alerts` object: `{"unusualActivity": true, "highUsage": {...}, "failures": {...}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRules {
    /// New country, usage spike and dormant key used alerts.
    pub unusual_activity: bool,
    /// Fires when a key's verifications in a period reach the threshold.
    pub high_usage: Option<AlertThreshold>,
    /// Fires when a key's failed verifications in a period reach the threshold.
    pub failures: Option<AlertThreshold>,
}

/// Where the rules in force for a key, or for an organization, come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertRulesSource {
    /// Keyrack's defaults: [`AlertRules::DEFAULT`].
    Default,
    /// The organization's rules.
    Organization,
    /// The key's own override, which replaces the organization's rules whole.
    Key,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules::DEFAULT
    }
}

impl AlertRules {
    /// What applies when neither the organization nor the key set anything: unusual activity
    /// on, no thresholds.
    pub const DEFAULT: AlertRules = AlertRules {
        unusual_activity: true,
        high_usage: None,
        failures: None,
    };

    /// The rules in force for a key with `key_override`, in an organization with
    /// `organization` rules: the key's own replace the organization's whole, which replace the
    /// defaults whole.
    pub fn in_force(
        key_override: Option<AlertRules>,
        organization: Option<AlertRules>,
    ) -> (AlertRules, AlertRulesSource) {
        match (key_override, organization) {
            (Some(rules), _) => (rules, AlertRulesSource::Key),
            (None, Some(rules)) => (rules, AlertRulesSource::Organization),
            (None, None) => (AlertRules::DEFAULT, AlertRulesSource::Default),
        }
    }

    /// The stored form: `unusual_activity=on high_usage=10000/daily failures=100/hourly`,
    /// thresholds left out when unset.
    pub fn format(&self) -> String {
        let mut parts = vec![format!(
            "unusual_activity={}",
            if self.unusual_activity { "on" } else { "off" }
        )];
        for (name, rule) in [("high_usage", self.high_usage), ("failures", self.failures)] {
            if let Some(rule) = rule {
                parts.push(format!(
                    "{name}={}/{}",
                    rule.threshold,
                    rule.period.as_str()
                ));
            }
        }
        parts.join(" ")
    }

    /// Reads the stored form back; see [`AlertRules::format`].
    pub fn parse_stored(text: &str) -> Result<AlertRules, String> {
        let mut rules = AlertRules {
            unusual_activity: false,
            high_usage: None,
            failures: None,
        };
        for part in text.split_whitespace() {
            let malformed = || format!("malformed alert rule {part:?}");
            let (name, value) = part.split_once('=').ok_or_else(malformed)?;
            match name {
                "unusual_activity" => {
                    rules.unusual_activity = match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(malformed()),
                    }
                }
                "high_usage" | "failures" => {
                    let (count, period) = value.split_once('/').ok_or_else(malformed)?;
                    let threshold = AlertThreshold::new(
                        ThresholdFields {
                            threshold: "alert_rules",
                            period: "alert_rules",
                        },
                        count.parse().map_err(|_| malformed())?,
                        AlertPeriod::parse(period),
                    )
                    .map_err(|_| malformed())?;
                    if name == "high_usage" {
                        rules.high_usage = Some(threshold);
                    } else {
                        rules.failures = Some(threshold);
                    }
                }
                _ => return Err(malformed()),
            }
        }
        Ok(rules)
    }
}

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
}

impl AlertType {
    /// Every type.
    pub const ALL: [AlertType; 8] = [
        AlertType::HighUsage,
        AlertType::Failures,
        AlertType::NewCountry,
        AlertType::UsageSpike,
        AlertType::DormantKeyUsed,
        AlertType::KeyExpiring,
        AlertType::RotationDue,
        AlertType::Test,
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
        }
    }

    /// The type with this name, if any.
    pub fn parse(name: &str) -> Option<AlertType> {
        AlertType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

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
            rule.period.in_words(),
            rule.threshold
        );
        Alert {
            observed,
            threshold: rule.threshold,
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
            rule.period.in_words(),
            rule.threshold
        );
        Alert {
            observed,
            threshold: rule.threshold,
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
    use proptest::prelude::*;

    use super::*;

    const FIELDS: ThresholdFields = ThresholdFields {
        threshold: "rules.high_usage.threshold",
        period: "rules.high_usage.period",
    };

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, h, m, 7).unwrap()
    }

    #[test]
    fn periods_start_at_the_utc_hour_and_day() {
        assert_eq!(
            AlertPeriod::Hourly.period_start(at(10, 30)),
            Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
        );
        assert_eq!(
            AlertPeriod::Daily.period_start(at(23, 59)),
            Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap()
        );
        assert_eq!(AlertPeriod::parse("daily"), Some(AlertPeriod::Daily));
        assert_eq!(AlertPeriod::parse("weekly"), None);
    }

    #[test]
    fn thresholds_need_at_least_one_and_a_period() {
        let rule = AlertThreshold::new(FIELDS, 1, Some(AlertPeriod::Hourly)).unwrap();
        assert!(!rule.reached(0));
        assert!(rule.reached(1));
        assert!(matches!(
            AlertThreshold::new(FIELDS, 0, Some(AlertPeriod::Hourly)),
            Err(Error::InvalidArgument {
                field: "rules.high_usage.threshold",
                ..
            })
        ));
        assert!(matches!(
            AlertThreshold::new(FIELDS, 10, None),
            Err(Error::InvalidArgument {
                field: "rules.high_usage.period",
                ..
            })
        ));
    }

    #[test]
    fn a_key_override_replaces_the_organization_rules_whole() {
        let quiet = AlertRules {
            unusual_activity: false,
            high_usage: None,
            failures: None,
        };
        let loud = AlertRules {
            unusual_activity: true,
            high_usage: Some(AlertThreshold::new(FIELDS, 5, Some(AlertPeriod::Daily)).unwrap()),
            failures: None,
        };
        assert_eq!(
            AlertRules::in_force(None, None),
            (AlertRules::DEFAULT, AlertRulesSource::Default)
        );
        assert_eq!(
            AlertRules::in_force(None, Some(loud)),
            (loud, AlertRulesSource::Organization)
        );
        assert_eq!(
            AlertRules::in_force(Some(quiet), Some(loud)),
            (quiet, AlertRulesSource::Key)
        );
    }

    #[test]
    fn stored_rules_read_back_and_garbage_is_refused() {
        let rules = AlertRules {
            unusual_activity: true,
            high_usage: Some(AlertThreshold::new(FIELDS, 10000, Some(AlertPeriod::Daily)).unwrap()),
            failures: Some(AlertThreshold::new(FIELDS, 100, Some(AlertPeriod::Hourly)).unwrap()),
        };
        assert_eq!(
            rules.format(),
            "unusual_activity=on high_usage=10000/daily failures=100/hourly"
        );
        assert_eq!(AlertRules::parse_stored(&rules.format()).unwrap(), rules);
        for bad in [
            "unusual_activity=yes",
            "high_usage=0/daily",
            "failures=5/weekly",
            "other=1",
            "high_usage",
        ] {
            assert!(AlertRules::parse_stored(bad).is_err(), "{bad}");
        }
    }

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
        let alert = Alert::usage_spike(Uuid::nil(), "ci", at(10, 0), 101, week);
        assert_eq!(alert.threshold, 101);
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

    proptest! {
        #[test]
        fn every_instant_of_a_period_shares_its_start(offset in 0i64..86_400) {
            let day = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
            let at = day + TimeDelta::seconds(offset);
            prop_assert_eq!(AlertPeriod::Daily.period_start(at), day);
            let hour = AlertPeriod::Hourly.period_start(at);
            prop_assert!(hour <= at && at - hour < TimeDelta::hours(1));
            prop_assert_eq!(hour.timestamp() % 3600, 0);
        }

        #[test]
        fn a_spike_is_exactly_above_ten_times_the_average(current in 0i64..1_000_000, total in 0i64..10_000_000) {
            let average = total as f64 / SPIKE_TRAILING_HOURS as f64;
            let expected = current >= SPIKE_MIN_REQUESTS && (current as f64) > 10.0 * average + 1e-9;
            // Near the boundary floating point may round either way; elsewhere it must agree.
            if ((current as f64) - 10.0 * average).abs() > 1e-6 {
                prop_assert_eq!(is_usage_spike(current, total), expected);
            }
        }

        #[test]
        fn stored_rules_round_trip(unusual: bool, high in proptest::option::of((1i64..i64::MAX, any::<bool>())), failures in proptest::option::of((1i64..i64::MAX, any::<bool>()))) {
            let threshold = |(count, daily): (i64, bool)| {
                AlertThreshold::new(FIELDS, count, Some(if daily { AlertPeriod::Daily } else { AlertPeriod::Hourly })).unwrap()
            };
            let rules = AlertRules {
                unusual_activity: unusual,
                high_usage: high.map(threshold),
                failures: failures.map(threshold),
            };
            prop_assert_eq!(AlertRules::parse_stored(&rules.format()).unwrap(), rules);
        }
    }
}
