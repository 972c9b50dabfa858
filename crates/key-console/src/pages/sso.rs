//! Signing in with the platform's identity provider (OpenID Connect). The console only
//! redirects: the service draws the state, nonce and PKCE verifier and speaks to the provider;
//! the console keeps those three in a short-lived cookie between the two legs, checks the
//! `state` the provider sends back against it, and hands the code to the service. It holds no
//! credential of its own at any point.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use key_proto::v1;
use serde::Deserialize;

use super::{
    render, role_name,
    sign_in::{Next, signed_in},
};
use crate::{Console, error::PageError, next, upstream};

/// The cookie that carries a sign-in in progress over HTTPS (`__Host-`: `Secure`, this host,
/// path `/`).
const SECURE_COOKIE: &str = "__Host-keyrack_sso";

/// Its name over plain HTTP.
const PLAIN_COOKIE: &str = "keyrack_sso";

/// How long a person has at the provider before the sign-in must start again, in seconds.
const PENDING_MAX_AGE: u32 = 600;

fn cookie_name(console: &Console) -> &'static str {
    if console.cookies().secure {
        SECURE_COOKIE
    } else {
        PLAIN_COOKIE
    }
}

/// The `Set-Cookie` value of a sign-in in progress (`value`, for `max_age` seconds; empty and
/// 0 to forget it).
fn pending_cookie(console: &Console, value: &str, max_age: u32) -> Option<HeaderValue> {
    let secure = if console.cookies().secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::try_from(format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(console)
    ))
    .ok()
}

/// A sign-in in progress, as its cookie keeps it.
#[derive(Debug, PartialEq)]
struct Pending {
    state: String,
    nonce: String,
    code_verifier: String,
    /// Where to go once signed in (judged again by `signed_in`); empty for home.
    next: String,
}

/// The sign-in in progress in `headers`' cookies: `state.nonce.verifier`, then optionally
/// `.next` percent-encoded (the first three never hold a dot; the encoding leaves dots alone,
/// so `next` is the whole rest).
fn pending(console: &Console, headers: &HeaderMap) -> Option<Pending> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name(console))
        .map(|(_, value)| value.to_owned())?;
    parse_pending(&value)
}

/// The cookie's `value` read back.
fn parse_pending(value: &str) -> Option<Pending> {
    let mut parts = value.splitn(4, '.');
    let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
    if [state, nonce, verifier].iter().any(|part| part.is_empty()) {
        return None;
    }
    let next = parts
        .next()
        .map(|next| {
            form_urlencoded::parse(format!("next={next}").as_bytes())
                .map(|(_, value)| value.into_owned())
                .next()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Some(Pending {
        state: state.to_owned(),
        nonce: nonce.to_owned(),
        code_verifier: verifier.to_owned(),
        next,
    })
}

/// Whether two strings are equal, in time that depends only on their lengths.
fn same(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

#[derive(Debug, Deserialize)]
pub(crate) struct StartQuery {
    #[serde(default)]
    next: String,
}

/// `GET /console/sign-in/sso`: off to the provider, remembering a safe `next` for the way back.
pub(crate) async fn start(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<StartQuery>,
) -> Response {
    let Some(redirect_uri) = console.sso_redirect() else {
        return PageError::Refused(
            StatusCode::NOT_FOUND,
            "Sign-in with an identity provider is not configured here.".to_owned(),
        )
        .into_response();
    };
    let begun = console
        .client()
        .begin_sso_sign_in(upstream::call(
            &headers,
            None,
            v1::BeginSsoSignInRequest {
                redirect_uri: redirect_uri.to_owned(),
            },
        ))
        .await;
    let start = match begun {
        Ok(response) => response.into_inner(),
        Err(status) => return refused_page(PageError::from_status(&status)),
    };
    let mut value = format!("{}.{}.{}", start.state, start.nonce, start.code_verifier);
    if let Some(next) = next::safe(&query.next) {
        value = format!("{value}.{}", next::encode(next));
    }
    let (Some(cookie), Ok(location)) = (
        pending_cookie(&console, &value, PENDING_MAX_AGE),
        HeaderValue::try_from(start.authorization_url),
    ) else {
        return refused_page(PageError::Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on our side".to_owned(),
        ));
    };
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackQuery(..)")
    }
}

#[derive(Template)]
#[template(path = "sso_choose.html")]
struct ChoosePage {
    user_id: String,
    memberships: Vec<Choice>,
    next: Next,
}

struct Choice {
    organization: String,
    role: &'static str,
    token: String,
}

#[derive(Template)]
#[template(path = "sso_refused.html")]
struct RefusedPage {
    message: String,
}

/// `GET /console/sign-in/sso/callback`: the provider sent the person back. The sign-in in
/// progress is forgotten whatever happens: a code works once.
pub(crate) async fn callback(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let mut response = complete(&console, &headers, query).await;
    if let Some(clear) = pending_cookie(&console, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

async fn complete(console: &Console, headers: &HeaderMap, query: CallbackQuery) -> Response {
    let (Some(redirect_uri), Some(pending)) = (console.sso_redirect(), pending(console, headers))
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was started in another browser. Start again.",
        );
    };
    if !query
        .state
        .as_deref()
        .is_some_and(|presented| same(presented, &pending.state))
    {
        tracing::info!("SSO callback refused: state does not match");
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in does not match the one this browser started. Start again.",
        );
    }
    if let Some(error) = query.error {
        let said = query.error_description.unwrap_or(error);
        return refused(
            StatusCode::FORBIDDEN,
            &format!("The identity provider did not sign you in: {said}"),
        );
    }
    let Some(code) = query.code.filter(|code| !code.is_empty()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code. Start again.",
        );
    };
    let completed = console
        .client()
        .complete_sso_sign_in(upstream::call(
            headers,
            None,
            v1::CompleteSsoSignInRequest {
                code,
                code_verifier: pending.code_verifier,
                nonce: pending.nonce,
                redirect_uri: redirect_uri.to_owned(),
            },
        ))
        .await;
    let response = match completed {
        Ok(response) => response.into_inner(),
        Err(status) => return refused_page(PageError::from_status(&status)),
    };
    if !response.session_token.is_empty() {
        let expires = response
            .session
            .as_ref()
            .and_then(|session| session.expire_time.as_ref());
        return signed_in(console, &response.session_token, expires, &pending.next);
    }
    let memberships = response
        .memberships
        .into_iter()
        .map(|membership| Choice {
            organization: membership.organization_name,
            role: role_name(v1::Role::try_from(membership.role).unwrap_or_default()),
            token: membership.sign_in_token,
        })
        .collect();
    render(&ChoosePage {
        user_id: response.user_id,
        memberships,
        next: Next::of(&pending.next),
    })
}

fn refused_page(error: PageError) -> Response {
    let status = match &error {
        PageError::Refused(status, _) => *status,
        _ => StatusCode::FORBIDDEN,
    };
    refused(status, &error.message())
}

fn refused(status: StatusCode, message: &str) -> Response {
    (
        status,
        render(&RefusedPage {
            message: message.to_owned(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{Pending, parse_pending, same};
    use crate::next;

    #[test]
    fn the_pending_cookie_carries_next_back() {
        let next = "/oauth/authorize?client_id=oac_1&scope=chat+agents%3Aread&state=a.b";
        let value = format!("st.no.ve.{}", next::encode(next));
        assert_eq!(
            parse_pending(&value),
            Some(Pending {
                state: "st".into(),
                nonce: "no".into(),
                code_verifier: "ve".into(),
                next: next.into(),
            })
        );
        // A cookie of before `next`, and broken ones.
        assert_eq!(parse_pending("st.no.ve").unwrap().next, "");
        assert_eq!(parse_pending("st.no"), None);
        assert_eq!(parse_pending("st..ve"), None);
    }

    #[test]
    fn states_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("ab", "abc"));
        assert!(!same("", "abc"));
    }
}
