//! OAuth 2.0 for user context: the rules of clients, authorization requests, PKCE and token
//! lifetimes (RFC 6749 with the Security BCP, RFC 9700; PKCE, RFC 7636; native apps, RFC 8252).
//!
//! A person grants a client some of their scopes; the grant acts like a personal key of theirs
//! (limited by their role at every verification), and its access tokens (`oat_…`, see
//! [`crate::CredentialKind`]) are verified like keys. Nothing here does I/O.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Duration;
use ring::digest::{SHA256, digest};
use url::{Host, Url};

use crate::{Error, ScopeSet};

/// How long an authorization code may be exchanged (once): the Security BCP asks for short.
pub const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::seconds(60);

/// How long an access token works. Revoking its grant ends it at once; the lifetime bounds
/// what a leaked one that nobody revoked is worth: a client refreshes every hour.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::hours(1);

/// How long a refresh token works without being used. Every use rotates it, so an app in use
/// keeps working; one left unused for a month must send its person through consent again.
pub const REFRESH_TOKEN_IDLE_TIMEOUT: Duration = Duration::days(30);

/// The most refreshes one grant may make in an hour: an application refreshes once an hour, or
/// a few times more after restarts; a client refreshing in a loop would otherwise add a token
/// row per call.
pub const MAX_REFRESHES_PER_HOUR: u32 = 60;

/// How many rotated refresh tokens of a grant are kept (until they expire), so that their reuse
/// is recognised and revokes the grant; older ones are deleted at the next rotation, and
/// presenting one is then merely an unknown token.
pub const ROTATED_REFRESH_TOKENS_KEPT: u64 = 10;

/// The most redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

/// The longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// The longest `state` accepted: it is echoed back in a URL.
pub const MAX_STATE_LEN: usize = 1024;

/// The longest client name.
pub const MAX_CLIENT_NAME_LEN: usize = 100;

/// Whom an OAuth grant (and so each of its access tokens) acts for: a verification of an access
/// token names the client and the person's user id beside the grant's key id and member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthContext {
    /// The client the grant was made to.
    pub client_id: uuid::Uuid,
    /// The person's user id (their member's, which never changes).
    pub user_id: String,
}

/// How an OAuth client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OauthClientType {
    /// A server that keeps a secret.
    Confidential,
    /// A native or browser app that cannot: PKCE alone binds its codes.
    Public,
}

impl OauthClientType {
    /// The type's name in the store.
    pub const fn as_str(self) -> &'static str {
        match self {
            OauthClientType::Confidential => "confidential",
            OauthClientType::Public => "public",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<OauthClientType> {
        [OauthClientType::Confidential, OauthClientType::Public]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// OAuth's own refusals at the token endpoint (RFC 6749 §5.2), beside `invalid_request`
/// (`Error::InvalidArgument`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OauthError {
    /// Client authentication failed: unknown client, wrong or missing secret.
    InvalidClient,
    /// The code or refresh token is invalid, expired, revoked, used, or another client's.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// Not `authorization_code` or `refresh_token`.
    UnsupportedGrantType,
    /// Unknown scopes, or more than were granted.
    InvalidScope,
}

impl OauthError {
    /// The RFC's error code.
    pub const fn as_str(self) -> &'static str {
        match self {
            OauthError::InvalidClient => "invalid_client",
            OauthError::InvalidGrant => "invalid_grant",
            OauthError::UnauthorizedClient => "unauthorized_client",
            OauthError::UnsupportedGrantType => "unsupported_grant_type",
            OauthError::InvalidScope => "invalid_scope",
        }
    }

    /// This refusal with `description` as the domain's error.
    pub fn with(self, description: impl Into<String>) -> Error {
        Error::Oauth(self, description.into())
    }
}

impl fmt::Display for OauthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered redirect URI: absolute, without a fragment, and either `https` or `http` on a
/// loopback address (native apps, RFC 8252 §7.3). Kept exactly as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    text: String,
    url: Url,
}

impl RedirectUri {
    /// Reads a redirect URI to register; `field` names it in the error.
    pub fn parse(field: &'static str, input: &str) -> Result<RedirectUri, Error> {
        let invalid = |message: &str| Error::InvalidArgument {
            field,
            message: message.to_owned(),
        };
        if input.len() > MAX_REDIRECT_URI_LEN {
            return Err(invalid("a redirect URI is at most 2048 characters"));
        }
        let url = Url::parse(input).map_err(|_| invalid("not an absolute URL"))?;
        if url.fragment().is_some() {
            return Err(invalid("a redirect URI has no fragment (RFC 6749 3.1.2)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("a redirect URI carries no credentials"));
        }
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if is_loopback(&url) => {}
            _ => {
                return Err(invalid(
                    "a redirect URI is https, or http on a loopback address (127.0.0.1, [::1], \
                     localhost) for native apps",
                ));
            }
        }
        Ok(RedirectUri {
            text: input.to_owned(),
            url,
        })
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether an authorization request's `redirect_uri` names this one: the same string,
    /// except that a loopback `http` URI matches on any port, as a native app listens on
    /// whichever port it gets (RFC 8252 §7.3). Nothing else is normalised.
    pub fn matches(&self, requested: &str) -> bool {
        if requested == self.text {
            return true;
        }
        if !(self.url.scheme() == "http" && is_loopback(&self.url)) {
            return false;
        }
        let Ok(mut requested) = Url::parse(requested) else {
            return false;
        };
        if requested.fragment().is_some() || requested.set_port(None).is_err() {
            return false;
        }
        let mut registered = self.url.clone();
        registered.set_port(None).is_ok() && requested == registered
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// A PKCE challenge with method `S256`: BASE64URL(SHA-256(verifier)), 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Reads an authorization request's challenge and method. Only `S256` is accepted (the
    /// Security BCP: `plain` protects nothing from someone who reads the request).
    pub fn parse(challenge: &str, method: &str) -> Result<CodeChallenge, &'static str> {
        if challenge.is_empty() {
            return Err("code_challenge is required (PKCE with S256)");
        }
        if method != "S256" {
            return Err("code_challenge_method must be S256");
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !well_formed {
            return Err("code_challenge is not a base64url SHA-256 digest (43 characters)");
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// A challenge as stored.
    pub fn stored(text: String) -> CodeChallenge {
        CodeChallenge(text)
    }

    /// The challenge's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` (43 to 128 unreserved characters, RFC 7636 §4.1) is the one this
    /// challenge was made from. Compared in constant time.
    pub fn is_met_by(&self, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte));
        if !well_formed {
            return false;
        }
        let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
        constant_time_eq(computed.as_bytes(), self.0.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a `scope` parameter: scope names separated by spaces (RFC 6749 §3.3). An unknown name
/// is `invalid_scope`.
pub fn parse_scope_parameter(text: &str) -> Result<ScopeSet, Error> {
    let names: Vec<&str> = text.split(' ').filter(|name| !name.is_empty()).collect();
    ScopeSet::parse_list("scope", &names)
        .map_err(|_| OauthError::InvalidScope.with("unknown scope requested"))
}

/// The scopes a grant gets, and those withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantedScopes {
    /// Requested, allowed to the client, and held by the person's role.
    pub granted: ScopeSet,
    /// Requested and allowed to the client, but not held by the person's role.
    pub withheld: ScopeSet,
}

/// What approving a request for `requested` (empty: everything the client may ask for) gives a
/// client allowed `client_scopes`, for a person whose role holds `role_scopes`. A request
/// beyond the client's scopes is `invalid_scope`.
pub fn grant_scopes(
    requested: ScopeSet,
    client_scopes: ScopeSet,
    role_scopes: ScopeSet,
) -> Result<GrantedScopes, Error> {
    let requested = if requested.is_empty() {
        client_scopes
    } else {
        requested
    };
    if let Some(scope) = client_scopes.first_uncovered(requested) {
        return Err(
            OauthError::InvalidScope.with(format!("the client may not ask for {}", scope.as_str()))
        );
    }
    // Literally what was asked for: `admin` requested by a person who does not hold it is
    // withheld, not spelled out into the scopes their role has (least privilege).
    let granted = requested
        .iter()
        .filter(|scope| role_scopes.grants(*scope))
        .collect();
    let withheld = requested
        .iter()
        .filter(|scope| !role_scopes.grants(*scope))
        .collect();
    Ok(GrantedScopes { granted, withheld })
}

/// A space-separated `scope` value (RFC 6749 §3.3) of `scopes`.
pub fn scope_parameter(scopes: ScopeSet) -> String {
    scopes
        .iter()
        .map(|scope| scope.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8765/callback",
            "http://[::1]:80/cb",
            "http://localhost:3000/cb",
        ] {
            assert!(RedirectUri::parse("redirect_uris", good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/callback",
            "https://app.example.com/cb#frag",
            "/callback",
            "javascript:alert(1)",
            "https://user:pw@app.example.com/cb",
            "ftp://127.0.0.1/cb",
        ] {
            assert!(RedirectUri::parse("redirect_uris", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_match_exactly_but_for_a_loopback_port() {
        let https = RedirectUri::parse("r", "https://app.example.com/cb").unwrap();
        assert!(https.matches("https://app.example.com/cb"));
        for other in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com:8443/cb",
            "https://APP.example.com/cb",
            "https://evil.example.com/cb",
        ] {
            assert!(!https.matches(other), "{other}");
        }
        let native = RedirectUri::parse("r", "http://127.0.0.1/callback").unwrap();
        assert!(native.matches("http://127.0.0.1:51234/callback"));
        assert!(!native.matches("http://127.0.0.1:51234/other"));
        assert!(!native.matches("http://127.0.0.2:51234/callback"));
        assert!(!native.matches("http://127.0.0.1:51234/callback#x"));
    }

    #[test]
    fn pkce_is_s256_only_and_checks_the_verifier() {
        // RFC 7636 appendix B's example.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge =
            CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256").unwrap();
        assert!(challenge.is_met_by(verifier));
        assert!(!challenge.is_met_by("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
        assert!(!challenge.is_met_by(""));
        assert!(
            CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "plain").is_err()
        );
        assert!(CodeChallenge::parse("", "S256").is_err());
        assert!(CodeChallenge::parse("short", "S256").is_err());
    }

    #[test]
    fn a_grant_is_the_request_within_the_client_and_the_role() {
        let set = |scopes: &[Scope]| scopes.iter().copied().collect::<ScopeSet>();
        let client = set(&[Scope::Chat, Scope::AgentsRead, Scope::AgentsWrite]);
        let role = set(&[Scope::Chat, Scope::AgentsRead]);
        let granted = grant_scopes(set(&[Scope::Chat, Scope::AgentsWrite]), client, role).unwrap();
        assert_eq!(granted.granted, set(&[Scope::Chat]));
        assert_eq!(granted.withheld, set(&[Scope::AgentsWrite]));
        let everything = grant_scopes(ScopeSet::EMPTY, client, role).unwrap();
        assert_eq!(everything.granted, role);
        // admin, not held, is withheld rather than spelled out.
        let admin_client = set(&[Scope::Admin]);
        let asked = grant_scopes(set(&[Scope::Chat, Scope::Admin]), admin_client, role).unwrap();
        assert_eq!(asked.granted, set(&[Scope::Chat]));
        assert_eq!(asked.withheld, set(&[Scope::Admin]));
        assert!(matches!(
            grant_scopes(set(&[Scope::Admin]), client, role),
            Err(Error::Oauth(OauthError::InvalidScope, _))
        ));
        assert_eq!(
            scope_parameter(set(&[Scope::AgentsRead, Scope::Chat])),
            "chat agents:read"
        );
        assert_eq!(
            parse_scope_parameter("chat  agents:read").unwrap(),
            set(&[Scope::Chat, Scope::AgentsRead])
        );
        assert!(parse_scope_parameter("chat nope").is_err());
    }
}
