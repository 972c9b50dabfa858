//! Where a person goes once signed in: the `next` a sign-in carries (a consent page sends people
//! to sign in and wants them back). Only a path of this server that the console or the
//! authorization endpoint serves is followed; anything else is ignored, so no link can make the
//! sign-in page send a person to another site (an open redirect).

/// The paths `next` may lead to.
const ALLOWED: [&str; 2] = ["/oauth/authorize?", "/console/"];

/// `next` when it is safe to follow: a path starting with `/oauth/authorize?` or `/console/`,
/// of printable ASCII only (no control characters, spaces or anything a browser might
/// normalize), with no `//` (a scheme-relative URL once a browser resolves dot segments) and no
/// backslash (which browsers read as a slash).
pub(crate) fn safe(next: &str) -> Option<&str> {
    let allowed = ALLOWED.iter().any(|prefix| next.starts_with(prefix));
    let printable = next.bytes().all(|byte| byte.is_ascii_graphic());
    (allowed && printable && !next.contains("//") && !next.contains('\\')).then_some(next)
}

/// `next` (already judged safe, or empty) percent-encoded for a query string.
pub(crate) fn encode(next: &str) -> String {
    form_urlencoded::byte_serialize(next.as_bytes()).collect()
}

/// The sign-in page's address that comes back to `next` (when safe) afterwards; `ended` says
/// the session was refused.
pub(crate) fn sign_in_path(next: &str, ended: bool) -> String {
    match (safe(next), ended) {
        (Some(next), true) => format!("/console/sign-in?ended=1&next={}", encode(next)),
        (Some(next), false) => format!("/console/sign-in?next={}", encode(next)),
        (None, true) => "/console/sign-in?ended=1".to_owned(),
        (None, false) => "/console/sign-in".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_endpoint_and_console_pages_are_followed() {
        for next in [
            "/oauth/authorize?response_type=code&client_id=oac_1&state=a%2Fb",
            "/console/settings/applications",
            "/console/settings/api-keys?state=active",
        ] {
            assert_eq!(safe(next), Some(next));
        }
    }

    #[test]
    fn anything_else_is_ignored() {
        for next in [
            "",
            "https://evil.example/",
            "//evil.example/console/",
            "/\\evil.example",
            "/console//evil.example",
            "/console/\\evil.example",
            "/console/x\\y",
            "/oauth/authorize",
            "/oauth/authorize/x?y",
            "/oauth/token?x",
            "/consolex/",
            "/console",
            "/api/api-keys",
            "javascript:alert(1)",
            "/console/\r\nSet-Cookie: x=y",
            "/console/\ty",
            "/console/ y",
            "/console/\u{7f}",
            "/console/é",
            "/oauth/authorize?redirect_uri=https://evil.example",
        ] {
            assert_eq!(safe(next), None, "{next:?}");
        }
    }

    #[test]
    fn the_sign_in_path_carries_next_encoded() {
        assert_eq!(
            sign_in_path("/oauth/authorize?client_id=a&scope=chat+admin", false),
            "/console/sign-in?next=%2Foauth%2Fauthorize%3Fclient_id%3Da%26scope%3Dchat%2Badmin"
        );
        assert_eq!(
            sign_in_path("/console/settings/members", true),
            "/console/sign-in?ended=1&next=%2Fconsole%2Fsettings%2Fmembers"
        );
        assert_eq!(
            sign_in_path("https://evil.example", false),
            "/console/sign-in"
        );
        assert_eq!(sign_in_path("//evil", true), "/console/sign-in?ended=1");
    }
}
