//! Alert rules, types and events between protobuf and the domain.

use key_core::{
    AlertPeriod, AlertRules, AlertRulesSource, AlertThreshold, AlertType, Error, ThresholdFields,
};
use key_proto::v1;
use key_store::AlertEvent;

use crate::convert::timestamp;

const HIGH_USAGE: ThresholdFields = ThresholdFields {
    threshold: "rules.high_usage.threshold",
    period: "rules.high_usage.period",
};

const FAILURES: ThresholdFields = ThresholdFields {
    threshold: "rules.failures.threshold",
    period: "rules.failures.period",
};

/// Rules from a request, validated: each threshold at least 1 and with a period.
pub(super) fn rules_from_proto(rules: &v1::AlertRules) -> Result<AlertRules, Error> {
    let threshold = |fields: ThresholdFields, rule: Option<&v1::AlertThreshold>| {
        rule.map(|rule| {
            let period = match v1::AlertPeriod::try_from(rule.period) {
                Ok(v1::AlertPeriod::Hourly) => Some(AlertPeriod::Hourly),
                Ok(v1::AlertPeriod::Daily) => Some(AlertPeriod::Daily),
                Ok(v1::AlertPeriod::Unspecified) | Err(_) => None,
            };
            AlertThreshold::new(fields, rule.threshold, period)
        })
        .transpose()
    };
    Ok(AlertRules {
        unusual_activity: rules.unusual_activity,
        high_usage: threshold(HIGH_USAGE, rules.high_usage.as_ref())?,
        failures: threshold(FAILURES, rules.failures.as_ref())?,
    })
}

fn period_to_proto(period: AlertPeriod) -> v1::AlertPeriod {
    match period {
        AlertPeriod::Hourly => v1::AlertPeriod::Hourly,
        AlertPeriod::Daily => v1::AlertPeriod::Daily,
    }
}

pub(super) fn rules_to_proto(rules: &AlertRules) -> v1::AlertRules {
    let threshold = |rule: Option<AlertThreshold>| {
        rule.map(|rule| v1::AlertThreshold {
            threshold: rule.threshold(),
            period: period_to_proto(rule.period()).into(),
        })
    };
    v1::AlertRules {
        unusual_activity: rules.unusual_activity,
        high_usage: threshold(rules.high_usage),
        failures: threshold(rules.failures),
    }
}

pub(super) fn source_to_proto(source: AlertRulesSource) -> v1::AlertRulesSource {
    match source {
        AlertRulesSource::Default => v1::AlertRulesSource::Default,
        AlertRulesSource::Organization => v1::AlertRulesSource::Organization,
        AlertRulesSource::Key => v1::AlertRulesSource::Key,
    }
}

pub(super) fn type_to_proto(alert_type: AlertType) -> v1::AlertType {
    match alert_type {
        AlertType::HighUsage => v1::AlertType::HighUsage,
        AlertType::Failures => v1::AlertType::Failures,
        AlertType::NewCountry => v1::AlertType::NewCountry,
        AlertType::UsageSpike => v1::AlertType::UsageSpike,
        AlertType::DormantKeyUsed => v1::AlertType::DormantKeyUsed,
        AlertType::KeyExpiring => v1::AlertType::KeyExpiring,
        AlertType::RotationDue => v1::AlertType::RotationDue,
        AlertType::Test => v1::AlertType::Test,
    }
}

/// A type filter from a request: unspecified means every type.
pub(super) fn type_filter_from_proto(value: i32) -> Result<Option<AlertType>, Error> {
    let alert_type = match v1::AlertType::try_from(value) {
        Ok(v1::AlertType::Unspecified) => return Ok(None),
        Ok(v1::AlertType::HighUsage) => AlertType::HighUsage,
        Ok(v1::AlertType::Failures) => AlertType::Failures,
        Ok(v1::AlertType::NewCountry) => AlertType::NewCountry,
        Ok(v1::AlertType::UsageSpike) => AlertType::UsageSpike,
        Ok(v1::AlertType::DormantKeyUsed) => AlertType::DormantKeyUsed,
        Ok(v1::AlertType::KeyExpiring) => AlertType::KeyExpiring,
        Ok(v1::AlertType::RotationDue) => AlertType::RotationDue,
        Ok(v1::AlertType::Test) => AlertType::Test,
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "type",
                message: format!("unknown alert type {value}"),
            });
        }
    };
    Ok(Some(alert_type))
}

pub(super) fn event_to_proto(event: &AlertEvent) -> v1::AlertEvent {
    v1::AlertEvent {
        id: event.id.to_string(),
        organization_id: event.organization_id.to_string(),
        key_id: event.key_id.map(|id| id.to_string()).unwrap_or_default(),
        r#type: type_to_proto(event.alert_type).into(),
        message: event.message.clone(),
        create_time: Some(timestamp(event.created_at)),
        period_start: Some(timestamp(event.period_start)),
        observed: event.observed,
        threshold: event.threshold,
        country: event.country.clone().unwrap_or_default(),
    }
}
