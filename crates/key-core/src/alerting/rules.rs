//! Alert rules: what an organization (or one key) sets (unusual activity on or off, and
//! thresholds with the periods they count over), which rules are in force for a key, and their
//! stored form.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::Error;

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
    pub(super) fn in_words(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::alerting::fixtures::{FIELDS, at};

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
