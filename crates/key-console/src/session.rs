//! The signed-in person's session as the browser holds it: a cookie carrying the session token
//! (`HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` over HTTPS), the CSRF token every form
//! carries (derived from the session token, so it needs no storage), and the refusal of
//! cross-site form posts.

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use ring::hmac;

use crate::{Console, error::PageError};

/// The cookie's name over HTTPS: the `__Host-` prefix makes the browser refuse it unless it is
/// `Secure`, for the exact host and path `/`, so no sibling domain can plant or read one.
const SECURE_COOKIE: &str = "__Host-keyrack_session";

/// The cookie's name over plain HTTP (a development machine), where `__Host-` cannot be used.
const PLAIN_COOKIE: &str = "keyrack_session";

/// What the CSRF token is an HMAC of, under the session token.
const CSRF_LABEL: &[u8] = b"keyrack console csrf v1";

/// How the console's cookie is set: `Secure` (and named with `__Host-`) when the console is
/// served over HTTPS, directly or behind a proxy that terminates TLS.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookiePolicy {
    /// Whether the browser reaches the console over HTTPS.
    pub secure: bool,
}

impl CookiePolicy {
    fn name(self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            PLAIN_COOKIE
        }
    }

    fn attributes(self) -> &'static str {
        if self.secure {
            "Path=/; HttpOnly; SameSite=Lax; Secure"
        } else {
            "Path=/; HttpOnly; SameSite=Lax"
        }
    }

    /// The `Set-Cookie` value that hands the browser `token`, for `max_age` seconds: the
    /// session's absolute lifetime (the service ends it sooner when idle).
    pub(crate) fn set(self, token: &str, max_age: i64) -> Option<HeaderValue> {
        HeaderValue::try_from(format!(
            "{}={token}; {}; Max-Age={max_age}",
            self.name(),
            self.attributes()
        ))
        .ok()
    }

    /// The `Set-Cookie` value that makes the browser forget the session.
    pub(crate) fn clear(self) -> HeaderValue {
        HeaderValue::try_from(format!(
            "{}=; {}; Max-Age=0",
            self.name(),
            self.attributes()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("keyrack_session=; Max-Age=0"))
    }

    /// The session token in `headers`' cookies, if any.
    fn token(self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name())
            .map(|(_, value)| value.to_owned())
            .filter(|value| !value.is_empty())
    }
}

/// A request from a signed-in person: their session token, which the console sends to the
/// service as the bearer credential of every call it makes for them. No page trusts it
/// further: the service judges it on every call.
#[derive(Clone)]
pub(crate) struct SignedIn {
    token: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedIn(..)")
    }
}

impl SignedIn {
    /// The credential for the service.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The CSRF token of this session's forms: 64 hex digits, an HMAC of a fixed label under
    /// the session token. A cross-site page cannot read the cookie, so it cannot forge it.
    pub(crate) fn csrf(&self) -> String {
        let tag = hmac::sign(&self.key(), CSRF_LABEL);
        tag.as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        let bytes = decode_hex(presented).ok_or(PageError::CrossSite)?;
        hmac::verify(&self.key(), CSRF_LABEL, &bytes).map_err(|_| PageError::CrossSite)
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.token.as_bytes())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

impl FromRequestParts<Console> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, PageError> {
        console
            .cookies()
            .token(&parts.headers)
            .map(|token| SignedIn { token })
            .ok_or(PageError::SignIn { ended: false })
    }
}

/// Refuses a state-changing request that another site made the browser send. The browser's
/// own `Sec-Fetch-Site` decides when it is there (anything but `same-origin`, or `none` for a
/// person's own navigation, is refused); without it, an `Origin` naming another host is
/// refused. (`Origin: null` alone decides nothing: Chromium sends it for every form post from a
/// page with `Referrer-Policy: no-referrer`, which every console page has.) Signed-in forms also
/// carry the CSRF token; this refusal covers the sign-in forms too, which have no session yet.
pub(crate) async fn refuse_cross_site(
    State(_console): State<Console>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    let site = text(HeaderName::from_static("sec-fetch-site"));
    let origin = text(header::ORIGIN);
    let host = text(header::HOST);
    let cross_site = match (site, origin) {
        (Some(site), _) => site != "same-origin" && site != "none",
        (None, Some("null") | None) => false,
        (None, Some(origin)) => {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority.is_none() || authority != host
        }
    };
    if cross_site {
        tracing::info!(site, origin, "cross-site form post refused");
        return (StatusCode::FORBIDDEN, PageError::CrossSite).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let one = SignedIn {
            token: "krs_one".to_owned(),
        };
        let two = SignedIn {
            token: "krs_two".to_owned(),
        };
        assert!(one.check_csrf(&one.csrf()).is_ok());
        assert!(one.check_csrf(&two.csrf()).is_err());
        assert!(one.check_csrf("").is_err());
        assert!(one.check_csrf(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn the_cookie_is_secure_and_host_only_over_https() {
        let secure = CookiePolicy { secure: true }.set("krs_x", 60).unwrap();
        let secure = secure.to_str().unwrap();
        assert!(
            secure.starts_with(
                "__Host-keyrack_session=krs_x; Path=/; HttpOnly; SameSite=Lax; Secure"
            )
        );
        let plain = CookiePolicy { secure: false }.set("krs_x", 60).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; keyrack_session=krs_y"),
        );
        assert_eq!(
            CookiePolicy { secure: false }.token(&headers).as_deref(),
            Some("krs_y")
        );
        assert_eq!(CookiePolicy { secure: true }.token(&headers), None);
    }
}
