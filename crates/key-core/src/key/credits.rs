//! A key's credits: a number of uses, each valid verification spending its cost, with an
//! optional refill each UTC day or calendar month. The count itself lives in the store and is
//! changed only by its atomic spend; these are the rules and the bounds.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::Error;

/// The most credits a key may hold, and the largest refill.
pub const MAX_CREDITS: i64 = 1_000_000_000;

/// The largest cost one verification may spend.
pub const MAX_VERIFY_COST: u32 = 1_000;

/// How often a key's credits are refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditPeriod {
    /// Each UTC day.
    Day,
    /// Each calendar month, in UTC.
    Month,
}

impl CreditPeriod {
    /// The name stored and shown: `day` or `month`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CreditPeriod::Day => "day",
            CreditPeriod::Month => "month",
        }
    }

    /// The period named `text` (`day` or `month`).
    pub fn parse(field: &'static str, text: &str) -> Result<CreditPeriod, Error> {
        match text {
            "day" => Ok(CreditPeriod::Day),
            "month" => Ok(CreditPeriod::Month),
            other => Err(Error::InvalidArgument {
                field,
                message: format!("must be day or month, not {other:?}"),
            }),
        }
    }

    /// The first instant of the period that holds `now`: midnight UTC of its day, or of the
    /// first of its month. A key last refilled before it is due a refill.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = now.date_naive();
        let first = match self {
            CreditPeriod::Day => day,
            CreditPeriod::Month => {
                NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day)
            }
        };
        Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN))
    }
}

/// A refill: `amount` credits at the first verification of each period (the remaining count is
/// set to it, not added to it, so unused credits do not pile up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditRefill {
    /// The credits after a refill, 1 to [`MAX_CREDITS`].
    pub amount: i64,
    /// The period.
    pub per: CreditPeriod,
}

/// A key's credits as set at create or update, and as last written by a spend or refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits {
    /// Uses left, 0 to [`MAX_CREDITS`].
    pub remaining: i64,
    /// The refill, if any.
    pub refill: Option<CreditRefill>,
    /// When the credits were last refilled or set.
    pub refilled_at: Option<DateTime<Utc>>,
}

impl Credits {
    /// Checks what a request sets: `remaining` and a refill's amount within their bounds.
    pub fn parse(
        remaining: i64,
        refill: Option<CreditRefill>,
        now: DateTime<Utc>,
    ) -> Result<Credits, Error> {
        if !(0..=MAX_CREDITS).contains(&remaining) {
            return Err(Error::InvalidArgument {
                field: "credits.remaining",
                message: format!("must be 0 to {MAX_CREDITS}, not {remaining}"),
            });
        }
        if let Some(refill) = refill
            && !(1..=MAX_CREDITS).contains(&refill.amount)
        {
            return Err(Error::InvalidArgument {
                field: "credits.refill.amount",
                message: format!("must be 1 to {MAX_CREDITS}, not {}", refill.amount),
            });
        }
        Ok(Credits {
            remaining,
            refill,
            refilled_at: Some(now),
        })
    }
}

/// The cost of one verification, 1 to [`MAX_VERIFY_COST`]; 0 (unset on the wire) means 1.
pub fn verify_cost(cost: u32) -> Result<u32, Error> {
    match cost {
        0 => Ok(1),
        1..=MAX_VERIFY_COST => Ok(cost),
        _ => Err(Error::InvalidArgument {
            field: "cost",
            message: format!("must be 1 to {MAX_VERIFY_COST}, not {cost}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn periods_start_at_midnight_utc_of_the_day_or_the_first_of_the_month() {
        let now = at("2026-12-06T13:05:00Z");
        assert_eq!(CreditPeriod::Day.start(now), at("2026-12-06T00:00:00Z"));
        assert_eq!(CreditPeriod::Month.start(now), at("2026-12-01T00:00:00Z"));
        assert_eq!(
            CreditPeriod::Month.start(at("2027-01-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn bounds_are_checked() {
        let now = at("2026-12-06T13:05:00Z");
        assert!(Credits::parse(-1, None, now).is_err());
        assert!(Credits::parse(MAX_CREDITS + 1, None, now).is_err());
        let empty = CreditRefill {
            amount: 0,
            per: CreditPeriod::Day,
        };
        assert!(Credits::parse(5, Some(empty), now).is_err());
        assert_eq!(Credits::parse(0, None, now).unwrap().remaining, 0);
        assert_eq!(verify_cost(0).unwrap(), 1);
        assert_eq!(verify_cost(7).unwrap(), 7);
        assert!(verify_cost(MAX_VERIFY_COST + 1).is_err());
        assert_eq!(
            CreditPeriod::parse("p", "month").unwrap(),
            CreditPeriod::Month
        );
        assert!(CreditPeriod::parse("p", "week").is_err());
    }
}
