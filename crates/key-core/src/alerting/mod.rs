//! Alerts: the rules an organization (or one key) sets (`rules`), the judgements Keyrack makes
//! by its own measures (`judgements`: usage spikes, dormant keys, expiry notice), and the alerts
//! they raise, each with the key that makes it fire at most once (`alert`).
//!
//! Everything here is arithmetic on counts and instants handed in by the caller; the store
//! supplies the counts and the clock supplies "now".

pub(crate) mod alert;
pub(crate) mod judgements;
pub(crate) mod rules;

/// Helpers the tests of all three files use, written once here rather than in each.
#[cfg(test)]
mod fixtures {
    use chrono::{DateTime, TimeZone, Utc};

    use crate::ThresholdFields;

    /// Field names as a request for a key's `high_usage` rule would report them.
    pub(super) const FIELDS: ThresholdFields = ThresholdFields {
        threshold: "rules.high_usage.threshold",
        period: "rules.high_usage.period",
    };

    /// The instant `h:m:07` UTC on 2026-01-15.
    pub(super) fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, h, m, 7).unwrap()
    }
}
