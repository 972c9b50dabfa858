//! The gateway's half of OAuth 2.0, what needs no working service: the authorization server's
//! metadata (RFC 8414) and that its issuer is configuration, not the request's `Host`; the form
//! and client-credential refusals of the token, revocation and introspection endpoints, which
//! are answered before any upstream call; and the console's authorization endpoint merged at
//! the root. The flow itself, against the real service, is tests/it/oauth.rs.
//!
//! The gateway here stands in front of an upstream that refuses connections: a request that
//! reached the service would be `temporarily_unavailable` (503), so a 400 proves it did not.

use axum::routing::get;
use key_gateway::{Gateway, Upstream};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};

const ISSUER: &str = "https://keys.example.com";
const FORM: &str = "application/x-www-form-urlencoded";

/// A gateway on loopback, in front of nothing, stopped when dropped.
struct Front {
    http: String,
    _stop: oneshot::Sender<()>,
}

async fn front(configure: impl FnOnce(Gateway) -> Gateway) -> Front {
    // A port that was just free, so nothing listens there: every call is refused at once.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = closed.local_addr().unwrap();
    drop(closed);
    let upstream = Upstream::connect_lazy(&format!("http://{upstream_addr}")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let gateway = configure(Gateway::new(listener, upstream).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.run_until(async {
        let _ = stopped.await;
    }));
    Front { http, _stop: stop }
}

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

async fn post_form(front: &Front, path: &str, body: &str) -> Response {
    client()
        .post(format!("{}{path}", front.http))
        .header("content-type", FORM)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Asserts RFC 6749 5.2's error: the status, `{"error", "error_description"?}` and nothing
/// else, `Cache-Control: no-store`. Returns the headers and the body.
async fn assert_oauth_error(
    response: Response,
    status: StatusCode,
    error: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let headers = response.headers().clone();
    let actual = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let fields = body.as_object().unwrap();
    assert!(
        fields
            .keys()
            .all(|key| key == "error" || key == "error_description"),
        "{body}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    (headers, body)
}

#[tokio::test]
async fn the_metadata_names_the_configured_issuer_whatever_the_host() {
    let front = front(|gateway| gateway.with_oauth_issuer(ISSUER)).await;
    for host in [None, Some("evil.example"), Some("127.0.0.1:1")] {
        let mut request = client().get(format!(
            "{}/.well-known/oauth-authorization-server",
            front.http
        ));
        if let Some(host) = host {
            request = request
                .header("host", host)
                .header("x-forwarded-host", host);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let document: Value = response.json().await.unwrap();
        assert_eq!(
            document,
            json!({
                "issuer": ISSUER,
                "authorization_endpoint": format!("{ISSUER}/oauth/authorize"),
                "token_endpoint": format!("{ISSUER}/oauth/token"),
                "revocation_endpoint": format!("{ISSUER}/oauth/revoke"),
                "introspection_endpoint": format!("{ISSUER}/oauth/introspect"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported":
                    ["client_secret_basic", "client_secret_post", "none"],
                "revocation_endpoint_auth_methods_supported":
                    ["client_secret_basic", "client_secret_post", "none"],
                "introspection_endpoint_auth_methods_supported":
                    ["client_secret_basic", "client_secret_post"],
                "scopes_supported": key_proto::SCOPES,
                "authorization_response_iss_parameter_supported": false,
            }),
            "Host {host:?}"
        );
    }
}

#[tokio::test]
async fn without_an_issuer_there_is_no_metadata() {
    let front = front(|gateway| gateway).await;
    let response = client()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            front.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn malformed_token_requests_are_refused_before_any_upstream_call() {
    let front = front(|gateway| gateway).await;
    let basic = |credentials: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        // Anything but a form body.
        let response = client()
            .post(format!("{}{path}", front.http))
            .header("content-type", "application/json")
            .body(r#"{"grant_type": "authorization_code"}"#)
            .send()
            .await
            .unwrap();
        let (_, body) =
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert_eq!(
            body["error_description"],
            "the body must be application/x-www-form-urlencoded"
        );
        let response = client()
            .post(format!("{}{path}", front.http))
            .body("token=x")
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

        // A parameter twice.
        let response = post_form(&front, path, "token=a&token=b&code=c&code=d").await;
        let (_, body) =
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .ends_with("is repeated"),
            "{body}"
        );

        // HTTP Basic and a secret in the body: two ways of authenticating at once.
        let response = client()
            .post(format!("{}{path}", front.http))
            .header("content-type", FORM)
            .header("authorization", basic("app:secret"))
            .body("token=t&client_secret=secret")
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

        // Basic credentials that are not base64, or lack the colon, or a bad escape.
        for credentials in [
            "Basic !!!".to_owned(),
            basic("no-colon"),
            basic("bad%zzescape:secret"),
        ] {
            let response = client()
                .post(format!("{}{path}", front.http))
                .header("content-type", FORM)
                .header("authorization", &credentials)
                .body("token=t")
                .send()
                .await
                .unwrap();
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        }

        // A bearer key is no client authentication: invalid_client, challenged for Basic.
        let response = client()
            .post(format!("{}{path}", front.http))
            .header("content-type", FORM)
            .header("authorization", "Bearer sk_live_whatever")
            .body("token=t")
            .send()
            .await
            .unwrap();
        let (headers, _) =
            assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert_eq!(headers["www-authenticate"], r#"Basic realm="keyrack""#);

        // A form over 16 KiB.
        let big = format!("token={}", "a".repeat(17 * 1024));
        let response = post_form(&front, path, &big).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_well_formed_request_reaches_the_service_and_its_absence_is_temporarily_unavailable() {
    let front = front(|gateway| gateway).await;
    // Basic with a percent-encoded id, the body's client_id naming the same client.
    let response = client()
        .post(format!("{}/oauth/token", front.http))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .basic_auth("my%3Aapp", Some("s3cret"))
        .body("grant_type=authorization_code&code=abc&client_id=my%3Aapp&resource=a&resource=b")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_oauth_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert_eq!(body, json!({"error": "temporarily_unavailable"}));
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let response = post_form(&front, path, "token=t&client_id=app&client_secret=s").await;
        assert_oauth_error(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
    }
}

#[tokio::test]
async fn the_authorization_endpoint_is_the_merged_router_at_the_root() {
    let authorize = axum::Router::new().route(
        "/oauth/authorize",
        get(|| async { "consent" }).post(|| async { "decided" }),
    );
    let front = front(|gateway| gateway.with_authorize(authorize)).await;
    let url = format!("{}/oauth/authorize?client_id=x", front.http);
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), "consent");
    let response = client().post(&url).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "decided");
    // Another method is the gateway's 405, in the platform's shape.
    let response = client().delete(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // Without the console's router, the path is no route.
    let bare = self::front(|gateway| gateway).await;
    let response = client()
        .get(format!("{}/oauth/authorize", bare.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
