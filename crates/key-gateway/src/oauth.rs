//! OAuth 2.0's protocol endpoints: the token endpoint (`POST /oauth/token`, RFC 6749 3.2, 4.1.3
//! and 6), revocation (`POST /oauth/revoke`, RFC 7009), introspection (`POST /oauth/introspect`,
//! RFC 7662) and the authorization server's metadata (`GET /.well-known/oauth-authorization-server`,
//! RFC 8414). The authorization endpoint is the web console's (`Gateway::with_authorize`).
//!
//! The gateway decides nothing here either: it reads the form and the client's credentials
//! (HTTP Basic, `client_secret_basic`, or the body, `client_secret_post`), refuses what is
//! malformed before any call (`invalid_request`), and makes one call to the service, which
//! authenticates the client and judges the grant. The client's credentials travel in the
//! message, never as metadata (`upstream::forward_without_credential`). Answers and errors are
//! the RFCs' JSON, not the platform's error shape: OAuth client libraries read `error`.

use std::collections::BTreeMap;

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use key_proto::{ErrorCode, v1};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;
use utoipa::ToSchema;

use crate::{
    ApiError,
    error::ErrorBody,
    upstream::{Upstream, forward_without_credential},
};

/// The largest form accepted by the token, revocation and introspection endpoints. Their
/// parameters are a code, a verifier, a token, a redirect URI and credentials: a few hundred
/// bytes. Anything much larger is not a client of ours.
pub(crate) const FORM_BODY_LIMIT: usize = 16 * 1024;

/// The realm of the HTTP Basic challenge on a failed client authentication.
const BASIC_CHALLENGE: &str = r#"Basic realm="keyrack""#;

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// The token endpoint: exchanges an authorization code (with its PKCE verifier and redirect
/// URI) or a refresh token for an access token and a new refresh token (the old one stops
/// working). A confidential client authenticates with HTTP Basic (`client_secret_basic`, id
/// and secret each form-urlencoded first) or `client_id` and `client_secret` in the body
/// (`client_secret_post`), never both; a public client sends only `client_id`.
///
/// Errors are RFC 6749 5.2's: `invalid_client` (401, with a Basic challenge), or
/// `invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`,
/// `invalid_scope` (400). A service that cannot answer now (down, overloaded, rate limited) is
/// `temporarily_unavailable` (503), anything unexpected `server_error` (500): the words of RFC
/// 6749 4.1.2.1, which OAuth libraries already know, since 5.2 has none for either.
#[utoipa::path(
    post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "The tokens (RFC 6749 5.1)", body = TokenJson, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type` or `invalid_scope`", body = OauthErrorJson),
        (status = 401, description = "`invalid_client`: the client's authentication failed, or used a scheme other than Basic", body = OauthErrorJson, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"keyrack\"`"),
        )),
        (status = 500, description = "`server_error`", body = OauthErrorJson),
        (status = 503, description = "`temporarily_unavailable`: retry later", body = OauthErrorJson),
    )
)]
pub(crate) async fn token(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OauthError> {
    let form = read_form(&headers, body)?;
    let client = ClientCredentials::read(&headers, &form)?;
    let request = v1::ExchangeOauthTokenRequest {
        grant_type: form.take("grant_type"),
        code: form.take("code"),
        redirect_uri: form.take("redirect_uri"),
        code_verifier: form.take("code_verifier"),
        refresh_token: form.take("refresh_token"),
        scope: form.take("scope"),
        client_id: client.id,
        client_secret: client.secret,
    };
    let response = upstream
        .keys
        .clone()
        .exchange_oauth_token(forward_without_credential(&headers, request))
        .await
        .map_err(|status| OauthError::from_status(&status, client.basic))?
        .into_inner();
    let token_type = if response.token_type.is_empty() {
        "Bearer".to_owned()
    } else {
        response.token_type
    };
    let body = TokenJson {
        access_token: response.access_token,
        token_type,
        expires_in: response.expires_in,
        refresh_token: non_empty(response.refresh_token),
        scope: non_empty(response.scope),
    };
    Ok(no_store(Json(body).into_response()))
}

/// Revokes an access or refresh token of the calling client (RFC 7009); revoking a refresh
/// token revokes its grant's tokens. A token that is unknown, already revoked or not the
/// client's is answered 200 all the same, as the RFC asks. Client authentication as at the
/// token endpoint.
#[utoipa::path(
    post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke; empty body"),
        (status = 400, description = "`invalid_request`", body = OauthErrorJson),
        (status = 401, description = "`invalid_client`", body = OauthErrorJson, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"keyrack\"`"),
        )),
        (status = 500, description = "`server_error`", body = OauthErrorJson),
        (status = 503, description = "`temporarily_unavailable`: retry later", body = OauthErrorJson),
    )
)]
pub(crate) async fn revoke(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, OauthError> {
    let form = read_form(&headers, body)?;
    let client = ClientCredentials::read(&headers, &form)?;
    let request = v1::RevokeOauthTokenRequest {
        token: form.take("token"),
        token_type_hint: form.take("token_type_hint"),
        client_id: client.id,
        client_secret: client.secret,
    };
    upstream
        .keys
        .clone()
        .revoke_oauth_token(forward_without_credential(&headers, request))
        .await
        .map_err(|status| OauthError::from_status(&status, client.basic))?;
    Ok(StatusCode::OK)
}

/// Says whether a token is active now (RFC 7662): an access token, a refresh token, or a
/// Keyrack API key of the resource server's organization. The resource server authenticates
/// as a confidential client of the organization (HTTP Basic or the body). An inactive token is
/// `{"active": false}` and nothing else.
#[utoipa::path(
    post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state (RFC 7662 2.2)", body = IntrospectionJson, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 400, description = "`invalid_request`", body = OauthErrorJson),
        (status = 401, description = "`invalid_client`: the resource server's authentication failed", body = OauthErrorJson, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"keyrack\"`"),
        )),
        (status = 500, description = "`server_error`", body = OauthErrorJson),
        (status = 503, description = "`temporarily_unavailable`: retry later", body = OauthErrorJson),
    )
)]
pub(crate) async fn introspect(
    State(upstream): State<Upstream>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OauthError> {
    let form = read_form(&headers, body)?;
    let client = ClientCredentials::read(&headers, &form)?;
    let request = v1::IntrospectOauthTokenRequest {
        token: form.take("token"),
        token_type_hint: form.take("token_type_hint"),
        client_id: client.id,
        client_secret: client.secret,
    };
    let response = upstream
        .keys
        .clone()
        .introspect_oauth_token(forward_without_credential(&headers, request))
        .await
        .map_err(|status| OauthError::from_status(&status, client.basic))?
        .into_inner();
    Ok(no_store(
        Json(IntrospectionJson::from(response)).into_response(),
    ))
}

/// The authorization server's metadata (RFC 8414): its endpoints, grant types, PKCE method,
/// client authentication methods and scopes. Every URL is built from the configured issuer,
/// never from the request's `Host`; without one configured there is no document (404).
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses(
        (status = 200, description = "The metadata", body = AuthorizationServerMetadata),
        (status = 404, description = "No OAuth issuer is configured", body = ErrorBody),
    )
)]
pub(crate) async fn metadata(
    document: Option<AuthorizationServerMetadata>,
) -> Result<Json<AuthorizationServerMetadata>, ApiError> {
    document.map(Json).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "no OAuth issuer is configured on this server",
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Reading the request
// ---------------------------------------------------------------------------------------------

/// The parameters the endpoints read. Any other parameter is ignored, as RFC 6749 3.2 asks
/// (and may be repeated: RFC 8707's `resource` is, legitimately).
const KNOWN_PARAMETERS: [&str; 10] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
    "token",
    "token_type_hint",
];

/// A form body's known parameters. Each appears at most once (RFC 6749 3.2: "MUST NOT be
/// included more than once"), and one sent without a value is as if left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Form(BTreeMap<&'static str, String>);

impl Form {
    /// Parses `body`, refusing a repeated known parameter and a known parameter whose value
    /// is not UTF-8 once percent-decoded.
    pub(crate) fn parse(body: &[u8]) -> Result<Form, OauthError> {
        let mut seen = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            let Some(&name) = KNOWN_PARAMETERS.iter().find(|known| **known == name) else {
                continue;
            };
            // form_urlencoded decodes leniently, replacing what is not UTF-8; no token,
            // secret or URI of ours holds U+FFFD, so its presence means a malformed value.
            if value.contains(char::REPLACEMENT_CHARACTER) {
                return Err(OauthError::invalid_request(format!(
                    "parameter {name} is not UTF-8"
                )));
            }
            if seen.insert(name, value.into_owned()).is_some() {
                return Err(OauthError::invalid_request(format!(
                    "parameter {name} is repeated"
                )));
            }
        }
        seen.retain(|_, value| !value.is_empty());
        Ok(Form(seen))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter's value, or the empty string (the proto's "absent").
    fn take(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }
}

/// The body, read as a form: the content type must be `application/x-www-form-urlencoded`
/// (RFC 6749 3.2, RFC 7009 2.1, RFC 7662 2.1), whatever its parameters (`charset`).
fn read_form(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Form, OauthError> {
    check_content_type(headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OauthError::invalid_request("the request body is larger than 16 KiB")
        } else {
            OauthError::invalid_request(format!("cannot read the request body: {rejection}"))
        }
    })?;
    Form::parse(&body)
}

pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), OauthError> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let essence = match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .ok()
            .and_then(|value| value.split(';').next())
            .map(str::trim),
        _ => None,
    };
    if essence
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    {
        Ok(())
    } else {
        Err(OauthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// The client's id and secret, from HTTP Basic or from the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientCredentials {
    pub(crate) id: String,
    pub(crate) secret: String,
    /// Whether they came by HTTP Basic: a failed authentication then gets a Basic challenge.
    pub(crate) basic: bool,
}

impl ClientCredentials {
    /// HTTP Basic (RFC 6749 2.3.1: the id and the secret each form-urlencoded, then joined by
    /// `:` and base64-encoded) or `client_id` and `client_secret` in the body, but not both:
    /// a secret in the body beside Basic is two mechanisms (`invalid_request`). A `client_id`
    /// in the body beside Basic is allowed when it names the same client (some libraries
    /// always send it), refused otherwise. A scheme other than Basic is `invalid_client`.
    pub(crate) fn read(headers: &HeaderMap, form: &Form) -> Result<ClientCredentials, OauthError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => {
                return Ok(ClientCredentials {
                    id: form.take("client_id"),
                    secret: form.take("client_secret"),
                    basic: false,
                });
            }
            (Some(value), None) => value,
            (Some(_), Some(_)) => {
                return Err(OauthError::invalid_request(
                    "more than one Authorization header",
                ));
            }
        };
        let value = value
            .to_str()
            .map_err(|_| OauthError::invalid_request("the Authorization header is not ASCII"))?;
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OauthError::new(
                ErrorCode::InvalidClient,
                "clients authenticate with HTTP Basic or client_id and client_secret in the body",
            )
            .with_basic_challenge());
        }
        let (id, secret) = decode_basic(credentials.trim())?;
        if form.get("client_secret").is_some() {
            return Err(OauthError::invalid_request(
                "the client authenticates twice: HTTP Basic and client_secret in the body",
            ));
        }
        if form.get("client_id").is_some_and(|body_id| body_id != id) {
            return Err(OauthError::invalid_request(
                "client_id in the body is not the client of the HTTP Basic credentials",
            ));
        }
        Ok(ClientCredentials {
            id,
            secret,
            basic: true,
        })
    }
}

/// The id and the secret of HTTP Basic credentials (the part after `Basic `), each
/// form-urldecoded as RFC 6749 2.3.1 asks. Padding may be left out.
pub(crate) fn decode_basic(credentials: &str) -> Result<(String, String), OauthError> {
    let malformed =
        |why: &str| OauthError::invalid_request(format!("malformed HTTP Basic credentials: {why}"));
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = engine
        .decode(credentials)
        .map_err(|_| malformed("not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed("not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| malformed("no ':' between the client id and the secret"))?;
    let id = form_urldecode(id).ok_or_else(|| malformed("the client id's encoding"))?;
    let secret = form_urldecode(secret).ok_or_else(|| malformed("the secret's encoding"))?;
    if id.is_empty() {
        return Err(malformed("no client id"));
    }
    Ok((id, secret))
}

/// One `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits, or bytes that are not UTF-8, are `None`.
fn form_urldecode(encoded: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = char::from(rest.next()?).to_digit(16)?;
                let low = char::from(rest.next()?).to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An error of the token, revocation or introspection endpoint, as RFC 6749 5.2 shapes it:
/// `{"error", "error_description"}` with `Cache-Control: no-store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OauthError {
    status: StatusCode,
    error: &'static str,
    description: Option<String>,
    /// A Basic challenge in `WWW-Authenticate`: on `invalid_client`.
    basic_challenge: bool,
    /// `Retry-After: 1`: the service shed the call.
    retry_soon: bool,
}

impl OauthError {
    fn new(code: ErrorCode, description: impl Into<String>) -> OauthError {
        OauthError {
            status: StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            error: code.reason(),
            description: Some(description.into()),
            basic_challenge: false,
            retry_soon: false,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> OauthError {
        OauthError::new(ErrorCode::InvalidRequest, description)
    }

    fn with_basic_challenge(mut self) -> OauthError {
        self.basic_challenge = true;
        self
    }

    fn temporarily_unavailable() -> OauthError {
        OauthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: None,
            basic_challenge: false,
            retry_soon: false,
        }
    }

    fn server_error() -> OauthError {
        OauthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: None,
            basic_challenge: false,
            retry_soon: false,
        }
    }

    /// Translates a gRPC status. The `ErrorInfo` reason is one of RFC 6749 5.2's codes,
    /// answered as such with the service's message; `invalid_client` always carries a Basic
    /// challenge (RFC 9110 requires one on every 401; RFC 6749 on every 401 to a client that
    /// tried Basic, `basic`, which is the case that matters). A service that cannot answer now
    /// (unavailable, overloaded, rate limited, or no reason and a transport failure) is
    /// `temporarily_unavailable` (503), with `Retry-After: 1` when shed; anything else is
    /// `server_error` (500), the details only in the log.
    pub(crate) fn from_status(status: &tonic::Status, basic: bool) -> OauthError {
        let reason = status.get_details_error_info().map(|info| info.reason);
        match reason.as_deref().and_then(ErrorCode::from_reason) {
            Some(
                code @ (ErrorCode::InvalidRequest
                | ErrorCode::InvalidClient
                | ErrorCode::InvalidGrant
                | ErrorCode::UnauthorizedClient
                | ErrorCode::UnsupportedGrantType
                | ErrorCode::InvalidScope),
            ) => {
                let error = OauthError::new(code, status.message());
                if code == ErrorCode::InvalidClient {
                    tracing::debug!(basic, "OAuth client authentication failed");
                    error.with_basic_challenge()
                } else {
                    error
                }
            }
            Some(ErrorCode::Overloaded) => OauthError {
                retry_soon: true,
                ..OauthError::temporarily_unavailable()
            },
            Some(ErrorCode::Unavailable | ErrorCode::RateLimited) => {
                OauthError::temporarily_unavailable()
            }
            None if matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ) =>
            {
                tracing::warn!(grpc_status = ?status.code(), message = status.message(), "upstream unavailable");
                OauthError::temporarily_unavailable()
            }
            _ => {
                tracing::error!(grpc_status = ?status.code(), reason = ?reason, message = status.message(), "unexpected upstream error at an OAuth endpoint");
                OauthError::server_error()
            }
        }
    }
}

impl IntoResponse for OauthError {
    fn into_response(self) -> Response {
        let body = OauthErrorJson {
            error: self.error,
            error_description: self.description.as_deref().map(description_characters),
        };
        let mut response = no_store((self.status, Json(body)).into_response());
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        if self.retry_soon {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        response
    }
}

/// RFC 6749 5.2 allows printable ASCII but `"` and `\` in `error_description`; the service's
/// messages are plain English, but a name or a value quoted in one must not break the rule.
fn description_characters(description: &str) -> String {
    description
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Token responses and errors must not be cached (RFC 6749 5.1 and 5.2), nor introspection
/// answers.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

// ---------------------------------------------------------------------------------------------
// JSON and form shapes
// ---------------------------------------------------------------------------------------------

/// The token endpoint's form (RFC 6749 4.1.3 and 6). Only the schema: the handler reads the
/// body itself, to refuse repeated parameters.
#[derive(Debug, ToSchema)]
#[expect(
    dead_code,
    reason = "the OpenAPI schema of a form the handler reads by hand"
)]
pub(crate) struct TokenForm {
    /// `authorization_code` or `refresh_token`.
    #[schema(example = "authorization_code")]
    grant_type: String,
    /// For `authorization_code`: the code the authorization endpoint gave.
    code: Option<String>,
    /// For `authorization_code`: the authorization request's redirect URI, exactly.
    redirect_uri: Option<String>,
    /// For `authorization_code`: the PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// For `refresh_token`: the refresh token.
    refresh_token: Option<String>,
    /// For `refresh_token`: fewer scopes than granted, space-separated.
    scope: Option<String>,
    /// The client's id, when it does not authenticate with HTTP Basic.
    client_id: Option<String>,
    /// A confidential client's secret, when it does not authenticate with HTTP Basic.
    client_secret: Option<String>,
}

/// The revocation endpoint's form (RFC 7009 2.1). Only the schema.
#[derive(Debug, ToSchema)]
#[expect(
    dead_code,
    reason = "the OpenAPI schema of a form the handler reads by hand"
)]
pub(crate) struct RevokeForm {
    /// The access or refresh token.
    token: String,
    /// `access_token` or `refresh_token`: a hint only.
    token_type_hint: Option<String>,
    /// The client's id, when it does not authenticate with HTTP Basic.
    client_id: Option<String>,
    /// A confidential client's secret, when it does not authenticate with HTTP Basic.
    client_secret: Option<String>,
}

/// The introspection endpoint's form (RFC 7662 2.1). Only the schema.
#[derive(Debug, ToSchema)]
#[expect(
    dead_code,
    reason = "the OpenAPI schema of a form the handler reads by hand"
)]
pub(crate) struct IntrospectForm {
    /// An access token, a refresh token or a Keyrack API key.
    token: String,
    /// A hint only.
    token_type_hint: Option<String>,
    /// The resource server's client id, when it does not authenticate with HTTP Basic.
    client_id: Option<String>,
    /// Its secret, when it does not authenticate with HTTP Basic.
    client_secret: Option<String>,
}

/// RFC 6749 5.1's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenJson {
    /// The access token: use it as `Authorization: Bearer …`.
    #[schema(example = "oat_live_…")]
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 3600)]
    expires_in: i64,
    /// The refresh token; the one just used (if any) no longer works.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ort_live_…")]
    refresh_token: Option<String>,
    /// The granted scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "chat agents:read")]
    scope: Option<String>,
}

/// RFC 6749 5.2's error.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OauthErrorJson {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable` or `server_error`.
    #[schema(example = "invalid_grant")]
    error: &'static str,
    /// What went wrong, for the developer.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<String>,
}

/// RFC 7662 2.2's answer. Inactive: `active` alone.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IntrospectionJson {
    active: bool,
    /// The scopes the token may use now, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// The client the token was issued to; absent for an API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// The person's user id; absent for an organization key.
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// `access_token`, `refresh_token` or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    /// Expiry, seconds since the epoch; absent when it never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// The member's id; for an organization key, the key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    /// Keyrack's: the organization's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_id: Option<String>,
    /// Keyrack's: the grant (or the key) the token belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

impl From<v1::IntrospectOauthTokenResponse> for IntrospectionJson {
    fn from(response: v1::IntrospectOauthTokenResponse) -> Self {
        if !response.active {
            return IntrospectionJson {
                active: false,
                scope: None,
                client_id: None,
                username: None,
                token_type: None,
                exp: None,
                iat: None,
                sub: None,
                organization_id: None,
                key_id: None,
            };
        }
        IntrospectionJson {
            active: true,
            scope: Some(response.scope),
            client_id: non_empty(response.client_id),
            username: non_empty(response.username),
            token_type: Some(response.token_type),
            exp: (response.exp != 0).then_some(response.exp),
            iat: Some(response.iat),
            sub: Some(response.sub),
            organization_id: Some(response.organization_id),
            key_id: Some(response.key_id),
        }
    }
}

/// RFC 8414's authorization server metadata.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AuthorizationServerMetadata {
    /// The configured issuer (the console's public URL without `/console`).
    #[schema(example = "https://keys.example.com")]
    issuer: String,
    /// `<issuer>/oauth/authorize`, served by the web console.
    authorization_endpoint: String,
    /// `<issuer>/oauth/token`.
    token_endpoint: String,
    /// `<issuer>/oauth/revoke`.
    revocation_endpoint: String,
    /// `<issuer>/oauth/introspect`.
    introspection_endpoint: String,
    #[schema(example = json!(["code"]))]
    response_types_supported: Vec<&'static str>,
    #[schema(example = json!(["authorization_code", "refresh_token"]))]
    grant_types_supported: Vec<&'static str>,
    /// PKCE is required of every client, with S256 only.
    #[schema(example = json!(["S256"]))]
    code_challenge_methods_supported: Vec<&'static str>,
    #[schema(example = json!(["client_secret_basic", "client_secret_post", "none"]))]
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    #[schema(example = json!(["client_secret_basic", "client_secret_post", "none"]))]
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    #[schema(example = json!(["client_secret_basic", "client_secret_post"]))]
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    #[schema(example = json!(["chat", "agents:read"]))]
    scopes_supported: Vec<&'static str>,
    /// RFC 9207's `iss` in the authorization response: not sent.
    authorization_response_iss_parameter_supported: bool,
}

impl AuthorizationServerMetadata {
    /// The document of the authorization server at `issuer` (a trailing `/` is dropped).
    pub(crate) fn new(issuer: &str) -> AuthorizationServerMetadata {
        let issuer = issuer.trim_end_matches('/').to_owned();
        let endpoint = |path: &str| format!("{issuer}{path}");
        // A public client revokes its own tokens with its client_id alone, as it exchanges
        // them; introspection is for resource servers, which are confidential clients.
        let with_public = vec!["client_secret_basic", "client_secret_post", "none"];
        AuthorizationServerMetadata {
            authorization_endpoint: endpoint("/oauth/authorize"),
            token_endpoint: endpoint("/oauth/token"),
            revocation_endpoint: endpoint("/oauth/revoke"),
            introspection_endpoint: endpoint("/oauth/introspect"),
            response_types_supported: vec!["code"],
            grant_types_supported: vec!["authorization_code", "refresh_token"],
            code_challenge_methods_supported: vec!["S256"],
            token_endpoint_auth_methods_supported: with_public.clone(),
            revocation_endpoint_auth_methods_supported: with_public,
            introspection_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
            ],
            scopes_supported: key_proto::SCOPES.to_vec(),
            authorization_response_iss_parameter_supported: false,
            issuer,
        }
    }
}

/// The HTTP Basic security scheme of the OpenAPI document: an OAuth client's id and secret.
pub(crate) const CLIENT_BASIC_SCHEME: &str = "client_basic";

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn basic_credentials_are_form_urldecoded_after_base64() {
        // RFC 6749 2.3.1: each of id and secret is form-urlencoded before the join, so a `:`
        // in the id is %3A and a space in the secret may be `+`.
        let credentials = basic("my%3Aclient", "s3cr%2Bt+with%20spaces%C3%A9");
        let form = Form::default();
        let read =
            ClientCredentials::read(&headers(&[("authorization", &credentials)]), &form).unwrap();
        assert_eq!(
            read,
            ClientCredentials {
                id: "my:client".to_owned(),
                secret: "s3cr+t with spacesé".to_owned(),
                basic: true,
            }
        );
        // The scheme is case-insensitive; padding may be left out.
        let unpadded = credentials
            .trim_end_matches('=')
            .replacen("Basic", "bAsIc", 1);
        assert_eq!(
            ClientCredentials::read(&headers(&[("authorization", &unpadded)]), &form)
                .unwrap()
                .id,
            "my:client"
        );
        // The secret may itself hold `:` (only the first one splits).
        assert_eq!(
            decode_basic(&basic("a", "b:c")[6..]).unwrap(),
            ("a".to_owned(), "b:c".to_owned())
        );
    }

    #[test]
    fn malformed_basic_credentials_are_invalid_request() {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        for credentials in [
            "not base64!".to_owned(),
            b64("no-colon"),
            b64(":secret-without-id"),
            b64("id%zz:secret"),
            b64("id:secret%4"),
            b64("id%FF:secret"),
            base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'a']),
        ] {
            let error = decode_basic(&credentials).unwrap_err();
            assert_eq!(error.error, "invalid_request", "{credentials}");
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn another_scheme_is_invalid_client_with_a_basic_challenge() {
        let error = ClientCredentials::read(
            &headers(&[("authorization", "Bearer sk_live_abc")]),
            &Form::default(),
        )
        .unwrap_err();
        assert_eq!(error.error, "invalid_client");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            BASIC_CHALLENGE
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn body_credentials_are_read_when_there_is_no_basic() {
        let form = Form::parse(b"client_id=app%201&client_secret=krc_x%2By&grant_type=x").unwrap();
        assert_eq!(
            ClientCredentials::read(&HeaderMap::new(), &form).unwrap(),
            ClientCredentials {
                id: "app 1".to_owned(),
                secret: "krc_x+y".to_owned(),
                basic: false,
            }
        );
        // A public client: its id alone.
        let form = Form::parse(b"client_id=native").unwrap();
        let read = ClientCredentials::read(&HeaderMap::new(), &form).unwrap();
        assert_eq!((read.id.as_str(), read.secret.as_str()), ("native", ""));
    }

    #[test]
    fn basic_and_body_credentials_together_are_refused() {
        let auth = headers(&[("authorization", &basic("app", "secret"))]);
        let both = Form::parse(b"client_secret=secret").unwrap();
        let error = ClientCredentials::read(&auth, &both).unwrap_err();
        assert_eq!(error.error, "invalid_request");
        // The same client id in the body is tolerated, another one is not.
        let same = Form::parse(b"client_id=app").unwrap();
        assert_eq!(ClientCredentials::read(&auth, &same).unwrap().id, "app");
        let other = Form::parse(b"client_id=other").unwrap();
        assert_eq!(
            ClientCredentials::read(&auth, &other).unwrap_err().error,
            "invalid_request"
        );
        // Two Authorization headers are two credentials.
        let twice = headers(&[
            ("authorization", &basic("app", "secret")),
            ("authorization", &basic("app", "secret")),
        ]);
        assert_eq!(
            ClientCredentials::read(&twice, &Form::default())
                .unwrap_err()
                .error,
            "invalid_request"
        );
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_are_absent() {
        let error =
            Form::parse(b"grant_type=refresh_token&grant_type=authorization_code").unwrap_err();
        assert_eq!(error.error, "invalid_request");
        assert_eq!(
            error.description.as_deref(),
            Some("parameter grant_type is repeated")
        );
        // Even when one of the two is empty.
        assert!(Form::parse(b"code=&code=abc").is_err());
        // Unknown parameters are ignored, repeated or not (RFC 8707's resource may repeat).
        let form = Form::parse(b"resource=a&resource=b&code=abc&scope=").unwrap();
        assert_eq!(form.get("code"), Some("abc"));
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.take("scope"), "");
        // A value that is not UTF-8 once decoded is refused.
        assert!(Form::parse(b"code=%FF").is_err());
        // `+` and percent-encoding are decoded.
        assert_eq!(
            Form::parse(b"scope=chat+agents%3Aread")
                .unwrap()
                .get("scope"),
            Some("chat agents:read")
        );
    }

    #[test]
    fn only_a_form_content_type_is_accepted() {
        for accepted in [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "Application/X-WWW-Form-Urlencoded",
        ] {
            assert!(check_content_type(&headers(&[("content-type", accepted)])).is_ok());
        }
        for refused in [
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
        ] {
            let error = check_content_type(&headers(&[("content-type", refused)])).unwrap_err();
            assert_eq!(error.error, "invalid_request", "{refused}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn statuses_become_rfc_6749_errors() {
        let with_reason = |code: Code, reason: &str| {
            tonic::Status::with_error_details(
                code,
                "the message",
                tonic_types::ErrorDetails::with_error_info(reason, "keyrack", []),
            )
        };
        let grant = OauthError::from_status(
            &with_reason(Code::FailedPrecondition, "invalid_grant"),
            false,
        );
        assert_eq!(
            (grant.status, grant.error, grant.description.as_deref()),
            (
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                Some("the message")
            )
        );
        let client =
            OauthError::from_status(&with_reason(Code::Unauthenticated, "invalid_client"), true);
        assert_eq!(
            (client.status, client.error),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert!(client.basic_challenge);
        for (status, error) in [
            (
                with_reason(Code::Unavailable, "unavailable"),
                "temporarily_unavailable",
            ),
            (
                with_reason(Code::ResourceExhausted, "overloaded"),
                "temporarily_unavailable",
            ),
            (
                with_reason(Code::ResourceExhausted, "rate_limited"),
                "temporarily_unavailable",
            ),
            (
                tonic::Status::unavailable("connection refused"),
                "temporarily_unavailable",
            ),
            (with_reason(Code::Internal, "internal"), "server_error"),
            (with_reason(Code::NotFound, "not_found"), "server_error"),
            (tonic::Status::unknown("what"), "server_error"),
        ] {
            let translated = OauthError::from_status(&status, false);
            assert_eq!(translated.error, error, "{status:?}");
            assert_eq!(translated.description, None);
        }
    }

    #[test]
    fn descriptions_keep_to_the_allowed_characters() {
        assert_eq!(
            description_characters(r#"client "x\y" é"#),
            "client 'x/y' ?"
        );
    }

    #[test]
    fn the_metadata_names_endpoints_under_the_issuer() {
        let document = AuthorizationServerMetadata::new("https://keys.example.com/");
        let json = serde_json::to_value(&document).unwrap();
        assert_eq!(json["issuer"], "https://keys.example.com");
        assert_eq!(
            json["token_endpoint"],
            "https://keys.example.com/oauth/token"
        );
        assert_eq!(
            json["authorization_endpoint"],
            "https://keys.example.com/oauth/authorize"
        );
        assert_eq!(
            json["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            json["scopes_supported"].as_array().unwrap().len(),
            key_proto::SCOPES.len()
        );
    }

    #[test]
    fn an_inactive_token_is_active_false_alone() {
        let json =
            serde_json::to_value(IntrospectionJson::from(v1::IntrospectOauthTokenResponse {
                active: false,
                scope: "chat".to_owned(),
                sub: "m".to_owned(),
                ..Default::default()
            }))
            .unwrap();
        assert_eq!(json, serde_json::json!({"active": false}));
        let json =
            serde_json::to_value(IntrospectionJson::from(v1::IntrospectOauthTokenResponse {
                active: true,
                scope: "chat".to_owned(),
                token_type: "api_key".to_owned(),
                iat: 5,
                sub: "k".to_owned(),
                organization_id: "o".to_owned(),
                key_id: "k".to_owned(),
                ..Default::default()
            }))
            .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"active": true, "scope": "chat", "token_type": "api_key",
                "iat": 5, "sub": "k", "organization_id": "o", "key_id": "k"})
        );
    }
}
