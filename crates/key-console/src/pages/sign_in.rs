//! Signing in (with an API key, or with a one-time sign-in link) and out.

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use key_proto::v1;
use serde::Deserialize;

use super::{render, to_utc};
use crate::{Console, error::PageError, next, session::SignedIn, upstream};

/// Where a person lands once signed in.
const HOME: &str = "/console/settings/api-keys";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    error: Option<String>,
    ended: bool,
    /// Whether "Sign in with SSO" is offered.
    sso: bool,
    /// Where to go once signed in (safe, or empty), carried by the form and the other ways in.
    next: Next,
}

/// A safe `next` as the sign-in pages carry it: as a hidden field, and as a query string for
/// the links to the other ways of signing in.
#[derive(Debug, Default)]
pub(super) struct Next {
    /// The path, or empty.
    pub(super) path: String,
    /// `?next=<path, percent-encoded>`, or empty.
    pub(super) query: String,
}

impl Next {
    pub(super) fn of(next: &str) -> Next {
        match next::safe(next) {
            Some(path) => Next {
                path: path.to_owned(),
                query: format!("?next={}", next::encode(path)),
            },
            None => Next::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    ended: Option<String>,
    #[serde(default)]
    next: String,
}

pub(crate) async fn page(
    State(console): State<Console>,
    Query(query): Query<SignInQuery>,
) -> Response {
    let ended = query.ended.is_some();
    let page = render(&SignInPage {
        error: None,
        ended,
        sso: console.sso_redirect().is_some(),
        next: Next::of(&query.next),
    });
    if ended {
        // The service refused the session: the browser forgets it too.
        ([(header::SET_COOKIE, console.cookies().clear())], page).into_response()
    } else {
        page
    }
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInForm(..)")
    }
}

/// Signs in with the key typed in: the service begins a session acting as that key. The key is
/// never echoed back into the page, even when refused.
pub(crate) async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let key = form.api_key.trim();
    if key.is_empty() {
        return refused(
            &console,
            StatusCode::BAD_REQUEST,
            "Enter an API key.",
            &form.next,
        );
    }
    let created = console
        .client()
        .create_session(upstream::call(
            &headers,
            Some(key),
            v1::CreateSessionRequest {},
        ))
        .await;
    match created {
        Ok(response) => {
            let response = response.into_inner();
            let expires = response
                .session
                .as_ref()
                .and_then(|session| session.expire_time.as_ref());
            signed_in(&console, &response.session_token, expires, &form.next)
        }
        Err(status) => match PageError::from_status(&status) {
            // The product's own words: "The API key provided is invalid".
            PageError::SignIn { .. } => refused(
                &console,
                StatusCode::UNAUTHORIZED,
                status.message(),
                &form.next,
            ),
            PageError::Refused(code, message) => refused(&console, code, &message, &form.next),
            error @ PageError::CrossSite => refused(
                &console,
                StatusCode::FORBIDDEN,
                &error.message(),
                &form.next,
            ),
        },
    }
}

fn refused(console: &Console, status: StatusCode, message: &str, next: &str) -> Response {
    (
        status,
        render(&SignInPage {
            error: Some(message.to_owned()),
            ended: false,
            sso: console.sso_redirect().is_some(),
            next: Next::of(next),
        }),
    )
        .into_response()
}

/// The answer that hands the browser its session and takes it to `next` when that is safe
/// (`next::safe`), home otherwise.
pub(super) fn signed_in(
    console: &Console,
    token: &str,
    expires: Option<&prost_types::Timestamp>,
    next: &str,
) -> Response {
    let max_age = expires
        .and_then(to_utc)
        .map_or(0, |at| (at - Utc::now()).num_seconds().max(0));
    let Some(cookie) = console.cookies().set(token, max_age) else {
        return PageError::Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on our side".to_owned(),
        )
        .into_response();
    };
    let location = next::safe(next)
        .and_then(|next| http::HeaderValue::try_from(next).ok())
        .unwrap_or(http::HeaderValue::from_static(HOME));
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out: the service ends the session, and the browser forgets it.
pub(crate) async fn sign_out(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    if let Err(status) = console
        .client()
        .end_session(upstream::call(
            &headers,
            Some(signed.token()),
            v1::EndSessionRequest {},
        ))
        .await
    {
        // An already ended session is signed out all the same.
        tracing::debug!(code = ?status.code(), "ending a console session failed");
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, console.cookies().clear()),
            (
                header::LOCATION,
                http::HeaderValue::from_static("/console/sign-in"),
            ),
        ],
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    error: Option<String>,
    next: Next,
}

/// The page a sign-in link opens. The token rides in the link's fragment (`#krl_…`), which the
/// browser never sends: the page's script moves it into the form and out of the address bar,
/// and it reaches the service only in the form's body.
pub(crate) async fn invite_page(Query(query): Query<InviteQuery>) -> Response {
    render(&InvitePage {
        error: None,
        next: Next::of(&query.next),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct InviteQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(crate) struct RedeemForm {
    #[serde(default)]
    sign_in_token: String,
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for RedeemForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedeemForm(..)")
    }
}

pub(crate) async fn redeem(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<RedeemForm>,
) -> Response {
    let redeemed = console
        .client()
        .redeem_sign_in_link(upstream::call(
            &headers,
            None,
            v1::RedeemSignInLinkRequest {
                sign_in_token: form.sign_in_token.trim().to_owned(),
            },
        ))
        .await;
    match redeemed {
        Ok(response) => {
            let response = response.into_inner();
            let expires = response
                .session
                .as_ref()
                .and_then(|session| session.expire_time.as_ref());
            signed_in(&console, &response.session_token, expires, &form.next)
        }
        Err(status) => {
            let error = PageError::from_status(&status);
            let status = match &error {
                PageError::Refused(status, _) => *status,
                _ => StatusCode::FORBIDDEN,
            };
            (
                status,
                render(&InvitePage {
                    error: Some(error.message()),
                    next: Next::of(&form.next),
                }),
            )
                .into_response()
        }
    }
}
