use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::Error;

/// The latest expiry a key may have: 9999-12-31T23:59:59Z, the end of the range every client
/// can read (protobuf's `Timestamp` stops at year 9999, and RFC 3339 has four-digit years).
pub fn latest_expiry() -> DateTime<Utc> {
    // 9999-12-31T23:59:59Z in Unix seconds; always representable.
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses the expiry a client asks for: empty (never expires), a date `YYYY-MM-DD` (valid
/// through the end of that day, UTC) or an RFC 3339 timestamp. Returns the first instant at
/// which the key no longer works; it must be after `now` and at most [`latest_expiry`] (so the
/// date `9999-12-31`, whose end is in year 10000, is refused). A leap second (`…T23:59:60Z`)
/// is the start of the next second.
pub fn parse_expiry(input: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, Error> {
    if input.is_empty() {
        return Ok(None);
    }
    let invalid = |message: String| Error::InvalidArgument {
        field: "expires_at",
        message,
    };
    let expires_at = if input.len() == 10 {
        let date = NaiveDate::parse_from_str(input, "%Y-%m-%d").map_err(|_| {
            invalid(format!(
                "{input:?} is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            ))
        })?;
        date.succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|midnight| midnight.and_utc())
            .ok_or_else(|| invalid(format!("{input:?} is out of range")))?
    } else {
        DateTime::parse_from_rfc3339(input)
            .map_err(|_| {
                invalid(format!(
                    "{input:?} is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"
                ))
            })?
            .with_timezone(&Utc)
    };
    let expires_at = without_leap_second(expires_at);
    if expires_at <= now {
        return Err(invalid(format!("{input:?} is in the past")));
    }
    if expires_at > latest_expiry() {
        return Err(invalid(format!(
            "{input:?} is too far in the future: the latest expiry is 9999-12-30 (a date) or \
             9999-12-31T23:59:59Z"
        )));
    }
    Ok(Some(expires_at))
}

/// A leap second (`23:59:60`, which RFC 3339 allows and chrono keeps as second 59 with
/// 1_000_000_000 or more nanoseconds) as the start of the next second, as Unix time and
/// protobuf's `Timestamp` (whose nanos stay below 10^9) count it.
fn without_leap_second(at: DateTime<Utc>) -> DateTime<Utc> {
    const NANOS_PER_SECOND: u32 = 1_000_000_000;
    let nanos = at.timestamp_subsec_nanos();
    if nanos < NANOS_PER_SECOND {
        return at;
    }
    at.timestamp()
        .checked_add(1)
        .and_then(|seconds| DateTime::from_timestamp(seconds, nanos - NANOS_PER_SECOND))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The last day (UTC) on which a key expiring at `expires_at` still worked: the date the
/// product's message "API key expired on …" shows. A key created with the date `2024-12-31`
/// expires at `2025-01-01T00:00:00Z` and reports `2024-12-31`.
pub(crate) fn last_valid_day(expires_at: DateTime<Utc>) -> NaiveDate {
    (expires_at - TimeDelta::nanoseconds(1)).date_naive()
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeZone};
    use proptest::prelude::*;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_date_is_valid_through_the_end_of_that_day() {
        let at = parse_expiry("2024-12-31", now()).unwrap().unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(last_valid_day(at).to_string(), "2024-12-31");
    }

    #[test]
    fn timestamps_are_converted_to_utc() {
        let at = parse_expiry("2024-12-31T23:00:00-02:00", now())
            .unwrap()
            .unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2025, 1, 1, 1, 0, 0).unwrap());
        assert_eq!(last_valid_day(at).to_string(), "2025-01-01");
    }

    #[test]
    fn empty_means_never() {
        assert_eq!(parse_expiry("", now()).unwrap(), None);
    }

    #[test]
    fn past_and_malformed_expiries_are_rejected() {
        for bad in [
            "2024-06-01T12:00:00Z",
            "2024-05-31",
            "2024-13-01",
            "tomorrow",
            "2024-6-1x",
            "31/12/2024",
        ] {
            let err = parse_expiry(bad, now()).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid expires_at"),
                "{bad}: {err}"
            );
        }
        // Today is still valid until midnight.
        assert!(parse_expiry("2024-06-01", now()).unwrap().is_some());
    }

    #[test]
    fn a_leap_second_is_the_start_of_the_next_second() {
        // RFC 3339 allows second 60; chrono keeps it as 59 s and 1_000_000_000+ ns, which is
        // no valid protobuf `Timestamp` (nanos must be below 10^9), so clients would reject
        // the key's `expire_time`. Unix time has no leap seconds: 23:59:60 is 00:00:00.
        let at = parse_expiry("2030-06-30T23:59:60Z", now())
            .unwrap()
            .unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2030, 7, 1, 0, 0, 0).unwrap());
        assert_eq!(at.timestamp_subsec_nanos(), 0);
        let at = parse_expiry("2030-01-15T11:20:60.5+01:00", now())
            .unwrap()
            .unwrap();
        assert_eq!(at.to_rfc3339(), "2030-01-15T10:21:00.500+00:00");
        assert!(at.timestamp_subsec_nanos() < 1_000_000_000);
        let err = parse_expiry("9999-12-31T23:59:60Z", now()).unwrap_err();
        assert!(err.to_string().contains("too far in the future"), "{err}");
    }

    #[test]
    fn expiries_stay_within_what_every_client_can_read() {
        let latest = parse_expiry("9999-12-30", now()).unwrap().unwrap();
        assert_eq!(latest.to_rfc3339(), "9999-12-31T00:00:00+00:00");
        assert_eq!(
            parse_expiry("9999-12-31T23:59:59Z", now()).unwrap(),
            Some(latest_expiry())
        );
        for beyond in [
            "9999-12-31",
            "9999-12-31T23:59:59.5Z",
            "9999-12-31T23:00:00-02:00",
        ] {
            let err = parse_expiry(beyond, now()).unwrap_err();
            assert!(
                err.to_string().contains("too far in the future"),
                "{beyond}: {err}"
            );
        }
    }

    /// Text shaped like what a client sends: dates and RFC 3339 timestamps with every field
    /// slightly out of range now and then (leap seconds, offsets, fractions, years past 9999),
    /// and anything at all.
    fn expiry_text() -> impl Strategy<Value = String> {
        // Mostly valid fields, with their edges (month 13, second 60, year 10000) often.
        let date = (
            prop_oneof![1900_u32..=9999, 0_u32..=10_001],
            prop_oneof![3 => 1_u32..=12, 1 => 0_u32..=13],
            prop_oneof![3 => 1_u32..=28, 1 => 0_u32..=32],
        );
        let offset = prop_oneof![
            Just("Z".to_owned()),
            Just("z".to_owned()),
            (any::<bool>(), 0_u32..=24, 0_u32..=60).prop_map(|(minus, h, m)| format!(
                "{}{h:02}:{m:02}",
                if minus { '-' } else { '+' }
            )),
        ];
        prop_oneof![
            date.clone()
                .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
            (
                date,
                (
                    0_u32..=24,
                    0_u32..=60,
                    prop_oneof![2 => 0_u32..=59, 1 => 60_u32..=61],
                ),
                proptest::option::of("[0-9]{1,12}"),
                offset,
                proptest::sample::select(&['T', 't', ' '][..]),
            )
                .prop_map(|((y, mo, d), (h, mi, s), fraction, offset, t)| {
                    let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
                    format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{fraction}{offset}")
                }),
            ".{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// An accepted expiry is after now, at most 9999-12-31T23:59:59Z, a valid protobuf
        /// timestamp (nanos below 10^9), and reads back as itself from the RFC 3339 form the
        /// API shows; a date is the end of that day.
        #[test]
        fn accepted_expiries_are_in_range_and_read_back(
            input in expiry_text(),
            now in 0_i64..=253_402_300_799,
        ) {
            let now = DateTime::from_timestamp(now, 0).unwrap();
            let Ok(Some(at)) = parse_expiry(&input, now) else {
                return Ok(());
            };
            prop_assert!(now < at && at <= latest_expiry(), "{input:?} -> {at}");
            prop_assert!(at.timestamp_subsec_nanos() < 1_000_000_000, "{input:?} -> {at:?}");
            let shown = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            prop_assert_eq!(parse_expiry(&shown, now).unwrap(), Some(at), "{}", shown);
            if input.len() == 10 {
                let day = NaiveDate::parse_from_str(&input, "%Y-%m-%d").unwrap();
                prop_assert_eq!(last_valid_day(at), day);
                let midnight = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
                prop_assert_eq!(at, midnight + TimeDelta::days(1));
            }
        }
    }
}
