//! Conversions between protobuf messages and domain types shared by several RPCs: times,
//! durations, environments, key types and states, rate limits, a key as the API shows it, and
//! VerifyKey's answer. Resource-specific conversions sit beside their handlers.

use chrono::{DateTime, TimeDelta, Utc};
use key_core::{
    CreditPeriod, CreditRefill, Credits, Environment, Error, KeyState, Period, RateLimit,
    RateLimits, Verdict,
};
use key_proto::v1;
use key_service::SetCredits;
use key_service::{KeyDetails, Verification};
use prost_types::Timestamp;

pub(crate) fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        // Always below 2 × 10^9, so the conversion cannot fail; 0 keeps the type honest.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn from_timestamp(field: &'static str, ts: &Timestamp) -> Result<DateTime<Utc>, Error> {
    // Protobuf allows nanos below 10^9 only; chrono would read more as a leap second.
    u32::try_from(ts.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
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
        KeyState::Disabled => v1::KeyState::Disabled,
    }
}

/// A key as the API shows it.
pub(crate) fn api_key(key: &KeyDetails) -> v1::ApiKey {
    let record = &key.record;
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
        state: state_to_proto(key.state).into(),
        scoped: record.is_scoped(),
        rotated_from_id: record
            .rotated_from
            .map(|id| id.to_string())
            .unwrap_or_default(),
        rotated_to_id: record
            .rotated_to
            .map(|id| id.to_string())
            .unwrap_or_default(),
        rotation_due: key.rotation_due,
        key_type: key_type_to_proto(record.key_type).into(),
        member_id: record
            .member_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        operator: record.operator,
        rate_limits: rate_limits_to_proto(&record.rate_limits),
        disable_time: record.disabled_at.map(timestamp),
        metadata_json: record
            .metadata
            .as_ref()
            .map(|metadata| metadata.as_json().to_owned())
            .unwrap_or_default(),
        ip_allowlist: record.ip_allowlist.entries(),
        credits: record.credits.as_ref().map(credits_to_proto),
    }
}

/// A key's credits on the wire.
pub(crate) fn credits_to_proto(credits: &Credits) -> v1::Credits {
    v1::Credits {
        remaining: credits.remaining,
        refill: credits.refill.map(|refill| v1::CreditRefill {
            amount: refill.amount,
            per: match refill.per {
                CreditPeriod::Day => v1::CreditPeriod::Day,
                CreditPeriod::Month => v1::CreditPeriod::Month,
            }
            .into(),
        }),
        last_refill_time: credits.refilled_at.map(timestamp),
    }
}

/// Credits as a request sets them (`last_refill_time` is output only and ignored).
pub(crate) fn credits_from_proto(credits: &v1::Credits) -> Result<SetCredits, Error> {
    let refill = credits
        .refill
        .as_ref()
        .map(|refill| {
            let per = match v1::CreditPeriod::try_from(refill.per) {
                Ok(v1::CreditPeriod::Day) => CreditPeriod::Day,
                Ok(v1::CreditPeriod::Month) => CreditPeriod::Month,
                Ok(v1::CreditPeriod::Unspecified) | Err(_) => {
                    return Err(Error::InvalidArgument {
                        field: "credits.refill.per",
                        message: "must be day or month".to_owned(),
                    });
                }
            };
            Ok(CreditRefill {
                amount: refill.amount,
                per,
            })
        })
        .transpose()?;
    Ok(SetCredits {
        remaining: credits.remaining,
        refill,
    })
}

/// VerifyKey's answer: the verdict's code, reason and message; the limits of a rate-limited
/// one; a key's credits left, when it got as far as spending them; and the principal with its
/// metadata, for keys that are alive (valid, valid but lacking a scope, or with its credits
/// spent). An expired, revoked or disabled key, and a key presented from outside its
/// IP allowlist, reveal nothing beyond their verdict.
pub(crate) fn verify_response(verification: &Verification) -> v1::VerifyKeyResponse {
    let code = match verification.verdict {
        Verdict::Valid => v1::VerifyCode::Valid,
        Verdict::Invalid => v1::VerifyCode::InvalidApiKey,
        Verdict::Expired => v1::VerifyCode::ExpiredApiKey,
        Verdict::InsufficientScope(_) => v1::VerifyCode::InsufficientScope,
        Verdict::Disabled => v1::VerifyCode::DisabledApiKey,
        Verdict::IpNotAllowed => v1::VerifyCode::IpNotAllowed,
        Verdict::UsageExceeded => v1::VerifyCode::UsageExceeded,
        Verdict::RateLimited { .. } | Verdict::TooManyFailures { .. } => {
            v1::VerifyCode::RateLimited
        }
    };
    let error = verification.error();
    let mut response = v1::VerifyKeyResponse {
        valid: error.is_none(),
        code: code.into(),
        reason: error
            .as_ref()
            .map(|e| e.code().reason().to_owned())
            .unwrap_or_default(),
        message: error.as_ref().map(ToString::to_string).unwrap_or_default(),
        ..Default::default()
    };
    match verification.verdict {
        Verdict::RateLimited {
            limit,
            retry_after,
            remaining,
            reset,
        } => {
            response.retry_after = Some(duration(retry_after));
            response.limit = limit.requests;
            response.remaining = remaining;
            response.reset = Some(timestamp(reset));
        }
        Verdict::TooManyFailures { retry_after, reset } => {
            response.retry_after = Some(duration(retry_after));
            response.reset = Some(timestamp(reset));
        }
        _ => {}
    }
    response.credits_remaining = verification.credits_remaining;
    if let (Verdict::Valid | Verdict::InsufficientScope(_) | Verdict::UsageExceeded, Some(record)) =
        (verification.verdict, &verification.record)
    {
        response.key_id = record.id.to_string();
        response.organization_id = record.organization_id.to_string();
        response.name = record.name.to_string();
        // A personal key's scopes as limited by its member's current role.
        response.scopes = verification.scopes.names();
        response.key_type = key_type_to_proto(record.key_type).into();
        response.member_id = record
            .member_id
            .map(|id| id.to_string())
            .unwrap_or_default();
        response.environment = environment_to_proto(record.environment).into();
        response.expire_time = record.expires_at.map(timestamp);
        response.metadata_json = record
            .controls
            .as_ref()
            .and_then(|controls| controls.metadata.as_ref())
            .map(|metadata| metadata.as_json().to_owned())
            .unwrap_or_default();
        if let Some(oauth) = record.oauth() {
            response.oauth_client_id = oauth.client_id.to_string();
            response.user_id.clone_from(&oauth.user_id);
        }
    }
    response
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

/// A timestamp from a request, if given.
pub(crate) fn optional_time(
    field: &'static str,
    ts: Option<&Timestamp>,
) -> Result<Option<DateTime<Utc>>, Error> {
    ts.map(|ts| from_timestamp(field, ts)).transpose()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_with_a_whole_second_of_nanos_is_refused_not_taken_as_a_leap_second() {
        // 2026-01-01T00:00:59Z: chrono would read nanos ≥ 10^9 there as a leap second.
        let seconds = 1_767_225_659;
        let leap = Timestamp {
            seconds,
            nanos: 1_000_000_000,
        };
        assert!(from_timestamp("from", &leap).is_err());
        let last = Timestamp {
            seconds,
            nanos: 999_999_999,
        };
        assert!(from_timestamp("from", &last).is_ok());
    }
}
