//! Settings → API Keys: the list, Generate New API Key, a key's page (usage, audit trail,
//! edit), revoke with a confirmation, rotate. A new key is shown once, on the page that answers
//! the form, and nowhere else.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{Duration, Utc};
use key_proto::v1;
use serde::Deserialize;

use super::{
    Frame, SCOPE_DESCRIPTIONS, day, form::Fields, frame, last_day, render, timestamp, when,
};
use crate::{Console, chart::Chart, error::PageError, once::Nonces, session::SignedIn, upstream};

/// Keys per page of the list.
const PAGE_SIZE: i32 = 50;

/// A key as the list and its page show it.
#[derive(Debug)]
struct KeyRow {
    id: String,
    name: String,
    redacted: String,
    key_type: &'static str,
    scopes: String,
    environment: &'static str,
    created: String,
    expires: String,
    last_used: String,
    rotation_due: bool,
    state: &'static str,
    revoked: bool,
    revoke_reason: String,
    rate_limits: String,
    /// The key's own limits per second, minute and hour, as the edit form shows them (empty:
    /// none of its own in that period).
    limits: [String; 3],
}

/// The periods a key's own rate limits are set in, in the edit form's order.
const LIMIT_PERIODS: [(v1::RatePeriod, &str); 3] = [
    (v1::RatePeriod::Second, "limit_second"),
    (v1::RatePeriod::Minute, "limit_minute"),
    (v1::RatePeriod::Hour, "limit_hour"),
];

fn row(key: &v1::ApiKey) -> KeyRow {
    let limits = LIMIT_PERIODS.map(|(period, _)| {
        key.rate_limits
            .iter()
            .find(|limit| limit.per == period as i32)
            .map(|limit| limit.requests.to_string())
            .unwrap_or_default()
    });
    KeyRow {
        limits,
        id: key.id.clone(),
        name: key.name.clone(),
        redacted: key.redacted_key.clone(),
        key_type: match v1::KeyType::try_from(key.key_type) {
            Ok(v1::KeyType::Personal) => "personal",
            _ if key.operator => "operator",
            _ => "organization",
        },
        scopes: key.scopes.join(" "),
        environment: match v1::Environment::try_from(key.environment) {
            Ok(v1::Environment::Test) => "test",
            _ => "live",
        },
        created: day(key.create_time.as_ref()),
        expires: last_day(key.expire_time.as_ref()),
        last_used: when(key.last_used_time.as_ref()),
        rotation_due: key.rotation_due,
        state: match v1::KeyState::try_from(key.state) {
            Ok(v1::KeyState::Revoked) => "revoked",
            Ok(v1::KeyState::Expired) => "expired",
            Ok(v1::KeyState::Disabled) => "disabled",
            _ => "active",
        },
        revoked: key.revoke_time.is_some(),
        revoke_reason: key.revoke_reason.clone(),
        rate_limits: key
            .rate_limits
            .iter()
            .map(|limit| {
                let period = match v1::RatePeriod::try_from(limit.per) {
                    Ok(v1::RatePeriod::Second) => "second",
                    Ok(v1::RatePeriod::Minute) => "minute",
                    Ok(v1::RatePeriod::Hour) => "hour",
                    _ => "?",
                };
                format!("{} per {period}", limit.requests)
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    state: String,
    rotation_due: bool,
    next_page: String,
    first_page: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    rotation_due: Option<String>,
    #[serde(default)]
    page_token: String,
}

pub(crate) async fn list(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let (frame, _) = frame(
        &console,
        &signed,
        &headers,
        "Settings → API Keys",
        "api-keys",
    )
    .await?;
    let state = match query.state.as_str() {
        "active" => v1::KeyState::Active,
        "revoked" => v1::KeyState::Revoked,
        "expired" => v1::KeyState::Expired,
        "disabled" => v1::KeyState::Disabled,
        _ => v1::KeyState::Unspecified,
    };
    let rotation_due = query.rotation_due.is_some();
    // Echoed into links: only the names the filter knows.
    let state_name = match state {
        v1::KeyState::Active => "active",
        v1::KeyState::Revoked => "revoked",
        v1::KeyState::Expired => "expired",
        v1::KeyState::Disabled => "disabled",
        v1::KeyState::Unspecified => "",
    };
    let listed = console
        .client()
        .list_keys(upstream::call(
            &headers,
            Some(signed.token()),
            v1::ListKeysRequest {
                page_size: PAGE_SIZE,
                page_token: query.page_token.clone(),
                state: state.into(),
                rotation_due,
            },
        ))
        .await?
        .into_inner();
    Ok(render(&KeysPage {
        frame,
        keys: listed.api_keys.iter().map(row).collect(),
        state: state_name.to_owned(),
        rotation_due,
        next_page: encode(&listed.next_page_token),
        first_page: query.page_token.is_empty(),
    }))
}

/// One scope's checkbox in a form.
#[derive(Debug)]
struct ScopeChoice {
    name: &'static str,
    description: &'static str,
    checked: bool,
    /// Why it cannot be ticked, when it cannot.
    disabled: Option<String>,
}

/// The scopes' checkboxes for `caller`, ticked as `ticked`: a scope the caller does not hold
/// (`admin` holds them all) cannot be granted, and says so.
fn scope_choices(caller: &v1::GetCallerResponse, ticked: &[String]) -> Vec<ScopeChoice> {
    let admin = caller.scopes.iter().any(|scope| scope == "admin");
    SCOPE_DESCRIPTIONS
        .into_iter()
        .map(|(name, description)| {
            let held = admin || caller.scopes.iter().any(|scope| scope == name);
            ScopeChoice {
                name,
                description,
                checked: ticked.iter().any(|scope| scope == name),
                disabled: (!held)
                    .then(|| format!("you do not hold {name}, so you cannot grant it")),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "key_new.html")]
struct NewKeyPage {
    frame: Frame,
    scopes: Vec<ScopeChoice>,
    name: String,
    expires: String,
    organization_allowed: bool,
    /// Whether the caller has a member to own a personal key (an organization key has none).
    personal_allowed: bool,
    organization: bool,
    test: bool,
    error: Option<String>,
    /// The form's one-time nonce (a reload of the answer must not make a second key).
    nonce: String,
}

pub(crate) async fn new_form(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (frame, caller) = frame(
        &console,
        &signed,
        &headers,
        "Generate New API Key",
        "api-keys",
    )
    .await?;
    Ok(render(&NewKeyPage {
        organization_allowed: frame.admin,
        personal_allowed: !caller.member_id.is_empty(),
        frame,
        scopes: scope_choices(&caller, &[]),
        name: String::new(),
        expires: String::new(),
        organization: caller.member_id.is_empty(),
        test: false,
        error: None,
        nonce: Nonces::issue(),
    }))
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct CreatedPage {
    frame: Frame,
    heading: &'static str,
    key: String,
    row: KeyRow,
    note: String,
}

pub(crate) async fn create(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console.spend_nonce(fields.get("nonce"))?;
    let (frame, caller) = frame(
        &console,
        &signed,
        &headers,
        "Generate New API Key",
        "api-keys",
    )
    .await?;
    let scopes = fields.all("scope");
    // Without a choice, a member's key is their own; an organization key's, the organization's.
    let organization = match fields.get("key_type") {
        "organization" => true,
        "personal" => false,
        _ => caller.member_id.is_empty(),
    };
    let test = fields.get("environment") == "test";
    let request = v1::CreateKeyRequest {
        name: fields.get("name").to_owned(),
        scopes: scopes.clone(),
        expires_at: fields.get("expires_at").to_owned(),
        environment: if test {
            v1::Environment::Test
        } else {
            v1::Environment::Live
        }
        .into(),
        key_type: if organization {
            v1::KeyType::Organization
        } else {
            v1::KeyType::Personal
        }
        .into(),
        // A personal key is the signed-in member's own.
        member_id: if organization {
            String::new()
        } else {
            caller.member_id.clone()
        },
        // Limits, metadata, an allowlist, credits: none from this form (the key's page edits
        // its limits; the API sets the rest).
        ..v1::CreateKeyRequest::default()
    };
    let created = console
        .client()
        .create_key(upstream::call(&headers, Some(signed.token()), request))
        .await;
    match created {
        Ok(response) => {
            let response = response.into_inner();
            let Some(key) = response.api_key else {
                return Err(PageError::from_status(&tonic::Status::internal("")));
            };
            Ok(render(&CreatedPage {
                frame,
                heading: "Your new API key",
                key: response.key,
                row: row(&key),
                note: String::new(),
            }))
        }
        Err(status) => {
            let error = PageError::from_status(&status);
            let code = match &error {
                PageError::Refused(code, _) => *code,
                PageError::SignIn { .. } => return Err(error),
                PageError::CrossSite => StatusCode::FORBIDDEN,
            };
            Ok((
                code,
                render(&NewKeyPage {
                    organization_allowed: frame.admin,
                    personal_allowed: !caller.member_id.is_empty(),
                    frame,
                    scopes: scope_choices(&caller, &scopes),
                    name: fields.get("name").to_owned(),
                    expires: fields.get("expires_at").to_owned(),
                    organization,
                    test,
                    error: Some(error.message()),
                    nonce: Nonces::issue(),
                }),
            )
                .into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "key.html")]
struct KeyPage {
    frame: Frame,
    key: KeyRow,
    range: &'static str,
    usage: Option<Usage>,
    usage_refused: String,
    audit: Vec<super::audit::EventRow>,
    audit_refused: String,
    scopes: Vec<ScopeChoice>,
    done: String,
    /// The rotate form's one-time nonce.
    nonce: String,
}

/// A key's usage over the chosen range, drawn.
#[derive(Debug)]
struct Usage {
    chart: Chart,
    succeeded: i64,
    failed: i64,
    countries: Vec<(String, i64)>,
    tags: Vec<(String, i64)>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    range: String,
    #[serde(default)]
    done: String,
}

pub(crate) async fn show(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let (mut frame, caller) = frame(&console, &signed, &headers, "API key", "api-keys").await?;
    let client = console.client();
    let key = client
        .clone()
        .get_key(upstream::call(
            &headers,
            Some(signed.token()),
            v1::GetKeyRequest { id: id.clone() },
        ))
        .await?
        .into_inner()
        .api_key
        .ok_or_else(|| PageError::from_status(&tonic::Status::internal("")))?;
    frame.title = format!("API key {}", key.name);
    let (range, span, granularity) = match query.range.as_str() {
        "7d" => ("7d", Duration::days(7), v1::Granularity::Day),
        "30d" => ("30d", Duration::days(30), v1::Granularity::Day),
        _ => ("24h", Duration::hours(24), v1::Granularity::Hour),
    };
    let now = Utc::now();
    let usage = client
        .clone()
        .list_usage(upstream::call(
            &headers,
            Some(signed.token()),
            v1::ListUsageRequest {
                key_id: id.clone(),
                start_time: Some(timestamp(now - span)),
                end_time: Some(timestamp(now)),
                granularity: granularity.into(),
                key_ids: Vec::new(),
            },
        ))
        .await;
    let (usage, usage_refused) = match usage {
        Ok(response) => (
            Some(usage_of(
                &response.into_inner(),
                granularity,
                now - span,
                span,
            )),
            String::new(),
        ),
        Err(status) => (None, refusal(&status)?),
    };
    let audit = client
        .clone()
        .list_audit_events(upstream::call(
            &headers,
            Some(signed.token()),
            v1::ListAuditEventsRequest {
                page_size: 20,
                target: id,
                ..v1::ListAuditEventsRequest::default()
            },
        ))
        .await;
    let (audit, audit_refused) = match audit {
        Ok(response) => (
            response
                .into_inner()
                .audit_events
                .iter()
                .map(super::audit::event_row)
                .collect(),
            String::new(),
        ),
        Err(status) => (Vec::new(), refusal(&status)?),
    };
    let scopes = scope_choices(&caller, &key.scopes);
    Ok(render(&KeyPage {
        frame,
        key: row(&key),
        range,
        usage,
        usage_refused,
        audit,
        audit_refused,
        scopes,
        done: match query.done.as_str() {
            "revoked" => "The key is revoked. Services using it are refused from now on.",
            "updated" => "The key is updated.",
            _ => "",
        }
        .to_owned(),
        nonce: Nonces::issue(),
    }))
}

/// A part of a page the person may not see (usage without `analytics:read`, the audit trail
/// without `admin`): the service's reason, shown in its place. An ended session still ends
/// the page.
fn refusal(status: &tonic::Status) -> Result<String, PageError> {
    match PageError::from_status(status) {
        PageError::SignIn { ended } => Err(PageError::SignIn { ended }),
        error => Ok(error.message()),
    }
}

fn usage_of(
    response: &v1::ListUsageResponse,
    granularity: v1::Granularity,
    start: chrono::DateTime<Utc>,
    span: Duration,
) -> Usage {
    // One bar per hour or day of the whole range, empty where nothing was counted: the service
    // answers only the buckets that have counts.
    let (step, label_format) = match granularity {
        v1::Granularity::Day => (Duration::days(1), "%m-%d"),
        _ => (Duration::hours(1), "%H:00"),
    };
    let first = match granularity {
        v1::Granularity::Day => start
            .date_naive()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
        _ => start
            .date_naive()
            .and_hms_opt(chrono::Timelike::hour(&start), 0, 0)
            .map_or(start, |at| at.and_utc()),
    };
    let slots = usize::try_from(span.num_seconds() / step.num_seconds()).unwrap_or(0) + 1;
    let mut bars: Vec<(String, i64, i64)> = (0..slots)
        .map(|slot| {
            let at = first + step * i32::try_from(slot).unwrap_or(0);
            (at.format(label_format).to_string(), 0, 0)
        })
        .collect();
    for bucket in &response.buckets {
        let Some(at) = bucket.start_time.as_ref().and_then(super::to_utc) else {
            continue;
        };
        let slot = (at - first).num_seconds().div_euclid(step.num_seconds());
        if let Some(bar) = usize::try_from(slot)
            .ok()
            .and_then(|slot| bars.get_mut(slot))
        {
            bar.1 += bucket.succeeded;
            bar.2 += bucket.failed;
        }
    }
    let mut countries = std::collections::BTreeMap::<String, i64>::new();
    let mut tags = std::collections::BTreeMap::<String, i64>::new();
    for bucket in &response.buckets {
        for (country, count) in &bucket.by_country {
            *countries.entry(country.clone()).or_default() += count;
        }
        for (tag, count) in &bucket.by_tag {
            *tags.entry(tag.clone()).or_default() += count;
        }
    }
    let ranked = |map: std::collections::BTreeMap<String, i64>| {
        let mut list: Vec<_> = map.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(10);
        list
    };
    Usage {
        chart: Chart::new(&bars),
        succeeded: response.total_succeeded,
        failed: response.total_failed,
        countries: ranked(countries),
        tags: ranked(tags),
    }
}

/// Edits a key's name, scopes and expiry.
pub(crate) async fn update(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    let scopes = fields.all("scope");
    if scopes.is_empty() {
        return Err(PageError::Refused(
            StatusCode::BAD_REQUEST,
            "tick at least one scope".to_owned(),
        ));
    }
    let mut rate_limits = Vec::new();
    for (period, field) in LIMIT_PERIODS {
        let text = fields.get(field);
        if text.is_empty() {
            continue;
        }
        let requests = text.parse::<u32>().map_err(|_| {
            PageError::Refused(
                StatusCode::BAD_REQUEST,
                "a rate limit is a whole number of requests, or empty for none".to_owned(),
            )
        })?;
        rate_limits.push(v1::RateLimit {
            requests,
            per: period.into(),
        });
    }
    console
        .client()
        .update_key(upstream::call(
            &headers,
            Some(signed.token()),
            v1::UpdateKeyRequest {
                id: id.clone(),
                name: Some(fields.get("name").to_owned()),
                scopes,
                expires_at: Some(fields.get("expires_at").to_owned()),
                // No limit of its own in any period: the organization's defaults apply.
                clear_rate_limits: rate_limits.is_empty(),
                rate_limits,
                ..v1::UpdateKeyRequest::default()
            },
        ))
        .await?;
    Ok(Redirect::to(&format!(
        "/console/settings/api-keys/{}?done=updated",
        encode(&id)
    ))
    .into_response())
}

#[derive(Template)]
#[template(path = "key_revoke.html")]
struct RevokePage {
    frame: Frame,
    key: KeyRow,
}

pub(crate) async fn revoke_form(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (mut frame, _) = frame(&console, &signed, &headers, "Revoke", "api-keys").await?;
    let key = console
        .client()
        .get_key(upstream::call(
            &headers,
            Some(signed.token()),
            v1::GetKeyRequest { id },
        ))
        .await?
        .into_inner()
        .api_key
        .ok_or_else(|| PageError::from_status(&tonic::Status::internal("")))?;
    frame.title = format!("Revoke {}", key.name);
    Ok(render(&RevokePage {
        frame,
        key: row(&key),
    }))
}

pub(crate) async fn revoke(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console
        .client()
        .revoke_key(upstream::call(
            &headers,
            Some(signed.token()),
            v1::RevokeKeyRequest {
                id: id.clone(),
                reason: fields.get("reason").to_owned(),
            },
        ))
        .await?;
    Ok(Redirect::to(&format!(
        "/console/settings/api-keys/{}?done=revoked",
        encode(&id)
    ))
    .into_response())
}

pub(crate) async fn rotate(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console.spend_nonce(fields.get("nonce"))?;
    let (grace, note) = match fields.get("grace") {
        "0" => (0, "The old key stopped working now."),
        "1h" => (3_600, "The old key keeps working for one hour."),
        "7d" => (7 * 86_400, "The old key keeps working for seven days."),
        _ => (86_400, "The old key keeps working for 24 hours."),
    };
    let (frame, _) = frame(&console, &signed, &headers, "Rotated key", "api-keys").await?;
    let rotated = console
        .client()
        .rotate_key(upstream::call(
            &headers,
            Some(signed.token()),
            v1::RotateKeyRequest {
                id,
                grace_period: Some(prost_types::Duration {
                    seconds: grace,
                    nanos: 0,
                }),
            },
        ))
        .await?
        .into_inner();
    let Some(key) = rotated.api_key else {
        return Err(PageError::from_status(&tonic::Status::internal("")));
    };
    Ok(render(&CreatedPage {
        frame,
        heading: "The successor key",
        key: rotated.key,
        row: row(&key),
        note: note.to_owned(),
    }))
}

/// An id for a URL path: ids are UUIDs, but a path parameter is what the person typed.
fn encode(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
