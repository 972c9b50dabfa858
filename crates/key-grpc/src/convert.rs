//! Conversions between protobuf messages and domain types.

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{
    Environment, Error, KeyRecord, KeyState, OrganizationPolicy, Period, RateLimit, RateLimits,
};
use key_proto::v1;
use prost_types::Timestamp;

pub(crate) fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        // Always below 2 × 10^9, so the conversion cannot fail; 0 keeps the type honest.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn from_timestamp(field: &'static str, ts: &Timestamp) -> Result<DateTime<Utc>, Error> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| Error::InvalidArgument {
            field,
            message: "not a valid timestamp".to_owned(),
        })
}

pub(crate) fn environment_to_proto(environment: Environment) -> v1::Environment {
    match environment {
        Environment::Live => v1::Environment::Live,
        Environment::Test => v1::Environment::Test,
    }
}

pub(crate) fn environment_from_proto(value: i32) -> Result<Environment, Error> {
    match v1::Environment::try_from(value) {
        Ok(v1::Environment::Unspecified | v1::Environment::Live) => Ok(Environment::Live),
        Ok(v1::Environment::Test) => Ok(Environment::Test),
        Err(_) => Err(Error::InvalidArgument {
            field: "environment",
            message: format!("unknown environment {value}"),
        }),
    }
}

pub(crate) fn key_type_to_proto(key_type: key_core::KeyType) -> v1::KeyType {
    match key_type {
        key_core::KeyType::Organization => v1::KeyType::Organization,
        key_core::KeyType::Personal => v1::KeyType::Personal,
    }
}

pub(crate) fn state_to_proto(state: KeyState) -> v1::KeyState {
    match state {
        KeyState::Active => v1::KeyState::Active,
        KeyState::Expired => v1::KeyState::Expired,
        KeyState::Revoked => v1::KeyState::Revoked,
    }
}

/// A key as the API shows it at `now`; `policy` is its organization's, which decides when it is
/// due for rotation.
pub(crate) fn api_key(
    record: &KeyRecord,
    now: DateTime<Utc>,
    policy: &OrganizationPolicy,
) -> v1::ApiKey {
    v1::ApiKey {
        id: record.id.to_string(),
        organization_id: record.organization_id.to_string(),
        name: record.name.clone(),
        scopes: record.scopes.names(),
        environment: environment_to_proto(record.environment).into(),
        redacted_key: record.redacted.to_string(),
        create_time: Some(timestamp(record.created_at)),
        expire_time: record.expires_at.map(timestamp),
        revoke_time: record.revoked_at.map(timestamp),
        revoke_reason: record.revoke_reason.clone().unwrap_or_default(),
        last_used_time: record.last_used_at.map(timestamp),
        state: state_to_proto(record.state(now)).into(),
        scoped: record.is_scoped(),
        rotated_from_id: record
            .rotated_from
            .map(|id| id.to_string())
            .unwrap_or_default(),
        rotated_to_id: record
            .rotated_to
            .map(|id| id.to_string())
            .unwrap_or_default(),
        rotation_due: record.rotation_due(now, policy.max_key_age),
        key_type: key_type_to_proto(record.key_type).into(),
        member_id: record
            .member_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        operator: record.operator,
        rate_limits: rate_limits_to_proto(&record.rate_limits),
    }
}

/// Rate limits as the API shows them.
pub(crate) fn rate_limits_to_proto(limits: &RateLimits) -> Vec<v1::RateLimit> {
    limits
        .iter()
        .map(|limit| v1::RateLimit {
            requests: limit.requests,
            per: match limit.per {
                Period::Second => v1::RatePeriod::Second,
                Period::Minute => v1::RatePeriod::Minute,
                Period::Hour => v1::RatePeriod::Hour,
            }
            .into(),
        })
        .collect()
}

/// Requested rate limits, validated; `field` names the request field on error.
pub(crate) fn rate_limits_from_proto(
    field: &'static str,
    limits: &[v1::RateLimit],
) -> Result<RateLimits, Error> {
    let list = limits
        .iter()
        .map(|limit| {
            let per = match v1::RatePeriod::try_from(limit.per) {
                Ok(v1::RatePeriod::Second) => Period::Second,
                Ok(v1::RatePeriod::Minute) => Period::Minute,
                Ok(v1::RatePeriod::Hour) => Period::Hour,
                Ok(v1::RatePeriod::Unspecified) | Err(_) => {
                    return Err(Error::InvalidArgument {
                        field,
                        message: "per must be second, minute or hour".to_owned(),
                    });
                }
            };
            RateLimit::new(field, limit.requests, per)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RateLimits::from_list(field, list)
}

/// A time delta as a protobuf duration (whole and fractional seconds of one sign).
pub(crate) fn duration(delta: TimeDelta) -> prost_types::Duration {
    prost_types::Duration {
        seconds: delta.num_seconds(),
        nanos: delta.subsec_nanos(),
    }
}

/// A protobuf duration as a time delta: seconds and nanos of one sign, nanos below a second.
pub(crate) fn from_duration(
    field: &'static str,
    duration: &prost_types::Duration,
) -> Result<TimeDelta, Error> {
    let invalid = || Error::InvalidArgument {
        field,
        message: "not a valid duration".to_owned(),
    };
    let (seconds, nanos) = (duration.seconds, duration.nanos);
    if nanos.unsigned_abs() >= 1_000_000_000
        || (seconds > 0 && nanos < 0)
        || (seconds < 0 && nanos > 0)
    {
        return Err(invalid());
    }
    TimeDelta::try_seconds(seconds)
        .and_then(|whole| whole.checked_add(&TimeDelta::nanoseconds(i64::from(nanos))))
        .ok_or_else(invalid)
}

pub(crate) fn parse_id(field: &'static str, value: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(value).map_err(|_| Error::InvalidArgument {
        field,
        message: format!("{value:?} is not a key id"),
    })
}
