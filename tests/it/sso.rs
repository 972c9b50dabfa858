//! Signing in to the console with an OpenID Connect provider: a real one, `tests/oidc/
//! provider.py` (authlib and joserfc), run for each test. The browser is played by hand with a
//! client that follows no redirect: the console sends it to the provider, the provider (which
//! approves the user the test chose at once) back to the console's callback.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use key_proto::v1;
use key_service::SsoConfig;
use reqwest::{Client, Response, StatusCode, header, redirect::Policy};

use crate::{
    helpers::{Backend, TestApp, authed, backends, spawn_app, spawn_app_configured},
    process::{LoggedChild, keyrack, loopback_only, on_path, repo_root, venv_tool},
};

const CLIENT_ID: &str = "keyrack-console";
const CLIENT_SECRET: &str = "test-client-secret-0123456789";
const LISTENING: &str = "oidc provider listening on ";

/// The test's identity provider, stopped when dropped.
pub(crate) struct Provider {
    url: String,
    _process: LoggedChild,
}

impl Provider {
    pub(crate) fn start() -> Provider {
        let mut command = Command::new(venv_tool("python"));
        command
            .arg(repo_root().join("tests/oidc/provider.py"))
            .args([CLIENT_ID, CLIENT_SECRET]);
        loopback_only(&mut command);
        let mut process = LoggedChild::spawn(command, "the OpenID Connect provider");
        let url = process.wait_for_line(LISTENING, Duration::from_secs(30), |line| {
            Some(line.split(LISTENING).nth(1)?.trim().to_owned())
        });
        Provider {
            url,
            _process: process,
        }
    }

    /// Flips one of the provider's test switches (`user?email=…`, `tamper?mode=…`).
    pub(crate) async fn set(&self, switch: &str) {
        let response = browser()
            .get(format!("{}/test/{switch}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    fn config(&self) -> SsoConfig {
        SsoConfig {
            issuer: self.url.clone(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            user_claim: "email".to_owned(),
        }
    }
}

fn browser() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn spawn_with_sso(backend: &Backend, provider: &Provider) -> TestApp {
    let config = provider.config();
    spawn_app_configured(backend, move |setup| setup.parts.sso = Some(config)).await
}

fn location(response: &Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `name=value` of every cookie `response` sets.
fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// The session cookie `response` sets (`keyrack_session=krs_…`), if any.
fn session_cookie(response: &Response) -> Option<String> {
    set_cookies(response)
        .into_iter()
        .map(|set| set.split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with("keyrack_session=krs_"))
}

/// Starts a sign-in at the console and has the provider approve it: the sign-in cookie
/// (`keyrack_sso=…`) and the callback URL the provider sent the browser to.
async fn to_the_provider_and_back(app: &TestApp) -> (String, String) {
    let client = browser();
    let start = client
        .get(format!("{}/console/sign-in/sso", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let pending = set_cookies(&start)
        .into_iter()
        .find(|set| set.starts_with("keyrack_sso="))
        .expect("the sign-in cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Max-Age=600", "Path=/"] {
        assert!(pending.contains(attribute), "{pending} lacks {attribute}");
    }
    let pending = pending.split(';').next().unwrap().to_owned();
    let authorize = location(&start);
    let at_provider = client.get(&authorize).send().await.unwrap();
    assert_eq!(
        at_provider.status(),
        StatusCode::FOUND,
        "{authorize}: {}",
        at_provider.text().await.unwrap()
    );
    let callback = location(&at_provider);
    assert!(
        callback.starts_with(&format!("{}/console/sign-in/sso/callback?", app.http)),
        "{callback}"
    );
    (pending, callback)
}

async fn callback(pending: &str, url: &str) -> Response {
    browser()
        .get(url)
        .header(header::COOKIE, pending)
        .send()
        .await
        .unwrap()
}

/// A whole sign-in: the callback's answer.
async fn sign_in(app: &TestApp) -> Response {
    let (pending, url) = to_the_provider_and_back(app).await;
    let response = callback(&pending, &url).await;
    // Whatever the outcome, the sign-in in progress is forgotten.
    assert!(
        set_cookies(&response)
            .iter()
            .any(|set| set.starts_with("keyrack_sso=;") && set.contains("Max-Age=0")),
        "{:?}",
        set_cookies(&response)
    );
    response
}

async fn caller(app: &TestApp, cookie: &str) -> v1::GetCallerResponse {
    let token = cookie.split_once('=').unwrap().1;
    app.client
        .clone()
        .get_caller(authed(token, v1::GetCallerRequest {}))
        .await
        .unwrap()
        .into_inner()
}

async fn add_member(app: &TestApp, admin_key: &str, user: &str, role: v1::Role) {
    app.client
        .clone()
        .add_member(authed(
            admin_key,
            v1::AddMemberRequest {
                user_id: user.into(),
                role: role.into(),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_member_signs_in_through_the_provider_and_acts_as_their_member() {
    let provider = Provider::start();
    for backend in backends() {
        let app = spawn_with_sso(&backend, &provider).await;
        add_member(&app, &app.admin_key, "dana@example.com", v1::Role::Member).await;
        provider.set("user?email=dana@example.com").await;

        let page = browser()
            .get(format!("{}/console/sign-in", app.http))
            .send()
            .await
            .unwrap();
        assert!(page.text().await.unwrap().contains("Sign in with SSO"));

        let response = sign_in(&app).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/console/settings/api-keys");
        let cookie = session_cookie(&response).expect("a session");
        let me = caller(&app, &cookie).await;
        assert_eq!(me.user_id, "dana@example.com");
        assert_eq!(me.organization_name, "default");
        assert_eq!(me.role(), v1::Role::Member);
        assert!(me.key_id.is_empty(), "a member's session, not a key's");
        let keys = browser()
            .get(format!("{}/console/settings/api-keys", app.http))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(keys.status(), StatusCode::OK);

        // Audited as the member beginning their session.
        let events = app
            .client
            .clone()
            .list_audit_events(authed(
                &app.admin_key,
                v1::ListAuditEventsRequest {
                    action: "session.create".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].actor_type, "member");
    }
}

#[tokio::test]
async fn a_member_of_several_organizations_picks_one() {
    let provider = Provider::start();
    let app = spawn_with_sso(&Backend::Sqlite, &provider).await;
    add_member(&app, &app.admin_key, "erin@example.com", v1::Role::Viewer).await;
    let other = app.other_organization_admin("acme").await;
    add_member(&app, &other, "erin@example.com", v1::Role::Admin).await;
    provider.set("user?email=erin@example.com").await;

    let response = sign_in(&app).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        session_cookie(&response).is_none(),
        "no session before the choice"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let page = response.text().await.unwrap();
    assert!(page.contains("Choose an organization"), "{page}");
    assert!(page.contains("erin@example.com"));
    // One button per organization, each posting its own one-time token to the invite form.
    let choices: Vec<(String, String)> = page
        .split("name=\"sign_in_token\" value=\"")
        .skip(1)
        .map(|rest| {
            let token = rest.split('"').next().unwrap().to_owned();
            let button = rest.split("<button type=\"submit\">").nth(1).unwrap();
            (token, button.split('<').next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(choices.len(), 2, "{page}");
    assert!(
        page.contains("as viewer") && page.contains("as admin"),
        "{page}"
    );
    let (token, _) = choices
        .iter()
        .find(|(_, organization)| organization == "acme")
        .expect("acme is a choice");
    assert!(token.starts_with("krl_"));

    let chosen = browser()
        .post(format!("{}/console/invite", app.http))
        .form(&[("sign_in_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    let me = caller(&app, &session_cookie(&chosen).unwrap()).await;
    assert_eq!(me.organization_name, "acme");
    assert_eq!(me.user_id, "erin@example.com");
    assert_eq!(me.role(), v1::Role::Admin);
}

#[tokio::test]
async fn a_person_who_is_no_member_is_refused_with_a_page() {
    let provider = Provider::start();
    let app = spawn_with_sso(&Backend::Sqlite, &provider).await;
    provider.set("user?email=mallory@example.com").await;
    let response = sign_in(&app).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&response).is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("Sign-in refused"), "{page}");
    assert!(
        page.contains(
            "mallory@example.com is not a member of any organization in Keyrack; ask an admin \
             to add you"
        ),
        "{page}"
    );

    // A person the provider itself refuses comes back with its error, shown as such.
    provider.set("user?email=").await;
    let response = sign_in(&app).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("The identity provider did not sign you in: the user declined"),
        "{page}"
    );
}

#[tokio::test]
async fn a_tampered_id_token_is_refused_and_begins_no_session() {
    let provider = Provider::start();
    let app = spawn_with_sso(&Backend::Sqlite, &provider).await;
    add_member(&app, &app.admin_key, "dana@example.com", v1::Role::Admin).await;
    provider.set("user?email=dana@example.com").await;
    for mode in ["signature", "nonce", "audience"] {
        provider.set(&format!("tamper?mode={mode}")).await;
        let response = sign_in(&app).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{mode}");
        assert!(session_cookie(&response).is_none(), "{mode}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("the ID token did not verify"),
            "{mode}: {page}"
        );
    }
    // Untampered, the same person signs in.
    provider.set("tamper?mode=").await;
    let response = sign_in(&app).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&response).is_some());
}

#[tokio::test]
async fn a_callback_whose_state_does_not_match_the_browsers_is_refused() {
    let provider = Provider::start();
    let app = spawn_with_sso(&Backend::Sqlite, &provider).await;
    add_member(&app, &app.admin_key, "dana@example.com", v1::Role::Admin).await;
    provider.set("user?email=dana@example.com").await;

    // Another browser's callback (an attacker's code, planted by a link): its state is not
    // this browser's.
    let (mine, _) = to_the_provider_and_back(&app).await;
    let (_, theirs) = to_the_provider_and_back(&app).await;
    let response = callback(&mine, &theirs).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(session_cookie(&response).is_none());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("does not match the one this browser started")
    );

    // No sign-in cookie at all (expired, or another browser): refused too.
    let (_, url) = to_the_provider_and_back(&app).await;
    let response = callback("other=1", &url).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(session_cookie(&response).is_none());
}

#[tokio::test]
async fn without_a_provider_the_console_offers_no_sso() {
    let app = spawn_app(&Backend::Sqlite).await;
    let page = browser()
        .get(format!("{}/console/sign-in", app.http))
        .send()
        .await
        .unwrap();
    assert!(!page.text().await.unwrap().contains("Sign in with SSO"));
    let start = browser()
        .get(format!("{}/console/sign-in/sso", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::NOT_FOUND);
    let status = app
        .client
        .clone()
        .begin_sso_sign_in(v1::BeginSsoSignInRequest {
            redirect_uri: format!("{}/console/sign-in/sso/callback", app.http),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
}

const GATEWAY_LISTENING: &str = "HTTP gateway listening";

/// `keyrack serve` on the embedded default in `data_dir`, signing people in with `provider`;
/// the process and its HTTP address.
fn serve_with(provider: &Provider, data_dir: &std::path::Path) -> (LoggedChild, String) {
    let secret = data_dir.join("oidc-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let mut command = keyrack();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--oidc-issuer",
            &provider.url,
            "--oidc-client-id",
            CLIENT_ID,
            "--oidc-client-secret-file",
        ])
        .arg(&secret)
        .arg("--data-dir")
        .arg(data_dir.join("data"))
        .env("KEYRACK_LOG", "info");
    loopback_only(&mut command);
    let mut served = LoggedChild::spawn(command, "keyrack serve --oidc-issuer");
    let address = served.wait_for_line(GATEWAY_LISTENING, Duration::from_secs(30), |line| {
        let rest = line.split(GATEWAY_LISTENING).nth(1)?;
        let at = rest.split("address=").nth(1)?;
        Some(at.split_whitespace().next()?.to_owned())
    });
    (served, address)
}

/// `keyrack serve --oidc-*` as configured from its flags: the secret read from its file, the
/// callback URL derived from the HTTP listener, discovery at the first sign-in.
#[tokio::test]
async fn keyrack_serve_signs_in_with_the_provider_its_flags_name() {
    let provider = Provider::start();
    provider.set("user?email=nobody@example.com").await;
    let data_dir = tempfile::tempdir().unwrap();
    let (served, address) = serve_with(&provider, data_dir.path());
    let console = format!("http://{address}/console");
    let client = browser();
    let start = client
        .get(format!("{console}/sign-in/sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "{}", served.stderr());
    let authorize = location(&start);
    let callback_url = format!("{console}/sign-in/sso/callback");
    assert!(authorize.starts_with(&format!("{}/authorize?", provider.url)));
    let parsed = reqwest::Url::parse(&authorize).unwrap();
    let query = |name: &str| {
        parsed
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(query("redirect_uri"), Some(callback_url), "{authorize}");
    assert_eq!(query("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query("response_type").as_deref(), Some("code"));
    let pending = set_cookies(&start)[0].split(';').next().unwrap().to_owned();
    let back = location(&client.get(&authorize).send().await.unwrap());
    let response = callback(&pending, &back).await;
    // The code was exchanged with the secret from the file; the person is no member.
    let status = response.status();
    let page = response.text().await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}\n{}", served.stderr());
    assert!(
        page.contains("nobody@example.com is not a member"),
        "{page}"
    );

    // Half a configuration is refused at start.
    let mut half = keyrack();
    half.args(["serve", "--oidc-issuer", &provider.url]);
    let output = half.output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--oidc-client-id"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The same flows in Debian's Chromium (`tests/browser/sso.py`): a member of two organizations
/// picks one, a person who is no member is refused; axe-core on each page, screenshots in
/// `target/console-screenshots/`.
#[test]
fn sso_works_in_chromium_with_no_serious_accessibility_violation() {
    let provider = Provider::start();
    let data_dir = tempfile::tempdir().unwrap();
    let (served, address) = serve_with(&provider, data_dir.path());
    let mut script = Command::new(venv_tool("python"));
    script
        .arg(repo_root().join("tests/browser/sso.py"))
        .env("KEYRACK_URL", format!("http://{address}"))
        .env("KEYRACK_OIDC_URL", &provider.url)
        .env(
            "KEYRACK_ADMIN_KEY",
            data_dir.path().join("data/bootstrap-admin-key"),
        )
        .env(
            "KEYRACK_SCREENSHOTS",
            repo_root().join("target/console-screenshots"),
        )
        .env("KEYRACK_CHROMIUM", on_path("chromium"))
        .stdin(Stdio::null());
    loopback_only(&mut script);
    let output = script.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{}\n{stdout}\nkeyrack serve's log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        served.stderr()
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|error| panic!("no summary ({error}):\n{stdout}"));
    let pages = summary["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3, "{summary}");
    for page in pages {
        let name = page["page"].as_str().unwrap();
        assert!(
            std::path::Path::new(page["screenshot"].as_str().unwrap()).is_file(),
            "no screenshot of {name}"
        );
        assert_eq!(
            summary["axe"][name]["serious_or_critical"],
            serde_json::json!([]),
            "{name}"
        );
    }
    let log = served.stderr();
    for secret in ["krs_", "krl_", CLIENT_SECRET] {
        assert!(!log.contains(secret), "{secret}… in the log:\n{log}");
    }
}
