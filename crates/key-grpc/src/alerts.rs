//! The alert RPCs (GetAlertRules, SetAlertRules, TestAlertRules, ListAlertEvents), and alert
//! rules, types and events between protobuf and the domain.

use key_core::{
    AlertPeriod, AlertRules, AlertRulesSource, AlertThreshold, AlertType, Error, ThresholdFields,
};
use key_proto::v1;
use key_service::{AlertEvent, Application, PageRequest, RulesInForce, parse_id};
use tonic::Request;
use uuid::Uuid;

use crate::{auth::requester, convert::timestamp};

pub(crate) async fn get_alert_rules(
    app: &Application,
    request: Request<v1::GetAlertRulesRequest>,
) -> Result<v1::GetAlertRulesResponse, Error> {
    let by = requester(&request)?;
    let key = named_key(&request.get_ref().key_id)?;
    let (rules, source) = app.alerts.get_rules(&by, key).await?;
    Ok(v1::GetAlertRulesResponse {
        rules: Some(rules_to_proto(&rules)),
        source: source_to_proto(source).into(),
    })
}

pub(crate) async fn set_alert_rules(
    app: &Application,
    request: Request<v1::SetAlertRulesRequest>,
) -> Result<v1::SetAlertRulesResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let key = named_key(&request.key_id)?;
    let rules = match (&request.rules, request.clear) {
        (Some(rules), false) => Some(rules_from_proto(rules)?),
        (None, true) => None,
        (Some(_), true) => {
            return Err(Error::InvalidArgument {
                field: "clear",
                message: "give rules or clear, not both".to_owned(),
            });
        }
        (None, false) => {
            return Err(Error::InvalidArgument {
                field: "rules",
                message: "rules are required unless clear is set".to_owned(),
            });
        }
    };
    let (rules, source): RulesInForce = app.alerts.set_rules(&by, key, rules).await?;
    Ok(v1::SetAlertRulesResponse {
        rules: Some(rules_to_proto(&rules)),
        source: source_to_proto(source).into(),
    })
}

pub(crate) async fn test_alert_rules(
    app: &Application,
    request: Request<v1::TestAlertRulesRequest>,
) -> Result<v1::TestAlertRulesResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let Some(id) = named_key(&request.key_id)? else {
        return Err(Error::InvalidArgument {
            field: "key_id",
            message: "the key to evaluate is required".to_owned(),
        });
    };
    let rules = request.rules.as_ref().map(rules_from_proto).transpose()?;
    let test = app.alerts.test_rules(&by, id, rules).await?;
    Ok(v1::TestAlertRulesResponse {
        evaluations: test
            .evaluations
            .iter()
            .map(|evaluation| v1::AlertEvaluation {
                r#type: type_to_proto(evaluation.alert_type).into(),
                would_fire: evaluation.would_fire(),
                observed: evaluation.observed,
                threshold: evaluation.rule.threshold(),
                period_start: Some(timestamp(evaluation.period_start)),
                already_fired: evaluation.already_fired,
            })
            .collect(),
        test_event: Some(event_to_proto(&test.event)),
    })
}

pub(crate) async fn list_alert_events(
    app: &Application,
    request: Request<v1::ListAlertEventsRequest>,
) -> Result<v1::ListAlertEventsResponse, Error> {
    let by = requester(&request)?;
    let request = request.into_inner();
    let alert_type = type_filter_from_proto(request.r#type)?;
    let key = named_key(&request.key_id)?;
    let page = PageRequest {
        page_size: request.page_size,
        page_token: request.page_token,
    };
    let listed = app.alerts.list_events(&by, &page, alert_type, key).await?;
    Ok(v1::ListAlertEventsResponse {
        alert_events: listed.items.iter().map(event_to_proto).collect(),
        next_page_token: listed.next_page_token,
    })
}

/// The key a request names, if any.
fn named_key(key_id: &str) -> Result<Option<Uuid>, Error> {
    match key_id {
        "" => Ok(None),
        id => parse_id("key_id", id).map(Some),
    }
}

const HIGH_USAGE: ThresholdFields = ThresholdFields {
    threshold: "rules.high_usage.threshold",
    period: "rules.high_usage.period",
};

const FAILURES: ThresholdFields = ThresholdFields {
    threshold: "rules.failures.threshold",
    period: "rules.failures.period",
};

/// Rules from a request, validated: each threshold at least 1 and with a period.
fn rules_from_proto(rules: &v1::AlertRules) -> Result<AlertRules, Error> {
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

fn rules_to_proto(rules: &AlertRules) -> v1::AlertRules {
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

fn source_to_proto(source: AlertRulesSource) -> v1::AlertRulesSource {
    match source {
        AlertRulesSource::Default => v1::AlertRulesSource::Default,
        AlertRulesSource::Organization => v1::AlertRulesSource::Organization,
        AlertRulesSource::Key => v1::AlertRulesSource::Key,
    }
}

fn type_to_proto(alert_type: AlertType) -> v1::AlertType {
    match alert_type {
        AlertType::HighUsage => v1::AlertType::HighUsage,
        AlertType::Failures => v1::AlertType::Failures,
        AlertType::NewCountry => v1::AlertType::NewCountry,
        AlertType::UsageSpike => v1::AlertType::UsageSpike,
        AlertType::DormantKeyUsed => v1::AlertType::DormantKeyUsed,
        AlertType::KeyExpiring => v1::AlertType::KeyExpiring,
        AlertType::RotationDue => v1::AlertType::RotationDue,
        AlertType::Test => v1::AlertType::Test,
        AlertType::KeyLeaked => v1::AlertType::KeyLeaked,
    }
}

/// A type filter from a request: unspecified means every type.
fn type_filter_from_proto(value: i32) -> Result<Option<AlertType>, Error> {
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
        Ok(v1::AlertType::KeyLeaked) => AlertType::KeyLeaked,
        Err(_) => {
            return Err(Error::InvalidArgument {
                field: "type",
                message: format!("unknown alert type {value}"),
            });
        }
    };
    Ok(Some(alert_type))
}

fn event_to_proto(event: &AlertEvent) -> v1::AlertEvent {
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
