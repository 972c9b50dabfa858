//! `envoy.service.auth.v3.Authorization/Check`, for Envoy's ext_authz filter (and Istio's
//! external authorizers): decodes the `CheckRequest`, makes one call into the application
//! ([`ExtAuthz::check`]: route, key, verification) and encodes the decision. Allowed: OK with
//! the principal as headers for upstream, overwriting any copy the client sent. Refused: Denied
//! with the REST API's JSON error and its HTTP status (401, 403, 429 with `Retry-After`). A
//! store that cannot be reached is a gRPC error (UNAVAILABLE), so Envoy's own
//! `failure_mode_allow` and `status_on_error` decide.

use std::net::IpAddr;

use chrono::TimeDelta;
use http::{HeaderMap, HeaderValue as HttpHeaderValue, header::AUTHORIZATION};
use key_core::Verdict;
use key_proto::{
    ErrorCode, METADATA_HEADER, bearer_token,
    envoy::{
        Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
        HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse, RpcStatus,
        address, attribute_context::HttpRequest,
    },
    metadata_header_value,
};
use key_service::verify::{AuthzRequest, Decision, ExtAuthz};
use key_telemetry::CallSlot;
use tonic::{Request, Response, Status};

use crate::status_from_error;

/// The principal's headers, as forward-auth names them.
const KEY_ID_HEADER: &str = "x-keyrack-key-id";
const ORGANIZATION_ID_HEADER: &str = "x-keyrack-org-id";
const SCOPES_HEADER: &str = "x-keyrack-scopes";
/// The credits a key with credits has left after this verification (forward-auth's name).
const CREDITS_HEADER: &str = "x-keyrack-credits-remaining";
/// The user context, as forward-auth names it: a personal key's member; an OAuth access
/// token's client and person.
const MEMBER_ID_HEADER: &str = "x-keyrack-member-id";
const CLIENT_ID_HEADER: &str = "x-keyrack-client-id";
const USER_ID_HEADER: &str = "x-keyrack-user-id";

/// The Authorization service: the application's ext_authz rules behind Envoy's API.
#[derive(Debug, Clone)]
pub(crate) struct AuthorizationService {
    ext_authz: ExtAuthz,
}

impl AuthorizationService {
    pub(crate) fn new(ext_authz: ExtAuthz) -> AuthorizationService {
        AuthorizationService { ext_authz }
    }
}

#[tonic::async_trait]
impl Authorization for AuthorizationService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        // Who asked: Envoy itself, counted by the guard only when it names no source.
        let peer = request.remote_addr().map(|address| address.ip());
        let slot = request.extensions().get::<CallSlot>().cloned();
        let check = request.into_inner();
        let attributes = check.attributes.as_ref();
        let http = attributes
            .and_then(|attributes| attributes.request.as_ref())
            .and_then(|request| request.http.as_ref());
        let source = attributes
            .and_then(|attributes| attributes.source.as_ref())
            .and_then(|source| source.address.as_ref())
            .and_then(|address| match &address.address {
                Some(address::Address::SocketAddress(socket)) => {
                    socket.address.parse::<IpAddr>().ok()
                }
                _ => None,
            });
        // The one bearer parser, on the one header it reads.
        let mut authorization = HeaderMap::new();
        if let Some(value) = http
            .and_then(|http| header_values(http, AUTHORIZATION.as_str()).next())
            .and_then(|value| HttpHeaderValue::from_str(value).ok())
        {
            authorization.insert(AUTHORIZATION, value);
        }
        let forwarded_for = http
            .map(|http| {
                header_values(http, "x-forwarded-for")
                    .flat_map(|value| value.split(','))
                    .collect()
            })
            .unwrap_or_default();
        let input = AuthzRequest {
            key: bearer_token(&authorization).ok(),
            host: http.map_or("", |http| http.host.as_str()),
            method: http.map_or("", |http| http.method.as_str()),
            path: http.map_or("", |http| http.path.as_str()),
            source,
            forwarded_for,
            peer,
        };
        let decision = self
            .ext_authz
            .check(&input)
            .await
            .map_err(status_from_error)?;
        if let Some(slot) = slot {
            report(&slot, &decision);
        }
        Ok(Response::new(check_response(&decision)))
    }
}

/// A header's values, from the map Envoy fills by default or the raw list it sends with
/// `encode_raw_headers`. Envoy writes names in lower case.
fn header_values<'a>(http: &'a HttpRequest, name: &'a str) -> impl Iterator<Item = &'a str> {
    let joined = http.headers.get(name).map(String::as_str);
    let raw = http
        .header_map
        .iter()
        .flat_map(|map| &map.headers)
        .filter(move |header| header.key.eq_ignore_ascii_case(name))
        .filter_map(|header| {
            if header.raw_value.is_empty() {
                Some(header.value.as_str())
            } else {
                std::str::from_utf8(&header.raw_value).ok()
            }
        });
    joined.into_iter().chain(raw)
}

/// The verdict and the key, for the call's trace and access log.
fn report(slot: &CallSlot, decision: &Decision) {
    let verification = match decision {
        Decision::Allow(verification) => Some(verification),
        Decision::Deny { verification, .. } => verification.as_ref(),
    };
    if let Some(verification) = verification {
        slot.set_verdict(verification.verdict.name());
        if let Some(record) = &verification.record {
            slot.set_key(record.id, record.organization_id);
        }
    }
}

fn check_response(decision: &Decision) -> CheckResponse {
    match decision {
        Decision::Allow(verification) => {
            let mut headers = Vec::with_capacity(4);
            let mut headers_to_remove = Vec::new();
            if let Some(record) = &verification.record {
                headers.push(overwrite(KEY_ID_HEADER, record.id.to_string()));
                headers.push(overwrite(
                    ORGANIZATION_ID_HEADER,
                    record.organization_id.to_string(),
                ));
            }
            // The key's metadata as forward-auth sends it; a key without any removes a
            // client-sent copy.
            let metadata = verification
                .record
                .as_ref()
                .and_then(|record| record.controls.as_ref()?.metadata.as_ref());
            match metadata {
                Some(metadata) => headers.push(overwrite(
                    METADATA_HEADER,
                    metadata_header_value(metadata.as_json()),
                )),
                None => headers_to_remove.push(METADATA_HEADER.to_owned()),
            }
            // The user context; what a credential lacks is removed, so a client-sent copy (an
            // `X-Keyrack-User-Id` beside an organization key, say) never reaches the service.
            let record = verification.record.as_ref();
            let oauth = record.and_then(|record| record.oauth());
            for (name, value) in [
                (
                    MEMBER_ID_HEADER,
                    record
                        .and_then(|record| record.member_id)
                        .map(|id| id.to_string()),
                ),
                (
                    CLIENT_ID_HEADER,
                    oauth.map(|oauth| oauth.client_id.to_string()),
                ),
                (USER_ID_HEADER, oauth.map(|oauth| oauth.user_id.clone())),
            ] {
                match value {
                    Some(value) => headers.push(overwrite(name, value)),
                    None => headers_to_remove.push(name.to_owned()),
                }
            }
            // A key's credits left, as forward-auth sends them; a key without credits removes a
            // client-sent copy.
            match verification.credits_remaining {
                Some(left) => headers.push(overwrite(CREDITS_HEADER, left.to_string())),
                None => headers_to_remove.push(CREDITS_HEADER.to_owned()),
            }
            // A key without scopes removes the header rather than setting it empty, so no
            // client-sent copy survives whatever Envoy does with empty values.
            let scopes = verification.scopes.names().join(",");
            if scopes.is_empty() {
                headers_to_remove.push(SCOPES_HEADER.to_owned());
            } else {
                headers.push(overwrite(SCOPES_HEADER, scopes));
            }
            CheckResponse {
                status: Some(RpcStatus {
                    code: tonic::Code::Ok as i32,
                    ..RpcStatus::default()
                }),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers,
                    headers_to_remove,
                    ..OkHttpResponse::default()
                })),
                ..CheckResponse::default()
            }
        }
        Decision::Deny {
            error,
            verification,
        } => {
            let code = ErrorCode::from_reason(error.code().reason()).unwrap_or(ErrorCode::Internal);
            let status = code.http_status();
            let message = error.to_string();
            let body = serde_json::json!({
                "error": {"code": code.reason(), "message": message},
                "status": status,
            })
            .to_string();
            let mut headers = vec![
                overwrite("content-type", "application/json".to_owned()),
                overwrite("cache-control", "no-store".to_owned()),
            ];
            if let Some(verdict) = verification.as_ref().map(|v| &v.verdict) {
                headers.extend(rate_limit_headers(verdict));
            }
            CheckResponse {
                status: Some(RpcStatus {
                    code: code.grpc_code() as i32,
                    message,
                    ..RpcStatus::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(status),
                    }),
                    headers,
                    body,
                })),
                ..CheckResponse::default()
            }
        }
    }
}

/// `Retry-After` (whole seconds, rounded up) and forward-auth's `X-RateLimit-*` headers of a
/// refusal for a rate limit or a cooling-off client.
fn rate_limit_headers(verdict: &Verdict) -> Vec<HeaderValueOption> {
    let seconds =
        |delta: &TimeDelta| (delta.num_seconds() + i64::from(delta.subsec_nanos() > 0)).max(0);
    match verdict {
        Verdict::RateLimited {
            limit,
            retry_after,
            remaining,
            reset,
        } => vec![
            overwrite("retry-after", seconds(retry_after).to_string()),
            overwrite("x-ratelimit-limit", limit.requests.to_string()),
            overwrite("x-ratelimit-remaining", remaining.to_string()),
            overwrite("x-ratelimit-reset", reset.timestamp().to_string()),
        ],
        Verdict::TooManyFailures { retry_after, reset } => vec![
            overwrite("retry-after", seconds(retry_after).to_string()),
            overwrite("x-ratelimit-remaining", "0".to_owned()),
            overwrite("x-ratelimit-reset", reset.timestamp().to_string()),
        ],
        _ => Vec::new(),
    }
}

/// A header that replaces every value of its name (Envoy's `OVERWRITE_IF_EXISTS_OR_ADD`; an
/// Envoy older than `append_action` reads the unset `append` the same way).
fn overwrite(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}
