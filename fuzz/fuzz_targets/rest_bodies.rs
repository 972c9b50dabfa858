//! The REST API's request bodies: the gateway's JSON reading (`body.rs`) and each body's
//! translation into its gRPC request, as the handlers run them (`key_gateway::fuzzing`).
//!
//! Input: one byte picks the body (`Body::ALL`, modulo), the rest is the body.

#![no_main]

use key_gateway::fuzzing::{Body, PATH_ID, Request, parse_body};
use key_proto::ErrorCode;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let body = Body::ALL[usize::from(pick) % Body::ALL.len()];
    check(body, bytes);
});

fn check(body: Body, bytes: &[u8]) {
    let request = match parse_body(body, bytes) {
        Ok(request) => request,
        // A refusal is a 400 that names the JSON or the field at fault, never a 500.
        Err(error) => {
            assert_eq!(error.code(), ErrorCode::InvalidRequest);
            assert!(
                error.message().starts_with("invalid JSON body: ")
                    || error.message().starts_with("invalid field "),
                "{:?}",
                error.message()
            );
            return;
        }
    };
    // What is accepted is exactly one JSON object (or nothing, where the body is optional).
    let json = serde_json::from_slice::<Value>(bytes).ok();
    let object = match json {
        Some(object @ Value::Object(_)) => object,
        Some(Value::Null) if body.is_optional() => Value::Object(Map::new()),
        // Nothing but JSON's whitespace (space, tab, LF, CR; not form feed).
        None if body.is_optional() && bytes.iter().all(|byte| b" \t\r\n".contains(byte)) => {
            Value::Object(Map::new())
        }
        other => panic!("{body:?} accepted {other:?} from {bytes:?}"),
    };
    // The strings a client sends reach the service untouched: the gateway judges none.
    let text = |field: &str| object.get(field).and_then(Value::as_str).map(str::to_owned);
    match request {
        Request::CreateKey(request) => {
            assert_eq!(Some(request.name), text("name"));
            assert_eq!(Some(&Value::from(request.scopes)), object.get("scopes"));
            assert_eq!(request.expires_at, text("expiresAt").unwrap_or_default());
            assert_eq!(request.member_id, text("memberId").unwrap_or_default());
        }
        Request::UpdateKey(request) => {
            assert_eq!(request.id, PATH_ID);
            assert_eq!(request.name, text("name"));
            let expires_at = object
                .get("expiresAt")
                .map(|value| value.as_str().unwrap_or_default().to_owned());
            assert_eq!(request.expires_at, expires_at);
            let limits = object.get("rateLimits");
            let clears = limits == Some(&Value::Null) || limits == Some(&Value::Array(Vec::new()));
            assert_eq!(request.clear_rate_limits, clears);
        }
        Request::RevokeKey(request) => {
            assert_eq!(request.id, PATH_ID);
            assert_eq!(request.reason, text("reason").unwrap_or_default());
        }
        Request::RotateKey(request) => {
            let seconds = object.get("gracePeriodSeconds").and_then(Value::as_i64);
            assert_eq!(request.grace_period.map(|d| d.seconds), seconds);
        }
        Request::CreateOrganization(request) => assert_eq!(Some(request.name), text("name")),
        Request::AddMember(request) => assert_eq!(Some(request.user_id), text("userId")),
        Request::UpdateMember(request) => assert_eq!(request.id, PATH_ID),
        Request::TestAlerts(request) => assert_eq!(Some(request.key_id), text("keyId")),
        Request::SetAlerts(request) => {
            assert_eq!(request.clear, object.get("alerts") == Some(&Value::Null));
            assert_eq!(request.clear, request.rules.is_none());
        }
        Request::CreateWebhookEndpoint(request) => {
            assert_eq!(Some(request.url), text("url"));
            assert_eq!(request.description, text("description").unwrap_or_default());
        }
        Request::UpdatePolicy(request) => assert!(request.policy.is_some()),
    }
}
