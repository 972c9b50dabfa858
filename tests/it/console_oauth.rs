//! The console's part of OAuth 2.0 over HTTP, as a browser drives it: `/oauth/authorize` sends
//! a signed-out person to sign in and back (`next`, honoured by every sign-in, ignored when it
//! could lead elsewhere), the consent page and the decision, refusals shown as pages that
//! redirect nowhere, authorized applications and their revocation, and the admins' OAuth
//! applications page. The whole flow with a real OAuth client in Chromium is in
//! `tests/browser/oauth.py` (`console_browser.rs`).

use key_proto::v1;
use reqwest::{Client, Response, StatusCode, header, redirect::Policy};

use crate::{
    console::add_member,
    helpers::{Backend, TestApp, authed, backends, spawn_app},
    sso::{Provider, spawn_with_sso},
};

/// A browser-like client that does not follow redirects (so the tests see them).
fn browser() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn cookie_of(response: &Response) -> String {
    let set = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .expect("a Location")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Signs in with `key`, carrying `next` when given; the answer.
async fn sign_in(app: &TestApp, key: &str, next: Option<&str>) -> Response {
    let mut form = vec![("api_key", key)];
    form.extend(next.map(|next| ("next", next)));
    browser()
        .post(format!("{}/console/sign-in", app.http))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, cookie: Option<&str>, path: &str) -> Response {
    let mut request = browser().get(format!("{}{path}", app.http));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// A form post from the console's own page (`Sec-Fetch-Site: same-origin`).
async fn post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> Response {
    browser()
        .post(format!("{}{path}", app.http))
        .header(header::COOKIE, cookie)
        .header("sec-fetch-site", "same-origin")
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The value of the hidden (or read-only) field `name` in `page`.
/// Registers an OAuth application through the console's form, as the admin whose session is
/// `cookie`: `fields` with the session's CSRF token and a fresh nonce from the form's page.
async fn register(app: &TestApp, cookie: &str, csrf: &str, fields: &[(&str, &str)]) -> Response {
    let page = get(app, Some(cookie), "/console/settings/oauth-clients")
        .await
        .text()
        .await
        .unwrap();
    let nonce = field(&page, "nonce");
    let mut form = vec![("csrf", csrf), ("nonce", nonce.as_str())];
    form.extend_from_slice(fields);
    post(app, cookie, "/console/settings/oauth-clients", &form).await
}

fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {page}"))
        + marker.len();
    unescape(page[at..].split('"').next().unwrap())
}

/// `text` with the HTML escapes askama writes undone.
fn unescape(text: &str) -> String {
    text.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// The value of the read-only input with id `id` in `page`.
fn shown(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\" readonly value=\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {page}"))
        + marker.len();
    page[at..].split('"').next().unwrap().to_owned()
}

/// A one-time sign-in link's token for `member`.
async fn link_for(app: &TestApp, member: &str) -> String {
    app.client
        .clone()
        .create_sign_in_link(authed(
            &app.admin_key,
            v1::CreateSignInLinkRequest {
                member_id: member.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .sign_in_token
}

/// A member's session, begun with a one-time sign-in link: their id and the cookie.
async fn member_session(app: &TestApp, user: &str, role: v1::Role) -> (String, String) {
    let member = add_member(app, user, role).await;
    let token = link_for(app, &member).await;
    let redeemed = browser()
        .post(format!("{}/console/invite", app.http))
        .form(&[("sign_in_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), StatusCode::SEE_OTHER);
    (member, cookie_of(&redeemed))
}

/// A PKCE pair: RFC 7636 appendix B's verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An authorization request's path for `client_id`, asking for `scope`.
fn authorize_path(client_id: &str, redirect_uri: &str, scope: &str) -> String {
    let query = form_urlencoded_pairs(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "st-42"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    format!("/oauth/authorize?{query}")
}

/// `pairs` as a query string, percent-encoded.
fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let request = Client::new()
        .get("http://localhost/")
        .query(pairs)
        .build()
        .unwrap();
    request.url().query().unwrap_or_default().to_owned()
}

/// The security headers every console page carries.
fn assert_guarded(response: &Response) {
    let headers = response.headers();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
}

/// `text` percent-decoded.
fn decode(text: &str) -> String {
    let url = reqwest::Url::parse(&format!("http://localhost/?v={text}")).unwrap();
    url.query_pairs()
        .find(|(name, _)| name == "v")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_signed_out_person_signs_in_and_comes_back_to_the_authorization_request() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let path = authorize_path("oac_unknown", "https://app.example/callback", "chat");
        let response = get(&app, None, &path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_guarded(&response);
        let to_sign_in = location(&response);
        let next = to_sign_in
            .strip_prefix("/console/sign-in?next=")
            .unwrap_or_else(|| panic!("{to_sign_in}"));
        let next = decode(next);
        // The request comes back whole, every value percent-encoded (no `//` in it).
        assert!(next.starts_with("/oauth/authorize?response_type=code&client_id=oac_unknown"));
        assert!(next.contains("redirect_uri=https%3A%2F%2Fapp.example%2Fcallback"));
        assert!(next.contains("state=st-42") && next.contains("code_challenge_method=S256"));

        // The sign-in page carries it in the form and in the links to the other ways in.
        let page = get(&app, None, &to_sign_in).await.text().await.unwrap();
        assert_eq!(field(&page, "next"), next);
        assert!(page.contains("An application asks for access"), "{page}");
        assert!(page.contains("/console/invite?next=%2Foauth%2Fauthorize%3F"));

        // Signing in with a key goes back to the request.
        let signed = sign_in(&app, &app.admin_key, Some(&next)).await;
        assert_eq!(signed.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&signed), next);

        // So does a one-time sign-in link, and to a console page as well.
        let member = add_member(&app, "nina@example.com", v1::Role::Member).await;
        let token = link_for(&app, &member).await;
        let invite = get(
            &app,
            None,
            "/console/invite?next=%2Fconsole%2Fsettings%2Fapplications",
        )
        .await
        .text()
        .await
        .unwrap();
        assert_eq!(field(&invite, "next"), "/console/settings/applications");
        let redeemed = browser()
            .post(format!("{}/console/invite", app.http))
            .form(&[
                ("sign_in_token", token.as_str()),
                ("next", "/console/settings/applications"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(redeemed.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&redeemed), "/console/settings/applications");
    }
}

#[tokio::test]
async fn a_next_that_could_lead_elsewhere_is_ignored() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        for next in [
            "https://evil.example/",
            "//evil.example/console/",
            "/\\evil.example",
            "/console//evil.example",
            "/console/\\evil.example",
            "/api/api-keys",
            "/oauth/token?x=1",
            "/oauth/authorize?redirect_uri=https://evil.example",
        ] {
            let page = get(
                &app,
                None,
                &format!(
                    "/console/sign-in?next={}",
                    form_urlencoded_pairs(&[("x", next)]).trim_start_matches("x=")
                ),
            )
            .await
            .text()
            .await
            .unwrap();
            assert!(!page.contains("name=\"next\""), "{next}: {page}");
            assert!(!page.contains("evil.example"), "{next}: {page}");
            let signed = sign_in(&app, &app.admin_key, Some(next)).await;
            assert_eq!(signed.status(), StatusCode::SEE_OTHER, "{next}");
            assert_eq!(location(&signed), "/console/settings/api-keys", "{next}");
        }
        // A refused sign-in keeps a good next and drops a bad one.
        let refused = sign_in(&app, "sk_live_wrong", Some("/console/settings/members")).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let page = refused.text().await.unwrap();
        assert_eq!(field(&page, "next"), "/console/settings/members");
        let refused = sign_in(&app, "sk_live_wrong", Some("//evil.example")).await;
        assert!(!refused.text().await.unwrap().contains("name=\"next\""));
    }
}

#[tokio::test]
async fn a_cross_site_decision_or_one_without_the_csrf_token_is_refused() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let cookie = cookie_of(&sign_in(&app, &app.admin_key, None).await);
        let form = [
            ("response_type", "code"),
            ("client_id", "oac_x"),
            ("redirect_uri", "https://app.example/callback"),
            ("decision", "allow"),
        ];
        for (name, value) in [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
            ("origin", "https://attacker.example"),
        ] {
            let refused = browser()
                .post(format!("{}/oauth/authorize", app.http))
                .header(header::COOKIE, &cookie)
                .header(name, value)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{name}: {value}");
            assert!(refused.headers().get(header::LOCATION).is_none());
            assert_guarded(&refused);
        }
        // From the page itself but without this session's token: refused too.
        let refused = post(&app, &cookie, "/oauth/authorize", &form).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.headers().get(header::LOCATION).is_none());
        // Without a session, the decision is a sign-in that comes back to the request.
        let signed_out = browser()
            .post(format!("{}/oauth/authorize", app.http))
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
        assert!(location(&signed_out).starts_with("/console/sign-in?next=%2Foauth%2Fauthorize%3F"));
    }
}

/// Registers a public client through the API; its id.
async fn public_client(app: &TestApp, redirect_uri: &str, scopes: &[&str]) -> String {
    app.client
        .clone()
        .create_oauth_client(authed(
            &app.admin_key,
            v1::CreateOauthClientRequest {
                name: "Slack integration".into(),
                r#type: v1::OauthClientType::Public.into(),
                redirect_uris: vec![redirect_uri.into()],
                scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
                environment: v1::Environment::Live.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
        .id
}

#[tokio::test]
async fn a_person_consents_and_goes_back_with_a_code_or_denies_and_revokes_later() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let redirect = "http://127.0.0.1:9/callback";
        let client_id = public_client(&app, redirect, &["chat", "agents:delete"]).await;
        let (_, cookie) = member_session(&app, "mia@example.com", v1::Role::Member).await;
        let path = authorize_path(&client_id, redirect, "chat agents:delete");
        let consent = get(&app, Some(&cookie), &path).await;
        assert_eq!(consent.status(), StatusCode::OK);
        assert_guarded(&consent);
        // The decision's redirect to the application is a form's: the page allows its origin.
        let csp = consent.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:9;"),
            "{csp}"
        );
        let page = consent.text().await.unwrap();
        assert!(
            page.contains("Slack integration wants to access your default account"),
            "{page}"
        );
        assert!(page.contains("Chat/completion requests"), "{page}");
        // A member's role holds no agents:delete: asked for, shown, not granted.
        assert!(page.contains("Delete agents"), "{page}");
        assert!(
            page.contains("not granted: your role does not hold it"),
            "{page}"
        );
        assert!(page.contains("mia@example.com"), "{page}");
        assert!(page.contains(">Allow</button>") && page.contains(">Deny</button>"));
        let csrf = field(&page, "csrf");
        let decide = |decision: &'static str| {
            let csrf = csrf.clone();
            let client_id = client_id.clone();
            let app = &app;
            let cookie = &cookie;
            async move {
                post(
                    app,
                    cookie,
                    "/oauth/authorize",
                    &[
                        ("csrf", &csrf),
                        ("response_type", "code"),
                        ("client_id", &client_id),
                        ("redirect_uri", redirect),
                        ("scope", "chat agents:delete"),
                        ("state", "st-42"),
                        ("code_challenge", CHALLENGE),
                        ("code_challenge_method", "S256"),
                        ("decision", decision),
                    ],
                )
                .await
            }
        };
        let denied = decide("deny").await;
        assert_eq!(denied.status(), StatusCode::SEE_OTHER);
        let denied = location(&denied);
        assert!(
            denied.starts_with(redirect) && denied.contains("error=access_denied"),
            "{denied}"
        );
        let allowed = decide("allow").await;
        assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
        assert_guarded(&allowed);
        let back = reqwest::Url::parse(&location(&allowed)).unwrap();
        assert_eq!(
            format!("{}://{}{}", back.scheme(), back.authority(), back.path()),
            redirect
        );
        let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        assert!(query.iter().any(|(k, v)| k == "state" && v == "st-42"));
        let (_, code) = query.iter().find(|(k, _)| k == "code").expect("a code");
        // The application exchanges the code (what the gateway's /oauth/token calls).
        let token = app
            .client
            .clone()
            .exchange_oauth_token(tonic::Request::new(v1::ExchangeOauthTokenRequest {
                grant_type: "authorization_code".into(),
                code: code.clone(),
                redirect_uri: redirect.into(),
                code_verifier: VERIFIER.into(),
                client_id: client_id.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(token.scope, "chat");

        // The approval is an authorized application of the person, who revokes it.
        let applications = get(&app, Some(&cookie), "/console/settings/applications").await;
        assert_eq!(applications.status(), StatusCode::OK);
        let page = applications.text().await.unwrap();
        assert!(
            page.contains("Slack integration") && page.contains(">chat<"),
            "{page}"
        );
        let at = page.find("/console/settings/applications/").unwrap();
        let action = page[at..].split('"').next().unwrap().to_owned();
        let csrf = field(&page, "csrf");
        let revoked = post(&app, &cookie, &action, &[("csrf", &csrf)]).await;
        assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
        let page = get(&app, Some(&cookie), "/console/settings/applications")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains("No authorized applications"), "{page}");
    }
}

#[tokio::test]
async fn an_invalid_request_is_a_page_that_redirects_nowhere() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let redirect = "http://127.0.0.1:9/callback";
        let client_id = public_client(&app, redirect, &["chat"]).await;
        let (_, cookie) = member_session(&app, "ola@example.com", v1::Role::Member).await;
        for path in [
            authorize_path("oac_nobody", redirect, "chat"),
            authorize_path(&client_id, "https://evil.example/callback", "chat"),
            format!(
                "{}&client_id=again",
                authorize_path(&client_id, redirect, "chat")
            ),
        ] {
            let response = get(&app, Some(&cookie), &path).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
            assert!(response.headers().get(header::LOCATION).is_none());
            let page = response.text().await.unwrap();
            assert!(
                unescape(&page).contains("The application's request is invalid"),
                "{page}"
            );
            assert!(!page.contains("evil.example/callback\""), "{page}");
        }
        // A fault the client can be told of goes back to it.
        let path = authorize_path(&client_id, redirect, "chat").replace("S256", "plain");
        let response = get(&app, Some(&cookie), &path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(location(&response).starts_with(redirect));
        // An organization key is no person: refused with the service's message, no redirect.
        let admin = cookie_of(&sign_in(&app, &app.admin_key, None).await);
        let response = get(
            &app,
            Some(&admin),
            &authorize_path(&client_id, redirect, "chat"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn an_admin_registers_lists_and_deletes_oauth_applications() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let cookie = cookie_of(&sign_in(&app, &app.admin_key, None).await);
        let page = get(&app, Some(&cookie), "/console/settings/oauth-clients").await;
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(page.contains("Register an application") && page.contains("OAuth applications"));
        assert!(page.contains("href=\"/console/settings/applications\""));
        let (csrf, nonce) = (field(&page, "csrf"), field(&page, "nonce"));
        let form = [
            ("csrf", csrf.as_str()),
            ("nonce", nonce.as_str()),
            ("name", "Reporting <b>bot</b>"),
            ("client_type", "confidential"),
            (
                "redirect_uris",
                "https://reports.example/callback\r\nhttps://reports.example/other\r\n",
            ),
            ("scope", "analytics:read"),
            ("scope", "chat"),
            ("environment", "live"),
        ];
        let created = post(&app, &cookie, "/console/settings/oauth-clients", &form).await;
        assert_eq!(created.status(), StatusCode::OK);
        assert_eq!(created.headers()[header::CACHE_CONTROL], "no-store");
        let page = created.text().await.unwrap();
        let client_id = shown(&page, "client-id");
        let secret = shown(&page, "client-secret");
        assert!(secret.starts_with("krc_"), "{page}");
        assert!(!page.contains("<b>bot</b>"), "the name is escaped: {page}");
        // Reloading the answer is refused: no second client, no secret again.
        let reloaded = post(&app, &cookie, "/console/settings/oauth-clients", &form).await;
        assert_eq!(reloaded.status(), StatusCode::CONFLICT);
        assert!(!reloaded.text().await.unwrap().contains("krc_"));
        // A public client has no secret.
        let public = register(
            &app,
            &cookie,
            &csrf,
            &[
                ("name", "CLI"),
                ("client_type", "public"),
                ("redirect_uris", "http://127.0.0.1:8765/callback"),
                ("scope", "chat"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
        assert!(!public.contains("client-secret") && !public.contains("krc_"));
        // A refused registration shows the form again, as sent, with the reason.
        let refused = register(
            &app,
            &cookie,
            &csrf,
            &[
                ("name", "Plain HTTP"),
                ("redirect_uris", "http://app.example/callback"),
                ("scope", "chat"),
            ],
        )
        .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let page = refused.text().await.unwrap();
        assert!(page.contains("role=\"alert\"") && page.contains("http://app.example/callback"));

        // Listed, with the confirmation naming the client before it is deleted.
        let page = get(&app, Some(&cookie), "/console/settings/oauth-clients")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(&client_id) && page.contains("CLI"), "{page}");
        let confirm = get(
            &app,
            Some(&cookie),
            &format!("/console/settings/oauth-clients/{client_id}/delete"),
        )
        .await;
        assert_eq!(confirm.status(), StatusCode::OK);
        let confirm = confirm.text().await.unwrap();
        assert!(
            unescape(&confirm).contains("Delete “Reporting <b>bot</b>”?")
                && !confirm.contains("<b>"),
            "{confirm}"
        );
        let deleted = post(
            &app,
            &cookie,
            &format!("/console/settings/oauth-clients/{client_id}/delete"),
            &[("csrf", csrf.as_str())],
        )
        .await;
        assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
        let clients = app
            .client
            .clone()
            .list_oauth_clients(authed(
                &app.admin_key,
                v1::ListOauthClientsRequest::default(),
            ))
            .await
            .unwrap()
            .into_inner()
            .clients;
        assert!(clients.iter().all(|client| client.id != client_id));
        assert_eq!(clients.len(), 1);

        // Members link to each member's authorized applications, which admins see.
        let (member, _) = member_session(&app, "lea@example.com", v1::Role::Member).await;
        let members = get(&app, Some(&cookie), "/console/settings/members")
            .await
            .text()
            .await
            .unwrap();
        let link = format!("/console/settings/applications?member={member}");
        assert!(members.contains(&link), "{members}");
        let page = get(&app, Some(&cookie), &link).await;
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(
            page.contains("Authorized applications of lea@example.com"),
            "{page}"
        );
        // The admin signed in with an organization key: no applications of its own.
        let own = get(&app, Some(&cookie), "/console/settings/applications")
            .await
            .text()
            .await
            .unwrap();
        assert!(own.contains("organization key"), "{own}");
    }
}

#[tokio::test]
async fn sign_in_through_the_identity_provider_and_its_organization_picker_honour_next() {
    let provider = Provider::start();
    let app = spawn_with_sso(&Backend::Sqlite, &provider).await;
    add_member(&app, "erin@example.com", v1::Role::Member).await;
    provider.set("user?email=erin@example.com").await;
    let next = "/console/settings/applications";
    // The sign-in page's SSO button carries next.
    let page = get(
        &app,
        None,
        "/console/sign-in?next=%2Fconsole%2Fsettings%2Fapplications",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("/console/sign-in/sso?next=%2Fconsole%2Fsettings%2Fapplications"),
        "{page}"
    );
    let through = |next: &'static str| {
        let app = &app;
        async move {
            let start = get(
                app,
                None,
                &format!(
                    "/console/sign-in/sso?next={}",
                    form_urlencoded_pairs(&[("x", next)]).trim_start_matches("x=")
                ),
            )
            .await;
            assert_eq!(start.status(), StatusCode::SEE_OTHER);
            let pending = start
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .map(|value| {
                    value
                        .to_str()
                        .unwrap()
                        .split(';')
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .find(|pair| pair.starts_with("keyrack_sso="))
                .expect("the sign-in cookie");
            let at_provider = browser().get(location(&start)).send().await.unwrap();
            browser()
                .get(location(&at_provider))
                .header(header::COOKIE, pending)
                .send()
                .await
                .unwrap()
        }
    };
    let signed = through(next).await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed), next);
    // One that could lead elsewhere is dropped at the start.
    let signed = through("//evil.example/").await;
    assert_eq!(location(&signed), "/console/settings/api-keys");

    // A member of two organizations: each choice carries next to the invite form.
    let other = app.other_organization_admin("acme").await;
    app.client
        .clone()
        .add_member(authed(
            &other,
            v1::AddMemberRequest {
                user_id: "erin@example.com".into(),
                role: v1::Role::Admin.into(),
            },
        ))
        .await
        .unwrap();
    let picker = through(next).await;
    assert_eq!(picker.status(), StatusCode::OK);
    let page = picker.text().await.unwrap();
    assert_eq!(
        page.matches("name=\"next\" value=\"/console/settings/applications\"")
            .count(),
        2,
        "{page}"
    );
    let token = field(&page, "sign_in_token");
    let chosen = browser()
        .post(format!("{}/console/invite", app.http))
        .form(&[("sign_in_token", token.as_str()), ("next", next)])
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&chosen), next);
}
