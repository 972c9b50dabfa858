//! The pages, one module per family, and what every page shares: the frame (navigation, who is
//! signed in, the CSRF token) and the formatting of times.

mod alerts;
mod audit;
mod form;
mod keys;
mod members;
mod oauth;
mod sign_in;
mod sso;

use axum::{
    Router,
    http::HeaderMap,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use key_proto::v1;

use crate::{Console, error::PageError, session::SignedIn, upstream};

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/sign-in", get(sign_in::page).post(sign_in::sign_in))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/invite", get(sign_in::invite_page).post(sign_in::redeem))
        .route("/sign-in/sso", get(sso::start))
        .route("/sign-in/sso/callback", get(sso::callback))
        .route("/settings/api-keys", get(keys::list).post(keys::create))
        .route("/settings/api-keys/new", get(keys::new_form))
        .route(
            "/settings/api-keys/{id}",
            get(keys::show).post(keys::update),
        )
        .route(
            "/settings/api-keys/{id}/revoke",
            get(keys::revoke_form).post(keys::revoke),
        )
        .route("/settings/api-keys/{id}/rotate", post(keys::rotate))
        .route("/settings/members", get(members::list).post(members::add))
        .route("/settings/members/{id}", post(members::change))
        .route(
            "/settings/members/{id}/sign-in-link",
            post(members::sign_in_link),
        )
        .route("/settings/audit-log", get(audit::list))
        .route("/settings/alerts", get(alerts::page))
        .route("/settings/alerts/rules", post(alerts::set_rules))
        .route("/settings/alerts/webhooks", post(alerts::create_endpoint))
        .route(
            "/settings/alerts/webhooks/{id}/delete",
            post(alerts::delete_endpoint),
        )
        .route("/settings/applications", get(oauth::applications))
        .route(
            "/settings/applications/{id}/revoke",
            post(oauth::revoke_grant),
        )
        .route(
            "/settings/oauth-clients",
            get(oauth::clients).post(oauth::create_client),
        )
        .route(
            "/settings/oauth-clients/{id}/delete",
            get(oauth::delete_form).post(oauth::delete_client),
        )
}

/// The authorization endpoint's pages, at their absolute path: they are served at the root of
/// the HTTP listener, beside the API, not under the console.
pub(crate) fn authorize_routes() -> Router<Console> {
    Router::new().route(
        "/oauth/authorize",
        get(oauth::authorize).post(oauth::decide),
    )
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// The page's title.
    pub(crate) title: String,
    /// Which navigation entry is current: `api-keys`, `applications`, `members`,
    /// `oauth-clients`, `alerts` or `audit-log` (empty: none, a page without navigation).
    pub(crate) section: &'static str,
    /// Who is signed in, in words.
    pub(crate) who: String,
    /// The organization's name.
    pub(crate) organization: String,
    /// The CSRF token of this session's forms.
    pub(crate) csrf: String,
    /// Whether the caller holds `admin` (the navigation shows what only admins may open; the
    /// service decides all the same).
    pub(crate) admin: bool,
}

/// The signed-in caller and the frame of a page titled `title` in `section`.
pub(crate) async fn frame(
    console: &Console,
    signed: &SignedIn,
    headers: &HeaderMap,
    title: impl Into<String>,
    section: &'static str,
) -> Result<(Frame, v1::GetCallerResponse), PageError> {
    let caller = console
        .client()
        .get_caller(upstream::call(
            headers,
            Some(signed.token()),
            v1::GetCallerRequest {},
        ))
        .await?
        .into_inner();
    let role = v1::Role::try_from(caller.role)
        .ok()
        .filter(|role| *role != v1::Role::Unspecified)
        .map(role_name);
    let who = match (caller.user_id.as_str(), role, caller.key_id.as_str()) {
        ("", _, _) => "an organization key".to_owned(),
        (user, Some(role), "") => format!("{user} ({role})"),
        (user, Some(role), _) => format!("{user} ({role}, with a personal key)"),
        (user, None, _) => user.to_owned(),
    };
    let frame = Frame {
        title: title.into(),
        section,
        who,
        organization: caller.organization_name.clone(),
        csrf: signed.csrf(),
        admin: caller.scopes.iter().any(|scope| scope == "admin"),
    };
    Ok((frame, caller))
}

/// A rendered template as a page, or the error page if rendering failed.
pub(crate) fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(body) => Html(body).into_response(),
        Err(error) => {
            tracing::error!(%error, "console template failed to render");
            PageError::Refused(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "something went wrong on our side".to_owned(),
            )
            .into_response()
        }
    }
}

/// A role's name as the API spells it.
pub(crate) fn role_name(role: v1::Role) -> &'static str {
    match role {
        v1::Role::Owner => "owner",
        v1::Role::Admin => "admin",
        v1::Role::Member => "member",
        v1::Role::Viewer => "viewer",
        v1::Role::Unspecified => "",
    }
}

/// A protobuf time as shown: `2026-12-06 14:05 UTC`; empty when absent.
pub(crate) fn when(time: Option<&prost_types::Timestamp>) -> String {
    time.and_then(to_utc)
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A protobuf time as a day: `2026-12-06`; empty when absent.
pub(crate) fn day(time: Option<&prost_types::Timestamp>) -> String {
    time.and_then(to_utc)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A key's expiry as the last day it works: `expire_time` is the first instant it no longer
/// does, so a key set to expire on 2099-12-31 (working through that day) shows 2099-12-31, as the
/// product's "API key expired on …" message does.
pub(crate) fn last_day(expire_time: Option<&prost_types::Timestamp>) -> String {
    expire_time
        .and_then(to_utc)
        .map(|at| {
            (at - chrono::TimeDelta::seconds(1))
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default()
}

pub(crate) fn to_utc(time: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

/// The scopes of the product documentation, with its descriptions, in its order.
pub(crate) const SCOPE_DESCRIPTIONS: [(&str, &str); 8] = [
    ("chat", "Chat/completion requests"),
    ("agents:read", "List and view agents"),
    ("agents:write", "Create/edit agents"),
    ("agents:delete", "Delete agents"),
    ("data:read", "View data sources"),
    ("data:write", "Modify data sources"),
    ("analytics:read", "View analytics"),
    ("admin", "Full access"),
];
