//! JSON pieces that belong to no one resource: the translation of timestamps and empty strings,
//! rate limits (a key's own and a policy's defaults) and scope names (a key's and a role's).

use key_proto::v1;
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A protobuf timestamp as RFC 3339; `None` if the message left it out. Fields that are always
/// set in the JSON take `.unwrap_or_default()`, the empty string.
pub(crate) fn time(ts: Option<&Timestamp>) -> Option<String> {
    ts.map(ToString::to_string)
}

/// A protobuf string field, where empty means "none", as a JSON string or null.
pub(crate) fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// A rate limit: `requests` per `per` (`second`, `minute` or `hour`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RateLimitJson {
    /// 1 to 1,000,000.
    #[schema(example = 100)]
    pub(crate) requests: u32,
    /// `second`, `minute` or `hour`.
    #[schema(example = "minute")]
    pub(crate) per: String,
}

impl RateLimitJson {
    pub(crate) fn from_proto(limits: Vec<v1::RateLimit>) -> Vec<RateLimitJson> {
        limits
            .into_iter()
            .map(|limit| RateLimitJson {
                requests: limit.requests,
                per: match v1::RatePeriod::try_from(limit.per) {
                    Ok(v1::RatePeriod::Second) => "second",
                    Ok(v1::RatePeriod::Minute) => "minute",
                    Ok(v1::RatePeriod::Hour) => "hour",
                    _ => "unspecified",
                }
                .to_owned(),
            })
            .collect()
    }

    /// The limits for a request; an unknown period travels as unspecified, which the service
    /// refuses with the field's name.
    pub(crate) fn into_proto(limits: Vec<RateLimitJson>) -> Vec<v1::RateLimit> {
        limits
            .into_iter()
            .map(|limit| v1::RateLimit {
                requests: limit.requests,
                per: match limit.per.as_str() {
                    "second" => v1::RatePeriod::Second,
                    "minute" => v1::RatePeriod::Minute,
                    "hour" => v1::RatePeriod::Hour,
                    _ => v1::RatePeriod::Unspecified,
                }
                .into(),
            })
            .collect()
    }
}

/// A scope name, in the schema only: the list is key-proto's, and the service, not the gateway,
/// judges the names a client sends.
#[derive(Debug)]
pub(crate) struct ScopeName;

impl utoipa::PartialSchema for ScopeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(key_proto::SCOPES))
            .into()
    }
}

impl ToSchema for ScopeName {}
