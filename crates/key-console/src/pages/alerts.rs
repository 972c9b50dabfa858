//! Alerts (admins): the organization's rules in the product docs' shape (unusual activity, high
//! usage and failures thresholds with their period), recent alert events, and the webhook
//! endpoints that receive them (a new endpoint's signing secret shown once).

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use key_proto::v1;
use serde::Deserialize;

use super::{Frame, form::Fields, frame, render, when};
use crate::{Console, error::PageError, once::Nonces, session::SignedIn, upstream};

/// A threshold rule as its form shows it.
#[derive(Debug, Default)]
struct Threshold {
    /// Empty when off.
    threshold: String,
    hourly: bool,
}

fn threshold_of(rule: Option<&v1::AlertThreshold>) -> Threshold {
    match rule {
        Some(rule) if rule.threshold > 0 => Threshold {
            threshold: rule.threshold.to_string(),
            hourly: rule.period == v1::AlertPeriod::Hourly as i32,
        },
        _ => Threshold::default(),
    }
}

#[derive(Debug)]
struct EventRow {
    time: String,
    kind: &'static str,
    key_id: String,
    message: String,
}

#[derive(Debug)]
struct EndpointRow {
    id: String,
    url: String,
    description: String,
    created: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    frame: Frame,
    unusual_activity: bool,
    high_usage: Threshold,
    failures: Threshold,
    source: &'static str,
    events: Vec<EventRow>,
    endpoints: Vec<EndpointRow>,
    done: &'static str,
    nonce: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AlertsQuery {
    #[serde(default)]
    done: String,
}

fn kind(value: i32) -> &'static str {
    match v1::AlertType::try_from(value) {
        Ok(v1::AlertType::HighUsage) => "highUsage",
        Ok(v1::AlertType::Failures) => "failures",
        Ok(v1::AlertType::NewCountry) => "newCountry",
        Ok(v1::AlertType::UsageSpike) => "usageSpike",
        Ok(v1::AlertType::DormantKeyUsed) => "dormantKeyUsed",
        Ok(v1::AlertType::KeyExpiring) => "keyExpiring",
        _ => "other",
    }
}

pub(crate) async fn page(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<AlertsQuery>,
) -> Result<Response, PageError> {
    let (frame, _) = frame(&console, &signed, &headers, "Alerts", "alerts").await?;
    let client = console.client();
    let credential = Some(signed.token());
    let rules = client
        .clone()
        .get_alert_rules(upstream::call(
            &headers,
            credential,
            v1::GetAlertRulesRequest::default(),
        ))
        .await?
        .into_inner();
    let events = client
        .clone()
        .list_alert_events(upstream::call(
            &headers,
            credential,
            v1::ListAlertEventsRequest {
                page_size: 50,
                ..v1::ListAlertEventsRequest::default()
            },
        ))
        .await?
        .into_inner();
    let endpoints = client
        .clone()
        .list_webhook_endpoints(upstream::call(
            &headers,
            credential,
            v1::ListWebhookEndpointsRequest {
                page_size: 100,
                ..v1::ListWebhookEndpointsRequest::default()
            },
        ))
        .await?
        .into_inner();
    let current = rules.rules.unwrap_or_default();
    Ok(render(&AlertsPage {
        frame,
        unusual_activity: current.unusual_activity,
        high_usage: threshold_of(current.high_usage.as_ref()),
        failures: threshold_of(current.failures.as_ref()),
        source: match v1::AlertRulesSource::try_from(rules.source) {
            Ok(v1::AlertRulesSource::Organization) => "set for the organization",
            _ => "Keyrack's defaults",
        },
        events: events
            .alert_events
            .iter()
            .map(|event| EventRow {
                time: when(event.create_time.as_ref()),
                kind: kind(event.r#type),
                key_id: event.key_id.clone(),
                message: event.message.clone(),
            })
            .collect(),
        endpoints: endpoints
            .webhook_endpoints
            .iter()
            .map(|endpoint| EndpointRow {
                id: endpoint.id.clone(),
                url: endpoint.url.clone(),
                description: endpoint.description.clone(),
                created: when(endpoint.create_time.as_ref()),
            })
            .collect(),
        done: match query.done.as_str() {
            "rules" => "The alert rules are saved.",
            "deleted" => "The webhook endpoint is deleted.",
            _ => "",
        },
        nonce: Nonces::issue(),
    }))
}

/// A threshold from its form fields: none when the number is empty.
fn threshold_from(fields: &Fields, name: &str) -> Result<Option<v1::AlertThreshold>, PageError> {
    let text = fields.get(&format!("{name}_threshold"));
    if text.is_empty() {
        return Ok(None);
    }
    let threshold = text.parse::<i64>().map_err(|_| {
        PageError::Refused(
            StatusCode::BAD_REQUEST,
            format!("the {name} threshold must be a whole number"),
        )
    })?;
    let period = if fields.get(&format!("{name}_period")) == "hourly" {
        v1::AlertPeriod::Hourly
    } else {
        v1::AlertPeriod::Daily
    };
    Ok(Some(v1::AlertThreshold {
        threshold,
        period: period.into(),
    }))
}

/// Saves the organization's rules.
pub(crate) async fn set_rules(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    let rules = v1::AlertRules {
        unusual_activity: fields.get("unusual_activity") == "on",
        high_usage: threshold_from(&fields, "high_usage")?,
        failures: threshold_from(&fields, "failures")?,
    };
    console
        .client()
        .set_alert_rules(upstream::call(
            &headers,
            Some(signed.token()),
            v1::SetAlertRulesRequest {
                rules: Some(rules),
                ..v1::SetAlertRulesRequest::default()
            },
        ))
        .await?;
    Ok(Redirect::to("/console/settings/alerts?done=rules").into_response())
}

#[derive(Template)]
#[template(path = "webhook_created.html")]
struct CreatedPage {
    frame: Frame,
    url: String,
    secret: String,
}

/// Registers a webhook endpoint; its signing secret is shown once.
pub(crate) async fn create_endpoint(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console.spend_nonce(fields.get("nonce"))?;
    let (frame, _) = frame(&console, &signed, &headers, "Webhook endpoint", "alerts").await?;
    let created = console
        .client()
        .create_webhook_endpoint(upstream::call(
            &headers,
            Some(signed.token()),
            v1::CreateWebhookEndpointRequest {
                url: fields.get("url").to_owned(),
                description: fields.get("description").to_owned(),
                ..v1::CreateWebhookEndpointRequest::default()
            },
        ))
        .await?
        .into_inner();
    Ok(render(&CreatedPage {
        frame,
        url: created
            .webhook_endpoint
            .map(|endpoint| endpoint.url)
            .unwrap_or_default(),
        secret: created.signing_secret,
    }))
}

pub(crate) async fn delete_endpoint(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console
        .client()
        .delete_webhook_endpoint(upstream::call(
            &headers,
            Some(signed.token()),
            v1::DeleteWebhookEndpointRequest { id },
        ))
        .await?;
    Ok(Redirect::to("/console/settings/alerts?done=deleted").into_response())
}
