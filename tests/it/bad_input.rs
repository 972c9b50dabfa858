//! Bad input, table-driven, over REST and gRPC: each case gets its documented status and error
//! code, the server keeps serving, and nothing is half-written (the store is checked after the
//! whole table).

use key_proto::v1;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{TestApp, authed, backends, spawn_app};

/// A bearer credential to send: the admin key, none, or literal header values.
#[derive(Debug, Clone, Copy)]
enum Auth {
    Admin,
    None,
    Raw(&'static str),
    Twice,
}

/// One REST case: what is sent and what must come back.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    auth: Auth,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    code: Option<&'static str>,
}

fn case(
    name: &'static str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        auth: Auth::Admin,
        content_type: Some("application/json"),
        body: body.map(|body| body.to_string().into_bytes()),
        status,
        code,
    }
}

fn create(name: &'static str, body: Value, status: u16, code: Option<&'static str>) -> Case {
    case(
        name,
        Method::POST,
        "/api/api-keys",
        Some(body),
        status,
        code,
    )
}

fn raw(
    name: &'static str,
    method: Method,
    path: &str,
    body: &[u8],
    status: u16,
    code: Option<&'static str>,
) -> Case {
    Case {
        body: Some(body.to_vec()),
        ..case(name, method, path, None, status, code)
    }
}

fn auth(name: &'static str, auth: Auth, status: u16, code: Option<&'static str>) -> Case {
    Case {
        auth,
        ..case(name, Method::GET, "/api/api-keys", None, status, code)
    }
}

const BAD: Option<&str> = Some("invalid_request");
const INVALID_KEY: Option<&str> = Some("invalid_api_key");

fn rest_cases(known_id: &str, foreign_id: &str) -> Vec<Case> {
    let key = |name: &str| json!({"name": name, "scopes": ["chat"]});
    let mut cases = vec![
        // Names.
        create("empty name", key(""), 400, BAD),
        create("blank name", key("   "), 400, BAD),
        create("101-character name", key(&"n".repeat(101)), 400, BAD),
        create("100-character name", key(&"n".repeat(100)), 201, None),
        create("tab in a name", key("tab\there"), 400, BAD),
        create("NUL in a name", key("nul\0"), 400, BAD),
        create("escape in a name", key("esc\u{1b}[31m"), 400, BAD),
        create("right-to-left override", key("\u{202E}yek nimda"), 400, BAD),
        create("bidi isolate", key("a\u{2066}b\u{2069}"), 400, BAD),
        create(
            "SQL injection",
            key("'; DROP TABLE api_keys; --"),
            201,
            None,
        ),
        create("JSON in a name", key(r#"{"scopes":["admin"]}"#), 201, None),
        create("emoji name", key("clé 🔑"), 201, None),
        // Scopes.
        create(
            "unknown scope",
            json!({"name": "k", "scopes": ["root"]}),
            400,
            BAD,
        ),
        create(
            "upper-case scope",
            json!({"name": "k", "scopes": ["CHAT"]}),
            400,
            BAD,
        ),
        create("no scopes", json!({"name": "k", "scopes": []}), 400, BAD),
        create(
            "scopes not a list",
            json!({"name": "k", "scopes": "chat"}),
            400,
            BAD,
        ),
        create(
            "scope with a space",
            json!({"name": "k", "scopes": ["chat "]}),
            400,
            BAD,
        ),
        // Expiry.
        create(
            "2025-02-30",
            json!({"name": "k", "scopes": ["chat"], "expiresAt": "2025-02-30"}),
            400,
            BAD,
        ),
        create(
            "a past date",
            json!({"name": "k", "scopes": ["chat"], "expiresAt": "2020-01-01"}),
            400,
            BAD,
        ),
        create(
            "year 10000",
            json!({"name": "k", "scopes": ["chat"], "expiresAt": "9999-12-31"}),
            400,
            BAD,
        ),
        create(
            "not a date",
            json!({"name": "k", "scopes": ["chat"], "expiresAt": "tomorrow"}),
            400,
            BAD,
        ),
        create(
            "expiry as a number",
            json!({"name": "k", "scopes": ["chat"], "expiresAt": 1700000000}),
            400,
            BAD,
        ),
        // Enumerations and types.
        create(
            "unknown environment",
            json!({"name": "k", "scopes": ["chat"], "environment": "staging"}),
            400,
            BAD,
        ),
        create(
            "unknown key type",
            json!({"name": "k", "scopes": ["chat"], "keyType": "root"}),
            400,
            BAD,
        ),
        create(
            "unknown field",
            json!({"name": "k", "scopes": ["chat"], "admin": true}),
            400,
            BAD,
        ),
        create(
            "rate limit of zero",
            json!({"name": "k", "scopes": ["chat"], "rateLimits": [{"requests": 0, "per": "minute"}]}),
            400,
            BAD,
        ),
        create(
            "rate limit per day",
            json!({"name": "k", "scopes": ["chat"], "rateLimits": [{"requests": 5, "per": "day"}]}),
            400,
            BAD,
        ),
        create(
            "negative rate limit",
            json!({"name": "k", "scopes": ["chat"], "rateLimits": [{"requests": -1, "per": "minute"}]}),
            400,
            BAD,
        ),
        create(
            "a member id that is no id",
            json!({"name": "k", "scopes": ["chat"], "keyType": "personal", "memberId": "bob"}),
            400,
            BAD,
        ),
        // Bodies.
        raw(
            "duplicate JSON field",
            Method::POST,
            "/api/api-keys",
            br#"{"name":"a","name":"b","scopes":["chat"]}"#,
            400,
            BAD,
        ),
        raw(
            "truncated JSON",
            Method::POST,
            "/api/api-keys",
            br#"{"name":"a","scopes":["ch"#,
            400,
            BAD,
        ),
        raw(
            "a JSON array",
            Method::POST,
            "/api/api-keys",
            br#"["a",["chat"]]"#,
            400,
            BAD,
        ),
        raw(
            "trailing garbage",
            Method::POST,
            "/api/api-keys",
            br#"{"name":"a","scopes":["chat"]} x"#,
            400,
            BAD,
        ),
        raw(
            "not UTF-8",
            Method::POST,
            "/api/api-keys",
            b"{\"name\":\"\xff\xfe\",\"scopes\":[\"chat\"]}",
            400,
            BAD,
        ),
        raw(
            "an empty body",
            Method::POST,
            "/api/api-keys",
            b"",
            400,
            BAD,
        ),
        raw(
            "form-encoded",
            Method::POST,
            "/api/api-keys",
            b"name=a&scopes=chat",
            400,
            BAD,
        ),
        raw(
            "1 MiB body",
            Method::POST,
            "/api/api-keys",
            &vec![b' '; 1 << 20],
            413,
            Some("payload_too_large"),
        ),
        Case {
            content_type: Some("text/plain"),
            ..create(
                "JSON sent as text/plain (the docs' curl sends no JSON type)",
                key("plain"),
                201,
                None,
            )
        },
        // Paging.
        case(
            "negative page size",
            Method::GET,
            "/api/api-keys?pageSize=-1",
            None,
            400,
            BAD,
        ),
        case(
            "page size too large for i32",
            Method::GET,
            "/api/api-keys?pageSize=99999999999",
            None,
            400,
            BAD,
        ),
        case(
            "huge page size is capped",
            Method::GET,
            "/api/api-keys?pageSize=2147483647",
            None,
            200,
            None,
        ),
        case(
            "forged page token",
            Method::GET,
            "/api/api-keys?pageToken=abc",
            None,
            400,
            BAD,
        ),
        case(
            "a foreign key id as page token",
            Method::GET,
            &format!("/api/api-keys?pageToken={foreign_id}"),
            None,
            200,
            None,
        ),
        case(
            "a stale page token",
            Method::GET,
            &format!("/api/api-keys?pageToken={known_id}"),
            None,
            200,
            None,
        ),
        case(
            "unknown state filter",
            Method::GET,
            "/api/api-keys?state=zombie",
            None,
            400,
            BAD,
        ),
        // Ids in paths.
        case(
            "an id that is no UUID",
            Method::GET,
            "/api/api-keys/not-an-id",
            None,
            400,
            BAD,
        ),
        case(
            "a percent-encoded non-UTF-8 id",
            Method::GET,
            "/api/api-keys/%FF",
            None,
            400,
            BAD,
        ),
        case(
            "a 4 KiB id",
            Method::GET,
            &format!("/api/api-keys/{}", "a".repeat(4096)),
            None,
            400,
            BAD,
        ),
        case(
            "another organization's key",
            Method::GET,
            &format!("/api/api-keys/{foreign_id}"),
            None,
            404,
            Some("not_found"),
        ),
        case(
            "SQL in an id",
            Method::DELETE,
            "/api/api-keys/1'%20OR%20'1'='1",
            None,
            400,
            BAD,
        ),
        // Usage queries.
        case(
            "start after end",
            Method::GET,
            "/api/usage?startTime=2026-01-15T00:00:00Z&endTime=2026-01-14T00:00:00Z",
            None,
            400,
            BAD,
        ),
        case(
            "a range too long for hours",
            Method::GET,
            "/api/usage?startTime=2025-01-01T00:00:00Z&endTime=2026-01-01T00:00:00Z",
            None,
            400,
            BAD,
        ),
        case(
            "unknown granularity",
            Method::GET,
            "/api/usage?granularity=week",
            None,
            400,
            BAD,
        ),
        case(
            "a time that is no time",
            Method::GET,
            "/api/usage?startTime=yesterday",
            None,
            400,
            BAD,
        ),
        // Revocation reasons.
        case(
            "a reason with a bidi override",
            Method::DELETE,
            &format!("/api/api-keys/{known_id}"),
            Some(json!({"reason": "\u{202E}x"})),
            400,
            BAD,
        ),
        case(
            "a 501-character reason",
            Method::DELETE,
            &format!("/api/api-keys/{known_id}"),
            Some(json!({"reason": "r".repeat(501)})),
            400,
            BAD,
        ),
        // Routes and methods.
        case(
            "an unknown route",
            Method::GET,
            "/api/nothing-here",
            None,
            404,
            Some("not_found"),
        ),
        case(
            "a method the route lacks",
            Method::PUT,
            "/api/api-keys",
            None,
            405,
            Some("method_not_allowed"),
        ),
        // Credentials.
        auth("no credential", Auth::None, 401, INVALID_KEY),
        auth(
            "a scheme other than Bearer",
            Auth::Raw("Basic dXNlcjpwYXNz"),
            401,
            INVALID_KEY,
        ),
        auth(
            "Bearer without a key",
            Auth::Raw("Bearer "),
            401,
            INVALID_KEY,
        ),
        auth(
            "two keys in one header",
            Auth::Raw("Bearer sk_live_a sk_live_b"),
            401,
            INVALID_KEY,
        ),
        auth(
            "a made-up key",
            Auth::Raw("Bearer sk_live_abc123..."),
            401,
            INVALID_KEY,
        ),
        auth(
            "a 513-byte key",
            Auth::Raw(LONG_KEY_HEADER),
            401,
            INVALID_KEY,
        ),
        auth(
            "two Authorization headers: the first counts",
            Auth::Twice,
            200,
            None,
        ),
    ];
    cases.push(auth("lower-case bearer", Auth::Raw("bearer"), 200, None));
    cases
}

/// `Bearer ` and 513 characters: one byte over what a key may be.
const LONG_KEY_HEADER: &str = concat!(
    "Bearer ",
    "sk_live_0123456789012345678901234567890123456789012345678901234567890123456789",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345",
    "012345678901234567890123456789012345678901234567890123456789012345678901234567"
);

async fn send(client: &Client, app: &TestApp, case: &Case) -> (StatusCode, Value) {
    let mut request = client.request(case.method.clone(), format!("{}{}", app.http, case.path));
    match case.auth {
        Auth::Admin => request = request.bearer_auth(&app.admin_key),
        Auth::None => {}
        Auth::Raw("bearer") => {
            request = request.header("authorization", format!("bearer {}", app.admin_key))
        }
        Auth::Raw(value) => request = request.header("authorization", value),
        Auth::Twice => {
            request = request
                .header("authorization", format!("Bearer {}", app.admin_key))
                .header("authorization", "Bearer sk_live_forged");
        }
    }
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

#[tokio::test]
async fn bad_input_gets_its_documented_error_and_leaves_nothing_half_written() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let known = app
            .create_key("known", &["chat"], "")
            .await
            .api_key
            .unwrap()
            .id;
        let other = app.other_organization_admin("other").await;
        let foreign = app
            .client
            .clone()
            .create_key(authed(
                &other,
                v1::CreateKeyRequest {
                    name: "theirs".into(),
                    scopes: vec!["chat".into()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap()
            .id;
        let client = Client::new();
        let cases = rest_cases(&known, &foreign);
        assert!(cases.len() >= 60, "{} cases", cases.len());
        let mut created = 0;
        let mut failures = Vec::new();
        for case in &cases {
            let (status, body) = send(&client, &app, case).await;
            if status.as_u16() == 201 {
                created += 1;
            }
            let code_ok = match case.code {
                Some(code) => body["error"]["code"] == code && body["status"] == case.status,
                None => true,
            };
            if status.as_u16() != case.status || !code_ok {
                failures.push(format!(
                    "{}: expected {} {:?}, got {status} {body}",
                    case.name, case.status, case.code
                ));
            }
            // The server keeps serving after every case.
            let health = client
                .get(format!("{}/healthz", app.http))
                .send()
                .await
                .unwrap();
            assert_eq!(health.status(), 200, "after {}", case.name);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        grpc_cases(&app).await;

        // Nothing half-written: exactly the keys whose creation answered 201, and the known
        // key is not revoked by any refused request.
        let listed = app
            .client
            .clone()
            .list_keys(authed(
                &app.admin_key,
                v1::ListKeysRequest {
                    page_size: 1000,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_keys;
        // The bootstrap key, `known`, and the created ones.
        assert_eq!(listed.len(), 2 + created, "{listed:#?}");
        let known_now = listed.iter().find(|key| key.id == known).unwrap();
        assert_eq!(known_now.state(), v1::KeyState::Active);
        assert!(
            listed
                .iter()
                .all(|key| !key.name.is_empty() && key.name.chars().count() <= 100)
        );
    }
}

/// The gRPC side: keys of every odd size and content get the invalid verdict, and malformed
/// requests an INVALID_ARGUMENT naming their field.
async fn grpc_cases(app: &TestApp) {
    let mut client = app.client.clone();
    for key in [
        String::new(),
        "s".to_owned(),
        "x".repeat(511),
        "x".repeat(512),
        "x".repeat(513),
        "x".repeat(60 * 1024),
        "sk_live_\0nul".to_owned(),
        "sk_live_\u{202E}evil".to_owned(),
        format!("  {}  ", "sk_live_abc"),
    ] {
        let verdict = client
            .verify_key(v1::VerifyKeyRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            verdict.code(),
            v1::VerifyCode::InvalidApiKey,
            "{} bytes",
            key.len()
        );
    }
    // Larger than any request needs: refused before it is read.
    let huge = client
        .verify_key(v1::VerifyKeyRequest {
            key: "x".repeat(1 << 20),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::OutOfRange, "{huge:?}");
    assert!(huge.message().contains("too large"), "{huge:?}");
    let unknown_scope = client
        .verify_key(v1::VerifyKeyRequest {
            key: "sk_live_x".into(),
            required_scopes: vec!["root".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_scope.code(), Code::InvalidArgument);
    let unknown_enum = client
        .create_key(authed(
            &app.admin_key,
            v1::CreateKeyRequest {
                name: "k".into(),
                scopes: vec!["chat".into()],
                environment: 99,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown_enum.code(), Code::InvalidArgument);
    let negative_page = client
        .list_keys(authed(
            &app.admin_key,
            v1::ListKeysRequest {
                page_size: -5,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(negative_page.code(), Code::InvalidArgument);
}
