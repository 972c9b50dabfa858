//! The gateway's reading of untrusted input, reachable without a server or a key service, for
//! the fuzz targets (`fuzz/`) and the property tests. Every function here calls the code the
//! handlers and the middleware run, and adds none of its own. Not part of the gateway's API.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue};
use key_proto::v1;
use prost_types::Timestamp;

use crate::{
    ApiError, TrustedProxies, alerts,
    body::{parse_json, parse_optional_json},
    forwarded, json, keys, organizations, verify, webhooks,
};

/// A time as every JSON response shows it (`expiresAt`, `createdAt`, …).
pub fn show_time(time: &Timestamp) -> String {
    json::time(Some(time)).unwrap_or_default()
}

/// A request body the REST API reads, by the route that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `POST /api/api-keys`
    CreateKey,
    /// `PATCH /api/api-keys/{id}`
    UpdateKey,
    /// `DELETE /api/api-keys/{id}` (optional body)
    RevokeKey,
    /// `POST /api/api-keys/{id}/rotate` (optional body)
    RotateKey,
    /// `POST /api/organizations`
    CreateOrganization,
    /// `PUT /api/organization/policy`
    UpdatePolicy,
    /// `POST /api/members`
    AddMember,
    /// `PATCH /api/members/{id}`
    UpdateMember,
    /// `PUT /api/alerts` and `PUT /api/api-keys/{id}/alerts`
    SetAlerts,
    /// `POST /api/alerts/test`
    TestAlerts,
    /// `POST /api/webhook-endpoints`
    CreateWebhookEndpoint,
}

impl Body {
    /// Every body, in the order above.
    pub const ALL: [Body; 11] = [
        Body::CreateKey,
        Body::UpdateKey,
        Body::RevokeKey,
        Body::RotateKey,
        Body::CreateOrganization,
        Body::UpdatePolicy,
        Body::AddMember,
        Body::UpdateMember,
        Body::SetAlerts,
        Body::TestAlerts,
        Body::CreateWebhookEndpoint,
    ];

    /// Whether the route takes no body as well (empty or `null`).
    pub fn is_optional(self) -> bool {
        matches!(self, Body::RevokeKey | Body::RotateKey)
    }
}

/// The id the path of a route with `{id}` carries, in [`parse_body`].
pub const PATH_ID: &str = "path-id";

/// The gRPC request a body becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    CreateKey(v1::CreateKeyRequest),
    UpdateKey(v1::UpdateKeyRequest),
    RevokeKey(v1::RevokeKeyRequest),
    RotateKey(v1::RotateKeyRequest),
    CreateOrganization(v1::CreateOrganizationRequest),
    UpdatePolicy(v1::UpdateOrganizationPolicyRequest),
    AddMember(v1::AddMemberRequest),
    UpdateMember(v1::UpdateMemberRequest),
    SetAlerts(v1::SetAlertRulesRequest),
    TestAlerts(v1::TestAlertRulesRequest),
    CreateWebhookEndpoint(v1::CreateWebhookEndpointRequest),
}

/// Reads `bytes` as the body of `body`'s route and translates it into the gRPC request, as the
/// handler does (the `{id}` of the path is [`PATH_ID`]; the alert rules are the
/// organization's).
pub fn parse_body(body: Body, bytes: &[u8]) -> Result<Request, ApiError> {
    let id = || PATH_ID.to_owned();
    Ok(match body {
        Body::CreateKey => {
            Request::CreateKey(parse_json::<keys::CreateKeyBody>(bytes)?.into_proto()?)
        }
        Body::UpdateKey => {
            Request::UpdateKey(parse_json::<keys::UpdateKeyBody>(bytes)?.into_proto(id()))
        }
        Body::RevokeKey => {
            Request::RevokeKey(parse_optional_json::<keys::RevokeBody>(bytes)?.into_proto(id()))
        }
        Body::RotateKey => {
            Request::RotateKey(parse_optional_json::<keys::RotateBody>(bytes)?.into_proto(id()))
        }
        Body::CreateOrganization => Request::CreateOrganization(
            parse_json::<organizations::CreateOrganizationBody>(bytes)?.into_proto(),
        ),
        Body::UpdatePolicy => {
            Request::UpdatePolicy(parse_json::<organizations::PolicyBody>(bytes)?.into_proto())
        }
        Body::AddMember => {
            Request::AddMember(parse_json::<organizations::AddMemberBody>(bytes)?.into_proto())
        }
        Body::UpdateMember => Request::UpdateMember(
            parse_json::<organizations::UpdateMemberBody>(bytes)?.into_proto(id()),
        ),
        Body::SetAlerts => Request::SetAlerts(alerts::set_request(
            String::new(),
            parse_json::<alerts::AlertsBody>(bytes)?.alerts,
        )),
        Body::TestAlerts => {
            Request::TestAlerts(parse_json::<alerts::TestBody>(bytes)?.into_proto())
        }
        Body::CreateWebhookEndpoint => Request::CreateWebhookEndpoint(
            parse_json::<webhooks::CreateWebhookEndpointBody>(bytes)?.into_proto(),
        ),
    })
}

/// What forward-auth (`/api/auth/verify`) makes of a request.
#[derive(Debug)]
pub struct ForwardAuth {
    /// The client's address, as the middleware determined it.
    pub client: IpAddr,
    /// Whether the TCP peer is a trusted proxy.
    pub via_trusted_proxy: bool,
    /// The `X-Forwarded-For` header the request carries on to the key service.
    pub x_forwarded_for: Option<HeaderValue>,
    /// The VerifyKey request, or the answer given without one.
    pub request: Result<v1::VerifyKeyRequest, ApiError>,
}

/// Runs the client identification of the middleware (`forwarded.rs`) and the reading of the
/// headers and the query by forward-auth (`verify.rs`) on a request from `peer`.
pub fn forward_auth(
    trusted: &TrustedProxies,
    peer: IpAddr,
    mut headers: HeaderMap,
    query: Option<&str>,
) -> ForwardAuth {
    let client = forwarded::identify(trusted, peer, &mut headers);
    ForwardAuth {
        client: client.address,
        via_trusted_proxy: client.via_trusted_proxy,
        x_forwarded_for: headers.get("x-forwarded-for").cloned(),
        request: verify::verify_request(Some(client), &headers, query),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use key_proto::{ErrorCode, MISSING_API_KEY_MESSAGE, bearer_token};
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    /// Every field name the bodies know, and a few they do not.
    const FIELDS: &[&str] = &[
        "name",
        "scopes",
        "expiresAt",
        "environment",
        "keyType",
        "memberId",
        "rateLimits",
        "requests",
        "per",
        "reason",
        "gracePeriodSeconds",
        "maxKeyAgeDays",
        "maxKeyLifetimeDays",
        "roleScopes",
        "role",
        "defaultRateLimits",
        "userId",
        "alerts",
        "unusualActivity",
        "highUsage",
        "failures",
        "threshold",
        "period",
        "keyId",
        "url",
        "description",
        "expires_at",
        "Name",
        "",
    ];

    /// Every enum value the bodies know, and a few they do not.
    const WORDS: &[&str] = &[
        "live",
        "test",
        "organization",
        "personal",
        "owner",
        "admin",
        "member",
        "viewer",
        "second",
        "minute",
        "hour",
        "hourly",
        "daily",
        "chat",
        "agents:read",
        "2027-12-31",
        "https://example.com/hook",
        "LIVE",
        "",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-3_i64..5_000_000).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            proptest::sample::select(WORDS).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                json_object(inner),
            ]
        })
    }

    fn json_object(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
        proptest::collection::vec((proptest::sample::select(FIELDS), values), 0..6).prop_map(
            |fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect::<Map<_, _>>(),
                )
            },
        )
    }

    /// The fields of each body, in the order of `Body::ALL`.
    const BODY_FIELDS: [&[&str]; 11] = [
        &[
            "name",
            "scopes",
            "expiresAt",
            "environment",
            "keyType",
            "memberId",
            "rateLimits",
        ],
        &["name", "scopes", "expiresAt", "rateLimits"],
        &["reason"],
        &["gracePeriodSeconds"],
        &["name"],
        &[
            "maxKeyAgeDays",
            "maxKeyLifetimeDays",
            "roleScopes",
            "defaultRateLimits",
        ],
        &["userId", "role"],
        &["role"],
        &["alerts"],
        &["keyId", "alerts"],
        &["url", "description"],
    ];

    fn string() -> impl Strategy<Value = Value> + Clone {
        prop_oneof![
            ".{0,16}",
            proptest::sample::select(WORDS).prop_map(str::to_owned)
        ]
        .prop_map(Value::from)
    }

    fn threshold() -> impl Strategy<Value = Value> {
        (
            any::<i64>(),
            proptest::sample::select(&["hourly", "daily", "weekly"][..]),
        )
            .prop_map(
                |(threshold, period)| serde_json::json!({"threshold": threshold, "period": period}),
            )
    }

    fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
        proptest::sample::select(words)
            .prop_map(Value::from)
            .boxed()
    }

    /// A value of the type the field takes, mostly; sometimes null or anything.
    fn typed_value(field: &'static str) -> BoxedStrategy<Value> {
        let rate_limits = || {
            proptest::collection::vec(
                (
                    0_u32..2_000_000,
                    proptest::sample::select(&["second", "minute", "hour", "day"][..]),
                )
                    .prop_map(
                        |(requests, per)| serde_json::json!({"requests": requests, "per": per}),
                    ),
                0..3,
            )
            .prop_map(Value::Array)
        };
        let typed = match field {
            "scopes" => proptest::collection::vec(string(), 0..4)
                .prop_map(Value::Array)
                .boxed(),
            "rateLimits" | "defaultRateLimits" => rate_limits().boxed(),
            "gracePeriodSeconds" | "maxKeyAgeDays" | "maxKeyLifetimeDays" => {
                prop_oneof![any::<i64>(), -1_i64..4000]
                    .prop_map(Value::from)
                    .boxed()
            }
            "roleScopes" => proptest::collection::vec(
                (
                    typed_value("role"),
                    proptest::collection::vec(string(), 0..3),
                )
                    .prop_map(|(role, scopes)| serde_json::json!({"role": role, "scopes": scopes})),
                0..3,
            )
            .prop_map(Value::Array)
            .boxed(),
            "alerts" => (
                proptest::option::of(any::<bool>()),
                proptest::option::of(threshold()),
                proptest::option::of(threshold()),
            )
                .prop_map(|(unusual, high_usage, failures)| {
                    let mut rules = Map::new();
                    for (name, value) in [
                        ("unusualActivity", unusual.map(Value::Bool)),
                        ("highUsage", high_usage),
                        ("failures", failures),
                    ] {
                        if let Some(value) = value {
                            rules.insert(name.to_owned(), value);
                        }
                    }
                    Value::Object(rules)
                })
                .boxed(),
            "environment" => word(&["live", "test", "LIVE"]),
            "keyType" => word(&["organization", "personal", "team"]),
            "role" => word(&["owner", "admin", "member", "viewer", "root"]),
            _ => string().boxed(),
        };
        prop_oneof![8 => typed, 1 => Just(Value::Null), 1 => json_value()].boxed()
    }

    /// An object with some of the fields of one body, each of about the right type.
    fn shaped_body() -> impl Strategy<Value = Value> {
        proptest::sample::select(&BODY_FIELDS[..])
            .prop_flat_map(|fields| {
                proptest::collection::vec(proptest::bool::weighted(0.8), fields.len())
                    .prop_flat_map(move |keep| {
                        fields
                            .iter()
                            .zip(keep)
                            .filter(|(_, keep)| *keep)
                            .map(|(field, _)| {
                                typed_value(field).prop_map(move |value| (*field, value))
                            })
                            .collect::<Vec<_>>()
                    })
            })
            .prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect(),
                )
            })
    }

    /// A body: an object of about the right shape for one route, or of any known fields, or
    /// any JSON, or bytes.
    fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => shaped_body().prop_map(|value| value.to_string().into_bytes()),
            2 => json_object(json_value()).prop_map(|value| value.to_string().into_bytes()),
            1 => json_value().prop_map(|value| format!(" {value}\n").into_bytes()),
            1 => proptest::collection::vec(any::<u8>(), 0..40),
            // Nothing, `null` or `{}` amid whitespace, JSON's or not (form feed, vertical tab).
            1 => (
                proptest::collection::vec(proptest::sample::select(&b" \t\r\n\x0c\x0b"[..]), 0..3),
                proptest::sample::select(&["", "null", "{}"][..]),
                proptest::collection::vec(proptest::sample::select(&b" \t\r\n\x0c\x0b"[..]), 0..3),
            )
                .prop_map(|(before, json, after)| [before, json.as_bytes().to_vec(), after].concat()),
            1 => json_object(json_value()).prop_map(|value| format!("{value} {{}}").into_bytes()),
        ]
    }

    fn text(object: &Value, field: &str) -> Option<String> {
        object.get(field).and_then(Value::as_str).map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every body: a refusal is a 400 `invalid_request` naming the JSON or the field; what
        /// is accepted is one JSON object (or nothing, where the body is optional); the strings
        /// a client sends reach the service untouched (the gateway judges none of them).
        #[test]
        fn bodies_are_one_json_object_passed_on_untouched(bytes in body_bytes()) {
            check_body(&bytes)?;
        }
    }

    fn check_body(bytes: &[u8]) -> Result<(), TestCaseError> {
        let json = serde_json::from_slice::<Value>(bytes).ok();
        for body in Body::ALL {
            let request = match parse_body(body, bytes) {
                Ok(request) => request,
                Err(error) => {
                    prop_assert_eq!(error.code(), ErrorCode::InvalidRequest);
                    prop_assert!(
                        error.message().starts_with("invalid JSON body: ")
                            || error.message().starts_with("invalid field "),
                        "{:?}",
                        error.message()
                    );
                    continue;
                }
            };
            let empty = bytes.iter().all(|byte| b" \t\r\n".contains(byte));
            let object = match &json {
                Some(object @ Value::Object(_)) => object.clone(),
                Some(Value::Null) if body.is_optional() => Value::Object(Map::new()),
                None if empty && body.is_optional() => Value::Object(Map::new()),
                other => {
                    return Err(TestCaseError::fail(format!("{body:?} accepted {other:?}")));
                }
            };
            match request {
                Request::CreateKey(request) => {
                    prop_assert_eq!(Some(request.name), text(&object, "name"));
                    prop_assert_eq!(Some(&Value::from(request.scopes)), object.get("scopes"));
                    prop_assert_eq!(
                        request.expires_at,
                        text(&object, "expiresAt").unwrap_or_default()
                    );
                    prop_assert_eq!(
                        request.member_id,
                        text(&object, "memberId").unwrap_or_default()
                    );
                }
                Request::UpdateKey(request) => {
                    prop_assert_eq!(request.id, PATH_ID);
                    prop_assert_eq!(request.name, text(&object, "name"));
                    let expires_at = object
                        .get("expiresAt")
                        .map(|value| value.as_str().unwrap_or_default().to_owned());
                    prop_assert_eq!(request.expires_at, expires_at);
                }
                Request::RevokeKey(request) => {
                    prop_assert_eq!(request.reason, text(&object, "reason").unwrap_or_default());
                }
                Request::CreateOrganization(request) => {
                    prop_assert_eq!(Some(request.name), text(&object, "name"));
                }
                Request::AddMember(request) => {
                    prop_assert_eq!(Some(request.user_id), text(&object, "userId"));
                }
                Request::TestAlerts(request) => {
                    prop_assert_eq!(Some(request.key_id), text(&object, "keyId"));
                }
                Request::SetAlerts(request) => {
                    prop_assert_eq!(request.clear, object.get("alerts") == Some(&Value::Null));
                }
                Request::CreateWebhookEndpoint(request) => {
                    prop_assert_eq!(Some(request.url), text(&object, "url"));
                    prop_assert_eq!(
                        request.description,
                        text(&object, "description").unwrap_or_default()
                    );
                }
                Request::RotateKey(_) | Request::UpdatePolicy(_) | Request::UpdateMember(_) => {}
            }
        }
        Ok(())
    }

    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            proptest::sample::select(
                &[
                    [10, 0, 0, 1],
                    [10, 9, 9, 9],
                    [192, 0, 2, 7],
                    [203, 0, 113, 9]
                ][..]
            )
            .prop_map(|octets| IpAddr::from(Ipv4Addr::from(octets))),
            any::<[u8; 4]>().prop_map(|octets| IpAddr::from(Ipv4Addr::from(octets))),
            any::<[u8; 16]>().prop_map(|octets| IpAddr::from(Ipv6Addr::from(octets))),
            Just(IpAddr::from(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())),
            Just(IpAddr::from(Ipv6Addr::LOCALHOST)),
        ]
    }

    /// An `X-Forwarded-For` entry as proxies write them, or not.
    fn forwarded_entry() -> impl Strategy<Value = String> {
        prop_oneof![
            address().prop_map(|address| address.to_string()),
            (address(), any::<u16>())
                .prop_map(|(address, port)| std::net::SocketAddr::new(address, port).to_string()),
            Just("unknown".to_owned()),
            Just(String::new()),
            "[ -~]{0,16}",
        ]
    }

    /// Values that mean something to forward-auth in one header or another.
    const HEADER_VALUES: &[&str] = &[
        "DE",
        " fr ",
        "XX",
        "T1",
        "GET /v1/agents",
        "chat, agents:read",
        "Bearer sk_live_x",
        "bearer  a b",
    ];

    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[ -~]{0,16}".prop_map(String::into_bytes),
            proptest::sample::select(HEADER_VALUES)
                .prop_map(str::to_owned)
                .prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..16),
        ]
    }

    #[derive(Debug, Clone)]
    struct ForwardAuthRequest {
        trusted: &'static str,
        peer: IpAddr,
        forwarded: Vec<Vec<String>>,
        headers: Vec<(&'static str, Vec<u8>)>,
        query: Option<String>,
    }

    fn forward_auth_request() -> impl Strategy<Value = ForwardAuthRequest> {
        (
            proptest::sample::select(
                &[
                    "",
                    "10.0.0.0/8",
                    "10.0.0.0/8, 192.0.2.7, ::1",
                    "0.0.0.0/0, ::/0",
                ][..],
            ),
            address(),
            proptest::collection::vec(proptest::collection::vec(forwarded_entry(), 0..4), 0..3),
            proptest::collection::vec(
                (
                    proptest::sample::select(
                        &[
                            "authorization",
                            "x-keyrack-country",
                            "cf-ipcountry",
                            "x-keyrack-tag",
                            "x-keyrack-required-scopes",
                        ][..],
                    ),
                    header_bytes(),
                ),
                0..6,
            ),
            proptest::option::of(prop_oneof![
                "[ -~]{0,24}",
                Just("scope=chat&scope=agents%3Aread,%20x&scope=".to_owned())
            ]),
        )
            .prop_map(
                |(trusted, peer, forwarded, headers, query)| ForwardAuthRequest {
                    trusted,
                    peer,
                    forwarded,
                    headers,
                    query,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The client is the peer unless the peer is a trusted proxy, and otherwise one of the
        /// forwarded addresses; `X-Forwarded-For` keeps what it had and ends with the peer; the
        /// key goes on untouched; country headers count only through a trusted proxy; no empty
        /// scope, and no scope with a separator in it, is asked for.
        #[test]
        fn forward_auth_believes_only_trusted_proxies(input in forward_auth_request()) {
            check_forward_auth(input)?;
        }
    }

    fn check_forward_auth(input: ForwardAuthRequest) -> Result<(), TestCaseError> {
        let trusted: TrustedProxies = input.trusted.parse().unwrap();
        let mut headers = HeaderMap::new();
        for entries in &input.forwarded {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(&entries.join(",")).unwrap(),
            );
        }
        for (name, value) in &input.headers {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(*name, value);
            }
        }
        let result = forward_auth(
            &trusted,
            input.peer,
            headers.clone(),
            input.query.as_deref(),
        );

        let peer = input.peer.to_canonical();
        prop_assert_eq!(result.via_trusted_proxy, trusted.contains(peer));
        // The headers as sent, every comma a separator.
        let sent: Vec<String> = input
            .forwarded
            .iter()
            .map(|entries| entries.join(","))
            .collect();
        let entries: Vec<&str> = sent
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        if result.client != peer {
            prop_assert!(result.via_trusted_proxy);
            let claimed = entries.iter().any(|entry| {
                entry.parse::<IpAddr>().map(|a| a.to_canonical()).ok() == Some(result.client)
                    || entry
                        .parse::<std::net::SocketAddr>()
                        .map(|a| a.ip().to_canonical())
                        .ok()
                        == Some(result.client)
            });
            prop_assert!(claimed, "{:?} from {:?}", result.client, entries);
        }
        let forwarded = result.x_forwarded_for.unwrap();
        let mut expected = entries.clone();
        let peer_text = peer.to_string();
        expected.push(&peer_text);
        prop_assert_eq!(forwarded.to_str().unwrap(), expected.join(", "));

        match (result.request, bearer_token(&headers)) {
            (Ok(request), Ok(key)) => {
                prop_assert_eq!(request.key, key);
                prop_assert_eq!(request.client_ip, result.client.to_string());
                if !result.via_trusted_proxy {
                    prop_assert_eq!(&request.country, "");
                }
                prop_assert_eq!(request.country.trim(), &request.country);
                prop_assert_eq!(request.tag.trim(), &request.tag);
                for scope in &request.required_scopes {
                    prop_assert!(
                        !scope.is_empty() && !scope.contains([',', ' ']),
                        "{:?}",
                        scope
                    );
                }
            }
            (Err(error), Err(_)) => {
                prop_assert_eq!(error.code(), ErrorCode::InvalidApiKey);
                prop_assert_eq!(error.message(), MISSING_API_KEY_MESSAGE);
            }
            (request, key) => prop_assert!(false, "{:?} with key {:?}", request, key),
        }
        Ok(())
    }
}
