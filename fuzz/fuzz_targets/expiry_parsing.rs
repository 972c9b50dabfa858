//! The expiry a client asks for (`key_core::parse_expiry`: `expiresAt` of CreateKey and
//! UpdateKey, on both transports), and the way the API shows an accepted one back.
//!
//! Input: 4 bytes for "now" (little-endian, times 59 seconds: from 1970 to the year 9999),
//! then the text.

#![no_main]

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use key_core::{ErrorCode, latest_expiry, parse_expiry};
use key_gateway::fuzzing::show_time;
use libfuzzer_sys::fuzz_target;
use prost_types::Timestamp;

fuzz_target!(|data: &[u8]| {
    let (now, text) = data.split_at(data.len().min(4));
    let mut seconds = [0_u8; 4];
    seconds[..now.len()].copy_from_slice(now);
    let now = i64::from(u32::from_le_bytes(seconds)) * 59;
    let now = DateTime::from_timestamp(now, 0).unwrap();
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    check(text, now);
});

fn check(text: &str, now: DateTime<Utc>) {
    let at = match parse_expiry(text, now) {
        Ok(Some(at)) => at,
        Ok(None) => {
            assert!(text.is_empty());
            return;
        }
        Err(error) => {
            assert_eq!(error.code(), ErrorCode::InvalidRequest);
            assert!(
                error.to_string().starts_with("invalid expires_at"),
                "{error}"
            );
            return;
        }
    };
    // In range: after now, and readable by every client.
    assert!(now < at, "{text:?} -> {at}");
    assert!(at <= latest_expiry(), "{text:?} -> {at}");
    // A date is valid through the end of that day: the expiry is a midnight.
    if text.len() == 10 {
        assert_eq!((at - TimeDelta::days(1)).time(), chrono::NaiveTime::MIN);
    }
    // A valid protobuf Timestamp, as key-grpc's `convert::timestamp` builds it.
    let nanos = at.timestamp_subsec_nanos();
    assert!(nanos < 1_000_000_000, "{text:?} -> {at:?}");
    let wire = Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(nanos).unwrap(),
    };
    // What the REST API shows reads back as the same instant, as a Timestamp and as an
    // expiry: a client can send back the `expiresAt` it was shown.
    let shown = show_time(&wire);
    assert_eq!(shown.parse::<Timestamp>().unwrap(), wire, "{shown}");
    assert_eq!(
        parse_expiry(&shown, now).unwrap(),
        Some(at),
        "{text:?} shown as {shown}"
    );
    let rfc3339 = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    assert_eq!(parse_expiry(&rfc3339, now).unwrap(), Some(at), "{rfc3339}");
}
