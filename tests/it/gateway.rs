//! The REST gateway as an HTTP client sees it: every error row of the product docs, in their
//! exact JSON shape, and the success paths a curl user, a script or a reverse proxy takes.

use chrono::{TimeDelta, TimeZone, Utc};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backends, spawn_app};

const INVALID_KEY: &str = "The API key provided is invalid";
const BEARER_HINT: &str = "Authorization: Bearer YOUR_API_KEY";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh client per request: each test runs its own Tokio runtime, and a pooled connection
/// must not outlive the runtime that opened it. Proxies from the environment are ignored, so
/// the requests really reach the gateway on loopback.
fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// A request without any credential.
fn anonymous(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    client().request(method, format!("{}{path}", app.http))
}

/// A request carrying `Authorization: Bearer <key>`.
fn bearer(app: &TestApp, method: Method, path: &str, key: &str) -> RequestBuilder {
    anonymous(app, method, path).header("authorization", format!("Bearer {key}"))
}

/// A request with the organization's bootstrap admin key.
fn admin(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    bearer(app, method, path, &app.admin_key)
}

/// `GET /api/auth/verify` with `key` and one `scope` parameter per required scope.
async fn verify(app: &TestApp, key: &str, scopes: &[&str]) -> Response {
    let query: Vec<String> = scopes
        .iter()
        .map(|scope| format!("scope={scope}"))
        .collect();
    let path = format!("/api/auth/verify?{}", query.join("&"));
    bearer(app, Method::GET, &path, key).send().await.unwrap()
}

/// Asserts an error response: its status, the JSON body `{"error": {"code", "message"},
/// "status"}` with nothing else in it, the status repeated in the body, and on a 401 the
/// `WWW-Authenticate: Bearer …` challenge. Checks the message exactly when one is given, and
/// returns it so callers can check what it must mention.
async fn assert_error(
    response: Response,
    status: StatusCode,
    code: &str,
    message: Option<&str>,
) -> String {
    let actual_status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert_eq!(actual_status, status, "body: {text}");
    assert_json_content_type(&headers, &text);
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {text}"));
    assert_eq!(object.len(), 2, "exactly error and status: {text}");
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(error.len(), 2, "exactly code and message: {text}");
    assert_eq!(body["error"]["code"], code, "{text}");
    assert_eq!(body["status"], status.as_u16(), "{text}");
    let actual = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message is a string: {text}"));
    assert!(!actual.is_empty(), "{text}");
    if let Some(message) = message {
        assert_eq!(actual, message, "{text}");
    }
    if status == StatusCode::UNAUTHORIZED {
        let challenge = headers
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("a 401 carries WWW-Authenticate: {text}"))
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    actual.to_owned()
}

/// Asserts an error whose message must mention each of `mentions` (for messages that quote a
/// parser's words, which are not ours to pin down).
async fn assert_error_mentions(
    response: Response,
    status: StatusCode,
    code: &str,
    mentions: &[&str],
) -> String {
    let message = assert_error(response, status, code, None).await;
    for needle in mentions {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    message
}

/// Asserts a successful JSON response; returns its headers and body.
async fn assert_json(response: Response, status: StatusCode) -> (HeaderMap, Value) {
    let actual_status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert_eq!(actual_status, status, "body: {text}");
    assert_json_content_type(&headers, &text);
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (headers, body)
}

fn assert_json_content_type(headers: &HeaderMap, text: &str) {
    let content_type = headers
        .get("content-type")
        .map(|value| value.to_str().unwrap())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}: {text}"
    );
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing: {headers:?}"))
        .to_str()
        .unwrap()
}

/// Creates a key through the gateway with the admin key; returns the 201 body.
async fn create(app: &TestApp, body: Value) -> Value {
    let response = admin(app, Method::POST, "/api/api-keys")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_json(response, StatusCode::CREATED).await.1
}

/// Creates a key named `name` with `scopes` and no expiry; returns the plaintext key and id.
async fn create_simple(app: &TestApp, name: &str, scopes: &[&str]) -> (String, String) {
    let created = create(app, json!({ "name": name, "scopes": scopes })).await;
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// Revokes a key through the gateway; returns the 200 body.
async fn revoke(app: &TestApp, id: &str, body: Option<Value>) -> Value {
    let mut request = admin(app, Method::DELETE, &format!("/api/api-keys/{id}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    assert_json(request.send().await.unwrap(), StatusCode::OK)
        .await
        .1
}

/// A JSON body for `POST /api/api-keys` of exactly `size` bytes, padded inside the name, so
/// that only its size decides whether the body limit applies.
fn create_body_of_size(size: usize) -> String {
    let skeleton = r#"{"name":"","scopes":["chat"]}"#;
    let body = format!(
        r#"{{"name":"{}","scopes":["chat"]}}"#,
        "x".repeat(size - skeleton.len())
    );
    assert_eq!(body.len(), size);
    body
}

// ---------------------------------------------------------------------------------------------
// 401 invalid_api_key and expired_api_key
// ---------------------------------------------------------------------------------------------

/// The endpoints a credential is checked on: an admin endpoint (judged by the gRPC service's
/// authentication layer) and forward-auth (judged by VerifyKey). Both must answer alike.
const CHECKED: [&str; 2] = ["/api/api-keys", "/api/auth/verify"];

#[tokio::test]
async fn a_missing_or_non_bearer_credential_gets_401_with_the_expected_header_format() {
    // Nothing here reaches the database: SQLite is enough.
    let app = spawn_app(&Backend::Sqlite).await;
    for path in CHECKED {
        let missing = anonymous(&app, Method::GET, path).send().await.unwrap();
        let message =
            assert_error(missing, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
        assert!(message.contains(BEARER_HINT), "{path}: {message}");
        assert!(message.starts_with(INVALID_KEY), "{path}: {message}");

        // The right key under the wrong scheme is still not a bearer token.
        for scheme in ["Basic", "Token"] {
            let wrong = anonymous(&app, Method::GET, path)
                .header("authorization", format!("{scheme} {}", app.admin_key))
                .send()
                .await
                .unwrap();
            let message =
                assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
            assert!(message.contains(BEARER_HINT), "{path} {scheme}: {message}");
        }

        // A bare key without any scheme is the most common copy-paste mistake.
        let bare = anonymous(&app, Method::GET, path)
            .header("authorization", app.admin_key.as_str())
            .send()
            .await
            .unwrap();
        let message = assert_error(bare, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
        assert!(message.contains(BEARER_HINT), "{path}: {message}");
    }
}

#[tokio::test]
async fn an_unknown_or_revoked_key_gets_the_product_message() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        for path in CHECKED {
            // The docs' placeholder is what people paste first.
            let garbage = bearer(&app, Method::GET, path, "sk_live_abc123...")
                .send()
                .await
                .unwrap();
            assert_error(
                garbage,
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                Some(INVALID_KEY),
            )
            .await;
        }

        // A second admin key, revoked: it must stop working on both endpoints at once.
        let (key, id) = create_simple(&app, "Second admin", &["admin"]).await;
        assert_json(
            bearer(&app, Method::GET, "/api/api-keys", &key)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        revoke(&app, &id, None).await;
        for path in CHECKED {
            let revoked = bearer(&app, Method::GET, path, &key).send().await.unwrap();
            assert_error(
                revoked,
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                Some(INVALID_KEY),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn an_expired_key_gets_401_naming_its_last_day() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let chat = create(
            &app,
            json!({"name": "Until the 20th", "scopes": ["chat"], "expiresAt": "2026-01-20"}),
        )
        .await;
        let chat_key = chat["key"].as_str().unwrap();
        let chat_id = chat["id"].as_str().unwrap();
        let expiring_admin = create(
            &app,
            json!({"name": "Temporary admin", "scopes": ["admin"], "expiresAt": "2026-01-20"}),
        )
        .await;
        let admin_key = expiring_admin["key"].as_str().unwrap();

        // The last second of the expiry date still works.
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 20, 23, 59, 59).unwrap());
        assert_json(verify(&app, chat_key, &["chat"]).await, StatusCode::OK).await;

        app.clock
            .set(Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0).unwrap());
        assert_error(
            verify(&app, chat_key, &["chat"]).await,
            StatusCode::UNAUTHORIZED,
            "expired_api_key",
            Some("API key expired on 2026-01-20"),
        )
        .await;
        let listed = bearer(&app, Method::GET, "/api/api-keys", admin_key)
            .send()
            .await
            .unwrap();
        assert_error(
            listed,
            StatusCode::UNAUTHORIZED,
            "expired_api_key",
            Some("API key expired on 2026-01-20"),
        )
        .await;

        // The record says so too.
        let record = admin(&app, Method::GET, &format!("/api/api-keys/{chat_id}"))
            .send()
            .await
            .unwrap();
        let (_, record) = assert_json(record, StatusCode::OK).await;
        assert_eq!(record["state"], "expired");
    }
}

// ---------------------------------------------------------------------------------------------
// 403 insufficient_scope
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_key_without_the_scope_gets_403_naming_the_scope() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (key, _) = create_simple(&app, "Chat only", &["chat"]).await;

        let response = verify(&app, &key, &["chat", "agents:write"]).await;
        // nginx `auth_request` drops the body of a 403; the same JSON travels in a header.
        let error_header = header(response.headers(), "x-keyrack-error").to_owned();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: agents:write"),
        )
        .await;
        let error_header: Value = serde_json::from_str(&error_header).unwrap();
        assert_eq!(
            error_header,
            json!({
                "error": {
                    "code": "insufficient_scope",
                    "message": "API key lacks required scope: agents:write"
                },
                "status": 403
            })
        );

        // A proxy may name the scopes in a header instead of the query.
        let response = bearer(&app, Method::GET, "/api/auth/verify", &key)
            .header("x-keyrack-required-scopes", "agents:write")
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: agents:write"),
        )
        .await;

        // Managing keys takes `admin`; a scoped key may neither create nor list.
        let response = bearer(&app, Method::POST, "/api/api-keys", &key)
            .json(&json!({"name": "escalation", "scopes": ["admin"]}))
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: admin"),
        )
        .await;
        let response = bearer(&app, Method::GET, "/api/api-keys", &key)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: admin"),
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// 400 invalid_request
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_bad_create_body_gets_400_naming_the_field() {
    // Validation does not depend on the storage engine: SQLite is enough.
    let app = spawn_app(&Backend::Sqlite).await;
    let cases: [(&str, &[&str]); 9] = [
        // An unknown field is refused, not ignored: a typo must not silently drop a setting.
        (r#"{"name": "x", "scopes": ["chat"], "foo": 1}"#, &["foo"]),
        // Wrong types.
        (r#"{"name": "x", "scopes": "chat"}"#, &["scopes"]),
        (r#"{"name": "x", "scopes": ["chat", 7]}"#, &["scopes"]),
        (r#"{"name": 42, "scopes": ["chat"]}"#, &["name"]),
        // A missing required field.
        (r#"{"scopes": ["chat"]}"#, &["name"]),
        // A date in another format.
        (
            r#"{"name": "x", "scopes": ["chat"], "expiresAt": "31/12/2025"}"#,
            &["expires_at", "31/12/2025"],
        ),
        // An unknown environment.
        (
            r#"{"name": "x", "scopes": ["chat"], "environment": "staging"}"#,
            &["environment", "staging"],
        ),
        // Not an object at all.
        ("[]", &["JSON"]),
        ("\"Production API\"", &["JSON"]),
    ];
    for (body, mentions) in cases {
        let response = admin(&app, Method::POST, "/api/api-keys")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error_mentions(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            mentions,
        )
        .await;
    }

    // The service's own messages come through word for word.
    let exact = [
        (
            json!({"name": "x", "scopes": ["chat", "agents:fly"]}),
            r#"invalid scopes: unknown scope "agents:fly""#,
        ),
        (
            json!({"name": "", "scopes": ["chat"]}),
            "invalid name: a name is required",
        ),
        (
            json!({"name": "x", "scopes": []}),
            "invalid scopes: at least one scope is required",
        ),
    ];
    for (body, message) in exact {
        let response = admin(&app, Method::POST, "/api/api-keys")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(message),
        )
        .await;
    }

    // An empty body is a malformed body, not a crash.
    let response = admin(&app, Method::POST, "/api/api-keys")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", None).await;

    // An unknown field in the optional revoke body is refused the same way.
    let (_, id) = create_simple(&app, "keep", &["chat"]).await;
    let response = admin(&app, Method::DELETE, &format!("/api/api-keys/{id}"))
        .json(&json!({"reason": "x", "foo": 1}))
        .send()
        .await
        .unwrap();
    assert_error_mentions(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["foo"],
    )
    .await;
}

#[tokio::test]
async fn malformed_json_gets_400_saying_so_without_naming_a_bogus_field() {
    let app = spawn_app(&Backend::Sqlite).await;
    // No field is at fault in a body that is not JSON: the message must say the body is
    // malformed, not blame a field called `?`. Every case is tried before failing, so the
    // failure lists them all.
    let mut wrong = Vec::new();
    for body in [
        r#"{"name": "x", "scopes": ["chat"]"#,
        r#"{"name": "x","#,
        "{not json}",
        r#"{"name": "x", "scopes": ["chat"],}"#,
    ] {
        let response = admin(&app, Method::POST, "/api/api-keys")
            .body(body)
            .send()
            .await
            .unwrap();
        let message =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", None).await;
        if !message.starts_with("invalid JSON body") || message.contains("field ?") {
            wrong.push(format!("{body} -> {message}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "misleading messages:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn a_create_body_is_exactly_one_json_object() {
    let app = spawn_app(&Backend::Sqlite).await;
    // Whatever follows the object makes the body malformed JSON; accepting it would create a
    // key from a request that was cut or concatenated by mistake. The documented body is an
    // object; the same fields given by position in an array are not part of the API (the
    // OpenAPI document does not describe them). Every case is tried before failing.
    let mut accepted = Vec::new();
    for body in [
        r#"{"name": "x", "scopes": ["chat"]} trailing"#,
        r#"{"name": "x", "scopes": ["chat"]}{"name": "y", "scopes": ["admin"]}"#,
        r#"["x", ["chat"], null, null]"#,
    ] {
        let response = admin(&app, Method::POST, "/api/api-keys")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::BAD_REQUEST {
            assert_error(response, status, "invalid_request", None).await;
        } else {
            let text = response.text().await.unwrap();
            accepted.push(format!("{body} -> {status} {text}"));
        }
    }
    assert!(accepted.is_empty(), "accepted:\n{}", accepted.join("\n"));
    // Nothing was created by the refused bodies: the bootstrap key is alone.
    let (_, page) = assert_json(
        admin(&app, Method::GET, "/api/api-keys")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn a_bad_query_gets_400_naming_the_parameter() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (_, id) = create_simple(&app, "metered", &["chat"]).await;
    let key_usage = format!("/api/api-keys/{id}/usage");
    let cases = [
        ("/api/api-keys?pageSize=abc".to_owned(), vec!["pageSize"]),
        ("/api/api-keys?pageSize=-1".to_owned(), vec!["page_size"]),
        (
            "/api/api-keys?pageToken=nope".to_owned(),
            vec!["page_token"],
        ),
        (
            "/api/api-keys?state=bogus".to_owned(),
            vec!["state", "bogus"],
        ),
        ("/api/api-keys?colour=red".to_owned(), vec!["colour"]),
        (
            "/api/usage?granularity=week".to_owned(),
            vec!["granularity", "week"],
        ),
        (
            "/api/usage?from=yesterday".to_owned(),
            vec!["from", "yesterday"],
        ),
        ("/api/usage?to=tomorrow".to_owned(), vec!["to", "tomorrow"]),
        (
            "/api/usage?from=2026-01-15T10:00:00Z&to=2026-01-15T09:00:00Z".to_owned(),
            vec!["start_time"],
        ),
        (format!("{key_usage}?granularity=week"), vec!["granularity"]),
        ("/api/api-keys/not-a-uuid".to_owned(), vec!["id"]),
        ("/api/api-keys/not-a-uuid/usage".to_owned(), vec!["key_id"]),
    ];
    for (path, mentions) in cases {
        let response = admin(&app, Method::GET, &path).send().await.unwrap();
        assert_error_mentions(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &mentions,
        )
        .await;
    }
}

#[tokio::test]
async fn verify_refuses_an_unknown_required_scope_with_400() {
    let app = spawn_app(&Backend::Sqlite).await;
    // Scopes are case-sensitive: a proxy configured with `Chat` is misconfigured, and saying so
    // beats letting every request through or refusing every key as if it were at fault.
    let response = verify(&app, &app.admin_key, &["Chat"]).await;
    assert_error_mentions(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["\"Chat\""],
    )
    .await;
    let response = bearer(&app, Method::GET, "/api/auth/verify", &app.admin_key)
        .header("x-keyrack-required-scopes", "chat, agents:fly")
        .send()
        .await
        .unwrap();
    assert_error_mentions(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &["\"agents:fly\""],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 404, 405, 413
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_keys_and_other_organizations_keys_are_not_found() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let stranger = uuid::Uuid::now_v7();
        for (method, path) in [
            (Method::GET, format!("/api/api-keys/{stranger}")),
            (Method::DELETE, format!("/api/api-keys/{stranger}")),
            (Method::GET, format!("/api/api-keys/{stranger}/usage")),
        ] {
            let response = admin(&app, method, &path).send().await.unwrap();
            assert_error(
                response,
                StatusCode::NOT_FOUND,
                "not_found",
                Some("key not found"),
            )
            .await;
        }

        // Another organization's admin cannot tell our key from one that never existed.
        let (key, id) = create_simple(&app, "ours", &["chat"]).await;
        let theirs = app.other_organization_admin("acme").await;
        for (method, path) in [
            (Method::GET, format!("/api/api-keys/{id}")),
            (Method::DELETE, format!("/api/api-keys/{id}")),
            (Method::GET, format!("/api/api-keys/{id}/usage")),
        ] {
            let response = bearer(&app, method, &path, &theirs).send().await.unwrap();
            assert_error(
                response,
                StatusCode::NOT_FOUND,
                "not_found",
                Some("key not found"),
            )
            .await;
        }
        let (_, page) = assert_json(
            bearer(&app, Method::GET, "/api/api-keys", &theirs)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let names: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["other admin"]);
        // Their failed DELETE left our key working.
        assert_json(verify(&app, &key, &["chat"]).await, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_error_shape() {
    let app = spawn_app(&Backend::Sqlite).await;
    // (`/api/auth/verify/<anything>` is a route: ext_authz's HTTP mode.)
    for path in ["/api/nope", "/", "/api/api-keys/", "/api/authverify"] {
        let response = admin(&app, Method::GET, path).send().await.unwrap();
        assert_error(
            response,
            StatusCode::NOT_FOUND,
            "not_found",
            Some("no such route"),
        )
        .await;
    }

    let id = uuid::Uuid::now_v7();
    for (method, path) in [
        (Method::PUT, "/api/api-keys".to_owned()),
        (Method::DELETE, "/api/api-keys".to_owned()),
        (Method::POST, format!("/api/api-keys/{id}")),
        (Method::PUT, format!("/api/api-keys/{id}")),
        (Method::POST, "/api/usage".to_owned()),
        (Method::PATCH, "/healthz".to_owned()),
        (Method::POST, "/readyz".to_owned()),
        (Method::POST, "/openapi.json".to_owned()),
    ] {
        let response = admin(&app, method.clone(), &path).send().await.unwrap();
        // RFC 9110 §15.5.6: a 405 lists the methods the route does allow.
        let allow = response
            .headers()
            .get("allow")
            .map(|value| value.to_str().unwrap().to_owned());
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            Some("this method is not allowed on this route"),
        )
        .await;
        assert!(allow.is_some(), "{method} {path}: no Allow header");
    }
}

#[tokio::test]
async fn a_body_over_64_kib_gets_413_and_one_at_the_limit_does_not() {
    let app = spawn_app(&Backend::Sqlite).await;
    for size in [64 * 1024 + 1, 65 * 1024 + 1] {
        let response = admin(&app, Method::POST, "/api/api-keys")
            .header("content-type", "application/json")
            .body(create_body_of_size(size))
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("the request body is larger than 64 KiB"),
        )
        .await;
    }
    let (_, id) = create_simple(&app, "target", &["chat"]).await;
    let reason = format!(r#"{{"reason":"{}"}}"#, "x".repeat(64 * 1024));
    let response = admin(&app, Method::DELETE, &format!("/api/api-keys/{id}"))
        .body(reason)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    )
    .await;

    // Exactly 64 KiB and just under it pass the size check; the name is then too long for
    // the service, which is a 400 about the name, not a 413.
    for size in [64 * 1024, 64 * 1024 - 1] {
        let response = admin(&app, Method::POST, "/api/api-keys")
            .header("content-type", "application/json")
            .body(create_body_of_size(size))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{size}");
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("invalid name: at most 100 characters are allowed"),
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// 503 unavailable, health and readiness
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stopped_key_service_means_503_not_500() {
    let mut app = spawn_app(&Backend::Sqlite).await;
    let (_, healthy) = assert_json(
        anonymous(&app, Method::GET, "/healthz")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(healthy, json!({"status": "ok"}));
    let (_, ready) = assert_json(
        anonymous(&app, Method::GET, "/readyz")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ready, json!({"status": "ready"}));
    // Open the gateway's upstream connection, so the test covers a connection that breaks,
    // not only one that cannot be made.
    assert_json(
        admin(&app, Method::GET, "/api/api-keys")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;

    app.stop_grpc().await;

    // Twice each: the first call may meet the dying connection, the second a refused one.
    for _ in 0..2 {
        for request in [
            admin(&app, Method::GET, "/api/api-keys"),
            admin(&app, Method::GET, "/api/auth/verify?scope=chat"),
            admin(&app, Method::POST, "/api/api-keys")
                .json(&json!({"name": "x", "scopes": ["chat"]})),
            admin(&app, Method::GET, "/api/usage"),
        ] {
            let response = request.send().await.unwrap();
            // The message is ours, never the transport's words (addresses, "tcp connect", …).
            assert_error(
                response,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some("the service is unavailable, try again"),
            )
            .await;
        }
    }

    let response = anonymous(&app, Method::GET, "/readyz")
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        Some("the key service is not serving"),
    )
    .await;
    // The process itself is fine: an orchestrator must not restart it for this.
    let (_, healthy) = assert_json(
        anonymous(&app, Method::GET, "/healthz")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(healthy, json!({"status": "ok"}));
}

// ---------------------------------------------------------------------------------------------
// Success paths
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_docs_create_example_works_as_written_and_the_key_passes_forward_auth() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        // Byte for byte the docs' `curl -d` body (with a future date), sent first with no
        // content type at all, then with the one curl -d really sends.
        let body = r#"{
    "name": "Production API",
    "scopes": ["chat", "agents:read"],
    "expiresAt": "2026-12-31"
  }"#;
        let no_type = admin(&app, Method::POST, "/api/api-keys")
            .body(body)
            .send()
            .await
            .unwrap();
        let (_, created) = assert_json(no_type, StatusCode::CREATED).await;
        let as_curl = admin(&app, Method::POST, "/api/api-keys")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_json(as_curl, StatusCode::CREATED).await;

        let key = created["key"].as_str().unwrap();
        assert!(key.starts_with("sk_live_"), "{key}");
        assert_eq!(
            created["redactedKey"],
            format!("sk_live_…{}", &key[key.len() - 4..])
        );
        assert_eq!(created["name"], "Production API");
        assert_eq!(created["scopes"], json!(["chat", "agents:read"]));
        assert_eq!(created["createdAt"], "2026-01-15T10:30:00Z");
        // Valid through the end of the day, so the first instant it no longer works is the
        // next midnight, UTC.
        assert_eq!(created["expiresAt"], "2027-01-01T00:00:00Z");
        assert_eq!(created["environment"], "live");
        assert_eq!(created["state"], "active");
        assert_eq!(created["scoped"], true);
        assert_eq!(created["revokedAt"], Value::Null);
        assert_eq!(created["lastUsedAt"], Value::Null);
        let id = created["id"].as_str().unwrap();
        let organization_id = created["organizationId"].as_str().unwrap();
        assert!(!organization_id.is_empty());

        // The record read back is the created one, without the secret.
        let (_, record) = assert_json(
            admin(&app, Method::GET, &format!("/api/api-keys/{id}"))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let mut expected = created.clone();
        expected.as_object_mut().unwrap().remove("key");
        assert_eq!(record, expected);
        assert!(!record.to_string().contains(key));

        let (headers, principal) = assert_json(
            verify(&app, key, &["chat", "agents:read"]).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(principal["keyId"], id);
        assert_eq!(principal["organizationId"], organization_id);
        assert_eq!(principal["name"], "Production API");
        assert_eq!(principal["scopes"], json!(["chat", "agents:read"]));
        assert_eq!(principal["environment"], "live");
        assert_eq!(principal["expiresAt"], "2027-01-01T00:00:00Z");
        assert_eq!(header(&headers, "x-keyrack-key-id"), id);
        assert_eq!(header(&headers, "x-keyrack-org-id"), organization_id);
        assert_eq!(header(&headers, "x-keyrack-scopes"), "chat,agents:read");
        // A verdict must not be cached by a proxy: the key may be revoked a second later.
        assert_eq!(header(&headers, "cache-control"), "no-store");

        // Proxies send the original method; the verdict does not depend on it.
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = bearer(&app, method.clone(), "/api/auth/verify?scope=chat", key)
                .body("{\"prompt\": \"Hello\"}")
                .send()
                .await
                .unwrap();
            let (_, principal) = assert_json(response, StatusCode::OK).await;
            assert_eq!(principal["keyId"], id, "{method}");
        }
        let head = bearer(&app, Method::HEAD, "/api/auth/verify?scope=chat", key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(header(head.headers(), "x-keyrack-key-id"), id);

        // The scheme is case-insensitive (RFC 7235).
        let lower = anonymous(&app, Method::GET, "/api/auth/verify")
            .header("authorization", format!("bearer {key}"))
            .send()
            .await
            .unwrap();
        assert_json(lower, StatusCode::OK).await;

        // Scopes given by the proxy in a header are enforced, alone or added to the query's.
        let response = bearer(&app, Method::GET, "/api/auth/verify", key)
            .header("x-keyrack-required-scopes", "agents:write")
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: agents:write"),
        )
        .await;
        let response = bearer(&app, Method::GET, "/api/auth/verify?scope=chat", key)
            .header("x-keyrack-required-scopes", "agents:read,agents:delete")
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: agents:delete"),
        )
        .await;
        let response = bearer(&app, Method::GET, "/api/auth/verify", key)
            .header("x-keyrack-required-scopes", "chat agents:read")
            .send()
            .await
            .unwrap();
        assert_json(response, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn listing_pages_newest_first_and_filters_by_state() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(create_simple(&app, &format!("key {i}"), &["chat"]).await.1);
        }

        let mut names = Vec::new();
        let mut path = "/api/api-keys?pageSize=2".to_owned();
        let mut pages = 0;
        loop {
            let (_, page) = assert_json(
                admin(&app, Method::GET, &path).send().await.unwrap(),
                StatusCode::OK,
            )
            .await;
            pages += 1;
            let data = page["data"].as_array().unwrap();
            assert!(data.len() <= 2, "{page}");
            names.extend(data.iter().map(|k| k["name"].as_str().unwrap().to_owned()));
            // The last page says so with an explicit null, not a missing field.
            let token = page
                .as_object()
                .unwrap()
                .get("nextPageToken")
                .unwrap_or_else(|| panic!("nextPageToken present: {page}"));
            match token.as_str() {
                Some(token) => path = format!("/api/api-keys?pageSize=2&pageToken={token}"),
                None => {
                    assert_eq!(*token, Value::Null);
                    break;
                }
            }
            assert!(pages < 10, "paging does not end");
        }
        // Five keys plus the bootstrap admin key, newest first, each exactly once.
        assert_eq!(pages, 3);
        assert_eq!(
            names,
            [
                "key 4",
                "key 3",
                "key 2",
                "key 1",
                "key 0",
                "Bootstrap admin key"
            ]
        );

        revoke(&app, &ids[1], None).await;
        let (_, revoked) = assert_json(
            admin(&app, Method::GET, "/api/api-keys?state=revoked")
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let revoked = revoked["data"].as_array().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0]["id"], ids[1].as_str());
        assert_eq!(revoked[0]["state"], "revoked");
        let (_, active) = assert_json(
            admin(&app, Method::GET, "/api/api-keys?state=active")
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let active = active["data"].as_array().unwrap();
        assert_eq!(active.len(), 5);
        assert!(active.iter().all(|k| k["state"] == "active"));
    }
}

#[tokio::test]
async fn revoking_returns_the_revoked_record_and_the_key_stops_working_at_once() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (leaked, leaked_id) = create_simple(&app, "Leaked", &["chat"]).await;
        let (retired, retired_id) = create_simple(&app, "Retired", &["chat"]).await;
        assert_json(verify(&app, &leaked, &["chat"]).await, StatusCode::OK).await;

        let record = revoke(&app, &leaked_id, Some(json!({"reason": "leaked"}))).await;
        assert_eq!(record["id"], leaked_id.as_str());
        assert_eq!(record["state"], "revoked");
        assert_eq!(record["revokedAt"], "2026-01-15T10:30:00Z");
        assert_eq!(record["revokeReason"], "leaked");
        assert!(record.get("key").is_none(), "{record}");

        // No body at all is fine too: the reason is optional.
        let record = revoke(&app, &retired_id, None).await;
        assert_eq!(record["state"], "revoked");
        assert_eq!(record["revokedAt"], "2026-01-15T10:30:00Z");
        assert_eq!(record["revokeReason"], Value::Null);

        for key in [&leaked, &retired] {
            assert_error(
                verify(&app, key, &["chat"]).await,
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                Some(INVALID_KEY),
            )
            .await;
        }

        // Revoking again is not an error and keeps the first revocation.
        app.clock.advance(TimeDelta::hours(1));
        let again = revoke(&app, &leaked_id, Some(json!({"reason": "again"}))).await;
        assert_eq!(again["revokedAt"], "2026-01-15T10:30:00Z");
        assert_eq!(again["revokeReason"], "leaked");
    }
}

#[tokio::test]
async fn usage_counts_each_forward_auth_verdict_exactly() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        // 10:30: one admin call (this create) for the organization.
        let (key, id) = create_simple(&app, "metered", &["chat"]).await;

        // 10:30: three successes and two scope failures; 11:30: one more success.
        for _ in 0..3 {
            assert_json(verify(&app, &key, &["chat"]).await, StatusCode::OK).await;
        }
        for _ in 0..2 {
            let response = verify(&app, &key, &["agents:write"]).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        // Requests refused before a known key is judged are nobody's usage.
        let response = verify(&app, &key, &["Chat"]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = verify(&app, "sk_live_abc123...", &[]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        app.clock.advance(TimeDelta::hours(1));
        assert_json(verify(&app, &key, &[]).await, StatusCode::OK).await;

        // 11:30: the admin key authenticates this call; it is not this key's usage.
        let (_, usage) = assert_json(
            admin(&app, Method::GET, &format!("/api/api-keys/{id}/usage"))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(usage["requests"], 6, "{usage}");
        assert_eq!(usage["succeeded"], 4);
        assert_eq!(usage["failed"], 2);
        assert!((usage["successRate"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-9);
        assert_eq!(usage["lastUsedAt"], "2026-01-15T11:30:00Z");
        assert_eq!(
            usage["buckets"],
            json!([
                {
                    "startTime": "2026-01-15T10:00:00Z",
                    "requests": 5,
                    "succeeded": 3,
                    "failed": 2,
                    "failedByCode": {"insufficient_scope": 2}
                },
                {
                    "startTime": "2026-01-15T11:00:00Z",
                    "requests": 1,
                    "succeeded": 1,
                    "failed": 0,
                    "failedByCode": {}
                }
            ])
        );

        // By the day, over an explicit range.
        let path = format!(
            "/api/api-keys/{id}/usage?granularity=day&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
        );
        let (_, daily) = assert_json(
            admin(&app, Method::GET, &path).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            daily["buckets"],
            json!([{
                "startTime": "2026-01-15T00:00:00Z",
                "requests": 6,
                "succeeded": 4,
                "failed": 2,
                "failedByCode": {"insufficient_scope": 2}
            }])
        );

        // The organization: the key's six, plus the admin key's own authentications, each a
        // verification too: the create at 10:30, then the key usage call above, the daily
        // one, and this call itself (authenticated before it reads) at 11:30.
        let (_, org) = assert_json(
            admin(&app, Method::GET, "/api/usage").send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(org["requests"], 10, "{org}");
        assert_eq!(org["succeeded"], 8);
        assert_eq!(org["failed"], 2);
        assert!((org["successRate"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(org["lastUsedAt"], "2026-01-15T11:30:00Z");
        let buckets: Vec<(&str, i64, i64)> = org["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["startTime"].as_str().unwrap(),
                    b["succeeded"].as_i64().unwrap(),
                    b["failed"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            buckets,
            [
                ("2026-01-15T10:00:00Z", 4, 2),
                ("2026-01-15T11:00:00Z", 4, 0)
            ]
        );
        assert_eq!(
            org["buckets"][0]["failedByCode"],
            json!({"insufficient_scope": 2})
        );

        // A key nobody used has a null success rate, not a division by zero.
        let (_, idle) = create_simple(&app, "idle", &["chat"]).await;
        let (_, usage) = assert_json(
            admin(&app, Method::GET, &format!("/api/api-keys/{idle}/usage"))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(usage["requests"], 0, "{usage}");
        assert_eq!(usage["successRate"], Value::Null);
        assert_eq!(usage["lastUsedAt"], Value::Null);
        assert_eq!(usage["buckets"], json!([]));
    }
}

// ---------------------------------------------------------------------------------------------
// Request ids and the OpenAPI document
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_id_is_echoed_or_generated() {
    let app = spawn_app(&Backend::Sqlite).await;
    // Sent by the client: returned as is, on success and on error alike, so a support request
    // can quote it.
    for path in ["/healthz", "/api/nope", "/api/api-keys"] {
        let response = anonymous(&app, Method::GET, path)
            .header("x-request-id", "abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(response.headers(), "x-request-id"),
            "abc-123",
            "{path}"
        );
    }

    // Not sent: one is made up, and a different one each time.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = admin(&app, Method::GET, "/api/api-keys")
            .send()
            .await
            .unwrap();
        let id = header(response.headers(), "x-request-id").to_owned();
        assert!(!id.is_empty());
        seen.push(id);
    }
    assert_ne!(seen[0], seen[1]);
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_endpoint() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (_, document) = assert_json(
        anonymous(&app, Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1"), "{version}");
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/api-keys", &["get", "post"][..]),
        ("/api/api-keys/{id}", &["get", "delete"]),
        ("/api/api-keys/{id}/usage", &["get"]),
        ("/api/usage", &["get"]),
        ("/api/auth/verify", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for method in methods {
            assert!(item.get(*method).is_some(), "{method} {path}");
        }
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn an_id_that_is_not_utf8_gets_400_in_the_error_shape() {
    let app = spawn_app(&Backend::Sqlite).await;
    // `%FF` decodes to a byte that is not UTF-8; axum's own rejection would be plain text.
    for (method, path) in [
        (Method::GET, "/api/api-keys/%FF"),
        (Method::DELETE, "/api/api-keys/%FF"),
        (Method::GET, "/api/api-keys/%FF/usage"),
        (Method::GET, "/api/api-keys/%FF/alerts"),
        (Method::DELETE, "/api/webhook-endpoints/%FF"),
        (Method::PATCH, "/api/members/%FF"),
    ] {
        let response = admin(&app, method, path)
            .body(r#"{"role": "admin"}"#)
            .send()
            .await
            .unwrap();
        let message =
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", None).await;
        assert!(message.starts_with("invalid id"), "{path}: {message}");
    }
}

/// Envoy's ext_authz HTTP mode appends the original request's path (and query) to its
/// `path_prefix`, and Traefik's forwardAuth can be set up alike: `/api/auth/verify/<original>`
/// is the same verification as `/api/auth/verify`, whatever the method.
#[tokio::test]
async fn the_verify_endpoint_also_answers_under_the_original_path_as_envoy_sends_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (chat, _) = create_simple(&app, "chat", &["chat"]).await;
        let response = bearer(
            &app,
            Method::POST,
            "/api/auth/verify/v1/chat/completions?stream=true",
            &chat,
        )
        .header("x-keyrack-required-scopes", "chat")
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("x-keyrack-key-id"));
        let response = bearer(&app, Method::GET, "/api/auth/verify/v1/agents", &chat)
            .header("x-keyrack-required-scopes", "agents:write")
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some("API key lacks required scope: agents:write"),
        )
        .await;
        let response = anonymous(&app, Method::GET, "/api/auth/verify/v1/agents")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
