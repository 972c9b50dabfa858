//! A real nginx (Debian's package, `tools/install` puts it there) protects a small upstream with
//! `auth_request` to the gateway's `/api/auth/verify`, as a platform would deploy Keyrack:
//! a `chat` key passes and the upstream learns which key called; a key without the scope, a
//! revoked, expired or missing key is refused with the product docs' JSON error; and when
//! Keyrack is down nginx fails closed.
//!
//! The configuration is tests/nginx/nginx.conf.template; [`Nginx`] fills it in and runs nginx
//! in the foreground as a child of the test, killed when the test ends.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use chrono::{TimeZone, Utc};
use key_proto::v1;
use reqwest::{Client, Response, StatusCode, header};
use serde_json::Value;
use tempfile::TempDir;

use crate::{
    helpers::{TestApp, authed, backends, spawn_app_with_trusted_proxies},
    process::{ChildGuard, INSTALL_HINT, TIMEOUT, describe, free_port, on_path, read_or_note},
};

/// The error nginx must pass through for a key without `chat`, byte for byte.
pub(crate) const LACKS_CHAT: &str = r#"{"error":{"code":"insufficient_scope","message":"API key lacks required scope: chat"},"status":403}"#;
/// The error for a key that is not (or no longer) valid, byte for byte.
const INVALID_KEY: &str = r#"{"error":{"code":"invalid_api_key","message":"The API key provided is invalid"},"status":401}"#;
/// What the upstream behind nginx answers.
pub(crate) const UPSTREAM_REPLY: &str = "Hello from the protected upstream";

/// How often nginx is started afresh when a port picked for it was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// nginx in front of a Keyrack gateway, per tests/nginx/nginx.conf.template: `/api/chat` is
/// protected by `auth_request` (scope `chat`), the rest of `/api/` is the gateway itself.
pub(crate) struct Nginx {
    /// The base URL clients use, e.g. `http://127.0.0.1:4242`.
    pub(crate) url: String,
    dir: TempDir,
    child: ChildGuard,
}

impl Nginx {
    /// Starts nginx in front of the gateway at `gateway` (a base URL such as `app.http`) and
    /// waits until it accepts connections.
    pub(crate) fn start(gateway: &str) -> Nginx {
        let nginx = on_path("nginx");
        let gateway = gateway
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("{gateway} is not an http:// URL"));
        let template = fs::read_to_string(template_path())
            .unwrap()
            .replace("{{README_FORWARD_AUTH}}", &readme_forward_auth());
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Nginx::try_start(&nginx, &template, gateway) {
                Ok(started) => return started,
                // Another process took one of the ports between our check and nginx's bind.
                Err(log) if log.contains("Address already in use") => failures.push(log),
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!(
            "nginx did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    fn try_start(nginx: &Path, template: &str, gateway: &str) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new().prefix("nginx").tempdir().unwrap();
        let prefix = dir.path();
        // nginx runs its workers as `nobody` when started as root: they must be able to reach
        // the temp directories (request and response bodies that overflow memory go there).
        set_mode(prefix, 0o755);
        fs::create_dir(prefix.join("logs")).unwrap();
        fs::create_dir(prefix.join("temp")).unwrap();
        set_mode(&prefix.join("temp"), 0o777);

        let (port, upstream_port) = (free_port(), free_port());
        let config = template
            .replace("{{PORT}}", &port.to_string())
            .replace("{{UPSTREAM_PORT}}", &upstream_port.to_string())
            .replace("{{GATEWAY}}", gateway);
        if let Some(line) = config.lines().find(|line| line.contains("{{")) {
            panic!("unfilled placeholder in the nginx template: {line}");
        }
        let config_path = prefix.join("nginx.conf");
        fs::write(&config_path, config).unwrap();

        let error_log = prefix.join("logs/error.log");
        let stderr = prefix.join("logs/stderr.log");
        let mut command = Command::new(nginx);
        command
            // The prefix ends in `/`: nginx joins it and relative paths by concatenation.
            .arg("-p")
            .arg(format!("{}/", prefix.display()))
            .arg("-c")
            .arg(&config_path)
            // Also where nginx logs before it has read the configuration.
            .arg("-e")
            .arg(&error_log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap());
        let what = describe(&command);
        let mut child = ChildGuard::spawn(command, &what);

        let logs = || {
            format!(
                "{what}\n--- stderr\n{}\n--- error.log\n{}",
                read_or_note(&stderr),
                read_or_note(&error_log)
            )
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait() {
                return Err(format!("nginx exited with {status}: {}", logs()));
            }
            if accepts(port) && accepts(upstream_port) {
                // Accepting proves only that *something* listens on the ports: another test's
                // server may have taken one between `free_port` and nginx's bind. The
                // upstream's own answer proves it is this nginx, serving.
                if !answers(
                    upstream_port,
                    "HTTP/1.1 200",
                    "Hello from the protected upstream",
                ) || !answers(port, "HTTP/1.1 401", "invalid_api_key")
                {
                    child.kill();
                    return Err(format!(
                        "Address already in use: ports {port} and {upstream_port} answer, but \
                         not as this nginx: {}",
                        logs()
                    ));
                }
                return Ok(Nginx {
                    url: format!("http://127.0.0.1:{port}"),
                    dir,
                    child,
                });
            }
            if Instant::now() >= deadline {
                child.kill();
                panic!("nginx did not listen within {TIMEOUT:?}: {}", logs());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's error log so far, for failure messages.
    pub(crate) fn error_log(&self) -> String {
        read_or_note(&self.dir.path().join("logs/error.log"))
    }

    /// Stops nginx now (its whole process group); dropping it does the same.
    pub(crate) fn stop(mut self) {
        self.child.kill();
    }
}

/// The README's nginx forward-auth snippet, with this test's upstream and gateway where the
/// README names `platform-api` and `127.0.0.1:8080`.
fn readme_forward_auth() -> String {
    let readme = fs::read_to_string(crate::process::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("```nginx\n")
        .expect("README.md has an nginx snippet")
        + "```nginx\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let snippet = &readme[start..end];
    assert!(
        snippet.contains("http://platform-api;") && snippet.contains("http://127.0.0.1:8080/"),
        "the README's snippet no longer names the addresses the test replaces:\n{snippet}"
    );
    snippet
        .replace(
            "http://platform-api;",
            "http://127.0.0.1:{{UPSTREAM_PORT}};",
        )
        .replace("http://127.0.0.1:8080/", "http://{{GATEWAY}}/")
}

fn template_path() -> PathBuf {
    crate::process::repo_root().join("tests/nginx/nginx.conf.template")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether 127.0.0.1:`port` answers a credential-less `GET /api/chat` with `status` and a body
/// containing `needle`: the protected upstream answers 200, the public server (through the
/// gateway) 401.
fn answers(port: u16, status: &str, needle: &str) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /api/chat HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with(status) && response.contains(needle)
}

fn accepts(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// A fresh client per test (each test has its own Tokio runtime), never through a proxy from
/// the environment, with every request bounded.
fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// The docs' chat request through nginx, with `Authorization: Bearer <key>` if given.
async fn chat(nginx: &Nginx, key: Option<&str>) -> Response {
    let mut request = client()
        .post(format!("{}/api/chat", nginx.url))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"prompt": "Hello", "agentId": "agent-123"}"#);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    request.send().await.unwrap()
}

/// Asserts a refusal's status, its JSON content type and, on a 401, the `Bearer` challenge;
/// returns the body as sent.
async fn assert_refused(nginx: &Nginx, response: Response, status: StatusCode) -> String {
    let actual = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned());
    let challenge = response.headers().get(header::WWW_AUTHENTICATE).cloned();
    let text = response.text().await.unwrap();
    assert_eq!(
        actual,
        status,
        "body: {text}\nnginx error log:\n{}",
        nginx.error_log()
    );
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    if status == StatusCode::UNAUTHORIZED {
        let challenge = challenge.expect("a 401 carries WWW-Authenticate");
        assert!(
            challenge.to_str().unwrap().starts_with("Bearer "),
            "{challenge:?}"
        );
    }
    text
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text:?}"))
}

/// A server whose gateway trusts nginx's `X-Forwarded-For` (and country headers), as the README
/// says to start it, and nginx in front of it.
async fn app_and_nginx(backend: &crate::helpers::Backend) -> (TestApp, Nginx) {
    let app = spawn_app_with_trusted_proxies(backend, "127.0.0.1".parse().unwrap()).await;
    let http = app.http.clone();
    let nginx = tokio::task::spawn_blocking(move || Nginx::start(&http))
        .await
        .unwrap();
    (app, nginx)
}

#[tokio::test]
async fn nginx_lets_a_chat_key_through_and_the_upstream_learns_which_key() {
    for backend in backends() {
        let (app, nginx) = app_and_nginx(&backend).await;
        let created = app.create_key("chat", &["chat"], "").await;
        let record = created.api_key.unwrap();

        // A client cannot pose as another key, organization or scope set: nginx replaces the
        // identity headers. Nor can it name its country.
        let response = client()
            .post(format!("{}/api/chat", nginx.url))
            .header(header::AUTHORIZATION, format!("Bearer {}", created.key))
            .header("x-keyrack-key-id", "forged")
            .header("x-keyrack-org-id", "forged")
            .header("x-keyrack-scopes", "admin")
            .header("x-keyrack-country", "DE")
            .header("cf-ipcountry", "FR")
            .json(&serde_json::json!({"prompt": "Hello", "agentId": "agent-123"}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "{text}\nnginx error log:\n{}",
            nginx.error_log()
        );
        let body = json(&text);
        assert_eq!(body["reply"], UPSTREAM_REPLY, "{text}");
        assert_eq!(body["keyId"], record.id.as_str(), "{text}");
        assert_eq!(body["orgId"], record.organization_id.as_str(), "{text}");
        assert_eq!(body["scopes"], "chat", "{text}");
        let usage = app
            .client
            .clone()
            .list_usage(authed(
                &app.admin_key,
                v1::ListUsageRequest {
                    key_id: record.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .summary
            .unwrap();
        assert_eq!(usage.success_count, 1);
        assert!(usage.by_country.is_empty(), "{:?}", usage.by_country);
        nginx.stop();
    }
}

#[tokio::test]
async fn nginx_refuses_a_key_without_chat_with_the_docs_403_json() {
    for backend in backends() {
        let (app, nginx) = app_and_nginx(&backend).await;
        let key = app
            .create_key("reader", &["agents:read", "analytics:read"], "")
            .await
            .key;

        let response = chat(&nginx, Some(&key)).await;
        let body = assert_refused(&nginx, response, StatusCode::FORBIDDEN).await;
        assert_eq!(body, LACKS_CHAT);
        nginx.stop();
    }
}

#[tokio::test]
async fn nginx_refuses_revoked_expired_and_missing_keys_with_401_json() {
    for backend in backends() {
        let (app, nginx) = app_and_nginx(&backend).await;
        let revoked = app.create_key("soon revoked", &["chat"], "").await;
        let expiring = app.create_key("expiring", &["chat"], "2026-01-31").await;
        // Both work first, so the refusals below are about revocation and expiry.
        for key in [&revoked.key, &expiring.key] {
            let status = chat(&nginx, Some(key)).await.status();
            assert_eq!(
                status,
                StatusCode::OK,
                "nginx error log:\n{}",
                nginx.error_log()
            );
        }

        app.client
            .clone()
            .revoke_key(authed(
                &app.admin_key,
                v1::RevokeKeyRequest {
                    id: revoked.api_key.unwrap().id,
                    reason: "leaked".into(),
                },
            ))
            .await
            .unwrap();
        let response = chat(&nginx, Some(&revoked.key)).await;
        let body = assert_refused(&nginx, response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body, INVALID_KEY);

        app.clock
            .set(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 1).unwrap());
        let response = chat(&nginx, Some(&expiring.key)).await;
        let body = assert_refused(&nginx, response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            body,
            r#"{"error":{"code":"expired_api_key","message":"API key expired on 2026-01-31"},"status":401}"#
        );

        let response = chat(&nginx, None).await;
        let body = json(&assert_refused(&nginx, response, StatusCode::UNAUTHORIZED).await);
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert_eq!(body["status"], 401, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("Authorization: Bearer YOUR_API_KEY"),
            "{message}"
        );
        nginx.stop();
    }
}

/// nginx `auth_request` turns any answer but 2xx, 401 and 403 into 500: when Keyrack cannot
/// decide (the gateway answers 503), the request is refused, never let through.
#[tokio::test]
async fn nginx_fails_closed_when_the_key_service_is_down() {
    for backend in backends() {
        let (mut app, nginx) = app_and_nginx(&backend).await;
        let key = app.create_key("chat", &["chat"], "").await.key;
        let status = chat(&nginx, Some(&key)).await.status();
        assert_eq!(
            status,
            StatusCode::OK,
            "nginx error log:\n{}",
            nginx.error_log()
        );

        app.stop_grpc().await;
        let response = chat(&nginx, Some(&key)).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
        assert!(!text.contains(UPSTREAM_REPLY), "{text}");
        let log = nginx.error_log();
        assert!(
            log.contains("auth request unexpected status: 503"),
            "nginx error log:\n{log}"
        );
        nginx.stop();
    }
}

/// Guards against a missing nginx module before any test relies on it: Debian's nginx-light
/// has http_auth_request_module; a build without it fails every test here obscurely.
#[test]
fn nginx_has_the_auth_request_module() {
    let ran = crate::process::run_bounded(
        {
            let mut command = Command::new(on_path("nginx"));
            command.arg("-V");
            command
        },
        TIMEOUT,
    );
    // nginx -V prints on stderr.
    let text = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        text.contains("--with-http_auth_request_module"),
        "nginx lacks http_auth_request_module ({INSTALL_HINT}):\n{text}"
    );
}
