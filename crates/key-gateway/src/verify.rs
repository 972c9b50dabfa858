//! `/api/auth/verify`: forward-auth for reverse proxies (nginx `auth_request`, Traefik
//! `forwardAuth`) and any HTTP client that wants a verdict; with the principal's JSON shape.

use axum::{
    Extension, Json,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
};
use key_proto::{
    ErrorCode, METADATA_HEADER, MISSING_API_KEY_MESSAGE, bearer_token, metadata_header_value, v1,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    ApiError,
    error::ErrorBody,
    forwarded::ClientAddress,
    json::{non_empty, time},
    keys::{environment_name, key_type_name},
    upstream::{Upstream, forward},
};

/// Scopes a proxy asks for in a header instead of the query, comma- or space-separated.
const REQUIRED_SCOPES_HEADER: &str = "x-keyrack-required-scopes";
/// The end client's country (ISO 3166-1 alpha-2), set by the proxy or the edge.
const COUNTRY_HEADER: &str = "x-keyrack-country";
/// Cloudflare's geo header, used when `X-Keyrack-Country` is absent.
const CLOUDFLARE_COUNTRY_HEADER: &str = "cf-ipcountry";
/// The route or operation, for usage by tag.
const TAG_HEADER: &str = "x-keyrack-tag";
/// What a valid verification spends of a key with credits (1 to 1,000; absent or unreadable:
/// 1).
const COST_HEADER: &str = "x-keyrack-cost";
/// The credits a key with credits has left, after this verification.
const CREDITS_HEADER: &str = "x-keyrack-credits-remaining";
/// The error body, repeated as a header: nginx `auth_request` drops the body of a 401/403 but
/// can copy a header into its own error page (`auth_request_set`).
const ERROR_HEADER: HeaderName = HeaderName::from_static("x-keyrack-error");

/// Verifies the caller's `Authorization: Bearer` key for the scopes given as `scope` query
/// parameters (repeatable) or in the `X-Keyrack-Required-Scopes` header. 200 carries the
/// principal, also as `X-Keyrack-Key-Id`, `X-Keyrack-Org-Id` and `X-Keyrack-Scopes` headers for
/// the proxy to pass upstream (with `X-Keyrack-Member-Id` for a personal key, and for an OAuth
/// access token `X-Keyrack-Client-Id` and `X-Keyrack-User-Id`: the user context), and a key's
/// metadata as `X-Keyrack-Metadata` (the JSON object in base64url without padding). Any method is accepted, since proxies send the original one.
///
/// The client (as `--trusted-proxies` finds it) is judged by a key's IP allowlist.
///
/// For usage statistics, the client's country comes from `X-Keyrack-Country` (or the edge's
/// `CF-IPCountry`), believed only from a trusted proxy (`--trusted-proxies`), and a tag for the
/// route from `X-Keyrack-Tag`; invalid values are ignored.
#[utoipa::path(
    get, path = "/api/auth/verify", tag = "auth",
    params(
        ("scope" = Option<Vec<String>>, Query, description = "A required scope; repeat for several"),
        ("X-Keyrack-Required-Scopes" = Option<String>, Header, description = "Required scopes, comma-separated"),
        ("X-Keyrack-Country" = Option<String>, Header, description = "The end client's country, ISO 3166-1 alpha-2, for usage statistics; `CF-IPCountry` is read when absent. Believed only from a trusted proxy"),
        ("X-Keyrack-Tag" = Option<String>, Header, description = "The route or operation, for usage by tag (at most 64 printable ASCII characters)"),
        ("X-Keyrack-Cost" = Option<u32>, Header, description = "What a valid verification spends of a key with credits, 1 to 1000; default 1"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key may proceed", body = PrincipalJson),
        (status = 400, description = "An unknown scope was required", body = ErrorBody),
        (status = 401, description = "Missing, invalid, revoked, expired or disabled key", body = ErrorBody),
        (status = 403, description = "The key lacks a required scope, or its IP allowlist refuses the client (`ip_not_allowed`)", body = ErrorBody),
        (status = 429, description = "Rate limited, or the key's credits are spent (usage_exceeded)", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn verify(
    State(upstream): State<Upstream>,
    client: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let client = client.map(|Extension(client)| client);
    match decide(upstream, client, &headers, query.as_deref()).await {
        Ok(principal) => principal_response(principal),
        Err(error) => error_response(error),
    }
}

/// [`verify`] under the original request's path: Envoy's ext_authz HTTP mode appends the
/// path it is authorizing (and its query) to its `path_prefix`, and a Traefik forwardAuth
/// address can end the same way. The path is not read: the scopes come from the
/// `X-Keyrack-Required-Scopes` header the proxy adds (or a `scope` in the query, which can
/// only require more).
#[utoipa::path(
    get, path = "/api/auth/verify/{original_path}", tag = "auth",
    params(
        ("original_path" = String, Path, description = "The path of the request being authorized, as the proxy appends it; not read"),
        ("X-Keyrack-Required-Scopes" = Option<String>, Header, description = "Required scopes, comma-separated"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key may proceed", body = PrincipalJson),
        (status = 400, description = "An unknown scope was required", body = ErrorBody),
        (status = 401, description = "Missing, invalid, revoked, expired or disabled key", body = ErrorBody),
        (status = 403, description = "The key lacks a required scope, or its IP allowlist refuses the client (`ip_not_allowed`)", body = ErrorBody),
        (status = 429, description = "Rate limited, or the key's credits are spent (usage_exceeded)", body = ErrorBody),
        (status = 503, description = "The key service is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn verify_original_path(
    upstream: State<Upstream>,
    client: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    query: RawQuery,
) -> Response {
    verify(upstream, client, headers, query).await
}

/// `client` is the end client, as `forwarded.rs` determined it: the brute-force guard counts
/// failures by its address, and its country headers count only through a trusted proxy.
async fn decide(
    upstream: Upstream,
    client: Option<ClientAddress>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<PrincipalJson, ApiError> {
    let request = verify_request(client, headers, query)?;
    let verdict = upstream
        .keys
        .clone()
        .verify_key(forward(headers, request))
        .await?
        .into_inner();
    if verdict.valid {
        return Ok(PrincipalJson::from(&verdict));
    }
    let code = ErrorCode::from_reason(&verdict.reason).unwrap_or(ErrorCode::InvalidApiKey);
    let mut error = ApiError::new(code, verdict.message.clone());
    if code == ErrorCode::RateLimited {
        error = error.with_headers(rate_limit_headers(&verdict));
    }
    if let Some(left) = verdict.credits_remaining {
        error = error.with_headers(vec![(
            HeaderName::from_static(CREDITS_HEADER),
            HeaderValue::from(left),
        )]);
    }
    Err(error)
}

/// The VerifyKey request for a forward-auth request; without a bearer credential, the answer
/// that no key was sent.
pub(crate) fn verify_request(
    client: Option<ClientAddress>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<v1::VerifyKeyRequest, ApiError> {
    // An unreadable header gets the same answer as a missing one: either way, no key was sent.
    let key = bearer_token(headers)
        .map_err(|_| ApiError::new(ErrorCode::InvalidApiKey, MISSING_API_KEY_MESSAGE))?;
    Ok(v1::VerifyKeyRequest {
        key: key.to_owned(),
        required_scopes: required_scopes(headers, query),
        client_ip: client
            .map(|client| client.address.to_string())
            .unwrap_or_default(),
        // A client could name any country (a thief the owner's, so that no new-country alert
        // fires): only a trusted proxy's or edge's word counts. Otherwise the key service looks
        // the address up, when it has a country database.
        country: match client {
            Some(ClientAddress {
                via_trusted_proxy: true,
                ..
            }) => country(headers),
            _ => String::new(),
        },
        tag: header_text(headers, TAG_HEADER),
        cost: header_text(headers, COST_HEADER).parse().unwrap_or(0),
    })
}

/// The client's country: `X-Keyrack-Country`, else `CF-IPCountry` without Cloudflare's
/// placeholders for "unknown" (`XX`) and Tor (`T1`), which name no country. Judging the value
/// is the key service's job.
fn country(headers: &HeaderMap) -> String {
    let given = header_text(headers, COUNTRY_HEADER);
    if !given.is_empty() {
        return given;
    }
    match header_text(headers, CLOUDFLARE_COUNTRY_HEADER) {
        placeholder if placeholder == "XX" || placeholder == "T1" => String::new(),
        country => country,
    }
}

/// A header's value, trimmed; empty if absent or not visible ASCII.
fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .unwrap_or_default()
}

/// `Retry-After` (whole seconds, rounded up), `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
/// `X-RateLimit-Reset` (Unix seconds) of a RATE_LIMITED verdict.
fn rate_limit_headers(verdict: &v1::VerifyKeyResponse) -> Vec<(HeaderName, HeaderValue)> {
    let retry_after = verdict.retry_after.as_ref().map_or(0, |d| {
        d.seconds.max(0) + i64::from(d.nanos > 0 && d.seconds >= 0)
    });
    let reset = verdict.reset.as_ref().map_or(0, |t| t.seconds);
    let mut headers = vec![(header::RETRY_AFTER, HeaderValue::from(retry_after))];
    if verdict.limit > 0 {
        headers.push((
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from(verdict.limit),
        ));
    }
    headers.push((
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(verdict.remaining),
    ));
    headers.push((
        HeaderName::from_static("x-ratelimit-reset"),
        HeaderValue::from(reset),
    ));
    headers
}

fn required_scopes(headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    let from_query = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "scope")
        .map(|(_, value)| value.into_owned());
    let from_header = headers
        .get_all(REQUIRED_SCOPES_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned);
    from_query
        .chain(from_header)
        .flat_map(|list| {
            list.split([',', ' '])
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn principal_response(principal: PrincipalJson) -> Response {
    let mut extra = Vec::new();
    let metadata = principal
        .metadata_json
        .as_deref()
        .map(metadata_header_value)
        .map(|value| (METADATA_HEADER, value));
    for (name, value) in [
        ("x-keyrack-key-id", principal.key_id.clone()),
        ("x-keyrack-org-id", principal.organization_id.clone()),
        ("x-keyrack-scopes", principal.scopes.join(",")),
    ]
    .into_iter()
    .chain(
        [
            ("x-keyrack-member-id", principal.member_id.clone()),
            ("x-keyrack-client-id", principal.oauth_client_id.clone()),
            ("x-keyrack-user-id", principal.user_id.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?))),
    )
    .chain(metadata)
    .chain(
        principal
            .credits_remaining
            .map(|left| (CREDITS_HEADER, left.to_string())),
    ) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            extra.push((HeaderName::from_static(name), value));
        }
    }
    let mut response = Json(principal).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.extend(extra);
    response
}

fn error_response(error: ApiError) -> Response {
    let body = serde_json::to_string(&error.body()).ok();
    let mut response = error.into_response();
    if let Some(value) = body.and_then(|body| HeaderValue::from_str(&body).ok()) {
        response.headers_mut().insert(ERROR_HEADER, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The principal behind a key that passed forward-auth.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrincipalJson {
    pub(crate) key_id: String,
    pub(crate) organization_id: String,
    pub(crate) name: String,
    pub(crate) scopes: Vec<String>,
    /// `live` or `test`.
    pub(crate) environment: String,
    pub(crate) expires_at: Option<String>,
    /// `organization` or `personal`; a personal key's `scopes` are already limited by its
    /// member's current role.
    pub(crate) key_type: String,
    /// For a personal key, its member; null otherwise.
    pub(crate) member_id: Option<String>,
    /// The key's metadata (a JSON object); null: none. Also sent as `X-Keyrack-Metadata`.
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    pub(crate) metadata: Option<serde_json::Value>,
    /// The metadata's text as the service sent it, for the header.
    #[serde(skip)]
    pub(crate) metadata_json: Option<String>,
    /// For a key with credits, what is left after this verification; null: unlimited. Also
    /// sent as `X-Keyrack-Credits-Remaining`.
    pub(crate) credits_remaining: Option<i64>,
    /// For an OAuth access token: the client it was issued to (also `X-Keyrack-Client-Id`);
    /// null for a key.
    pub(crate) oauth_client_id: Option<String>,
    /// For an OAuth access token: the person's user id (also `X-Keyrack-User-Id`); null for a
    /// key.
    pub(crate) user_id: Option<String>,
}

impl From<&v1::VerifyKeyResponse> for PrincipalJson {
    fn from(verdict: &v1::VerifyKeyResponse) -> Self {
        PrincipalJson {
            key_id: verdict.key_id.clone(),
            organization_id: verdict.organization_id.clone(),
            name: verdict.name.clone(),
            scopes: verdict.scopes.clone(),
            environment: environment_name(verdict.environment).to_owned(),
            expires_at: time(verdict.expire_time.as_ref()),
            key_type: key_type_name(verdict.key_type).to_owned(),
            member_id: non_empty(verdict.member_id.clone()),
            metadata: serde_json::from_str(&verdict.metadata_json).ok(),
            metadata_json: non_empty(verdict.metadata_json.clone()),
            credits_remaining: verdict.credits_remaining,
            oauth_client_id: non_empty(verdict.oauth_client_id.clone()),
            user_id: non_empty(verdict.user_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_the_query_and_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            REQUIRED_SCOPES_HEADER,
            HeaderValue::from_static("data:read, analytics:read"),
        );
        let scopes = required_scopes(&headers, Some("scope=chat&scope=agents%3Aread&other=x"));
        assert_eq!(
            scopes,
            ["chat", "agents:read", "data:read", "analytics:read"]
        );
    }

    #[tokio::test]
    async fn a_missing_or_unreadable_credential_never_reaches_the_service() {
        // Nothing listens there: a call would be answered `unavailable`, not `invalid_api_key`.
        let upstream = Upstream::connect_lazy("http://127.0.0.1:1").unwrap();
        let values: [Option<&[u8]>; 4] = [
            None,
            Some(b"Basic dXNlcjpwYXNz"),
            Some(b"Bearer"),
            Some("Bearer clé".as_bytes()),
        ];
        for value in values {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_bytes(value).unwrap(),
                );
            }
            let error = decide(upstream.clone(), None, &headers, None)
                .await
                .unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidApiKey);
            assert_eq!(error.body().error.message, MISSING_API_KEY_MESSAGE);
        }
    }
}
