//! Firing an alert: stored once under its dedup key and, in the same transaction, queued for
//! every webhook endpoint of its organization with the payload built here, once.

use chrono::{DateTime, SecondsFormat, Utc};
use key_core::{Alert, Error};
use key_store::AlertEvent;
use uuid::Uuid;

use super::Alerting;

/// An alert about to be fired: which organization, and the name of its key for the payload.
#[derive(Debug, Clone)]
pub(crate) struct Firing<'a> {
    pub(crate) organization_id: Uuid,
    pub(crate) key_name: Option<&'a str>,
    pub(crate) alert: Alert,
}

/// Stores `firing` as the event `id` unless its alert already fired, and queues its webhook
/// deliveries with it. Returns the event when this call stored it; `None` when another
/// evaluation (or replica) had.
pub(super) async fn fire(
    alerting: &Alerting,
    id: Uuid,
    firing: &Firing<'_>,
) -> Result<Option<AlertEvent>, Error> {
    let alert = &firing.alert;
    let event = AlertEvent {
        id,
        organization_id: firing.organization_id,
        key_id: alert.key_id,
        alert_type: alert.alert_type,
        message: alert.message.clone(),
        created_at: alerting.now(),
        period_start: alert.period_start,
        observed: alert.observed,
        threshold: alert.threshold,
        country: alert.country.clone(),
    };
    let body = payload(&event, firing.key_name);
    let stored = alerting
        .store()
        .insert_alert_event(&event, &alert.dedup_key, &body)
        .await?;
    if !stored {
        return Ok(None);
    }
    alerting.metrics().alert_event(alert.alert_type.as_str());
    tracing::info!(
        event_id = %event.id,
        organization_id = %event.organization_id,
        key_id = ?event.key_id,
        alert_type = alert.alert_type.as_str(),
        "alert fired"
    );
    Ok(Some(event))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The JSON body POSTed to the webhook endpoints (the agreed contract, camelCase):
/// `{"id", "type", "createdAt", "organizationId", "data": {"keyId", "keyName", "message",
/// "periodStart", "observed", "threshold", "country"}}`.
fn payload(event: &AlertEvent, key_name: Option<&str>) -> String {
    serde_json::json!({
        "id": event.id.to_string(),
        "type": event.alert_type.as_str(),
        "createdAt": rfc3339(event.created_at),
        "organizationId": event.organization_id.to_string(),
        "data": {
            "keyId": event.key_id.map(|id| id.to_string()),
            "keyName": key_name,
            "message": event.message,
            "periodStart": rfc3339(event.period_start),
            "observed": event.observed,
            "threshold": event.threshold,
            "country": event.country,
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use key_core::AlertType;

    use super::*;

    #[test]
    fn the_payload_is_the_agreed_camel_case_shape() {
        let at = Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap();
        let event = AlertEvent {
            id: Uuid::from_u128(1),
            organization_id: Uuid::from_u128(2),
            key_id: Some(Uuid::from_u128(3)),
            alert_type: AlertType::HighUsage,
            message: "Key 'ci' made 10000 requests today (threshold 10000)".into(),
            created_at: at,
            period_start: at,
            observed: 10000,
            threshold: 10000,
            country: None,
        };
        let value: serde_json::Value = serde_json::from_str(&payload(&event, Some("ci"))).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000001",
                "type": "high_usage",
                "createdAt": "2026-01-15T10:00:00Z",
                "organizationId": "00000000-0000-0000-0000-000000000002",
                "data": {
                    "keyId": "00000000-0000-0000-0000-000000000003",
                    "keyName": "ci",
                    "message": "Key 'ci' made 10000 requests today (threshold 10000)",
                    "periodStart": "2026-01-15T10:00:00Z",
                    "observed": 10000,
                    "threshold": 10000,
                    "country": null,
                },
            })
        );
    }
}
