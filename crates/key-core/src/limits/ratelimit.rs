//! Rate limits: what a key (or its organization's default) allows, and the pure fixed-window
//! algorithm that decides whether one more request fits.
//!
//! **Algorithm: fixed windows aligned to the Unix epoch.** A `100/minute` limit counts the
//! requests of each calendar minute (`[12:00:00, 12:01:00)`, …); the count starts again at zero
//! when the next window opens. It needs one `(window, count)` pair per period per key, and its
//! `reset` is exact and identical on every replica (which a shared, Redis-backed limiter will
//! need). The cost is the classic burst at a window boundary (up to twice the limit across
//! two adjacent windows), accepted here.
//!
//! **All-or-nothing.** A key may carry several limits (at most one per period). A request is
//! checked against every limit first and counted against all of them only if all allow it, so a
//! request rejected by one limit consumes no budget from the others.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use crate::Error;

/// The largest number of requests a limit may allow per period.
pub const MAX_RATE_LIMIT_REQUESTS: u32 = 1_000_000;

/// The period of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// `second`
    Second,
    /// `minute`
    Minute,
    /// `hour`
    Hour,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 3] = [Period::Second, Period::Minute, Period::Hour];

    /// The window of this period containing `now`: its index since the Unix epoch (windows are
    /// epoch-aligned, so its start is `index * seconds()`) and the instant it ends. Every
    /// limiter, in memory or in Redis, counts in these windows.
    pub fn window(self, now: DateTime<Utc>) -> (i64, DateTime<Utc>) {
        let window = now.timestamp().div_euclid(self.seconds());
        let end = DateTime::from_timestamp((window + 1) * self.seconds(), 0).unwrap_or(now);
        (window, end)
    }

    /// The period's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
        }
    }

    /// Parses a period name, naming `field` on error.
    pub fn parse(field: &'static str, name: &str) -> Result<Period, Error> {
        Period::ALL
            .into_iter()
            .find(|period| period.as_str() == name)
            .ok_or_else(|| Error::InvalidArgument {
                field,
                message: format!("unknown period {name:?}, expected second, minute or hour"),
            })
    }

    /// Its length in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// How many requests each period allows (1..=1,000,000).
    pub requests: u32,
    /// The period.
    pub per: Period,
}

impl RateLimit {
    /// A checked limit; `field` names the request field on error.
    pub fn new(field: &'static str, requests: u32, per: Period) -> Result<RateLimit, Error> {
        if !(1..=MAX_RATE_LIMIT_REQUESTS).contains(&requests) {
            return Err(Error::InvalidArgument {
                field,
                message: format!(
                    "requests must be between 1 and {MAX_RATE_LIMIT_REQUESTS}, got {requests}"
                ),
            });
        }
        Ok(RateLimit { requests, per })
    }

    /// Parses the stored form `100/minute`.
    pub fn parse(field: &'static str, text: &str) -> Result<RateLimit, Error> {
        let invalid = || Error::InvalidArgument {
            field,
            message: format!("expected REQUESTS/PERIOD such as 100/minute, got {text:?}"),
        };
        let (requests, per) = text.split_once('/').ok_or_else(invalid)?;
        let requests = requests.parse::<u32>().map_err(|_| invalid())?;
        RateLimit::new(field, requests, Period::parse(field, per)?)
    }
}

impl fmt::Display for RateLimit {
    /// `100 requests per minute` (the product's wording).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.requests == 1 {
            "request"
        } else {
            "requests"
        };
        write!(f, "{} {noun} per {}", self.requests, self.per.as_str())
    }
}

/// The limits of a key or an organization: at most one per period. `Copy`, so policies and
/// verdicts stay `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RateLimits([Option<u32>; 3]);

impl RateLimits {
    /// No limits.
    pub const NONE: RateLimits = RateLimits([None; 3]);

    /// The limits of `list`, naming `field` on error; two limits with the same period are
    /// refused.
    pub fn from_list(
        field: &'static str,
        list: impl IntoIterator<Item = RateLimit>,
    ) -> Result<RateLimits, Error> {
        let mut limits = RateLimits::NONE;
        for limit in list {
            let limit = RateLimit::new(field, limit.requests, limit.per)?;
            let slot = &mut limits.0[limit.per.index()];
            if slot.is_some() {
                return Err(Error::InvalidArgument {
                    field,
                    message: format!("more than one limit per {}", limit.per.as_str()),
                });
            }
            *slot = Some(limit.requests);
        }
        Ok(limits)
    }

    /// Parses the stored form `100/minute 5000/hour` (empty: none).
    pub fn parse(field: &'static str, text: &str) -> Result<RateLimits, Error> {
        let list = text
            .split_whitespace()
            .map(|item| RateLimit::parse(field, item))
            .collect::<Result<Vec<_>, _>>()?;
        RateLimits::from_list(field, list)
    }

    /// The stored form, `None` when there are no limits.
    pub fn format(&self) -> Option<String> {
        let items: Vec<String> = self
            .iter()
            .map(|limit| format!("{}/{}", limit.requests, limit.per.as_str()))
            .collect();
        (!items.is_empty()).then(|| items.join(" "))
    }

    /// Whether there are no limits.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The limits, shortest period first.
    pub fn iter(&self) -> impl Iterator<Item = RateLimit> + '_ {
        Period::ALL
            .into_iter()
            .filter_map(|per| self.0[per.index()].map(|requests| RateLimit { requests, per }))
    }

    /// These limits, or `default` when there are none (a key without limits of its own uses
    /// its organization's default).
    pub fn or(self, default: RateLimits) -> RateLimits {
        if self.is_empty() { default } else { self }
    }

    /// Whether these limits allow no more than `ceiling` in any period: every period `ceiling`
    /// limits is limited here too, at most as high. Limits on more periods are tighter still;
    /// no limits at all are within only no limits.
    pub fn within(&self, ceiling: &RateLimits) -> bool {
        self.0
            .iter()
            .zip(ceiling.0.iter())
            .all(|(own, cap)| match (own, cap) {
                (_, None) => true,
                (Some(own), Some(cap)) => own <= cap,
                (None, Some(_)) => false,
            })
    }
}

/// One key's counters: the window and count of each period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateWindows([(i64, u32); 3]);

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Every limit allows it; it was counted against all of them.
    Allowed,
    /// `limit` refuses it (of several refusing, the one that stays closed longest); nothing
    /// was counted.
    Limited {
        /// The refusing limit.
        limit: RateLimit,
        /// How long until it allows a request again.
        retry_after: TimeDelta,
        /// When its window ends (= `now + retry_after`).
        reset: DateTime<Utc>,
    },
}

impl RateWindows {
    /// Decides one request at `now` under `limits`, all-or-nothing (see the module docs).
    pub fn acquire(&mut self, limits: &RateLimits, now: DateTime<Utc>) -> RateDecision {
        let mut refused: Option<(RateLimit, DateTime<Utc>)> = None;
        for limit in limits.iter() {
            let (window, end) = limit.per.window(now);
            let (current, count) = self.0[limit.per.index()];
            let used = if current == window { count } else { 0 };
            if used >= limit.requests && refused.is_none_or(|(_, at)| end > at) {
                refused = Some((limit, end));
            }
        }
        if let Some((limit, reset)) = refused {
            return RateDecision::Limited {
                limit,
                retry_after: reset - now,
                reset,
            };
        }
        for limit in limits.iter() {
            let (window, _) = limit.per.window(now);
            let slot = &mut self.0[limit.per.index()];
            *slot = if slot.0 == window {
                (window, slot.1.saturating_add(1))
            } else {
                (window, 1)
            };
        }
        RateDecision::Allowed
    }

    /// How many requests `limit`'s current window at `now` has counted.
    pub fn used(&self, limit: RateLimit, now: DateTime<Utc>) -> u32 {
        let (window, _) = limit.per.window(now);
        let (current, count) = self.0[limit.per.index()];
        if current == window { count } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
    }

    #[test]
    fn limits_parse_format_and_validate() {
        let limits = RateLimits::parse("rate_limits", "5000/hour 100/minute").unwrap();
        assert_eq!(limits.format().as_deref(), Some("100/minute 5000/hour"));
        assert_eq!(
            limits.iter().next().unwrap().to_string(),
            "100 requests per minute"
        );
        let err = RateLimits::parse("rate_limits", "0/minute").unwrap_err();
        assert!(err.to_string().starts_with("invalid rate_limits:"), "{err}");
        assert!(RateLimits::parse("x", "1000001/second").is_err());
        assert!(RateLimits::parse("x", "1/minute 2/minute").is_err());
        assert!(RateLimits::parse("x", "1/day").is_err());
        assert_eq!(RateLimits::NONE.format(), None);
    }

    #[test]
    fn a_window_allows_its_requests_then_refuses_until_it_ends() {
        let limits = RateLimits::parse("x", "3/minute").unwrap();
        let mut windows = RateWindows::default();
        for _ in 0..3 {
            assert_eq!(
                windows.acquire(&limits, at(12, 0, 10)),
                RateDecision::Allowed
            );
        }
        let RateDecision::Limited {
            retry_after, reset, ..
        } = windows.acquire(&limits, at(12, 0, 10))
        else {
            panic!("not limited");
        };
        assert_eq!(retry_after, TimeDelta::seconds(50));
        assert_eq!(reset, at(12, 1, 0));
        assert_eq!(
            windows.acquire(&limits, at(12, 1, 0)),
            RateDecision::Allowed
        );
    }

    #[test]
    fn a_refused_request_consumes_nothing_from_the_other_limits() {
        let limits = RateLimits::parse("x", "2/second 5/minute").unwrap();
        let mut windows = RateWindows::default();
        let minute = limits.iter().nth(1).unwrap();
        assert_eq!(
            windows.acquire(&limits, at(12, 0, 0)),
            RateDecision::Allowed
        );
        assert_eq!(
            windows.acquire(&limits, at(12, 0, 0)),
            RateDecision::Allowed
        );
        for _ in 0..10 {
            assert!(matches!(
                windows.acquire(&limits, at(12, 0, 0)),
                RateDecision::Limited { limit, .. } if limit.per == Period::Second
            ));
        }
        assert_eq!(windows.used(minute, at(12, 0, 0)), 2);
        for s in 1..=3 {
            assert_eq!(
                windows.acquire(&limits, at(12, 0, s)),
                RateDecision::Allowed
            );
        }
        assert!(matches!(
            windows.acquire(&limits, at(12, 0, 4)),
            RateDecision::Limited { limit, .. } if limit.per == Period::Minute
        ));
    }
}
